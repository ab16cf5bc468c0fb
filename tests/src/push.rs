//! Pushes OCI layouts to a distribution v2 registry: monolithic blob uploads (POST, then PUT
//! `?digest=`), `HEAD` to skip blobs the registry has, manifests (and indexes, children first)
//! with their media type, basic or token auth, and a private CA.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Url;
use reqwest::blocking::{Client, RequestBuilder, Response};
use rkt_types::Digest;
use rkt_types::oci::{self, Descriptor, ManifestDoc};

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Reading the layout failed.
    #[error("cannot read {path}")]
    Layout {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The layout is not what it should be.
    #[error("bad OCI layout {layout}: {why}")]
    BadLayout {
        /// The layout directory.
        layout: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The request failed before a response.
    #[error("{what}")]
    Http {
        /// The request.
        what: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("{what}: the registry answered {status}: {body}")]
    Status {
        /// The request.
        what: String,
        /// The status.
        status: reqwest::StatusCode,
        /// The response body.
        body: String,
    },
    /// Authentication could not be set up.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The CA file is unusable.
    #[error("cannot use the CA certificate {path}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    /// The repository.
    pub repository: String,
    /// The tag.
    pub tag: String,
    /// The digest of the tagged manifest or index (as the registry reported it).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Blobs uploaded.
    pub uploaded: Vec<Digest>,
    /// Blobs the registry already had.
    pub skipped: Vec<Digest>,
}

/// A blocking client trusting only `ca_pem` (the platform roots are never needed: every
/// registry a test talks to is on loopback with a test CA).
pub fn client(ca_pem: Option<&Path>) -> Result<Client, PushError> {
    let mut b = Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(300));
    if let Some(ca) = ca_pem {
        let pem = fs::read(ca).map_err(|source| PushError::Layout {
            path: ca.to_owned(),
            source,
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|source| PushError::Ca {
            path: ca.to_owned(),
            source,
        })?;
        b = b.tls_certs_only([cert]);
    }
    b.build().map_err(|source| PushError::Http {
        what: "cannot build the HTTP client".into(),
        source,
    })
}

/// Pushes to one registry.
pub struct Pusher {
    client: Client,
    base: Url,
    creds: Option<(String, String)>,
}

impl Pusher {
    /// A pusher for the registry at `base_url` (`http(s)://127.0.0.1:PORT`), trusting
    /// `ca_pem`, logging in with `creds` when the registry asks.
    pub fn new(
        base_url: &str,
        ca_pem: Option<&Path>,
        creds: Option<(String, String)>,
    ) -> Result<Self, PushError> {
        let base = Url::parse(base_url).map_err(|e| PushError::Auth(format!("bad URL: {e}")))?;
        Ok(Pusher {
            client: client(ca_pem)?,
            base,
            creds,
        })
    }

    /// Pushes the image or index that ref `layout_tag` names in the layout to `repo:tag`.
    pub fn push_layout(
        &self,
        layout: &Path,
        layout_tag: &str,
        repo: &str,
        tag: &str,
    ) -> Result<PushedImage, PushError> {
        self.push_layout_with(layout, layout_tag, repo, tag, &HashMap::new())
    }

    /// Like [`Pusher::push_layout`], but uploads the file in `overrides` instead of the
    /// layout's blob for the digests it lists.
    pub fn push_layout_with(
        &self,
        layout: &Path,
        layout_tag: &str,
        repo: &str,
        tag: &str,
        overrides: &HashMap<Digest, PathBuf>,
    ) -> Result<PushedImage, PushError> {
        let index_path = layout.join("index.json");
        let bytes = read(&index_path)?;
        let index: oci::Index =
            serde_json::from_slice(&bytes).map_err(|e| PushError::BadLayout {
                layout: layout.to_owned(),
                why: format!("index.json: {e}"),
            })?;
        let refs: Vec<&str> = index
            .manifests
            .iter()
            .filter_map(|d| {
                d.annotations
                    .get(oci::ANNOTATION_REF_NAME)
                    .map(String::as_str)
            })
            .collect();
        let top = index
            .manifests
            .iter()
            .find(|d| {
                d.annotations
                    .get(oci::ANNOTATION_REF_NAME)
                    .map(String::as_str)
                    == Some(layout_tag)
            })
            .ok_or_else(|| PushError::BadLayout {
                layout: layout.to_owned(),
                why: format!("no ref {layout_tag:?} in index.json (refs: {refs:?})"),
            })?;
        let session = Session {
            pusher: self,
            repo,
            auth: self.authorize(repo)?,
            layout,
            overrides,
        };
        let mut pushed = PushedImage {
            repository: repo.to_owned(),
            tag: tag.to_owned(),
            digest: top.digest.clone(),
            media_type: top.media_type.clone(),
            uploaded: Vec::new(),
            skipped: Vec::new(),
        };
        pushed.digest = session.push_manifest(top, tag, &mut pushed)?;
        Ok(pushed)
    }

    /// Works out the `Authorization` header for pushing to `repo`: none, basic, or a bearer
    /// token from the realm the registry names.
    fn authorize(&self, repo: &str) -> Result<Option<String>, PushError> {
        let url = self.url("/v2/")?;
        let resp = self.send(self.client.get(url), "GET /v2/")?;
        if resp.status().is_success() {
            return Ok(None);
        }
        if resp.status() != 401 {
            return Err(status_err("GET /v2/", resp));
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (user, pass) = self.creds.clone().ok_or_else(|| {
            PushError::Auth(format!(
                "the registry wants credentials ({challenge}) and none were given"
            ))
        })?;
        let basic = format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")));
        let (scheme, params) = parse_challenge(&challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Ok(Some(basic)),
            "bearer" => {
                let realm = params
                    .iter()
                    .find(|(k, _)| k == "realm")
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| PushError::Auth(format!("no realm in {challenge:?}")))?;
                let mut url = Url::parse(&realm)
                    .map_err(|e| PushError::Auth(format!("bad realm {realm:?}: {e}")))?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some((_, s)) = params.iter().find(|(k, _)| k == "service") {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", &format!("repository:{repo}:pull,push"));
                }
                let resp = self.send(
                    self.client.get(url).header("authorization", basic),
                    "GET token",
                )?;
                if !resp.status().is_success() {
                    return Err(status_err("token request", resp));
                }
                let raw = resp.bytes().map_err(|source| PushError::Http {
                    what: "reading the token response".into(),
                    source,
                })?;
                let body: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
                    PushError::Auth(format!(
                        "token response is not JSON ({e}): {}",
                        String::from_utf8_lossy(&raw)
                    ))
                })?;
                let token = body["token"]
                    .as_str()
                    .or_else(|| body["access_token"].as_str())
                    .ok_or_else(|| PushError::Auth(format!("no token in {body}")))?;
                Ok(Some(format!("Bearer {token}")))
            }
            other => Err(PushError::Auth(format!(
                "unsupported auth scheme {other:?}"
            ))),
        }
    }

    fn url(&self, path: &str) -> Result<Url, PushError> {
        self.base
            .join(path)
            .map_err(|e| PushError::Auth(format!("bad URL path {path}: {e}")))
    }

    fn send(&self, req: RequestBuilder, what: &str) -> Result<Response, PushError> {
        req.send().map_err(|source| PushError::Http {
            what: format!("{what} on {}", self.base),
            source,
        })
    }
}

struct Session<'a> {
    pusher: &'a Pusher,
    repo: &'a str,
    auth: Option<String>,
    layout: &'a Path,
    overrides: &'a HashMap<Digest, PathBuf>,
}

impl Session<'_> {
    fn req(&self, method: reqwest::Method, url: Url) -> RequestBuilder {
        let r = self.pusher.client.request(method, url);
        match &self.auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }

    fn blob_bytes(&self, d: &Descriptor) -> Result<Vec<u8>, PushError> {
        let path = self.overrides.get(&d.digest).cloned().unwrap_or_else(|| {
            self.layout
                .join("blobs")
                .join(d.digest.algorithm().name())
                .join(d.digest.hex())
        });
        read(&path)
    }

    /// Pushes a manifest or index (children and blobs first) under `reference` and returns
    /// the digest the registry reports.
    fn push_manifest(
        &self,
        d: &Descriptor,
        reference: &str,
        out: &mut PushedImage,
    ) -> Result<Digest, PushError> {
        let bytes = self.blob_bytes(d)?;
        match ManifestDoc::parse(&bytes, Some(&d.media_type)).map_err(|e| PushError::BadLayout {
            layout: self.layout.to_owned(),
            why: format!("manifest {}: {e}", d.digest),
        })? {
            ManifestDoc::Index(idx) => {
                for child in &idx.manifests {
                    self.push_manifest(child, &child.digest.to_string(), out)?;
                }
            }
            ManifestDoc::Image(m) => {
                self.push_blob(&m.config, out)?;
                for l in &m.layers {
                    self.push_blob(l, out)?;
                }
            }
        }
        let what = format!("PUT manifest {}:{reference}", self.repo);
        let url = self
            .pusher
            .url(&format!("/v2/{}/manifests/{reference}", self.repo))?;
        let resp = self.pusher.send(
            self.req(reqwest::Method::PUT, url)
                .header("content-type", d.media_type.as_str())
                .body(bytes.clone()),
            &what,
        )?;
        if resp.status() != 201 {
            return Err(status_err(&what, resp));
        }
        let reported = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
            .unwrap_or_else(|| Digest::sha256_of(&bytes));
        Ok(reported)
    }

    fn push_blob(&self, d: &Descriptor, out: &mut PushedImage) -> Result<(), PushError> {
        if out.uploaded.contains(&d.digest) || out.skipped.contains(&d.digest) {
            return Ok(());
        }
        let head_what = format!("HEAD blob {}", d.digest);
        let url = self
            .pusher
            .url(&format!("/v2/{}/blobs/{}", self.repo, d.digest))?;
        let resp = self
            .pusher
            .send(self.req(reqwest::Method::HEAD, url), &head_what)?;
        if resp.status().is_success() {
            out.skipped.push(d.digest.clone());
            return Ok(());
        }
        if resp.status() != 404 {
            return Err(status_err(&head_what, resp));
        }
        let bytes = self.blob_bytes(d)?;
        let what = format!("start upload of {}", d.digest);
        let url = self
            .pusher
            .url(&format!("/v2/{}/blobs/uploads/", self.repo))?;
        let resp = self
            .pusher
            .send(self.req(reqwest::Method::POST, url), &what)?;
        if resp.status() != 202 {
            return Err(status_err(&what, resp));
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| PushError::Auth(format!("{what}: no Location header")))?
            .to_owned();
        let mut put = self
            .pusher
            .base
            .join(&location)
            .map_err(|e| PushError::Auth(format!("bad upload location {location:?}: {e}")))?;
        put.query_pairs_mut()
            .append_pair("digest", &d.digest.to_string());
        let what = format!("upload {} ({} bytes)", d.digest, bytes.len());
        let resp = self.pusher.send(
            self.req(reqwest::Method::PUT, put)
                .header("content-type", "application/octet-stream")
                .body(bytes),
            &what,
        )?;
        if resp.status() != 201 {
            return Err(status_err(&what, resp));
        }
        out.uploaded.push(d.digest.clone());
        Ok(())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PushError> {
    fs::read(path).map_err(|source| PushError::Layout {
        path: path.to_owned(),
        source,
    })
}

fn status_err(what: &str, resp: Response) -> PushError {
    let status = resp.status();
    let body = resp.text().unwrap_or_default();
    PushError::Status {
        what: what.to_owned(),
        status,
        body: body.chars().take(500).collect(),
    }
}

/// Splits `Bearer realm="a",service="b",scope="c:d:e,f"` into the scheme and its parameters.
pub fn parse_challenge(header: &str) -> (String, Vec<(String, String)>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
        }
        params.push((key.trim().to_owned(), value));
    }
    (scheme.to_owned(), params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_parsing_keeps_commas_in_quotes() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p[0], ("realm".into(), "http://127.0.0.1:1/token".into()));
        assert_eq!(p[1], ("service".into(), "reg".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull,push".into()));
        let (s, p) = parse_challenge(r#"Basic realm="x""#);
        assert_eq!((s.as_str(), p.len()), ("Basic", 1));
    }
}
