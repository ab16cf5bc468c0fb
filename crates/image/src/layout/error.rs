//! The one error type for reading local image sources (layouts, layout archives, docker save
//! archives), so the fetcher handles them alike.

use std::io;
use std::path::PathBuf;

use rkt_types::Digest;
use rkt_types::MAX_DOCUMENT_BYTES;
use rkt_types::oci::ManifestError;

use super::verify::BlobError;
use crate::platform::PlatformError;

/// Why a local image source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file system refused.
    #[error("cannot read {}", .path.display())]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A directory without an `oci-layout` marker.
    #[error(
        "{} is not an OCI image layout: it has no oci-layout file (point oci: at the directory \
         that holds oci-layout, index.json and blobs/)",
        .0.display()
    )]
    NotLayout(PathBuf),
    /// An `imageLayoutVersion` we do not read.
    #[error(
        "{location} has imageLayoutVersion {version:?}; only version 1.x layouts are supported"
    )]
    LayoutVersion {
        /// The layout.
        location: String,
        /// The version it states.
        version: String,
    },
    /// A JSON document of the wrong shape.
    #[error("malformed {what}")]
    Json {
        /// Which document.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest, index or config was refused.
    #[error("invalid {what}")]
    Manifest {
        /// Which document.
        what: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// A document above the size cap.
    #[error(
        "document {digest} is {size} bytes, more than the {MAX_DOCUMENT_BYTES}-byte limit for \
         manifests and configs; refusing to read it"
    )]
    DocumentTooLarge {
        /// The document.
        digest: Digest,
        /// Its stated size.
        size: u64,
    },
    /// A file without a descriptor (index.json, manifest.json) above the size cap.
    #[error(
        "{what} is larger than the {MAX_DOCUMENT_BYTES}-byte limit for documents; refusing to read it"
    )]
    FileTooLarge {
        /// Which file.
        what: String,
    },
    /// A blob that something refers to is not there.
    #[error(
        "blob {digest} is missing from {location}; the image is incomplete, export or copy it \
         again"
    )]
    BlobMissing {
        /// The blob.
        digest: Digest,
        /// The source.
        location: String,
    },
    /// A blob whose stored size already contradicts its descriptor.
    #[error(
        "blob {digest} in {location} is {actual} bytes but its descriptor says {expected}; the \
         image is corrupt"
    )]
    BlobSize {
        /// The blob.
        digest: Digest,
        /// The source.
        location: String,
        /// Size the descriptor states.
        expected: u64,
        /// Size stored.
        actual: u64,
    },
    /// A blob failed verification while it was read.
    #[error("blob {digest} in {location} failed verification")]
    Verify {
        /// The blob.
        digest: Digest,
        /// The source.
        location: String,
        /// What was wrong.
        #[source]
        source: BlobError,
    },
    /// Reading a blob failed for another reason.
    #[error("cannot read blob {digest} from {location}")]
    ReadBlob {
        /// The blob.
        digest: Digest,
        /// The source.
        location: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file (file system or archive member) that is not a regular file where one was needed.
    #[error("{what} is not a regular file; refusing to read it")]
    NotRegular {
        /// Which file.
        what: String,
    },
    /// An archive member path or reference that leaves the archive or layout.
    #[error(
        "{location} refers to {path:?}, which escapes the archive (absolute or \"..\" path); \
         refusing the archive"
    )]
    EscapingPath {
        /// The source.
        location: String,
        /// The offending path.
        path: String,
    },
    /// A tar archive that could not be indexed.
    #[error("{location} is not a readable tar archive: {reason}")]
    BadArchive {
        /// The archive.
        location: String,
        /// What was wrong.
        reason: String,
    },
    /// A file in an archive that the format needs but that is not there.
    #[error("{location} has no {member}; {hint}")]
    MissingMember {
        /// The archive.
        location: String,
        /// The member looked for.
        member: String,
        /// What that means for the user.
        hint: &'static str,
    },
    /// A compressed archive where a seekable one is needed.
    #[error(
        "{} is {compression}-compressed; rkt reads image archives in place and cannot seek in a \
         compressed stream: decompress it first (for example `{tool} -dk {}`)",
        .path.display(), .path.display()
    )]
    Compressed {
        /// The archive.
        path: PathBuf,
        /// The compression found.
        compression: &'static str,
        /// Command line tool that decompresses it.
        tool: &'static str,
    },
    /// `REF` named nothing in the source.
    #[error("{location} has no image named {wanted:?} (it has: {})", .available.join(", "))]
    NoSuchImage {
        /// The source.
        location: String,
        /// The name asked for.
        wanted: String,
        /// Names present.
        available: Vec<String>,
    },
    /// Several images and no name to choose one.
    #[error(
        "{location} holds {} images; name the one to use (it has: {})",
        .available.len(), .available.join(", ")
    )]
    Ambiguous {
        /// The source.
        location: String,
        /// Names (or digests) present.
        available: Vec<String>,
    },
    /// The source holds no image at all.
    #[error("{0} holds no images")]
    Empty(String),
    /// Platform selection in an index failed.
    #[error("cannot choose an image for this platform from {location}")]
    Platform {
        /// The source.
        location: String,
        /// Why.
        #[source]
        source: PlatformError,
    },
    /// Indexes nested too deep (or in a loop).
    #[error("{0} nests image indexes more than 4 deep; refusing it")]
    NestingTooDeep(String),
    /// The manifest describes something that is not a container image (an artifact).
    #[error(
        "manifest {digest} has config media type {media_type:?}: it is not a container image \
         (perhaps a Helm chart, signature or other artifact)"
    )]
    NotAnImage {
        /// The manifest.
        digest: Digest,
        /// The config's media type.
        media_type: String,
    },
    /// A layer kind we cannot unpack.
    #[error(
        "layer {digest} has media type {media_type:?}, which rkt cannot unpack (supported: tar, \
         tar+gzip, tar+zstd)"
    )]
    UnsupportedLayer {
        /// The layer.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// Layers and diff ids disagree in number.
    #[error(
        "manifest {digest} lists {layers} layers but its config lists {diff_ids} diff_ids; the \
         image is corrupt"
    )]
    LayerCount {
        /// The manifest.
        digest: Digest,
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
}

impl SourceError {
    /// Maps an error from reading a verified blob: verification failures keep their kind.
    pub(crate) fn read_blob(location: &str, digest: &Digest, e: io::Error) -> Self {
        match BlobError::from_io(&e) {
            Some(b) => SourceError::Verify {
                digest: digest.clone(),
                location: location.to_owned(),
                source: b.clone(),
            },
            None => SourceError::ReadBlob {
                digest: digest.clone(),
                location: location.to_owned(),
                source: e,
            },
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        SourceError::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the source's content failed a digest or size check (as opposed to being
    /// unreadable or malformed).
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            SourceError::Verify { .. } | SourceError::BlobSize { .. }
        )
    }
}
