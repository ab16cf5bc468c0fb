//! A client for Docker/OCI distribution (v2) registries: `docker://HOST[:PORT]/NAME[:TAG|@DIGEST]`
//! and Docker Hub short names.
//!
//! - Auth: Bearer token auth (challenge → token server, with the registry's credentials if we
//!   have them, anonymous otherwise; tokens cached per registry, realm, service and scope until
//!   they expire) and Basic auth. See [`auth`](self::auth) for where credentials may go.
//! - Credentials: [`ClientOptions::credentials`], an ordered list the caller builds from rkt's
//!   `dockerAuth` and docker's `config.json` ([`crate::credentials`]).
//! - Documents: OCI and Docker schema2 manifests, OCI indexes and Docker manifest lists, by tag
//!   or digest; the caller picks a platform from an index. Manifests are capped at
//!   [`rkt_types::MAX_DOCUMENT_BYTES`] and verified against the digest they were fetched by and
//!   the `Docker-Content-Digest` the registry states.
//! - Blobs: streamed and cut off one byte past the descriptor's size; small ones (configs)
//!   verified in memory.
//! - Transport: see [`crate::http`] (TLS, certs.d, redirects without credentials, retries).

mod auth;
mod body;
pub mod challenge;
mod client;
mod error;
#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

pub use body::BlobStream;
pub use client::{FetchedManifest, RegistryClient};
pub use error::RegistryError;

pub use crate::credentials::Credential;
use crate::http::HttpOptions;

/// Everything a [`RegistryClient`] needs to know up front.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Allow plain `http://` registries and token servers (the CLI's `--insecure-options=http`).
    /// https is still tried first; a registry where it fails is then used over http.
    pub allow_http: bool,
    /// Accept any TLS certificate (the CLI's `--insecure-options=tls`).
    pub insecure_tls: bool,
    /// `certs.d` directories: a registry's extra CAs are `<dir>/<host[:port]>/*.crt`.
    pub cert_dirs: Vec<std::path::PathBuf>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Credentials as an ordered list of (registry `host[:port]`, credential): rkt's
    /// `dockerAuth` first, then [`crate::credentials::credentials_from_docker_config`]. The
    /// first entry for a registry that yields a credential wins (see
    /// [`crate::credentials::resolve`]); nothing is sent to a registry that does not ask.
    pub credentials: Vec<(String, Credential)>,
}

impl ClientOptions {
    /// The transport settings these options imply, with default timeouts and retries.
    pub fn http_options(&self) -> HttpOptions {
        let mut h = HttpOptions {
            allow_http: self.allow_http,
            insecure_tls: self.insecure_tls,
            cert_dirs: self.cert_dirs.clone(),
            ..HttpOptions::default()
        };
        if !self.user_agent.is_empty() {
            h.user_agent = self.user_agent.clone();
        }
        h
    }
}
