//! Test support shared by the xdsc crates' tests: the pinned Envoy (found, run with a
//! bootstrap, or asked to validate a configuration), temporary folders, free ports, tiny HTTP
//! backends, a plain HTTP/1.1 client, and test certificates (a CA made with `openssl`).
//!
//! It depends on no xdsc crate, so `xdsc-core`'s tests can use it as well as the server's and
//! the adapters'. It is not published and not for production use. The xDS-level support (a
//! scripted ADS client that plays Envoy, snapshot fixtures) is `xdsc-server`'s `test-util`
//! feature.
//!
//! ```
//! use xdsc_test_support::TempDir;
//! let dir = TempDir::with_files("doc", &[("a/b.yaml", "kind: Cluster\nname: web\n")]);
//! assert!(dir.join("a/b.yaml").is_file());
//! let path = dir.path().to_owned();
//! drop(dir);
//! assert!(!path.exists());
//! ```

mod dir;
mod envoy;
mod net;
mod tls;

pub use dir::TempDir;
pub use envoy::{Envoy, ads_bootstrap, find_envoy, validate};
pub use net::{Backend, free_port, http_get, wait_for};
pub use tls::{
    Pem, TestCa, TlsBackend, find_openssl, status_and_body, tls_exchange, tls_handshake,
};
