//! Secrets: TLS certificates with their private keys, and trusted CA certificates, PEM-encoded;
//! `Debug` never shows key material.
//!
//! Not here: where secrets are used (listeners, clusters).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::shared::Source;

/// A TLS secret, delivered to Envoy by SDS; exactly one of its fields is set.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Secret {
    /// The secret's name, as listeners and clusters refer to it.
    pub name: String,
    /// A certificate chain and private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<TlsCertificate>,
    /// Trusted CA certificates to verify peers with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_context: Option<ValidationContext>,
    /// Where the object came from (set by sources).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provenance: Vec<Source>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("tls_certificate", &self.tls_certificate)
            .field("validation_context", &self.validation_context)
            .finish_non_exhaustive()
    }
}

/// A certificate chain and its private key, PEM-encoded.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    /// The PEM certificate chain, leaf first.
    pub certificate_chain: String,
    /// The PEM private key. Never printed by `Debug`, logs or debug views.
    pub private_key: String,
}

impl fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCertificate")
            .field(
                "certificate_chain",
                &format_args!("{} bytes", self.certificate_chain.len()),
            )
            .field("private_key", &format_args!("[redacted]"))
            .finish()
    }
}

/// Trusted CA certificates, PEM-encoded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationContext {
    /// The PEM CA certificates.
    pub trusted_ca: String,
}

impl Secret {
    /// A certificate chain and private key (PEM), as HTTPS listeners serve.
    ///
    /// ```
    /// let s = xdsc_core::model::Secret::tls_certificate("cert", "CHAIN", "KEY");
    /// assert!(s.validation_context.is_none());
    /// ```
    pub fn tls_certificate(
        name: impl Into<String>,
        certificate_chain: impl Into<String>,
        private_key: impl Into<String>,
    ) -> Secret {
        Secret {
            name: name.into(),
            tls_certificate: Some(TlsCertificate {
                certificate_chain: certificate_chain.into(),
                private_key: private_key.into(),
            }),
            validation_context: None,
            provenance: Vec::new(),
        }
    }

    /// Trusted CA certificates (PEM), as clusters verify upstreams with.
    ///
    /// ```
    /// let s = xdsc_core::model::Secret::validation_context("ca", "CA PEM");
    /// assert!(s.tls_certificate.is_none());
    /// ```
    pub fn validation_context(name: impl Into<String>, trusted_ca: impl Into<String>) -> Secret {
        Secret {
            name: name.into(),
            tls_certificate: None,
            validation_context: Some(ValidationContext {
                trusted_ca: trusted_ca.into(),
            }),
            provenance: Vec::new(),
        }
    }
}
