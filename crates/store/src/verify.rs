//! `rkt image verify`: re-hash an image's blobs and layer trees against what was recorded.

use std::fmt;
use std::io::{self, Read};

use rkt_types::Digest;
use rkt_types::digest::Hasher;

use crate::Store;
use crate::error::StoreError;

/// The outcome of checking one blob or tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Content matches its digest.
    Ok,
    /// Not in the store.
    Missing,
    /// Content hashes to something else: it was modified or damaged.
    Mismatch {
        /// The recorded digest.
        expected: Digest,
        /// What it hashes to now.
        actual: Digest,
    },
    /// Could not be read or hashed.
    Failed(String),
}

impl Check {
    /// Whether this is [`Check::Ok`].
    pub fn is_ok(&self) -> bool {
        *self == Check::Ok
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Ok => f.write_str("ok"),
            Check::Missing => f.write_str("missing"),
            Check::Mismatch { expected, actual } => {
                write!(f, "modified: expected {expected}, found {actual}")
            }
            Check::Failed(why) => write!(f, "unreadable: {why}"),
        }
    }
}

/// The checks of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerCheck {
    /// The layer's diff id.
    pub diff_id: Digest,
    /// The layer's blob digest.
    pub blob: Digest,
    /// The blob re-hashed.
    pub blob_check: Check,
    /// The unpacked tree re-hashed (`rkt_image::treehash::hash_tree`) against `info.json`.
    pub tree_check: Check,
}

/// Everything [`Store::verify_image`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The image id.
    pub id: Digest,
    /// The manifest blob.
    pub manifest: Check,
    /// The config blob (the same blob as the manifest for appc).
    pub config: Check,
    /// Each layer, base first.
    pub layers: Vec<LayerCheck>,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn is_ok(&self) -> bool {
        self.manifest.is_ok()
            && self.config.is_ok()
            && self
                .layers
                .iter()
                .all(|l| l.blob_check.is_ok() && l.tree_check.is_ok())
    }
}

impl Store {
    /// Re-hashes every blob of an image and every layer tree, comparing with the recorded
    /// digests. Fails only if the image is not indexed; damage is reported in the result.
    pub fn verify_image(&self, id: &Digest) -> Result<VerifyReport, StoreError> {
        let rec = self.image(id)?.ok_or_else(|| StoreError::NotFound {
            query: id.to_string(),
            hint: "list the images there are with `rkt image list`".into(),
        })?;
        let layers = rec
            .layers
            .iter()
            .map(|l| LayerCheck {
                diff_id: l.diff_id.clone(),
                blob: l.blob.clone(),
                blob_check: self.check_blob(&l.blob),
                tree_check: self.check_tree(&l.diff_id),
            })
            .collect();
        Ok(VerifyReport {
            id: rec.id,
            manifest: self.check_blob(&rec.manifest),
            config: self.check_blob(&rec.config_blob),
            layers,
        })
    }

    fn check_blob(&self, d: &Digest) -> Check {
        let mut f = match self.open_blob(d) {
            Ok(f) => f,
            Err(StoreError::BlobMissing(_)) => return Check::Missing,
            Err(e) => return Check::Failed(e.to_string()),
        };
        let mut h = Hasher::new(d.algorithm());
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Check::Failed(e.to_string()),
            }
        }
        compare(d, h.finish())
    }

    fn check_tree(&self, diff_id: &Digest) -> Check {
        let (Some(tree), info) = (self.layer_tree(diff_id), self.layer_info(diff_id)) else {
            return Check::Missing;
        };
        let info = match info {
            Ok(Some(info)) => info,
            Ok(None) => return Check::Missing,
            Err(e) => return Check::Failed(e.to_string()),
        };
        match rkt_image::treehash::hash_tree(&tree) {
            Ok(actual) => compare(&info.tree_hash, actual),
            Err(e) => Check::Failed(format!(
                "cannot hash {}: {}",
                tree.display(),
                rkt_types::error_text::chain(&e)
            )),
        }
    }
}

fn compare(expected: &Digest, actual: Digest) -> Check {
    if *expected == actual {
        Check::Ok
    } else {
        Check::Mismatch {
            expected: expected.clone(),
            actual,
        }
    }
}
