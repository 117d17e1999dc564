//! The request: [`Request`], as a client sends it to a listener, and what route matching sees
//! of it after the connection manager's changes (`RequestContext`: the host without its port
//! and trailing dot, the scheme, the headers with pseudo-headers).
//!
//! Not here: matching (see `http`).

/// A request, as a client would send it to one listener.
///
/// ```
/// use xdsc_core::oracle::Request;
/// let r = Request::new("https", "example.com", "/search")
///     .sni("example.com")
///     .method("POST")
///     .header("x-env", "beta")
///     .query("q", "envoy");
/// assert_eq!(r.path, "/search?q=envoy");
/// assert_eq!(r.method, "POST");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The name of the Envoy listener the connection reaches.
    pub listener: String,
    /// The TLS server name; `None` for a plain-text connection, `Some("")` for TLS without SNI.
    pub sni: Option<String>,
    /// The `Host` (`:authority`) header, possibly with a port.
    pub host: String,
    /// The `:path` header, possibly with a query string.
    pub path: String,
    /// The method (`:method`), e.g. `GET`.
    pub method: String,
    /// Other request headers (names are case-insensitive; a name may repeat).
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// A plain-text `GET` request.
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("http", "example.com", "/");
    /// assert_eq!((r.method.as_str(), r.sni), ("GET", None));
    /// ```
    pub fn new(
        listener: impl Into<String>,
        host: impl Into<String>,
        path: impl Into<String>,
    ) -> Request {
        Request {
            listener: listener.into(),
            sni: None,
            host: host.into(),
            path: path.into(),
            method: "GET".to_owned(),
            headers: Vec::new(),
        }
    }

    /// Sends the request over TLS with this server name.
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("https", "a.example.com", "/").sni("a.example.com");
    /// assert_eq!(r.sni.as_deref(), Some("a.example.com"));
    /// ```
    pub fn sni(mut self, server_name: impl Into<String>) -> Request {
        self.sni = Some(server_name.into());
        self
    }

    /// Sets the method.
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("http", "example.com", "/").method("PUT");
    /// assert_eq!(r.method, "PUT");
    /// ```
    pub fn method(mut self, method: impl Into<String>) -> Request {
        self.method = method.into();
        self
    }

    /// Adds a header (a repeated name adds another value).
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("http", "example.com", "/").header("X-Env", "beta");
    /// assert_eq!(r.headers, [("X-Env".to_owned(), "beta".to_owned())]);
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends `name=value` to the query string, as given (no percent-encoding).
    ///
    /// ```
    /// let r = xdsc_core::oracle::Request::new("http", "example.com", "/a").query("x", "1").query("y", "2");
    /// assert_eq!(r.path, "/a?x=1&y=2");
    /// ```
    pub fn query(mut self, name: &str, value: &str) -> Request {
        self.path
            .push(if self.path.contains('?') { '&' } else { '?' });
        self.path.push_str(name);
        self.path.push('=');
        self.path.push_str(value);
        self
    }
}

/// What the route matching sees of the request, after the connection manager's changes.
pub(super) struct RequestContext<'a> {
    pub(super) request: &'a Request,
    /// The `Host` header after port and dot stripping (case preserved).
    pub(super) host: String,
    pub(super) scheme: String,
    pub(super) tls: bool,
    pub(super) ignore_path_parameters: bool,
}

impl RequestContext<'_> {
    /// The values of a header, pseudo-headers included, as separate entries.
    pub(super) fn header_values(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        match name.as_str() {
            ":method" => vec![self.request.method.clone()],
            ":path" => vec![self.request.path.clone()],
            ":authority" | "host" => vec![self.host.clone()],
            ":scheme" => vec![self.scheme.clone()],
            "x-forwarded-proto" => vec![self.forwarded_proto()],
            _ => self
                .request
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }

    /// `x-forwarded-proto` as the connection manager leaves it: the client's, or the
    /// connection's scheme when absent.
    pub(super) fn forwarded_proto(&self) -> String {
        self.request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-proto"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| if self.tls { "https" } else { "http" }.to_owned())
    }
}

/// `nghttp2_check_authority`, which Envoy applies to the Host header: RFC 3986 authority
/// characters only.
pub(super) fn valid_authority(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!$&'()*+,-.:;=@[]_~%".contains(&b))
}

pub(super) fn strip_trailing_dot(host: &str) -> String {
    if let Some(h) = host.strip_suffix('.') {
        return h.to_owned();
    }
    if let Some(i) = host.rfind('.')
        && host[i + 1..].starts_with(':')
    {
        return format!("{}{}", &host[..i], &host[i + 1..]);
    }
    host.to_owned()
}

/// Envoy's `HeaderUtility::stripPortFromHost`: removes `:port` (any port, or only `only`).
pub(super) fn strip_port(host: &str, only: Option<u32>, any: bool) -> &str {
    let Some(colon) = host.rfind(':') else {
        return host;
    };
    if host.rfind(']').is_some_and(|b| b > colon) {
        return host;
    }
    let Some(port) = simple_atoi(&host[colon + 1..]) else {
        return host;
    };
    if !any && only != Some(port) {
        return host;
    }
    &host[..colon]
}

/// `absl::SimpleAtoi` into a `u32`: optional surrounding ASCII whitespace and a `+`.
pub(super) fn simple_atoi(s: &str) -> Option<u32> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}
