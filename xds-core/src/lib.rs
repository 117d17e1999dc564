//! xdsc-core: the xDS compiler.
#![doc = include_str!("../README.md")]

mod canonical;
pub mod compile;
mod descriptors;
pub mod diagnostic;
pub mod model;
pub mod oracle;
pub mod render;
mod resource_type;
pub mod snapshot;
#[cfg(feature = "proptest")]
pub mod strategy;

pub use canonical::{CanonicalError, canonicalize};

/// The `envoy-types` crate whose messages the compiler emits and raw resources and typed
/// configurations are given as: use this one, so that the types agree.
pub use envoy_types;
/// The `prost` crate of those messages (`Message`, `Name`).
pub use prost;
