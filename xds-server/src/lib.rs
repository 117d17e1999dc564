//! xdsc-server: serves `xdsc-core` snapshots to Envoy over xDS.
//!
//! Built so far: [`protocol`], the per-stream protocol state machine (state of the world and
//! delta, ACK/NACK, make-before-break ordering), pure and tested without a network. The tonic
//! services, the publishing handle and the admin endpoints build on it.
//!
//! Not here: compiling snapshots (`xdsc-core`), watching files or Kubernetes (the adapters).

pub mod protocol;
