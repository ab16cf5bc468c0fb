//! Small filesystem helpers: durable directories, filesystem checks, sizes, timestamps.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{IoContext, StoreError};

/// `OVERLAYFS_SUPER_MAGIC` from `linux/magic.h`.
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// Mode of every directory the store creates.
pub(crate) const DIR_MODE: u32 = 0o755;
/// Mode of blobs, `info.json` and `index.db`.
pub(crate) const FILE_MODE: u32 = 0o644;

/// Creates `path` (one level) with [`DIR_MODE`] if it is missing.
pub(crate) fn ensure_dir(path: &Path) -> Result<(), StoreError> {
    match fs::DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => {
            // The umask may have cleared bits; the store is meant to be world-readable.
            fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
                .ctx("set permissions on", path)?;
            fsync_parent(path)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(StoreError::io("create directory", path, e)),
    }
}

/// Makes a directory's entries (a rename or create in it) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// fsyncs the directory holding `path`.
pub(crate) fn fsync_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => fsync_dir(p),
        _ => Ok(()),
    }
}

/// Refuses a store root on overlayfs. Checks the nearest existing ancestor so that nothing is
/// created before the refusal.
pub(crate) fn check_not_overlayfs(root: &Path) -> Result<(), StoreError> {
    let mut p: &Path = root;
    loop {
        match rustix::fs::statfs(p) {
            Ok(st) => {
                // f_type is i64 here, but i32 or u32 on other targets.
                #[allow(clippy::useless_conversion)]
                let f_type = i64::from(st.f_type);
                return if f_type == OVERLAYFS_SUPER_MAGIC {
                    Err(StoreError::OnOverlayfs {
                        path: root.to_owned(),
                    })
                } else {
                    Ok(())
                };
            }
            Err(rustix::io::Errno::NOENT) => match p.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => p = parent,
                _ => return Ok(()),
            },
            Err(e) => return Err(StoreError::io("statfs", p, e.into())),
        }
    }
}

/// Makes the directories of `dirs` that are missing ([`ensure_dir`]), and refuses a store
/// whose subdirectories are not all on the root's filesystem. Every `rkt` opens the store:
/// once the layout exists this is one `stat` per directory.
pub(crate) fn ensure_dirs_on_root_device(root: &Path, dirs: &[PathBuf]) -> Result<(), StoreError> {
    let dev = fs::metadata(root).ctx("stat", root)?.dev();
    for d in dirs {
        let md = match fs::metadata(d) {
            Ok(md) if md.is_dir() => md,
            _ => {
                ensure_dir(d)?;
                fs::metadata(d).ctx("stat", d)?
            }
        };
        if md.dev() != dev {
            return Err(StoreError::CrossDevice {
                path: d.clone(),
                root: root.to_owned(),
            });
        }
    }
    Ok(())
}

/// Apparent size of a file or a whole tree (symlinks not followed). Best effort: entries that
/// vanish or cannot be read count as zero, since this only feeds reports.
pub(crate) fn tree_bytes(path: &Path) -> u64 {
    let Ok(md) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    let mut total = 0;
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for entry in rd.flatten() {
            let Ok(md) = entry.metadata() else { continue };
            if md.is_dir() {
                stack.push(entry.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}

/// Removes a file or a directory tree; a path that is already gone is fine.
pub(crate) fn remove_any(path: &Path) -> Result<(), StoreError> {
    let md = match fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("stat", path, e)),
    };
    let r = if md.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Age of a file by its mtime; a file from the future counts as brand new.
pub(crate) fn age(md: &fs::Metadata) -> Duration {
    md.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::ZERO)
}

/// Sets a file's mtime to now, so gc's grace period counts from this reuse. Best effort: a
/// read-only caller simply does not extend the grace.
pub(crate) fn freshen(path: &Path) {
    if let Ok(f) = File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Milliseconds since the epoch, as the index stores times.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// A time as milliseconds since the epoch (clamped to 0 before it).
pub(crate) fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The inverse of [`to_ms`].
pub(crate) fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
