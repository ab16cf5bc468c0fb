//! Fetching images into the store: distribution v2 registries, ACIs over http(s), and local
//! OCI layouts, OCI archives, `docker save` archives and ACI files.
//!
//! Every source becomes the same thing: a manifest, a config and a list of layer streams. The
//! streams go through one pipeline ([`ingest`]): download, hash, decompress, hash again and
//! unpack in a single pass on a blocking thread per layer, layers in parallel. Nothing is
//! visible in the store until every digest has been checked: trees are renamed into place after
//! one `syncfs`, and the index row is written last.
#![forbid(unsafe_code)]

mod bridge;
mod budget;
pub mod credentials;
mod error;
pub mod http;
mod ingest;
mod progress;
pub mod registry;
mod sources;

use std::path::PathBuf;
use std::sync::Arc;

use rkt_image::unpack::UnpackOptions;
use rkt_store::Store;
use rkt_types::{ImageRecord, ImageSource, InsecureOptions, Platform, PullPolicy};

pub use error::{FetchError, LocalError};

/// How a fetch behaves; built by the CLI from flags and configuration.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// When to contact the source for an image the store may already have.
    pub pull_policy: PullPolicy,
    /// What `--insecure-options` relaxed.
    pub insecure: InsecureOptions,
    /// Which entry of a multi-platform index to take.
    pub platform: Platform,
    /// Limits on what one layer may expand to.
    pub unpack: UnpackOptions,
    /// Directories with per-registry CA certificates (`certs.d/<host[:port]>/*.crt`).
    pub cert_dirs: Vec<PathBuf>,
    /// Registry credentials: rkt's `dockerAuth`, then `~/.docker/config.json`.
    pub registry_credentials: Vec<(String, registry::Credential)>,
    /// `Authorization` header values for ACI downloads, by host (rkt's `auth`).
    pub http_auth: Vec<(String, String)>,
    /// Draw progress bars (stderr is a terminal).
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            pull_policy: PullPolicy::New,
            insecure: InsecureOptions::default(),
            platform: Platform::host(),
            unpack: UnpackOptions::default(),
            cert_dirs: Vec::new(),
            registry_credentials: Vec::new(),
            http_auth: Vec::new(),
            progress: false,
        }
    }
}

/// Brings images into a store.
pub struct Fetcher {
    store: Arc<Store>,
    opts: FetchOptions,
    /// Built on first use: loading the system's CA certificates costs tens of milliseconds,
    /// which `rkt run` of a stored image should not pay.
    registry: std::sync::OnceLock<registry::RegistryClient>,
}

impl Fetcher {
    /// A fetcher over `store`.
    pub fn new(store: Arc<Store>, opts: FetchOptions) -> Result<Self, FetchError> {
        Ok(Fetcher {
            store,
            opts,
            registry: std::sync::OnceLock::new(),
        })
    }

    /// The registry/HTTP client, built the first time the network is needed.
    pub(crate) fn registry(&self) -> Result<&registry::RegistryClient, FetchError> {
        if let Some(c) = self.registry.get() {
            return Ok(c);
        }
        let client = registry::RegistryClient::new(registry::ClientOptions {
            allow_http: self.opts.insecure.http,
            insecure_tls: self.opts.insecure.tls,
            cert_dirs: self.opts.cert_dirs.clone(),
            user_agent: format!("rkt/{}", env!("CARGO_PKG_VERSION")),
            credentials: self.opts.registry_credentials.clone(),
        })?;
        // Two callers racing build two clients; one is kept, both are equivalent.
        Ok(self.registry.get_or_init(|| client))
    }

    /// The store images go into.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Fetches (or, as the pull policy allows, finds in the store) one image.
    pub async fn fetch(&self, src: &ImageSource) -> Result<ImageRecord, FetchError> {
        // Held until the image is indexed, so a concurrent gc cannot remove a layer this fetch
        // decided to reuse.
        let store = self.store.clone();
        let _fence = tokio::task::spawn_blocking(move || store.gc_fence())
            .await
            .map_err(|e| FetchError::Worker(e.to_string()))??;
        let rec = match src {
            ImageSource::Registry(r) => sources::registry::fetch(self, r).await?,
            ImageSource::Url(u) => sources::aci::fetch_url(self, u).await?,
            ImageSource::Name(n) => match sources::local::as_local_file(n) {
                Some(path) => sources::local::fetch_path(self, &path, None).await?,
                None => self.stored(n)?,
            },
            local => sources::local::fetch_local(self, local).await?,
        };
        self.store.touch(&rec.id)?;
        Ok(rec)
    }

    /// Answers from the store alone, without the network or an async runtime, when the pull
    /// policy allows it and the store has the image: `Ok(None)` means "fetch it". `rkt run`
    /// of stored images uses this to skip building a runtime at all.
    pub fn fetch_stored(&self, src: &ImageSource) -> Result<Option<ImageRecord>, FetchError> {
        let rec = match src {
            ImageSource::Registry(r) if self.opts.pull_policy != PullPolicy::Update => {
                self.require_insecure_image("a registry image (docker:// or oci://)")?;
                let key = sources::registry::remote_key(r, &self.opts.platform);
                let _fence = self.store.gc_fence()?;
                sources::registry::stored_image(self, &key, r)?
            }
            ImageSource::Name(n) if sources::local::as_local_file(n).is_none() => {
                Some(self.stored(n)?)
            }
            _ => None,
        };
        if let Some(r) = &rec {
            self.store.touch(&r.id)?;
        }
        Ok(rec)
    }

    /// Looks `name` up in the store only.
    fn stored(&self, name: &str) -> Result<ImageRecord, FetchError> {
        match self.store.resolve(name) {
            Ok(rec) => Ok(rec),
            Err(rkt_store::StoreError::NotFound { .. }) => {
                if self.opts.pull_policy == PullPolicy::Never {
                    Err(FetchError::NotStoredNever(name.to_owned()))
                } else {
                    Err(FetchError::UnknownName(name.to_owned()))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    fn require_insecure_image(&self, what: &'static str) -> Result<(), FetchError> {
        if self.opts.insecure.image {
            Ok(())
        } else {
            Err(FetchError::Unverified { what })
        }
    }
}
