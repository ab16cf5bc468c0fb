//! [`RegistryClient`]: manifests and blobs over the distribution v2 API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use rkt_types::digest::Hasher;
use rkt_types::oci::{self, Descriptor};
use rkt_types::{Digest, DockerRef, MAX_DOCUMENT_BYTES};
use url::Url;

use super::auth::Auth;
use super::body::{BlobStream, capped_stream, read_capped, read_detail};
use super::{ClientOptions, Credential, RegistryError, challenge};
use crate::http::{HttpClient, HttpRequest};

/// Header in which registries state a manifest's digest.
const CONTENT_DIGEST: &str = "docker-content-digest";

/// A manifest or index as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The document, byte for byte (its digest is over these bytes).
    pub bytes: Vec<u8>,
    /// Its media type: the `Content-Type` the registry sent, or the document's own `mediaType`
    /// when the header is missing or generic.
    pub media_type: String,
    /// Its digest: the one asked for when fetched by digest (verified), else the sha256 of the
    /// bytes (checked against `Docker-Content-Digest` when the registry sent one).
    pub digest: Digest,
}

/// A client for distribution (v2) registries. Cloning is cheap and clones share connections,
/// credentials and tokens.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    auth: Auth,
    /// `https://host/` or, after falling back with `allow_http`, `http://host/`, by API host.
    bases: Mutex<HashMap<String, Url>>,
}

impl RegistryClient {
    /// A client with `opts`. Fails only when TLS cannot be set up.
    pub fn new(opts: ClientOptions) -> Result<Self, RegistryError> {
        let http = HttpClient::new(opts.http_options())?;
        Ok(Self::with_http(http, opts.credentials))
    }

    /// A client over an existing [`HttpClient`] (to share it, or to tune timeouts and retries).
    pub fn with_http(http: HttpClient, credentials: Vec<(String, Credential)>) -> Self {
        let auth = Auth::new(http.clone(), credentials);
        RegistryClient {
            inner: Arc::new(Inner {
                http,
                auth,
                bases: Mutex::new(HashMap::new()),
            }),
        }
    }

    #[cfg(test)]
    pub(crate) fn auth_for_tests(&self) -> &Auth {
        &self.inner.auth
    }

    /// The shared HTTP client underneath (same TLS settings), e.g. for ACI downloads.
    pub fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// Fetches the manifest or index `reference` (a tag or a digest) of `r`'s repository.
    ///
    /// The caller picks a platform from an index and fetches that entry by digest. The body is
    /// capped at [`MAX_DOCUMENT_BYTES`] while it is read.
    pub async fn manifest(
        &self,
        r: &DockerRef,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let mut attempt = 1;
        loop {
            match self.manifest_once(r, reference).await {
                Err(e) if self.body_retry(&e, attempt) => attempt += 1,
                other => return other,
            }
        }
    }

    /// Whether to fetch a small document again after `e`: only a connection that broke while
    /// the body was read (the request itself was already retried by the transport).
    fn body_retry(&self, e: &RegistryError, attempt: u32) -> bool {
        let retry =
            matches!(e, RegistryError::Body { .. }) && attempt < self.inner.http.options().attempts;
        if retry {
            tracing::warn!(error = %e, attempt, "download broke off; fetching again");
        }
        retry
    }

    async fn manifest_once(
        &self,
        r: &DockerRef,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        check_reference(r, reference)?;
        let url = self.url(r, &format!("manifests/{reference}")).await?;
        let resp = self
            .get(r, Method::GET, &url, Some(oci::MANIFEST_ACCEPT))
            .await?;
        let resp = self.check_manifest_status(r, reference, resp).await?;
        let header_type = media_type_of(&resp);
        let header_digest = resp
            .headers()
            .get(CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let limit = MAX_DOCUMENT_BYTES;
        let timeout = self.inner.http.options().read_timeout;
        let bytes = read_capped(resp, limit, timeout, || RegistryError::TooLarge {
            what: "manifest",
            url: url.to_string(),
            limit,
        })
        .await?;
        let what = || format!("manifest {}", image_name(r, reference));
        let digest = match reference.parse::<Digest>() {
            Ok(expected) => {
                verify(&bytes, &expected, what(), &r.registry)?;
                expected
            }
            Err(_) => Digest::sha256_of(&bytes),
        };
        match header_digest.as_deref().map(str::parse::<Digest>) {
            Some(Ok(announced)) => verify(&bytes, &announced, what(), &r.registry)?,
            Some(Err(e)) => tracing::warn!(
                registry = %r.registry, error = %e, "ignoring unusable Docker-Content-Digest"
            ),
            None => {}
        }
        let media_type = header_type
            .filter(|t| oci::is_index_media_type(t) || oci::is_manifest_media_type(t))
            .or_else(|| sniff_media_type(&bytes))
            .unwrap_or_default();
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// The digest `reference` currently points at, by `HEAD` (no body is downloaded), so a
    /// pull can skip an image that has not changed. Falls back to a `GET` when the registry
    /// does not state the digest.
    pub async fn manifest_digest(
        &self,
        r: &DockerRef,
        reference: &str,
    ) -> Result<Digest, RegistryError> {
        check_reference(r, reference)?;
        let url = self.url(r, &format!("manifests/{reference}")).await?;
        let resp = self
            .get(r, Method::HEAD, &url, Some(oci::MANIFEST_ACCEPT))
            .await?;
        let resp = self.check_manifest_status(r, reference, resp).await?;
        let announced = resp
            .headers()
            .get(CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        match announced {
            Some(d) => Ok(d),
            None => Ok(self.manifest(r, reference).await?.digest),
        }
    }

    /// Fetches a small blob (an image config) into memory, verifying its size and digest.
    /// Blobs over [`MAX_DOCUMENT_BYTES`] are refused; stream those with
    /// [`RegistryClient::blob_stream`].
    pub async fn blob_bytes(
        &self,
        r: &DockerRef,
        d: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let mut attempt = 1;
        loop {
            match self.blob_bytes_once(r, d).await {
                Err(e) if self.body_retry(&e, attempt) => attempt += 1,
                other => return other,
            }
        }
    }

    async fn blob_bytes_once(
        &self,
        r: &DockerRef,
        d: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = self.url(r, &format!("blobs/{}", d.digest)).await?;
        if d.size > MAX_DOCUMENT_BYTES {
            return Err(RegistryError::TooLarge {
                what: "config blob",
                url: url.to_string(),
                limit: MAX_DOCUMENT_BYTES,
            });
        }
        let resp = self.blob_response(r, d, &url).await?;
        let timeout = self.inner.http.options().read_timeout;
        let bytes = read_capped(resp, d.size, timeout, || RegistryError::BlobTooLong {
            digest: d.digest.clone(),
            size: d.size,
        })
        .await?;
        if (bytes.len() as u64) < d.size {
            return Err(RegistryError::BlobTruncated {
                digest: d.digest.clone(),
                got: bytes.len() as u64,
                size: d.size,
            });
        }
        verify(&bytes, &d.digest, format!("blob {}", d.digest), &r.registry)?;
        Ok(bytes)
    }

    /// Streams a blob (a layer). The stream yields at most `d.size + 1` bytes and ends with an
    /// error if the blob is longer or shorter than `d.size`; the caller verifies the digest
    /// while it consumes the stream. Only the connection and headers are retried here.
    pub async fn blob_stream(
        &self,
        r: &DockerRef,
        d: &Descriptor,
    ) -> Result<BlobStream, RegistryError> {
        let url = self.url(r, &format!("blobs/{}", d.digest)).await?;
        let resp = self.blob_response(r, d, &url).await?;
        if resp.content_length().is_some_and(|n| n > d.size) {
            return Err(RegistryError::BlobTooLong {
                digest: d.digest.clone(),
                size: d.size,
            });
        }
        let timeout = self.inner.http.options().read_timeout;
        Ok(capped_stream(resp, d.digest.clone(), d.size, timeout))
    }

    async fn blob_response(
        &self,
        r: &DockerRef,
        d: &Descriptor,
        url: &Url,
    ) -> Result<Response, RegistryError> {
        let resp = self.get(r, Method::GET, url, None).await?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => Err(RegistryError::BlobNotFound {
                digest: d.digest.clone(),
                name: r.repository.clone(),
                registry: r.registry.clone(),
            }),
            _ => Err(self.status_error(r, url, resp).await),
        }
    }

    async fn check_manifest_status(
        &self,
        r: &DockerRef,
        reference: &str,
        resp: Response,
    ) -> Result<Response, RegistryError> {
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => Err(RegistryError::ManifestNotFound {
                image: image_name(r, reference),
                registry: r.registry.clone(),
            }),
            _ => {
                let url = resp.url().clone();
                Err(self.status_error(r, &url, resp).await)
            }
        }
    }

    async fn status_error(&self, r: &DockerRef, url: &Url, resp: Response) -> RegistryError {
        let status = resp.status();
        if status == StatusCode::FORBIDDEN {
            return RegistryError::Denied {
                registry: r.registry.clone(),
                name: r.repository.clone(),
            };
        }
        let detail = error_detail(&read_detail(resp, 4096).await);
        RegistryError::Status {
            registry: r.registry.clone(),
            url: url.to_string(),
            status: status.as_u16(),
            detail,
        }
    }

    /// `<base>/v2/<repository>/<rest>`.
    async fn url(&self, r: &DockerRef, rest: &str) -> Result<Url, RegistryError> {
        let base = self.base(r).await?;
        let path = format!("v2/{}/{rest}", r.repository);
        base.join(&path).map_err(|_| RegistryError::BadUrl {
            registry: r.registry.clone(),
            url: format!("{base}{path}"),
        })
    }

    /// The registry's base URL. https, unless `allow_http` is set and https does not work
    /// there (a plain-http registry): then http, remembered for the client's lifetime.
    async fn base(&self, r: &DockerRef) -> Result<Url, RegistryError> {
        let host = r.api_host();
        if let Some(u) = lock(&self.inner.bases).get(host) {
            return Ok(u.clone());
        }
        let https = Url::parse(&format!("https://{host}/")).map_err(|_| RegistryError::BadUrl {
            registry: r.registry.clone(),
            url: format!("https://{host}/"),
        })?;
        let mut base = https.clone();
        if self.inner.http.options().allow_http {
            let mut probe = HttpRequest::new(Method::GET, https.join("v2/").unwrap_or(https));
            probe.retry = false;
            match self.inner.http.send(&probe).await {
                // A server with a bad certificate does speak TLS; plain http would not help,
                // and the certificate error is the one to show.
                Err(e) if e.is_certificate_error() => return Err(e.into()),
                Err(e) => {
                    tracing::info!(registry = %host, error = %e,
                        "https does not work; using plain http as --insecure-options=http allows");
                    base.set_scheme("http").ok();
                }
                Ok(_) => {}
            }
        }
        lock(&self.inner.bases).insert(host.to_owned(), base.clone());
        Ok(base)
    }

    /// Sends a request to the registry, answering its auth challenges (see [`super::auth`]).
    /// Returns the response whatever its status, except that a 401 that survives fresh
    /// credentials is an error.
    async fn get(
        &self,
        r: &DockerRef,
        method: Method,
        url: &Url,
        accept: Option<&'static str>,
    ) -> Result<Response, RegistryError> {
        let auth = &self.inner.auth;
        let scope = format!("repository:{}:pull", r.repository);
        let mut authorization = auth.cached_authorization(&r.registry, &scope).await?;
        let mut fresh = false;
        loop {
            let mut req = HttpRequest::new(method.clone(), url.clone());
            if let Some(a) = accept {
                req.headers.insert(ACCEPT, HeaderValue::from_static(a));
            }
            req.authorization = authorization.clone();
            let resp = self.inner.http.send(&req).await?;
            // A 401 from a host we were redirected to is that host's business, not a reason to
            // hand it the registry's credentials.
            if resp.status() != StatusCode::UNAUTHORIZED || resp.url().origin() != url.origin() {
                return Ok(resp);
            }
            if fresh {
                return Err(auth.refused(&r.registry).await);
            }
            let raw: Vec<&str> = resp
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let challenges: Vec<_> = raw.iter().flat_map(|h| challenge::parse(h)).collect();
            let header = auth
                .authorize(&r.registry, url, &challenges, &raw.join(", "), &scope)
                .await?;
            authorization = Some(header);
            fresh = true;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn verify(
    bytes: &[u8],
    expected: &Digest,
    what: String,
    registry: &str,
) -> Result<(), RegistryError> {
    let mut h = Hasher::new(expected.algorithm());
    h.update(bytes);
    let actual = h.finish();
    if &actual == expected {
        Ok(())
    } else {
        Err(RegistryError::DigestMismatch {
            what,
            registry: registry.to_owned(),
            expected: expected.clone(),
            actual,
        })
    }
}

/// A manifest reference must be a tag or a digest; anything else could reshape the URL.
fn check_reference(r: &DockerRef, reference: &str) -> Result<(), RegistryError> {
    let tag_like = !reference.is_empty()
        && reference.len() <= 128
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if tag_like || reference.parse::<Digest>().is_ok() {
        Ok(())
    } else {
        Err(RegistryError::BadReference {
            image: r.to_string(),
            reference: reference.to_owned(),
        })
    }
}

/// `repository:tag` or `repository@digest`, as users write them.
fn image_name(r: &DockerRef, reference: &str) -> String {
    let sep = if reference.parse::<Digest>().is_ok() {
        '@'
    } else {
        ':'
    };
    format!("{}{sep}{reference}", r.repository)
}

fn media_type_of(resp: &Response) -> Option<String> {
    let v = resp.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    let t = v.split(';').next().unwrap_or(v).trim();
    (!t.is_empty()).then(|| t.to_ascii_lowercase())
}

/// The media type a manifest states about itself, or its shape implies (OCI documents may
/// omit `mediaType`; registries may serve them as `application/json`).
fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(t) = v.get("mediaType").and_then(|t| t.as_str()) {
        return Some(t.to_owned());
    }
    if v.get("manifests").is_some() {
        Some(oci::MEDIA_OCI_INDEX.to_owned())
    } else if v.get("config").is_some() {
        Some(oci::MEDIA_OCI_MANIFEST.to_owned())
    } else {
        None
    }
}

/// The registry's own error text (`{"errors":[{"code":…,"message":…}]}`), or the start of the
/// body.
fn error_detail(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(errs) = v.get("errors").and_then(|e| e.as_array())
    {
        let parts: Vec<String> = errs
            .iter()
            .map(|e| {
                let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                format!("{code} {msg}").trim().to_owned()
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    text.trim().chars().take(200).collect()
}
