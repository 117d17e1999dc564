//! xdsc-core: the xDS compiler.
#![doc = include_str!("../README.md")]

mod canonical;
pub mod compile;
pub mod model;
pub mod snapshot;
#[cfg(feature = "proptest")]
pub mod strategy;
