//! TLS and mutual TLS on the xDS listener (rustls with the ring provider, the pair kube-rs uses,
//! so a process holding both has one TLS stack).
//!
//! The xDS port carries every certificate and private key the proxies serve, so it should not
//! be plain text beyond a trusted network. A [`TlsConfig`] is a server certificate chain and
//! key, and optionally the CAs whose client certificates are required (mutual TLS: a client
//! without a certificate signed by one of them is refused during the handshake, before any
//! HTTP/2 byte is read). ALPN offers `h2` only; TLS 1.2 and 1.3 (Envoy's clients default to a
//! maximum of 1.2).
//!
//! Errors name the file and what is wrong with it, never its contents; `Debug` of a
//! [`TlsConfig`] shows no key material.
//!
//! Not here: reloading rotated certificates without a restart (a new [`TlsConfig`] needs a new
//! server); certificate-based authorization beyond "signed by a trusted CA".

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors building a [`TlsConfig`]. Messages name the file and the problem, never the file's
/// contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file holds no PEM item of the kind needed, or a malformed one.
    #[error("{what}: {problem}")]
    Pem {
        /// Which input (the file's path, or "certificate", "key", "client CA").
        what: String,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the certificate, key or CAs (a key that does not match the certificate,
    /// an unsupported key type).
    #[error("invalid TLS configuration: {0}")]
    Rustls(String),
}

/// The files a [`TlsConfig`] is read from: what the binaries' `--xds-tls-cert`,
/// `--xds-tls-key` and `--xds-client-ca` flags name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM); when set, clients must present a certificate they signed.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Reads the files and builds the configuration.
    pub fn load(&self) -> Result<TlsConfig, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        let ca = match &self.client_ca {
            Some(p) => Some((read(p)?, p.display().to_string())),
            None => None,
        };
        build(
            (&read(&self.cert)?, &self.cert.display().to_string()),
            (&read(&self.key)?, &self.key.display().to_string()),
            ca.as_ref()
                .map(|(pem, name)| (pem.as_slice(), name.as_str())),
        )
    }
}

/// The TLS settings of the xDS listener: give them to [`crate::XdsServer::with_tls`].
///
/// ```
/// use xdsc_server::tls::TlsConfig;
/// // Not PEM: refused with an error that names the input, not its contents.
/// let e = TlsConfig::from_pem(b"secret bytes", b"secret bytes", None).unwrap_err();
/// assert!(!e.to_string().contains("secret"));
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ServerConfig>,
    mutual: bool,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client_certificates_required", &self.mutual)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// A configuration from PEM text: the server's certificate chain and key, and optionally
    /// the CAs whose client certificates are required.
    pub fn from_pem(
        cert: &[u8],
        key: &[u8],
        client_ca: Option<&[u8]>,
    ) -> Result<TlsConfig, TlsError> {
        build(
            (cert, "certificate"),
            (key, "key"),
            client_ca.map(|c| (c, "client CA")),
        )
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn requires_client_certificates(&self) -> bool {
        self.mutual
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }
}

fn pem_error(what: &str, problem: impl fmt::Display) -> TlsError {
    TlsError::Pem {
        what: what.to_owned(),
        problem: problem.to_string(),
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, format_args!("malformed PEM ({})", pem_problem(&e))))?;
    if certs.is_empty() {
        return Err(pem_error(what, "no CERTIFICATE in PEM"));
    }
    Ok(certs)
}

/// What is wrong, without the bytes: `pem::Error`'s own messages may quote the input.
fn pem_problem(e: &rustls::pki_types::pem::Error) -> &'static str {
    use rustls::pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { .. } => "a section has no END line",
        Error::IllegalSectionStart { .. } => "an invalid BEGIN line",
        Error::Base64Decode(_) => "invalid base64",
        Error::Io(_) => "cannot be read",
        Error::NoItemsFound => "no PEM item found",
        _ => "cannot be parsed",
    }
}

fn build(
    (cert, cert_name): (&[u8], &str),
    (key, key_name): (&[u8], &str),
    client_ca: Option<(&[u8], &str)>,
) -> Result<TlsConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(cert, cert_name)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| {
        pem_error(
            key_name,
            format_args!("no private key in PEM ({})", pem_problem(&e)),
        )
    })?;
    let rustls_error = |e: rustls::Error| TlsError::Rustls(e.to_string());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rustls_error)?;
    let builder = match client_ca {
        Some((pem, name)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certificates(pem, name)? {
                roots
                    .add(c)
                    .map_err(|e| pem_error(name, format_args!("not a CA certificate: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(rustls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsConfig {
        config: Arc::new(config),
        mutual: client_ca.is_some(),
    })
}
