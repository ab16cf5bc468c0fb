//! Unpacked layer trees: `layers/<algorithm>/<hex>/{tree/,info.json}`, keyed by diff id.
//!
//! A tree is unpacked by the caller into a [`LayerTx`] under `tmp/`, made durable with one
//! [`Store::sync`], then renamed into `layers/` by [`Store::commit_layer`]. A directory in
//! `layers/` is therefore always complete.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rkt_types::Digest;
use rustix::fs::{CWD, RenameFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::Store;
use crate::error::{IoContext, StoreError};
use crate::fsutil::{DIR_MODE, FILE_MODE, freshen, fsync_dir, remove_any};
use crate::lock::{TmpEntry, create_tmp};

/// Name of the tree directory inside a layer directory.
pub(crate) const TREE: &str = "tree";
/// Name of the metadata file inside a layer directory.
pub(crate) const INFO: &str = "info.json";

/// What is recorded about an unpacked layer (`info.json`, next to `tree/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar: the layer's key.
    pub diff_id: Digest,
    /// `rkt_image::treehash::hash_tree` of the unpacked tree, for `verify_image`.
    pub tree_hash: Digest,
    /// Number of entries unpacked.
    pub entries: u64,
    /// Apparent size of the unpacked tree in bytes.
    pub bytes: u64,
}

/// `info.json` on disk: [`LayerInfo`] plus when it was committed.
#[derive(Serialize, Deserialize)]
struct InfoFile {
    #[serde(flatten)]
    info: LayerInfo,
    /// Seconds since the epoch.
    unpacked_at: u64,
}

/// A layer being unpacked: an empty directory under `tmp/`, locked for as long as this value
/// lives so gc leaves it alone. Dropping it without [`Store::commit_layer`] removes it.
#[derive(Debug)]
pub struct LayerTx {
    entry: Option<TmpEntry>,
    tree: PathBuf,
}

impl LayerTx {
    /// The directory to unpack the layer into (empty, mode 0755, on the store's filesystem).
    pub fn tree_dir(&self) -> &Path {
        &self.tree
    }
}

impl Drop for LayerTx {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            // Remove while the lock (entry.file) is still held, so gc cannot race us.
            if let Err(e) = remove_any(&entry.path) {
                tracing::warn!("could not remove an abandoned layer: {e}; gc will retry");
            }
        }
    }
}

impl Store {
    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir()
            .join(diff_id.algorithm().name())
            .join(diff_id.hex())
    }

    /// The tree of a committed layer, or `None` if the layer is not (fully) in the store.
    pub fn layer_tree(&self, diff_id: &Digest) -> Option<PathBuf> {
        let tree = self.layer_dir(diff_id).join(TREE);
        tree.is_dir().then_some(tree)
    }

    /// What was recorded when the layer was committed, or `None` if it is not in the store.
    pub fn layer_info(&self, diff_id: &Digest) -> Result<Option<LayerInfo>, StoreError> {
        let path = self.layer_dir(diff_id).join(INFO);
        read_info(&path)
    }

    /// Starts a new layer: an empty tree directory under `tmp/` for the caller to unpack into.
    pub fn new_layer(&self) -> Result<LayerTx, StoreError> {
        let entry = create_tmp(&self.tmp_dir(), "layer", true)?;
        let tree = entry.path.join(TREE);
        let made = fs::DirBuilder::new()
            .mode(DIR_MODE)
            .create(&tree)
            .and_then(|()| fs::set_permissions(&tree, fs::Permissions::from_mode(DIR_MODE)));
        if let Err(e) = made {
            let _ = remove_any(&entry.path);
            return Err(StoreError::io("create directory", &tree, e));
        }
        Ok(LayerTx {
            entry: Some(entry),
            tree,
        })
    }

    /// Moves an unpacked layer into `layers/` under `info.diff_id` and returns its tree path.
    ///
    /// The caller must have made the tree's contents durable first, with one [`Store::sync`]
    /// per fetch. If another process committed the same diff id meanwhile, ours is discarded and
    /// the existing tree is returned (and its age for gc's grace period reset).
    pub fn commit_layer(&self, mut tx: LayerTx, info: &LayerInfo) -> Result<PathBuf, StoreError> {
        let entry = tx.entry.as_ref().expect("uncommitted LayerTx has an entry");
        let dest = self.layer_dir(&info.diff_id);
        if dest.is_dir() {
            freshen(&dest.join(INFO));
            return Ok(dest.join(TREE));
        }
        write_info(&entry.path.join(INFO), info)?;
        fsync_dir(&entry.path)?;
        let parent = dest.parent().expect("layer dir has a parent");
        match rename_noreplace(&entry.path, &dest) {
            Ok(()) => {
                // The directory now lives at dest; nothing is left in tmp/ for Drop to remove.
                tx.entry = None;
                fsync_dir(parent)?;
            }
            Err(e) if e == Errno::EXIST || e == Errno::NOTEMPTY => {
                // Another process won the race; ours is dropped (removed) with `tx`.
                freshen(&dest.join(INFO));
            }
            Err(e) => return Err(StoreError::io("rename into place", &dest, e.into())),
        }
        Ok(dest.join(TREE))
    }

    /// Flushes everything written to the store's filesystem (`syncfs(2)`), once per fetch
    /// instead of an fsync per unpacked file.
    pub fn sync(&self) -> Result<(), StoreError> {
        let root = File::open(&self.root).ctx("open", &self.root)?;
        rustix::fs::syncfs(&root).ctx("syncfs", &self.root)
    }
}

/// `rename(2)` that fails with EEXIST instead of replacing. Falls back to a plain rename (which
/// refuses a non-empty target with ENOTEMPTY) where the filesystem lacks RENAME_NOREPLACE.
fn rename_noreplace(from: &Path, to: &Path) -> Result<(), Errno> {
    match rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS) => rustix::fs::rename(from, to),
        r => r,
    }
}

fn write_info(path: &Path, info: &LayerInfo) -> Result<(), StoreError> {
    let unpacked_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let body = serde_json::to_vec_pretty(&InfoFile {
        info: info.clone(),
        unpacked_at,
    })
    .expect("LayerInfo serialises");
    let mut f = File::create(path).ctx("create", path)?;
    f.set_permissions(fs::Permissions::from_mode(FILE_MODE))
        .ctx("set permissions on", path)?;
    f.write_all(&body).ctx("write", path)?;
    f.sync_all().ctx("fsync", path)
}

pub(crate) fn read_info(path: &Path) -> Result<Option<LayerInfo>, StoreError> {
    let body = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("read", path, e)),
    };
    let file: InfoFile = serde_json::from_slice(&body).map_err(|e| StoreError::Corrupt {
        what: path.display().to_string(),
        source: Box::new(e),
    })?;
    Ok(Some(file.info))
}
