//! xdsc-kube: Kubernetes objects (Ingress, Gateway API, Services, EndpointSlices, TLS Secrets,
//! Namespaces) translated into the xdsc model.
//!
//! [`translator::Translator`] is the translation: stateful, incremental and pure (no I/O,
//! clock, async or cluster client). It holds the objects it was given and indexes of who
//! refers to whom; a batch of object upserts and deletes returns the model changes, the
//! diagnostics that appeared or cleared and the statuses that changed, at a cost
//! proportional to what the batch touches. [`translate::full`] is its one-shot form.
//! The same code serves Kubernetes manifests read from files (`xdsc-file`) and objects
//! watched in a cluster by the controller, so both behave alike.
//!
//! This crate deliberately does not watch the API server, write status or serve xDS; those
//! belong to the binaries built on it.
#![doc = include_str!("../README.md")]

mod context;
pub mod objects;
pub mod status;
#[cfg(feature = "proptest")]
pub mod strategy;
pub mod translate;
pub mod translator;
