//! `flock(2)` locks: named key locks under `locks/`, the gc fence, and the locks that mark a
//! `tmp/` entry as owned by a live process.
//!
//! A lock file may be unlinked by whoever holds its lock (a [`LockGuard`] on drop, gc for files
//! left by killed processes). So after taking a lock we check that the path still names the
//! inode we locked; if not, someone unlinked it under us and we start again with a fresh file.
//! This keeps `locks/` from growing forever without ever letting two processes hold one key.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use rustix::io::Errno;
use sha2::Digest as _;

use crate::error::{IoContext, StoreError};
use crate::fsutil::{DIR_MODE, FILE_MODE};

/// File under `locks/` that gc takes exclusively and fetches take shared. Never unlinked.
pub(crate) const FENCE_FILE: &str = "gc.fence";

/// An exclusive lock on a key, from [`crate::Store::lock`] or [`crate::Store::try_lock`].
/// Released (and its lock file removed) on drop, or by the kernel if the process dies.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
    path: PathBuf,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // Unlink while still holding the lock; waiters re-check the inode and retry.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A shared hold on the store that keeps [`crate::Store::gc`] from removing unreferenced
/// content while it is held. See [`crate::Store::gc_fence`].
#[derive(Debug)]
pub struct GcFence {
    _file: File,
}

/// Maps an arbitrary key to a file name: the readable part keeps `[A-Za-z0-9._-]`, and a hash of
/// the whole key keeps distinct keys distinct.
pub(crate) fn lock_file_name(key: &str) -> String {
    let readable: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    let hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    format!("{}.{}.lock", readable.trim_start_matches('.'), &hash[..16])
}

/// Whether `name` looks like a file [`lock_file_name`] produces.
pub(crate) fn is_key_lock_file(name: &str) -> bool {
    name.ends_with(".lock") && name != FENCE_FILE
}

fn flock(file: &File, op: FlockOperation) -> rustix::io::Result<()> {
    loop {
        match rustix::fs::flock(file.as_fd(), op) {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Tries `op` (a non-blocking flavour); `Ok(false)` when someone else holds the lock.
fn try_flock(file: &File, op: FlockOperation, path: &Path) -> Result<bool, StoreError> {
    match flock(file, op) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(StoreError::io("lock", path, e.into())),
    }
}

/// Whether `path` still names the inode open as `file`.
fn still_linked(file: &File, path: &Path) -> Result<bool, StoreError> {
    let ours = file.metadata().ctx("stat", path)?;
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.ino() == ours.ino() && now.dev() == ours.dev()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("stat", path, e)),
    }
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .ctx("open lock file", path)
}

/// Takes the key lock at `path`, blocking or not.
pub(crate) fn lock_key(path: &Path, block: bool) -> Result<Option<LockGuard>, StoreError> {
    loop {
        let file = open_lock_file(path)?;
        if block {
            flock(&file, FlockOperation::LockExclusive).ctx("lock", path)?;
        } else if !try_flock(&file, FlockOperation::NonBlockingLockExclusive, path)? {
            return Ok(None);
        }
        if still_linked(&file, path)? {
            return Ok(Some(LockGuard {
                _file: file,
                path: path.to_owned(),
            }));
        }
    }
}

/// Takes the gc fence shared (`exclusive == false`, for fetches) or exclusive (for gc).
pub(crate) fn fence(locks_dir: &Path, exclusive: bool) -> Result<GcFence, StoreError> {
    let path = locks_dir.join(FENCE_FILE);
    let file = open_lock_file(&path)?;
    let (try_op, op) = if exclusive {
        (
            FlockOperation::NonBlockingLockExclusive,
            FlockOperation::LockExclusive,
        )
    } else {
        (
            FlockOperation::NonBlockingLockShared,
            FlockOperation::LockShared,
        )
    };
    if !try_flock(&file, try_op, &path)? {
        tracing::info!(
            "waiting for {} to finish",
            if exclusive {
                "running fetches"
            } else {
                "a running `rkt image gc`"
            }
        );
        flock(&file, op).ctx("lock", &path)?;
    }
    Ok(GcFence { _file: file })
}

/// A `tmp/` entry we created and hold locked; gc leaves it alone until the lock goes.
#[derive(Debug)]
pub(crate) struct TmpEntry {
    /// The open file or directory carrying the lock.
    pub file: File,
    /// Its path under `tmp/`.
    pub path: PathBuf,
}

/// Creates and locks a fresh `tmp/<prefix>-<uuid>` file (`dir == false`) or directory.
///
/// gc removes any unlocked `tmp/` entry, and there is a moment between creating an entry and
/// locking it; if gc struck in that moment the entry is gone or locked by gc, and we retry with
/// another name.
pub(crate) fn create_tmp(tmp_dir: &Path, prefix: &str, dir: bool) -> Result<TmpEntry, StoreError> {
    loop {
        let path = tmp_dir.join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        let file = if dir {
            std::fs::DirBuilder::new()
                .mode(DIR_MODE)
                .create(&path)
                .ctx("create directory", &path)?;
            // Not left to the umask: the directory may become a layer that pods read.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(DIR_MODE))
                .ctx("set permissions on", &path)?;
            match File::open(&path) {
                Ok(f) => f,
                // A concurrent gc swept it before we could lock it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("open", &path, e)),
            }
        } else {
            File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&path)
                .ctx("create", &path)?
        };
        if try_flock(&file, FlockOperation::NonBlockingLockExclusive, &path)?
            && still_linked(&file, &path)?
        {
            return Ok(TmpEntry { file, path });
        }
    }
}

/// For gc: locks an existing `tmp/` entry if nobody holds it. `Ok(None)` means a live process
/// owns it. Anything but a plain file or directory (a symlink, a device) cannot be one of ours
/// and is not opened (opening a device can have effects); it is returned as unlocked debris,
/// `Some(None)`.
pub(crate) fn try_lock_existing(path: &Path) -> Result<Option<Option<File>>, StoreError> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("stat", path, e)),
    };
    if !md.is_dir() && !md.is_file() {
        return Ok(Some(None));
    }
    let fd = match rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::LOOP) => return Ok(Some(None)),
        // Gone meanwhile: some other gc took it.
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(StoreError::io("open", path, e.into())),
    };
    let file = File::from(fd);
    if try_flock(&file, FlockOperation::NonBlockingLockExclusive, path)? {
        Ok(Some(Some(file)))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_names_are_safe_and_distinct() {
        let a = lock_file_name("layer:sha256:abc/../x");
        assert!(!a.contains('/') && !a.starts_with('.'));
        assert_ne!(a, lock_file_name("layer:sha256:abc_.._x"));
        assert!(is_key_lock_file(&a));
        assert!(!is_key_lock_file(FENCE_FILE));
        assert!(lock_file_name(&"x".repeat(1000)).len() < 120);
    }
}
