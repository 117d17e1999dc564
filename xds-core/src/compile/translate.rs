//! Translation of validated model objects into Envoy v3 messages.
//!
//! Every function here is a pure function of one model object and the availability of what
//! it refers to (given as closures), returning the Envoy message, or `None` when the object
//! must be left out, together with the diagnostics explaining why. Nothing here knows about
//! incremental state; [`super`] decides what to rebuild.
//!
//! One module per model type: `secret`, `cluster`, `endpoints`, `listener` and `routes` (a
//! virtual host's part of a route configuration); `parts` holds the pieces of Envoy messages
//! they share. Validation of routes and values is in [`super::validate`].

mod cluster;
mod endpoints;
mod listener;
mod parts;
mod routes;
mod secret;

pub(crate) use cluster::cluster;
pub(crate) use endpoints::endpoints;
pub(crate) use listener::{ListenerContext, listener};
pub use routes::ERROR_CLUSTER;
pub(crate) use routes::virtual_host;
pub(crate) use secret::{SecretState, secret};
