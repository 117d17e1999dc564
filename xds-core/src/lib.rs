//! xdsc-core: the xDS compiler.
#![doc = include_str!("../README.md")]

mod canonical;
mod descriptors;
pub mod model;
pub mod render;
pub mod snapshot;

pub use canonical::{CanonicalError, canonicalize};
