//! xdsc-core: the xDS compiler.
#![doc = include_str!("../README.md")]

mod descriptors;
pub mod model;
pub mod snapshot;
