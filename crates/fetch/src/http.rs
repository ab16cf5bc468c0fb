//! The shared HTTP client: TLS settings, timeouts, redirects that never leak credentials, and
//! retries for idempotent requests.
//!
//! reqwest follows no redirects here ([`reqwest::redirect::Policy::none`]); [`HttpClient::send`]
//! follows them itself so that it can (1) send `Authorization` only to the origin (scheme, host,
//! port) the request was made for — a registry that redirects a blob to S3-style storage must
//! not hand that storage the user's token — and (2) refuse an https → http downgrade unless
//! plain http was allowed.
//!
//! TLS is rustls (through reqwest) with the platform's roots, which honour `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` (rustls-native-certs replaces the system store with them, as Go and OpenSSL
//! do). Docker-style per-host CAs come from `<certs.d>/<host[:port]>/*.crt` and are added for
//! that host only. `insecure_tls` uses reqwest's accept-anything certificate verifier.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use reqwest::{Certificate, Method, Response, StatusCode};
use url::Url;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// Longest wait honoured from a `Retry-After` header; longer waits are cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Settings for [`HttpClient`].
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Allow plain `http://` (the CLI's `--insecure-options=http`).
    pub allow_http: bool,
    /// Accept any server certificate (the CLI's `--insecure-options=tls`).
    pub insecure_tls: bool,
    /// `certs.d` directories: a host's extra CAs are `<dir>/<host[:port]>/*.crt`.
    pub cert_dirs: Vec<PathBuf>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Limit on establishing a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Limit on waiting for the next bytes of a response; there is no overall limit, so a big
    /// blob on a slow link is fine as long as it keeps moving.
    pub read_timeout: Duration,
    /// Attempts for idempotent requests (retries after connection errors, 5xx and 429).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_delay: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            allow_http: false,
            insecure_tls: false,
            cert_dirs: Vec::new(),
            user_agent: concat!("rkt/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            attempts: 3,
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// Why an HTTP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Plain http without `allow_http`.
    #[error(
        "refusing unencrypted http for {url}: pass --insecure-options=http to allow plain http"
    )]
    HttpRefused {
        /// The URL.
        url: String,
    },
    /// An https URL redirected to plain http.
    #[error(
        "refusing redirect from {from} to {to}: it downgrades https to plain http \
         (pass --insecure-options=http to allow it)"
    )]
    Downgrade {
        /// Where the redirect came from.
        from: String,
        /// Where it pointed.
        to: String,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("too many redirects (more than {MAX_REDIRECTS}) starting from {url}")]
    TooManyRedirects {
        /// The first URL.
        url: String,
    },
    /// A redirect without a usable `Location`.
    #[error("{url} answered {status} with a missing or unusable Location header")]
    BadRedirect {
        /// The URL that redirected.
        url: String,
        /// The status.
        status: u16,
    },
    /// Nothing listens at the address.
    #[error("connection to {address} refused: is the server running and listening there?")]
    ConnectionRefused {
        /// `host:port`.
        address: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The TLS handshake failed (usually an untrusted or mismatched certificate).
    #[error(
        "TLS handshake with {address} failed: if it uses a private CA, put the CA certificate in \
         <certs.d>/{address}/ca.crt or SSL_CERT_FILE; to skip verification (unsafe) pass \
         --insecure-options=tls; if it only speaks plain http, pass --insecure-options=http"
    )]
    Tls {
        /// `host:port`.
        address: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// Could not connect for another reason (DNS, unreachable, connect timeout).
    #[error("could not connect to {address}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The server stopped sending.
    #[error("{address} stopped responding (no data for {}s)", .timeout.as_secs())]
    Timeout {
        /// `host:port`.
        address: String,
        /// The idle limit.
        timeout: Duration,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// Any other failure of the exchange.
    #[error("request to {url} failed")]
    Request {
        /// The URL.
        url: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The client could not be built (TLS setup).
    #[error("could not set up the HTTP client (TLS configuration)")]
    Build(#[source] reqwest::Error),
    /// A `certs.d` file could not be read.
    #[error("could not read CA certificates from {path}")]
    CertRead {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A `certs.d` file holds no certificate.
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCerts {
        /// The file.
        path: PathBuf,
    },
    /// A `certs.d` file is not PEM.
    #[error("{path} is not a PEM certificate file")]
    BadCert {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
}

impl HttpError {
    /// Whether the TLS handshake failed over the server's certificate (rather than because the
    /// server does not speak TLS at all).
    pub fn is_certificate_error(&self) -> bool {
        match self {
            HttpError::Tls { source, .. } => source_chain_has(source, |e| {
                e.to_string().to_ascii_lowercase().contains("certificate")
            }),
            _ => false,
        }
    }

    /// Whether trying again may help (connection trouble, not configuration or TLS problems).
    fn is_transient(&self) -> bool {
        matches!(
            self,
            HttpError::ConnectionRefused { .. }
                | HttpError::Connect { .. }
                | HttpError::Timeout { .. }
                | HttpError::Request { .. }
        )
    }

    /// Turns a reqwest error for `url` into the most specific variant.
    pub fn from_reqwest(source: reqwest::Error, url: &Url, read_timeout: Duration) -> Self {
        let address = authority(url);
        if source.is_connect() {
            if source_chain_has(&source, |e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            }) {
                return HttpError::ConnectionRefused { address, source };
            }
            // rustls errors reach us wrapped in io::Error; without a rustls dependency of our
            // own, the text is what identifies them.
            if url.scheme() == "https"
                && source_chain_has(&source, |e| {
                    let t = e.to_string().to_ascii_lowercase();
                    t.contains("certificate")
                        || t.contains("tls")
                        || t.contains("handshake")
                        || t.contains("peer")
                        || t.contains("corrupt message")
                })
            {
                return HttpError::Tls { address, source };
            }
            return HttpError::Connect { address, source };
        }
        if source.is_timeout() {
            return HttpError::Timeout {
                address,
                timeout: read_timeout,
                source,
            };
        }
        HttpError::Request {
            url: url.to_string(),
            source,
        }
    }
}

fn source_chain_has(
    e: &(dyn std::error::Error + 'static),
    pred: impl Fn(&(dyn std::error::Error + 'static)) -> bool,
) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(pred)
}

/// `host:port` of a URL, with the scheme's default port filled in.
pub fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

/// A plain reqwest client with the TLS settings of `opts` (`insecure_tls`, the platform roots
/// and `SSL_CERT_FILE`; not `certs.d`, which is per host: use [`HttpClient`] for that), our
/// timeouts, and reqwest's own redirect handling restricted to [`MAX_REDIRECTS`] hops that
/// never downgrade https to http unless `allow_http`. reqwest drops `Authorization` when a
/// redirect changes scheme, host or port. Plain `http://` URLs themselves are not refused
/// here; check with [`HttpClient::check_scheme`] or `allow_http` before sending.
pub fn build_client(
    opts: &crate::registry::ClientOptions,
) -> Result<reqwest::Client, crate::registry::RegistryError> {
    let h = opts.http_options();
    let allow_http = h.allow_http;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        let downgrade = attempt
            .previous()
            .last()
            .is_some_and(|p| p.scheme() == "https")
            && attempt.url().scheme() == "http";
        if attempt.previous().len() > MAX_REDIRECTS {
            let url = attempt.previous()[0].to_string();
            attempt.error(HttpError::TooManyRedirects { url })
        } else if downgrade && !allow_http {
            let from = attempt
                .previous()
                .last()
                .map(Url::to_string)
                .unwrap_or_default();
            let to = attempt.url().to_string();
            attempt.error(HttpError::Downgrade { from, to })
        } else {
            attempt.follow()
        }
    });
    Ok(build_reqwest(&h, Vec::new(), policy)?)
}

/// Builds a reqwest client with our TLS settings and timeouts and `extra_roots` trusted in
/// addition to the platform's roots.
fn build_reqwest(
    opts: &HttpOptions,
    extra_roots: Vec<Certificate>,
    redirect: reqwest::redirect::Policy,
) -> Result<reqwest::Client, HttpError> {
    let mut b = reqwest::Client::builder()
        .user_agent(opts.user_agent.clone())
        .redirect(redirect)
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .tls_backend_rustls();
    if opts.insecure_tls {
        b = b.tls_danger_accept_invalid_certs(true);
    } else if !extra_roots.is_empty() {
        b = b.tls_certs_merge(extra_roots);
    }
    b.build().map_err(HttpError::Build)
}

/// Reads every `*.crt` file in `dir` (docker's `certs.d/<host>` convention). A missing
/// directory is no certificates.
pub fn load_cert_dir(dir: &Path) -> Result<Vec<Certificate>, HttpError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(HttpError::CertRead {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| HttpError::CertRead {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "crt") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut certs = Vec::new();
    for path in paths {
        let pem = std::fs::read(&path).map_err(|source| HttpError::CertRead {
            path: path.clone(),
            source,
        })?;
        let found = Certificate::from_pem_bundle(&pem).map_err(|source| HttpError::BadCert {
            path: path.clone(),
            source,
        })?;
        if found.is_empty() {
            return Err(HttpError::NoCerts { path });
        }
        certs.extend(found);
    }
    Ok(certs)
}

/// One request for [`HttpClient::send`].
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// GET, HEAD or POST.
    pub method: Method,
    /// Where to send it.
    pub url: Url,
    /// Headers sent on every hop.
    pub headers: HeaderMap,
    /// `Authorization`, sent only to `url`'s origin (scheme, host and port), never to a host a
    /// redirect leads to.
    pub authorization: Option<HeaderValue>,
    /// Request body (POST).
    pub body: Option<Bytes>,
    /// Whether to retry after connection errors, 5xx and 429 (only for idempotent requests).
    pub retry: bool,
    /// Choose TLS roots as for this URL's host instead of `url`'s: a registry's `certs.d` CAs
    /// also vouch for the token server it names (as in docker, which uses the registry's
    /// transport for both).
    pub trust_as: Option<Url>,
}

impl HttpRequest {
    /// A retried request with no headers.
    pub fn new(method: Method, url: Url) -> Self {
        HttpRequest {
            method,
            url,
            headers: HeaderMap::new(),
            authorization: None,
            body: None,
            retry: true,
            trust_as: None,
        }
    }
}

/// A cheap-to-clone HTTP client that picks per-host TLS roots and follows redirects safely.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    opts: HttpOptions,
    /// The client for hosts without a `certs.d` entry.
    default: reqwest::Client,
    /// Clients for hosts with a `certs.d` entry, by `host:port` (built on first use).
    per_host: Mutex<HashMap<String, reqwest::Client>>,
}

impl HttpClient {
    /// Builds the default client; per-host clients are built when a host is first contacted.
    pub fn new(opts: HttpOptions) -> Result<Self, HttpError> {
        let default = build_reqwest(&opts, Vec::new(), reqwest::redirect::Policy::none())?;
        Ok(HttpClient {
            inner: Arc::new(Inner {
                opts,
                default,
                per_host: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The options this client was built with.
    pub fn options(&self) -> &HttpOptions {
        &self.inner.opts
    }

    /// The reqwest client for `url`'s host: with its `certs.d` CAs if it has any.
    pub fn client_for(&self, url: &Url) -> Result<reqwest::Client, HttpError> {
        let opts = &self.inner.opts;
        if opts.insecure_tls || opts.cert_dirs.is_empty() || url.scheme() != "https" {
            return Ok(self.inner.default.clone());
        }
        let key = authority(url);
        if let Some(c) = self.lock_hosts().get(&key) {
            return Ok(c.clone());
        }
        // docker names the directory host:port, or just host for the default port.
        let host = url.host_str().unwrap_or("");
        let mut names = vec![key.clone()];
        if url.port().is_none() {
            names.push(host.to_owned());
        }
        let mut roots = Vec::new();
        for dir in &opts.cert_dirs {
            for name in &names {
                roots.extend(load_cert_dir(&dir.join(name))?);
            }
        }
        let client = if roots.is_empty() {
            self.inner.default.clone()
        } else {
            tracing::debug!(host = %key, n = roots.len(), "trusting extra CAs from certs.d");
            build_reqwest(opts, roots, reqwest::redirect::Policy::none())?
        };
        self.lock_hosts().insert(key, client.clone());
        Ok(client)
    }

    fn lock_hosts(&self) -> std::sync::MutexGuard<'_, HashMap<String, reqwest::Client>> {
        // A panic while holding this lock leaves a map of finished clients: still usable.
        self.inner
            .per_host
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses `http://` unless plain http is allowed.
    pub fn check_scheme(&self, url: &Url) -> Result<(), HttpError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.inner.opts.allow_http => Ok(()),
            _ => Err(HttpError::HttpRefused {
                url: url.to_string(),
            }),
        }
    }

    /// Sends `req`, following redirects (see the module docs) and retrying idempotent
    /// requests. Returns the first non-redirect response, whatever its status; its `url()` is
    /// where it came from. A 5xx or 429 that survives every attempt is returned as is.
    pub async fn send(&self, req: &HttpRequest) -> Result<Response, HttpError> {
        let attempts = if req.retry {
            self.inner.opts.attempts.max(1)
        } else {
            1
        };
        let mut delay = self.inner.opts.retry_delay;
        let mut attempt = 1;
        loop {
            let last = attempt >= attempts;
            match self.send_once(req).await {
                Ok(resp) if !last && retryable_status(resp.status()) => {
                    let wait = retry_after(&resp).unwrap_or(delay);
                    tracing::warn!(
                        url = %req.url, status = %resp.status(), attempt,
                        "server busy or failing; retrying in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) if !last && e.is_transient() => {
                    tracing::warn!(url = %req.url, attempt, error = %e, "retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
            delay = delay.saturating_mul(2);
            attempt += 1;
        }
    }

    async fn send_once(&self, req: &HttpRequest) -> Result<Response, HttpError> {
        let origin = req.url.origin();
        let mut url = req.url.clone();
        let mut method = req.method.clone();
        let mut body = req.body.clone();
        // Every hop uses the first host's client, so a registry's certs.d CAs also vouch for
        // the storage it redirects to (as in docker, where one transport serves the chain).
        let client = self.client_for(req.trust_as.as_ref().unwrap_or(&req.url))?;
        for _ in 0..=MAX_REDIRECTS {
            self.check_scheme(&url)?;
            let mut rb = client
                .request(method.clone(), url.clone())
                .headers(req.headers.clone());
            if let Some(auth) = &req.authorization {
                if url.origin() == origin {
                    rb = rb.header(AUTHORIZATION, auth.clone());
                } else {
                    tracing::debug!(%url, "redirected off the origin; not sending credentials");
                }
            }
            if let Some(b) = &body {
                rb = rb.body(b.clone());
            }
            let resp = rb
                .send()
                .await
                .map_err(|e| HttpError::from_reqwest(e, &url, self.inner.opts.read_timeout))?;
            let status = resp.status();
            if !is_redirect(status) {
                return Ok(resp);
            }
            let next = redirect_target(
                &url,
                status,
                resp.headers().get(LOCATION),
                self.inner.opts.allow_http,
            )?;
            // 303 always, and 301/302 after POST (as browsers and Go do), turn into a GET.
            if status == StatusCode::SEE_OTHER || (method == Method::POST && status.as_u16() < 303)
            {
                if method != Method::HEAD {
                    method = Method::GET;
                }
                body = None;
            }
            tracing::debug!(from = %url, to = %next, %status, "following redirect");
            url = next;
        }
        Err(HttpError::TooManyRedirects {
            url: req.url.to_string(),
        })
    }
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect from `from` leads, refusing non-http(s) targets and, unless `allow_http`,
/// https → http downgrades.
fn redirect_target(
    from: &Url,
    status: StatusCode,
    location: Option<&HeaderValue>,
    allow_http: bool,
) -> Result<Url, HttpError> {
    let next = location
        .and_then(|l| l.to_str().ok())
        .and_then(|l| from.join(l).ok())
        .filter(|n| matches!(n.scheme(), "http" | "https"))
        .ok_or_else(|| HttpError::BadRedirect {
            url: from.to_string(),
            status: status.as_u16(),
        })?;
    if from.scheme() == "https" && next.scheme() == "http" && !allow_http {
        return Err(HttpError::Downgrade {
            from: from.to_string(),
            to: next.to_string(),
        });
    }
    Ok(next)
}

fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || matches!(s.as_u16(), 500 | 502 | 503 | 504)
}

/// `Retry-After` in seconds (the date form is rare from registries and is ignored).
fn retry_after(resp: &Response) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn redirects_never_downgrade_unless_allowed() {
        let from = Url::parse("https://reg.example/v2/a/blobs/x").unwrap();
        let found = StatusCode::FOUND;
        let to_http = hv("http://storage.example/b");
        let err = redirect_target(&from, found, Some(&to_http), false).unwrap_err();
        assert!(matches!(err, HttpError::Downgrade { .. }));
        assert!(err.to_string().contains("--insecure-options=http"), "{err}");
        assert_eq!(
            redirect_target(&from, found, Some(&to_http), true)
                .unwrap()
                .as_str(),
            "http://storage.example/b"
        );
        // Relative locations resolve against the current URL.
        assert_eq!(
            redirect_target(&from, found, Some(&hv("/other")), false)
                .unwrap()
                .as_str(),
            "https://reg.example/other"
        );
        for bad in ["file:///etc/passwd", "ftp://x/y"] {
            assert!(matches!(
                redirect_target(&from, found, Some(&hv(bad)), true),
                Err(HttpError::BadRedirect { .. })
            ));
        }
        assert!(redirect_target(&from, found, None, true).is_err());
    }

    #[test]
    fn plain_http_needs_permission() {
        let strict = HttpClient::new(HttpOptions::default()).unwrap();
        let err = strict
            .check_scheme(&Url::parse("http://127.0.0.1:5000/v2/").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("--insecure-options=http"), "{err}");
        assert!(
            strict
                .check_scheme(&Url::parse("https://127.0.0.1:5000/v2/").unwrap())
                .is_ok()
        );
        let lax = HttpClient::new(HttpOptions {
            allow_http: true,
            ..HttpOptions::default()
        })
        .unwrap();
        assert!(
            lax.check_scheme(&Url::parse("http://127.0.0.1:5000/v2/").unwrap())
                .is_ok()
        );
    }

    #[test]
    fn cert_dirs_load_crt_files_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            load_cert_dir(&dir.path().join("absent"))
                .unwrap()
                .is_empty()
        );
        std::fs::write(dir.path().join("notes.txt"), "not a cert").unwrap();
        assert!(load_cert_dir(dir.path()).unwrap().is_empty());
        std::fs::write(dir.path().join("bad.crt"), "not a cert").unwrap();
        // Garbage in a .crt file is an error naming the file, not silently ignored.
        let err = load_cert_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("bad.crt"), "{err}");
    }
}
