//! xdsc-core: the xDS compiler.
#![doc = include_str!("../README.md")]

mod canonical;
pub mod compile;
mod descriptors;
pub mod diagnostic;
pub mod model;
pub mod oracle;
pub mod render;
pub mod snapshot;
#[cfg(feature = "proptest")]
pub mod strategy;

pub use canonical::{CanonicalError, canonicalize};
