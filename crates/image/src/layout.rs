//! OCI image layouts (directories and tar archives of them) and the uniform view every local
//! source gives the fetcher: a [`BlobSource`] to stream verified blobs from, and a
//! [`ResolvedImage`] naming the manifest, config and layers of the one image chosen.
//!
//! Everything read here is untrusted. Documents (index, manifests, configs) are capped at
//! [`rkt_types::MAX_DOCUMENT_BYTES`] and checked against their descriptors before they are
//! parsed; layer blobs are handed out as [`VerifiedReader`]s that fail on a wrong digest or
//! size. Nothing is written anywhere.

mod archive;
mod dir;
mod error;
mod resolve;
pub(crate) mod tarindex;
mod verify;

use std::io::Read;

pub use archive::OciArchive;
pub(crate) use archive::seekable_copy;
pub use dir::OciLayout;
pub use error::SourceError;
pub(crate) use resolve::finish as finish_resolve;
pub use resolve::{ANNOTATION_CONTAINERD_NAME, ResolvedImage};
use rkt_types::MAX_DOCUMENT_BYTES;
use rkt_types::oci::Descriptor;
pub use verify::{BlobError, VerifiedReader};

/// The reader [`BlobSource::open_blob`] returns: owned, `Send`, verified while it streams,
/// so the fetcher can move it to a worker thread.
pub type BlobReader = VerifiedReader<Box<dyn Read + Send>>;

/// Random access to the blobs of a local image source, by descriptor.
pub trait BlobSource: Send + Sync {
    /// Opens the blob `desc` names. The reader checks digest and size as it streams; call
    /// [`VerifiedReader::finish`] when the consumer stops early.
    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader, SourceError>;

    /// Where the blobs come from, for messages (`OCI layout /x`, `docker archive /y.tar`).
    fn describe(&self) -> String;

    /// Reads a whole document blob (manifest, index, config): refused above
    /// [`MAX_DOCUMENT_BYTES`], verified against `desc` before it is returned.
    fn read_document(&self, desc: &Descriptor) -> Result<Vec<u8>, SourceError> {
        if desc.size > MAX_DOCUMENT_BYTES {
            return Err(SourceError::DocumentTooLarge {
                digest: desc.digest.clone(),
                size: desc.size,
            });
        }
        let mut r = self.open_blob(desc)?;
        let mut buf = Vec::with_capacity(usize::try_from(desc.size).unwrap_or(0));
        r.read_to_end(&mut buf)
            .map_err(|e| SourceError::read_blob(&self.describe(), &desc.digest, e))?;
        Ok(buf)
    }
}

/// Name of the file marking an OCI image layout.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// Name of a layout's top-level index.
pub const INDEX_FILE: &str = "index.json";
/// The `imageLayoutVersion` this code writes; any 1.x is read.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// Checks an `oci-layout` file's content.
fn check_layout_marker(bytes: &[u8], location: &str) -> Result<(), SourceError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Marker {
        image_layout_version: String,
    }
    let m: Marker = serde_json::from_slice(bytes).map_err(|source| SourceError::Json {
        what: format!("oci-layout file of {location}"),
        source,
    })?;
    if m.image_layout_version.split('.').next() != Some("1") {
        return Err(SourceError::LayoutVersion {
            location: location.to_owned(),
            version: m.image_layout_version,
        });
    }
    Ok(())
}

/// The relative path of a blob inside a layout: `blobs/<algorithm>/<hex>`.
pub fn blob_path(digest: &rkt_types::Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().name(), digest.hex())
}
