//! xdsc-kube: Kubernetes objects (Ingress, Gateway API, Services, EndpointSlices, TLS Secrets)
//! translated into the xdsc model.
//!
//! [`translate`] is pure: no I/O, clock, async or cluster client. It takes every object known
//! ([`translate::Inputs`]) and returns model objects and diagnostics, deterministically. The
//! same code serves Kubernetes manifests read from files (`xdsc-file`) and, later, objects
//! watched in a cluster by the controller, so both behave alike.
//!
//! This crate deliberately does not watch the API server, write status or serve xDS; those
//! belong to the binaries built on it.
#![doc = include_str!("../README.md")]

pub mod translate;
