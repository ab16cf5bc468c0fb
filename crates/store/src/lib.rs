//! The image store under `$dir/store`: blobs by digest, unpacked layer trees, the SQLite index,
//! `flock` locks and garbage collection. No daemon: any number of `rkt` processes (fetch, run,
//! gc, image rm, list) use one store at once, coordinating through `flock(2)` and SQLite
//! transactions.
//!
//! ```text
//! store/
//!   index.db               SQLite, rollback journal (schema in the `db` module docs)
//!   blobs/<algo>/<hex>     blobs exactly as distributed
//!   layers/<algo>/<hex>/   one unpacked layer per diff id: tree/ and info.json
//!   locks/                 key locks (one file per key being fetched) and the gc fence
//!   tmp/                   blobs and trees being written; same filesystem as the rest
//!   used/<algo>-<hex>      an empty file per image whose mtime is when a pod last used it
//! ```
//!
//! # Crash safety
//! Nothing appears under `blobs/` or `layers/` except by `rename(2)` of a finished, durable
//! temp: a blob is written to `tmp/`, fsynced, renamed, and its directory fsynced; a layer tree
//! is unpacked by the caller into a [`LayerTx`], made durable with one [`Store::sync`], and
//! renamed into place by [`Store::commit_layer`]. The index is written last
//! ([`Store::insert_image`], one transaction that first checks all the content is there).
//! Every `tmp/` entry is `flock`ed by the process writing it, so after a `kill -9` its lock is
//! free and [`Store::gc`] knows it for debris.
//!
//! # Using it from a fetch
//! ```no_run
//! use std::io::Write;
//! use rkt_store::{ImageName, LayerInfo, Store, StoreError};
//! use rkt_types::{Digest, ImageRecord};
//!
//! fn store_image(
//!     store: &Store,
//!     rec: &ImageRecord,
//!     download: &[u8],                   // a layer blob, as the registry sent it
//!     unpack: impl Fn(&[u8], &std::path::Path) -> LayerInfo,
//! ) -> Result<(), StoreError> {
//!     let _fence = store.gc_fence()?;    // gc waits until the image is indexed
//!     let layer = &rec.layers[0];
//!     // One download per layer, however many processes fetch images that share it.
//!     let _lock = store.lock(&format!("layer:{}", layer.diff_id))?;
//!     if store.layer_tree(&layer.diff_id).is_none() {
//!         let mut blob = store.blob_writer()?;
//!         blob.write_all(download).expect("disk write");
//!         blob.commit(Some(&layer.blob), Some(layer.size))?;
//!         let tx = store.new_layer()?;
//!         let info = unpack(download, tx.tree_dir());
//!         store.sync()?;                 // once per fetch, before the commits
//!         store.commit_layer(tx, &info)?;
//!     }
//!     // … the manifest and config blobs go in with `put_blob` …
//!     store.insert_image(rec, &[ImageName::new("docker.io/library/busybox", "latest")], None)
//! }
//! ```
//!
//! # Decisions
//! - Ids: [`Store::resolve`] takes a full id, an id prefix of at least [`MIN_ID_PREFIX`] hex
//!   digits, `NAME[:TAG]` (Docker short names too) or `NAME@DIGEST`.
//! - Sizes in [`Store::list_images`] count an image's blobs and trees once per image; what it
//!   shares with other images is also given separately ([`ImageEntry::shared_size`]).
//! - [`Store::remove_image`] only touches the index; the content goes at the next
//!   [`Store::gc`], which removes trees as well as blobs (rkt #2890 left trees forever).
//! - Pods (a later layer of rkt) protect the trees they mount through `gc`'s `keep` set.
#![forbid(unsafe_code)]

mod blob;
mod db;
mod error;
mod fsutil;
mod gc;
mod images;
mod layer;
mod lock;
mod resolve;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub use blob::BlobWriter;
pub use error::StoreError;
pub use gc::GcReport;
pub use images::{ImageEntry, ImageName, RemoteInfo};
pub use layer::{LayerInfo, LayerTx};
pub use lock::{GcFence, LockGuard};
pub use resolve::MIN_ID_PREFIX;
pub use verify::{Check, LayerCheck, VerifyReport};

use crate::error::IoContext;
use crate::fsutil::{DIR_MODE, FILE_MODE, check_not_overlayfs, ensure_dirs_on_root_device};

/// The default store root (`--dir` defaults to `/var/lib/rkt`).
pub const DEFAULT_ROOT: &str = "/var/lib/rkt/store";

/// An open store. Cheap to share between threads (`&Store` is `Sync`); index access is
/// serialised inside one process, and between processes by SQLite.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    db: Mutex<rusqlite::Connection>,
}

impl Store {
    /// Opens the store at `root`, creating its layout and index and migrating an older index.
    ///
    /// Refuses a root on overlayfs (pods overlay-mount layer trees, and overlayfs cannot stack
    /// on an overlayfs upper or lower dir) and a store split across filesystems.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        check_not_overlayfs(root)?;
        if !root.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(root)
                .ctx("create directory", root)?;
        }
        let root = root.to_owned();
        let store = |db| Store {
            root: root.clone(),
            db: Mutex::new(db),
        };
        let mut dirs = vec![
            root.join("blobs"),
            root.join("layers"),
            root.join("locks"),
            root.join("tmp"),
            root.join("used"),
        ];
        for top in ["blobs", "layers"] {
            for algo in ["sha256", "sha512"] {
                dirs.push(root.join(top).join(algo));
            }
        }
        ensure_dirs_on_root_device(&root, &dirs)?;
        let index = root.join("index.db");
        let conn = db::open(&index)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let md = std::fs::metadata(&index).ctx("stat", &index)?;
            // Readable by everyone, so unprivileged `rkt image list` can read it.
            if md.permissions().mode() & 0o777 != FILE_MODE {
                std::fs::set_permissions(&index, std::fs::Permissions::from_mode(FILE_MODE))
                    .ctx("set permissions on", &index)?;
            }
        }
        Ok(store(conn))
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes an exclusive lock on `key`, waiting for it. Concurrent fetches of one image take
    /// `layer:<diff id>` (or similar) so each layer is downloaded once. The key may be any
    /// string; it is mapped to a safe file name under `locks/`.
    pub fn lock(&self, key: &str) -> Result<LockGuard, StoreError> {
        let path = self.locks_dir().join(lock::lock_file_name(key));
        Ok(lock::lock_key(&path, true)?.expect("a blocking lock is always taken"))
    }

    /// Like [`Store::lock`], but returns `None` at once if someone else holds the key.
    pub fn try_lock(&self, key: &str) -> Result<Option<LockGuard>, StoreError> {
        let path = self.locks_dir().join(lock::lock_file_name(key));
        lock::lock_key(&path, false)
    }

    /// Holds off [`Store::gc`] while the returned guard lives (a shared lock; any number of
    /// fetches hold it at once, gc takes it exclusively). A fetch holds it from its first look
    /// at the store until [`Store::insert_image`], so content it decided to reuse cannot be
    /// collected in between. Do not call `gc` on a thread while holding a fence: it would wait
    /// for itself.
    pub fn gc_fence(&self) -> Result<GcFence, StoreError> {
        lock::fence(&self.locks_dir(), false)
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding the guard cannot leave SQLite inconsistent (an open
        // transaction rolls back on drop), so a poisoned mutex is still usable.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.db")
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub(crate) fn used_dir(&self) -> PathBuf {
        self.root.join("used")
    }

    /// The store's scratch directory.
    ///
    /// Callers may create scratch files here (on the store's filesystem, so a rename into
    /// place is atomic) while they hold a [`GcFence`]: gc waits for the fence, and after a
    /// crash it removes whatever is left.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}
