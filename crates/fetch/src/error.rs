//! What can go wrong while fetching, phrased for the person who ran `rkt fetch`.

use rkt_types::Digest;

/// A failed fetch. Nothing of a failed fetch is left in the store.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No verification method exists (yet) for this kind of image.
    #[error(
        "{what} cannot be verified (rkt has no signature check for it yet); to fetch it \
         anyway, pass --insecure-options=image"
    )]
    Unverified {
        /// The kind of image.
        what: &'static str,
    },
    /// The image is not in the store and the pull policy forbids fetching.
    #[error("image {0:?} is not in the store and --pull-policy=never forbids fetching it")]
    NotStoredNever(String),
    /// A name that is neither stored nor a file.
    #[error(
        "image {0:?} is neither in the store nor a file here; to fetch from a registry use \
         docker://NAME[:TAG], for an OCI layout oci:DIR, for a docker save archive \
         docker-archive:FILE"
    )]
    UnknownName(String),
    /// A digest did not match.
    #[error(
        "{what} has digest {actual}, but {expected} was expected; the source is corrupt or was tampered with"
    )]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// Expected.
        expected: Digest,
        /// Found.
        actual: Digest,
    },
    /// A size did not match.
    #[error("{what} is {actual} bytes, but its descriptor says {expected}")]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// Expected.
        expected: u64,
        /// Found.
        actual: u64,
    },
    /// The image is malformed.
    #[error("invalid image {image}: {reason}")]
    InvalidImage {
        /// The image.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// A manifest or config could not be parsed.
    #[error("invalid image {image}")]
    Manifest {
        /// The image.
        image: String,
        /// Why.
        #[source]
        source: rkt_types::oci::ManifestError,
    },
    /// The ACI manifest could not be parsed.
    #[error("invalid ACI {image}")]
    Appc {
        /// The image.
        image: String,
        /// Why.
        #[source]
        source: rkt_types::appc::AppcError,
    },
    /// Unpacking a layer failed.
    #[error("cannot unpack layer {layer}")]
    Unpack {
        /// The layer's blob digest.
        layer: Digest,
        /// Why.
        #[source]
        source: rkt_image::unpack::UnpackError,
    },
    /// Reading a layer stream failed.
    #[error("cannot read layer {layer}")]
    LayerIo {
        /// The layer's blob digest.
        layer: Digest,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A local file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store refused.
    #[error(transparent)]
    Store(#[from] rkt_store::StoreError),
    /// A registry request failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// An HTTP exchange failed.
    #[error(transparent)]
    Transport(#[from] crate::http::HttpError),
    /// A local image format could not be read.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// Downloading an ACI over HTTP failed.
    #[error("cannot download {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What happened and what to do.
        reason: String,
    },
    /// A worker thread died.
    #[error("internal error: a fetch worker failed: {0}")]
    Worker(String),
}

/// Errors from the local-format readers in `rkt-image`, gathered in one type.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Format detection.
    #[error(transparent)]
    Detect(#[from] rkt_image::detect::DetectError),
    /// OCI layouts and archives, docker save archives.
    #[error(transparent)]
    Source(#[from] rkt_image::layout::SourceError),
    /// ACIs.
    #[error(transparent)]
    Aci(#[from] rkt_image::aci::AciError),
    /// Platform selection.
    #[error(transparent)]
    Platform(#[from] rkt_image::platform::PlatformError),
}
