//! Certificates for TLS tests, made by the `openssl` command (Debian's `openssl` package;
//! required when `CI=true`): a test CA and certificates it signs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `openssl` command, or `None` when it is missing; with `CI=true` a missing command
/// panics, since TLS tests must run there.
pub fn find_openssl() -> Option<&'static str> {
    let ok = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok || std::env::var("CI").as_deref() != Ok("true"),
        "the openssl command is missing (CI=true: TLS tests must run; apt-get install openssl)"
    );
    ok.then_some("openssl")
}

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Pem {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, EC P-256).
    pub key: PathBuf,
}

impl Pem {
    /// The private key's text.
    pub fn key_text(&self) -> String {
        std::fs::read_to_string(&self.key).expect("a readable key")
    }
}

/// A test CA in `dir`, valid for a day, that signs server and client certificates.
///
/// ```no_run
/// let dir = xdsc_test_support::TempDir::new("ca");
/// let ca = xdsc_test_support::TestCa::new("openssl", dir.path(), "test-ca");
/// let server = ca.issue("xdsc.test", &["DNS:xdsc.test", "IP:127.0.0.1"]);
/// assert!(server.cert.is_file());
/// ```
#[derive(Clone, Debug)]
pub struct TestCa {
    openssl: String,
    dir: PathBuf,
    /// The CA's own certificate and key.
    pub pem: Pem,
}

fn run(openssl: &str, args: &[&str]) {
    let out = Command::new(openssl)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn paths(dir: &Path, name: &str) -> Pem {
    Pem {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    }
}

impl TestCa {
    /// Makes the CA `name` (files `name.crt`, `name.key` in `dir`).
    pub fn new(openssl: &str, dir: &Path, name: &str) -> TestCa {
        let pem = paths(dir, name);
        run(
            openssl,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &pem.key.display().to_string(),
                "-out",
                &pem.cert.display().to_string(),
            ],
        );
        TestCa {
            openssl: openssl.to_owned(),
            dir: dir.to_owned(),
            pem,
        }
    }

    /// A certificate for `name` signed by this CA, for servers and clients alike, with these
    /// subject alternative names (`DNS:host`, `IP:127.0.0.1`).
    pub fn issue(&self, name: &str, sans: &[&str]) -> Pem {
        let pem = paths(&self.dir, name);
        let csr = self.dir.join(format!("{name}.csr"));
        let ext = self.dir.join(format!("{name}.ext"));
        let mut extensions = String::from(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
        );
        if !sans.is_empty() {
            extensions.push_str(&format!("subjectAltName={}\n", sans.join(",")));
        }
        std::fs::write(&ext, extensions).expect("extensions file");
        let s = |p: &Path| p.display().to_string();
        run(
            &self.openssl,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &s(&pem.key),
                "-out",
                &s(&csr),
            ],
        );
        run(
            &self.openssl,
            &[
                "x509",
                "-req",
                "-in",
                &s(&csr),
                "-CA",
                &s(&self.pem.cert),
                "-CAkey",
                &s(&self.pem.key),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &s(&ext),
                "-out",
                &s(&pem.cert),
            ],
        );
        pem
    }
}

/// A new TLS client of `127.0.0.1:port` (`openssl s_client`, TLS 1.2 so that a refused client
/// certificate fails the handshake itself, ALPN `h2`, SNI `server_name`), verifying the server
/// as `server_name` against `ca` and presenting `client` if given: `Ok(the server
/// certificate's subject, spaces removed: CN=name)`, or `Err(openssl's output)` when the
/// handshake fails.
pub fn tls_handshake(
    openssl: &str,
    port: u16,
    server_name: &str,
    ca: &Pem,
    client: Option<&Pem>,
) -> Result<String, String> {
    let mut cmd = Command::new(openssl);
    cmd.args([
        "s_client",
        "-tls1_2",
        "-alpn",
        "h2",
        "-servername",
        server_name,
    ])
    .args(["-connect", &format!("127.0.0.1:{port}")])
    .arg("-CAfile")
    .arg(&ca.cert)
    .args(["-verify_return_error", "-verify_hostname", server_name])
    .stdin(Stdio::null());
    if let Some(c) = client {
        cmd.arg("-cert").arg(&c.cert).arg("-key").arg(&c.key);
    }
    let out = cmd.output().expect("openssl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match text.lines().find_map(|l| l.strip_prefix("subject=")) {
        Some(subject) if out.status.success() => Ok(subject.replace(' ', "")),
        _ => Err(text),
    }
}

/// A TLS server presenting `pem` on a free loopback port (`openssl s_server`, which answers
/// an HTTP request with a status page), stopped when dropped.
#[derive(Debug)]
pub struct TlsBackend {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl TlsBackend {
    /// Starts it.
    pub fn start(openssl: &str, pem: &Pem) -> TlsBackend {
        let port = crate::free_port();
        let child = Command::new(openssl)
            .args([
                "s_server",
                "-quiet",
                "-accept",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("-cert")
            .arg(&pem.cert)
            .arg("-key")
            .arg(&pem.key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        TlsBackend { child, port }
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One TLS connection to `127.0.0.1:port` (`openssl s_client`, no verification) with SNI
/// `sni` (none when `None`), sending `http` if any and reading until the server closes: the
/// subject of the certificate the client saw (spaces removed: `CN=name`) and what came back
/// after the handshake, from the first `HTTP/1.1 ` on (empty when nothing did).
///
/// ```no_run
/// let http = "GET / HTTP/1.1\r\nhost: b.test\r\nconnection: close\r\n\r\n";
/// let (subject, response) = xdsc_test_support::tls_exchange("openssl", 8443, Some("b.test"), Some(http));
/// assert_eq!(subject.as_deref(), Some("CN=b.test"));
/// assert_eq!(xdsc_test_support::status_and_body(&response).map(|(s, _)| s), Some(200));
/// ```
pub fn tls_exchange(
    openssl: &str,
    port: u16,
    sni: Option<&str>,
    http: Option<&str>,
) -> (Option<String>, String) {
    use std::io::Write;
    let mut cmd = Command::new(openssl);
    cmd.args([
        "s_client",
        "-ign_eof",
        "-connect",
        &format!("127.0.0.1:{port}"),
    ]);
    match sni {
        Some(s) => cmd.args(["-servername", s]),
        None => cmd.arg("-noservername"),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client starts");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(http.unwrap_or("").as_bytes());
    }
    let out = child.wait_with_output().expect("openssl s_client ends");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let subject = text
        .lines()
        .find_map(|l| l.strip_prefix("subject="))
        .map(|s| s.replace(' ', ""));
    let response = text
        .find("HTTP/1.1 ")
        .map(|i| text[i..].to_owned())
        .unwrap_or_default();
    (subject, response)
}

/// Status and body of an HTTP/1.1 response with a `content-length` (`None` otherwise).
///
/// ```
/// let r = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
/// assert_eq!(xdsc_test_support::status_and_body(r), Some((200, "ok".to_owned())));
/// ```
pub fn status_and_body(response: &str) -> Option<(u16, String)> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
    })?;
    Some((status, body.get(..length)?.to_owned()))
}
