//! Secrets: a model `Secret` into an SDS `Secret` (a TLS certificate or a validation
//! context), and what the other translations need to know of a secret ([`SecretState`]).
//!
//! Not here: where secrets are used (clusters, listeners).

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;

use super::parts::inline;
use crate::compile::validate;
use crate::diagnostic::{Diags, Problem};
use crate::model;

/// Is a secret usable, and as what?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SecretState {
    Missing,
    TlsCertificate,
    ValidationContext,
}

pub(crate) fn secret(s: &model::Secret, d: &mut Diags) -> Option<tls::Secret> {
    use tls::secret::Type;
    let ty = match (&s.tls_certificate, &s.validation_context) {
        (Some(cert), None) => {
            let ok_chain = d.check(
                ("tls_certificate", "certificate_chain"),
                validate::pem(&cert.certificate_chain, "certificate chain", false),
            );
            let ok_key = d.check(
                ("tls_certificate", "private_key"),
                validate::pem(&cert.private_key, "private key", true),
            );
            if !(ok_chain && ok_key) {
                return None;
            }
            Type::TlsCertificate(tls::TlsCertificate {
                certificate_chain: Some(inline(&cert.certificate_chain)),
                private_key: Some(inline(&cert.private_key)),
                ..Default::default()
            })
        }
        (None, Some(vc)) => {
            if !d.check(
                ("validation_context", "trusted_ca"),
                validate::pem(&vc.trusted_ca, "CA certificate", false),
            ) {
                return None;
            }
            Type::ValidationContext(tls::CertificateValidationContext {
                trusted_ca: Some(inline(&vc.trusted_ca)),
                ..Default::default()
            })
        }
        _ => {
            d.error(
                (),
                Problem::invalid("set exactly one of tls_certificate and validation_context"),
            );
            return None;
        }
    };
    Some(tls::Secret {
        name: s.name.clone(),
        r#type: Some(ty),
    })
}
