//! xdsc-core: the xDS compiler.
#![doc = include_str!("../README.md")]

pub mod model;
pub mod snapshot;
