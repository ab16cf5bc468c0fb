//! The store's error type.
//!
//! Messages say what went wrong and what the user can do about it; sources are chained with
//! `#[source]` and not repeated in the message, so the CLI prints the chain once.

use std::io;
use std::path::{Path, PathBuf};

use rkt_types::Digest;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed for a reason not covered below.
    #[error("store: cannot {action} {path}")]
    Io {
        /// What we were doing ("create", "rename", …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The filesystem holding the store is full (ENOSPC or a quota).
    #[error(
        "store: no space left while writing {path}: free some space (for example with \
         `rkt image gc` or `rkt image rm`) or move the data dir with --dir"
    )]
    DiskFull {
        /// The path being written.
        path: PathBuf,
        /// The OS or SQLite error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store belongs to root (or another user) and we may not touch it.
    #[error(
        "store: permission denied on {path}: the store under --dir is owned by root; run rkt \
         as root or point --dir at a directory you own"
    )]
    PermissionDenied {
        /// The path refused.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The store root is on overlayfs, where pods could not overlay-mount layer trees.
    #[error(
        "store: {path} is on overlayfs; overlayfs refuses an upper or lower dir that is itself \
         on overlayfs, so pods could not use layer trees from there: put rkt's data dir on a real \
         filesystem (ext4, xfs, btrfs) with --dir"
    )]
    OnOverlayfs {
        /// The store root (or its nearest existing ancestor).
        path: PathBuf,
    },
    /// Part of the store is on another filesystem, so `rename(2)` into place would not be atomic.
    #[error(
        "store: {path} is on a different filesystem from {root}; the whole store must be on one \
         filesystem so renames into place are atomic: remove the extra mount"
    )]
    CrossDevice {
        /// The directory on the other filesystem.
        path: PathBuf,
        /// The store root.
        root: PathBuf,
    },
    /// The SQLite index failed.
    #[error("store index {path}: cannot {action}")]
    Db {
        /// What we were doing.
        action: &'static str,
        /// Path of `index.db`.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The index was written by a newer rkt with a schema we do not know.
    #[error(
        "store index {path} has schema version {found}, but this rkt understands up to \
         {supported}: upgrade rkt, or use a different --dir"
    )]
    SchemaTooNew {
        /// Path of `index.db`.
        path: PathBuf,
        /// Version found in the file.
        found: i64,
        /// Highest version this build can read.
        supported: i64,
    },
    /// Something stored could not be read back (a row or `info.json` that does not parse).
    #[error("store: {what} is corrupt; run `rkt image verify` and re-fetch the image")]
    Corrupt {
        /// What was being read.
        what: String,
        /// Why it did not parse.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Content did not hash to the digest it was announced with; nothing was stored.
    #[error("digest mismatch: expected {expected}, got {actual}; nothing was stored")]
    DigestMismatch {
        /// The announced digest.
        expected: Digest,
        /// What the bytes hashed to.
        actual: Digest,
    },
    /// Content had a different length than announced; nothing was stored.
    #[error(
        "size mismatch for {digest}: expected {expected} bytes, got {actual}; nothing was stored"
    )]
    SizeMismatch {
        /// Digest of what was written.
        digest: Digest,
        /// The announced size.
        expected: u64,
        /// Bytes actually written.
        actual: u64,
    },
    /// The caller asked to verify against a digest of another algorithm than the writer hashed.
    #[error(
        "blob writer hashed with {writer} but the expected digest {expected} uses another \
         algorithm; create the writer with Store::blob_writer_with({expected_algo})"
    )]
    AlgorithmMismatch {
        /// The writer's algorithm.
        writer: &'static str,
        /// The expected digest.
        expected: Digest,
        /// The expected digest's algorithm name.
        expected_algo: &'static str,
    },
    /// A blob is not in the store.
    #[error("blob {0} is not in the store; fetch the image again with `rkt fetch`")]
    BlobMissing(Digest),
    /// `insert_image` was asked to index an image whose content is not all in the store.
    #[error(
        "cannot index image {image}: {what} is not in the store (a concurrent `rkt image gc` \
         may have removed it); run the fetch again"
    )]
    IncompleteImage {
        /// The image being inserted.
        image: Digest,
        /// The missing piece ("blob sha256:…", "layer tree sha256:…").
        what: String,
    },
    /// No image matches the query.
    #[error("no image {query:?} in the store: {hint}")]
    NotFound {
        /// What the user asked for.
        query: String,
        /// What to do: how to fetch it, or how to list what is there.
        hint: String,
    },
    /// An image name or tag given to `insert_image` is empty or malformed.
    #[error("invalid image name {0:?}: a name needs a non-empty repository and tag without spaces")]
    InvalidName(String),
    /// An id prefix matched several images.
    #[error(
        "image id prefix {query:?} is ambiguous; it matches {}: give more digits",
        candidates.join(", ")
    )]
    Ambiguous {
        /// The prefix given.
        query: String,
        /// Full ids of the matching images.
        candidates: Vec<String>,
    },
}

impl StoreError {
    /// Classifies an I/O error on `path`: disk full and permission problems get their own
    /// variants because the user can fix them; anything else is [`StoreError::Io`].
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_owned();
        use rustix::io::Errno;
        match Errno::from_io_error(&source) {
            Some(Errno::NOSPC | Errno::DQUOT) => StoreError::DiskFull {
                path,
                source: Box::new(source),
            },
            Some(Errno::ACCESS | Errno::PERM) => StoreError::PermissionDenied { path, source },
            _ => StoreError::Io {
                action,
                path,
                source,
            },
        }
    }

    /// Wraps a SQLite error, recognising a full disk.
    pub(crate) fn db(action: &'static str, path: &Path, source: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(e, _) = &source {
            match e.code {
                rusqlite::ErrorCode::DiskFull => {
                    return StoreError::DiskFull {
                        path: path.to_owned(),
                        source: Box::new(source),
                    };
                }
                rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::PermissionDenied => {
                    return StoreError::PermissionDenied {
                        path: path.to_owned(),
                        source: io::Error::from(io::ErrorKind::PermissionDenied),
                    };
                }
                _ => {}
            }
        }
        StoreError::Db {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// Shorthand for `map_err(|e| StoreError::io(action, path, e))`.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(action, path, e))
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(action, path, e.into()))
    }
}
