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
//! Rotation: a configuration read from files ([`TlsFiles::load`]) is read again every
//! [`TlsFiles::reload_every`] while the server runs (the files' bytes hashed, so a rotation by
//! rename, the symlink swap of a Kubernetes Secret volume or a write in place all count).
//! Changed files that make a valid configuration (certificate, key and client CAs) serve every
//! connection accepted from then on; connections already open keep the session they
//! negotiated. Changed files that do not (a key that is not the certificate's, a pair half
//! written) keep the previous configuration, with a warning naming the files and the problem
//! and `xdsc_xds_tls_reloads_total{result="error"}`; the next change is tried again.
//! Polling rather than inotify: three small files read every few seconds cost nothing, and a
//! poll sees through symlink swaps and volumes that raise no events.
//!
//! Errors name the file and what is wrong with it, never its contents; `Debug` of a
//! [`TlsConfig`] shows no key material. Each file is read up to [`MAX_PEM_BYTES`].
//!
//! Not here: certificate-based authorization beyond "signed by a trusted CA".

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

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
    /// A file is larger than [`MAX_PEM_BYTES`] (not a certificate or key: a wrong path).
    #[error("{path} is larger than {limit} bytes: not a PEM certificate, key or CA bundle")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
}

/// The largest certificate, key or CA file read (a CA bundle of every public root is
/// about 250 KiB).
pub const MAX_PEM_BYTES: u64 = 4 << 20;

/// How often [`TlsFiles::load`]'s files are read again by default.
pub const DEFAULT_RELOAD_EVERY: Duration = Duration::from_secs(5);

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
    /// Read the files again this often while serving, and use them for new connections when
    /// they changed and are valid; `None`: read once.
    pub reload_every: Option<Duration>,
}

impl TlsFiles {
    /// The files, read again every [`DEFAULT_RELOAD_EVERY`].
    pub fn new(cert: PathBuf, key: PathBuf, client_ca: Option<PathBuf>) -> TlsFiles {
        TlsFiles {
            cert,
            key,
            client_ca,
            reload_every: Some(DEFAULT_RELOAD_EVERY),
        }
    }

    /// Reads the files and builds the configuration (which the server reads again every
    /// [`TlsFiles::reload_every`]).
    pub fn load(&self) -> Result<TlsConfig, TlsError> {
        let (config, fingerprint) = self.read()?;
        let mut config = TlsConfig::new(config, self.client_ca.is_some());
        config.reload = self.reload_every.filter(|d| !d.is_zero()).map(|every| {
            Arc::new(Reload {
                files: self.clone(),
                every,
                fingerprint,
            })
        });
        Ok(config)
    }

    /// The files' configuration and a hash of their bytes.
    fn read(&self) -> Result<(rustls::ServerConfig, u64), TlsError> {
        let mut hasher = std::hash::DefaultHasher::new();
        let mut read = |path: &Path| {
            let bytes = read_capped(path)?;
            bytes.hash(&mut hasher);
            Ok::<_, TlsError>((bytes, path.display().to_string()))
        };
        let (cert, key) = (read(&self.cert)?, read(&self.key)?);
        let ca = self.client_ca.as_deref().map(&mut read).transpose()?;
        let config = build(
            (&cert.0, &cert.1),
            (&key.0, &key.1),
            ca.as_ref()
                .map(|(pem, name)| (pem.as_slice(), name.as_str())),
        )?;
        Ok((config, hasher.finish()))
    }

    /// A hash of the files' bytes, or `None` when one cannot be read.
    fn fingerprint(&self) -> Option<u64> {
        let mut hasher = std::hash::DefaultHasher::new();
        for path in [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
        {
            read_capped(path).ok()?.hash(&mut hasher);
        }
        Some(hasher.finish())
    }
}

/// Reads a file of at most [`MAX_PEM_BYTES`].
fn read_capped(path: &Path) -> Result<Vec<u8>, TlsError> {
    let io = |source| TlsError::Read {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            path: path.to_owned(),
            limit: MAX_PEM_BYTES,
        });
    }
    Ok(bytes)
}

/// Where and how often a configuration is read again.
#[derive(Debug)]
struct Reload {
    files: TlsFiles,
    every: Duration,
    /// The hash of the files' bytes when they were read.
    fingerprint: u64,
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
    /// The configuration new connections get (replaced by a reload).
    current: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    mutual: bool,
    reload: Option<Arc<Reload>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("client_certificates_required", &self.mutual)
            .field("reload_every", &self.reload.as_ref().map(|r| r.every))
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
        .map(|config| TlsConfig::new(config, client_ca.is_some()))
    }

    /// Whether clients must present a certificate (mutual TLS).
    pub fn requires_client_certificates(&self) -> bool {
        self.mutual
    }

    fn new(config: rustls::ServerConfig, mutual: bool) -> TlsConfig {
        TlsConfig {
            current: Arc::new(RwLock::new(Arc::new(config))),
            mutual,
            reload: None,
        }
    }

    /// The acceptor of a new connection: the newest valid configuration.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        tokio_rustls::TlsAcceptor::from(Arc::clone(&current))
    }

    /// Reads the files again every period until dropped (a no-op without files); `counted`
    /// is told each reload's outcome.
    pub(crate) async fn reload_while_serving(&self, counted: impl Fn(bool)) {
        let Some(reload) = self.reload.clone() else {
            return std::future::pending().await;
        };
        let mut seen = reload.fingerprint;
        let mut tick = tokio::time::interval(reload.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let files = reload.files.clone();
            let Ok(outcome) = tokio::task::spawn_blocking(move || {
                // A file missing for a moment (a rename in progress) is no change yet.
                let now = files.fingerprint()?;
                Some((now, files.read()))
            })
            .await
            else {
                continue;
            };
            let Some((now, read)) = outcome.filter(|(now, _)| *now != seen) else {
                continue;
            };
            seen = now;
            let f = &reload.files;
            let ca = f.client_ca.as_ref().map(|p| p.display().to_string());
            match read {
                Ok((config, _)) => {
                    *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                        Arc::new(config);
                    counted(true);
                    tracing::info!(cert = %f.cert.display(), key = %f.key.display(), client_ca = ?ca, "xDS TLS files changed: new connections get the new certificate and client CAs");
                }
                Err(e) => {
                    counted(false);
                    tracing::warn!(cert = %f.cert.display(), key = %f.key.display(), client_ca = ?ca, error = %e, "xDS TLS files changed but cannot be used; keeping the previous certificate and client CAs");
                }
            }
        }
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
) -> Result<rustls::ServerConfig, TlsError> {
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
    Ok(config)
}
