//! Protobuf descriptors of the Envoy API, for reflection.
//!
//! `build.rs` compiles the `.proto` files shipped in the `envoy-types` package into a
//! `FileDescriptorSet`, which is embedded here and decoded once into a
//! [`prost_reflect::DescriptorPool`]. Canonical encoding ([`crate::canonical`]) uses it to find
//! map and `Any` fields; rendering ([`crate::render`]) uses it to turn bytes into Envoy JSON.
//!
//! This module holds only the messages `build.rs` lists (the resource types, the extensions the
//! compiler uses and the bootstrap); it does not know every Envoy extension, and it never reads
//! descriptors at run time from anywhere else.

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

/// The encoded `FileDescriptorSet` written by `build.rs`.
static DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The pool of Envoy message descriptors, decoded on first use.
pub(crate) fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // Not input: the bytes are our own build output, checked by the tests below.
        DescriptorPool::decode(DESCRIPTOR_SET)
            .expect("the FileDescriptorSet embedded by build.rs is valid")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ResourceType;

    #[test]
    fn pool_has_every_resource_type_and_the_bootstrap() {
        for t in ResourceType::ALL {
            assert!(
                pool().get_message_by_name(t.message_name()).is_some(),
                "{} missing",
                t.message_name()
            );
        }
        for name in [
            "envoy.config.bootstrap.v3.Bootstrap",
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "envoy.extensions.filters.http.router.v3.Router",
            "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit",
            "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector",
            "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "envoy.service.discovery.v3.DiscoveryResponse",
            "google.protobuf.Struct",
            "google.protobuf.Any",
        ] {
            assert!(pool().get_message_by_name(name).is_some(), "{name} missing");
        }
    }

    /// Redaction relies on the `(udpa.annotations.sensitive)` field option surviving into the
    /// embedded set (a plain `FileDescriptorSet` encoding would drop extension options).
    #[test]
    fn sensitive_annotation_is_kept() {
        let sensitive = pool()
            .get_extension_by_name("udpa.annotations.sensitive")
            .expect("udpa.annotations.sensitive is in the pool");
        let key = pool()
            .get_message_by_name("envoy.extensions.transport_sockets.tls.v3.TlsCertificate")
            .and_then(|m| m.get_field_by_name("private_key"))
            .expect("TlsCertificate.private_key");
        assert!(key.options().has_extension(&sensitive));
    }

    /// build.rs reads the `.proto` files of one pinned `envoy-types` version; it must be the
    /// version the workspace depends on, or the descriptors and the Rust types could disagree.
    #[test]
    #[allow(
        clippy::disallowed_methods,
        reason = "a test reads the manifest; the library does no I/O"
    )]
    fn envoy_types_pin_matches_build_script() {
        let version = env!("XDSC_ENVOY_TYPES_VERSION");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        // In the workspace the pin is in the root manifest; in a packaged crate cargo has
        // written it into the crate's own, as a `[dependencies.envoy-types]` table.
        let (manifest, pin) = match std::fs::read_to_string(dir.join("../Cargo.toml")) {
            Ok(m) if m.contains("[workspace]") => (m, format!("envoy-types = \"={version}\"")),
            _ => (
                std::fs::read_to_string(dir.join("Cargo.toml")).expect("the crate's manifest"),
                format!("version = \"={version}\""),
            ),
        };
        assert!(
            manifest.lines().any(|l| l.trim() == pin),
            "the manifest must contain `{pin}`; update ENVOY_TYPES_VERSION in \
             xds-core/build.rs together with the envoy-types pin"
        );
    }
}
