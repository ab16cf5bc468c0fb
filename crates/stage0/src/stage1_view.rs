//! The read-only overlayfs view stage0 execs stage1 through (see [`crate::stage1_image`]).
//!
//! A view is a lower-layers-only overlayfs of the binary's directory, mounted read-only with
//! the new mount API. The first pod start after boot (or after the binary changed) attaches it
//! under [`VIEWS_DIR`], named after the binary's path and identity; later starts open the
//! binary through it, with no mount made or torn down per pod. That matters more than the
//! mount itself: closing a view that was never attached dissolves it, and the unmount waits
//! for an RCU grace period, on the path of every `rkt run`.
//!
//! A view is trusted only as what it claims to be: the file opened through it must sit on a
//! read-only overlayfs and be the very inode, size and times the real binary has now. Each
//! view has a `<view>.source` file naming the binary; views whose binary is gone or has
//! changed are detached whenever a new view is attached, and by `rkt gc`
//! ([`remove_stale`]). Where a view cannot be attached (a read-only `/run`, a mount
//! namespace that forbids it), each start makes a detached one.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags, StatVfsMountFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags};

/// The second, empty lower layer of a view: overlayfs wants two lower layers when it has no
/// upper one, and they may not nest. Under rkt's runtime directory, on tmpfs.
pub const SPARE_LOWER: &str = "/run/rkt/stage1-lower";

/// Where views are attached: `<path hash>-<inode>-<size>-<mtime>-<ctime>` per binary.
pub const VIEWS_DIR: &str = "/run/rkt/stage1-view";

/// `OVERLAYFS_SUPER_MAGIC`.
const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// `bin` opened (read-only, close-on-exec) through a read-only overlayfs view of its
/// directory: the attached view of this very binary if there is one, else a new view,
/// attached for the pods after this one when it can be.
pub fn open(bin: &Path) -> io::Result<OwnedFd> {
    // The real file: through a link, the view would hold the link and the exec would follow
    // it out of the view to the writable original.
    let bin = std::fs::canonicalize(bin)?;
    let (Some(dir), Some(name)) = (bin.parent(), bin.file_name()) else {
        return Err(io::Error::other("not a file in a directory"));
    };
    let real = rustix::fs::stat(&bin)?;
    let view = Path::new(VIEWS_DIR).join(view_name(&bin, &real));
    let in_view = view.join(name);
    if let Some(fd) = open_verified(&in_view, &real) {
        return Ok(fd);
    }
    std::fs::create_dir_all(SPARE_LOWER)?;
    std::fs::create_dir_all(&view)?;
    // One process attaches a view; one that waited here finds it made.
    let lock = File::create(Path::new(VIEWS_DIR).join(".lock"))?;
    lock.lock()?;
    if let Some(fd) = open_verified(&in_view, &real) {
        return Ok(fd);
    }
    let mnt = detached(dir)?;
    let fd = rustix::fs::openat(
        mnt.as_fd(),
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // The record first: a `remove_stale` running meanwhile takes a view without one for an
    // older rkt's, and would detach it.
    let record = source_file(&view);
    let attached = std::fs::write(&record, bin.as_os_str().as_encoded_bytes()).and_then(|()| {
        rustix::mount::move_mount(
            mnt.as_fd(),
            "",
            rustix::fs::CWD,
            &view,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(io::Error::from)
    });
    match attached {
        Ok(()) => remove_stale(),
        Err(e) => {
            // This start still has its view: it goes with the last process executing from it.
            tracing::debug!("could not attach a view at {} ({e})", view.display());
            let _ = std::fs::remove_file(&record);
        }
    }
    Ok(fd)
}

/// `<view>.source`: the binary `view` shows.
fn source_file(view: &Path) -> std::path::PathBuf {
    let mut name = view.as_os_str().to_owned();
    name.push(".source");
    name.into()
}

/// Detaches and removes every view whose binary is gone or is no longer the version the
/// view was made for. Processes running from one keep it until they are done.
pub fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(VIEWS_DIR) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let view = e.path();
        let record = source_file(&view);
        // Without a record (an older rkt's view, or an attach cut short) it is stale too.
        let current = std::fs::read(&record).ok().and_then(|bytes| {
            let bin = std::path::PathBuf::from(std::ffi::OsString::from_vec(bytes));
            let st = rustix::fs::stat(&bin).ok()?;
            Some(view_name(&bin, &st))
        });
        if current.is_some_and(|name| *name == *e.file_name()) {
            continue;
        }
        detach(&view);
    }
}

/// Detaches the view at `view` (if one is there) and removes its directory and record.
fn detach(view: &Path) {
    let _ = rustix::mount::unmount(view, UnmountFlags::DETACH);
    let _ = std::fs::remove_dir(view);
    let _ = std::fs::remove_file(source_file(view));
}

/// A detached, read-only overlayfs of `dir` over [`SPARE_LOWER`].
fn detached(dir: &Path) -> io::Result<OwnedFd> {
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    // The binary's directory on top, so nothing in the spare layer can shadow it.
    let lower = format!(
        "{}:{}",
        escape_lower(&dir.to_string_lossy()),
        escape_lower(SPARE_LOWER)
    );
    rustix::mount::fsconfig_set_string(fs.as_fd(), "lowerdir", &*lower)?;
    // Inode-number mapping is of no use here, and when the layers are on different
    // filesystems the kernel would log a notice about it on every mount.
    let _ = rustix::mount::fsconfig_set_string(fs.as_fd(), "xino", "off");
    rustix::mount::fsconfig_create(fs.as_fd())?;
    Ok(rustix::mount::fsmount(
        fs.as_fd(),
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOSUID,
    )?)
}

/// `path` opened, if it is on a read-only overlayfs and is the file `real` describes.
fn open_verified(path: &Path, real: &rustix::fs::Stat) -> Option<OwnedFd> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    // f_type's integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    let on_overlay = rustix::fs::fstatfs(&fd).ok()?.f_type as i64 == OVERLAYFS_MAGIC;
    let read_only = rustix::fs::fstatvfs(&fd)
        .ok()?
        .f_flag
        .contains(StatVfsMountFlags::RDONLY);
    let st = rustix::fs::fstat(&fd).ok()?;
    (on_overlay && read_only && identity(&st) == identity(real)).then_some(fd)
}

/// What tells one version of a binary from the next: its inode, size, and modification and
/// change times (a view's file reports its lower file's).
fn identity(st: &rustix::fs::Stat) -> (u64, i64, i64, u64, i64, u64) {
    #[allow(clippy::unnecessary_cast)]
    (
        st.st_ino as u64,
        st.st_size as i64,
        st.st_mtime as i64,
        st.st_mtime_nsec as u64,
        st.st_ctime as i64,
        st.st_ctime_nsec as u64,
    )
}

/// The view directory's name for `bin` as `st` describes it.
fn view_name(bin: &Path, st: &rustix::fs::Stat) -> String {
    let (ino, size, mtime, mtime_ns, ctime, ctime_ns) = identity(st);
    format!(
        "{}{ino:x}-{size:x}-{mtime:x}.{mtime_ns:x}-{ctime:x}.{ctime_ns:x}",
        path_prefix(bin)
    )
}

/// The start of the view names of every version of `bin`.
fn path_prefix(bin: &Path) -> String {
    // FNV-1a: stable across builds (unlike std's hasher), so a new rkt finds the old views.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bin.as_os_str().as_encoded_bytes() {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}-")
}

/// Detaches and removes every view of `bin`, whatever its version.
#[cfg(test)]
fn remove_views(bin: &Path) {
    let prefix = path_prefix(bin);
    let Ok(entries) = std::fs::read_dir(VIEWS_DIR) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with(&prefix) && path.is_dir() {
            detach(&path);
        }
    }
}

/// A path as one `lowerdir` entry: `:` separates layers, `\` escapes.
fn escape_lower(path: &str) -> String {
    path.replace('\\', r"\\").replace(':', r"\:")
}

/// Mount points of this mount namespace under [`VIEWS_DIR`] for `bin` (any version).
#[cfg(test)]
fn mounted_views(bin: &Path) -> Vec<PathBuf> {
    let prefix = Path::new(VIEWS_DIR).join(path_prefix(bin));
    let prefix = prefix.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    /// Opens `fd` again, for writing, by its `/proc` link, as a process in the pod would
    /// through `/proc/<stage1 pid>/exe`.
    fn reopen_for_writing(fd: &OwnedFd) -> io::Result<File> {
        use std::os::fd::AsRawFd;
        std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
    }

    /// Removes the views of `bin` when a test ends, however it ends.
    struct Views(PathBuf);

    impl Drop for Views {
        fn drop(&mut self) {
            remove_views(&self.0);
        }
    }

    /// A copy of `/bin/true` as `stage1` in a scratch directory (canonical path), with its
    /// views removed when the test ends (the guard drops before the directory).
    fn scratch_binary() -> (tempfile::TempDir, PathBuf, Views) {
        let dir = tempfile::tempdir().unwrap();
        let bin = std::fs::canonicalize(dir.path()).unwrap().join("stage1");
        std::fs::copy("/bin/true", &bin).unwrap();
        let views = Views(bin.clone());
        (dir, bin, views)
    }

    fn content(fd: OwnedFd) -> Vec<u8> {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut File::from(fd), &mut bytes).unwrap();
        bytes
    }

    #[test]
    fn the_view_is_the_binary_and_cannot_be_written() {
        // A copy of a binary in a directory of its own, linked from another one: the view must
        // hold the file, not the link.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("real").join("stage1");
        std::fs::create_dir(bin.parent().unwrap()).unwrap();
        std::fs::copy("/bin/true", &bin).unwrap();
        let _views = Views(std::fs::canonicalize(&bin).unwrap());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&bin, &link).unwrap();
        let fd = open(&link).expect("overlayfs and the new mount API (root on Linux 5.2+)");
        #[allow(clippy::unnecessary_cast)]
        let fs_type = rustix::fs::fstatfs(&fd).unwrap().f_type as i64;
        assert_eq!(fs_type, OVERLAYFS_MAGIC);
        assert_eq!(
            content(fd.try_clone().unwrap()),
            std::fs::read(&bin).unwrap()
        );
        let e = reopen_for_writing(&fd).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(Errno::ROFS.raw_os_error()), "{e}");
        // The original is writable: the view, not the file, is what protects it.
        assert!(std::fs::OpenOptions::new().write(true).open(&bin).is_ok());
    }

    #[test]
    fn one_view_serves_every_start_until_the_binary_changes() {
        let (dir, bin, _views) = scratch_binary();
        let first = open(&bin).unwrap();
        let views = mounted_views(&bin);
        assert_eq!(views.len(), 1, "{views:?}");
        // The next start opens the same file through the same mount, and mounts nothing.
        let again = open(&bin).unwrap();
        assert_eq!(mounted_views(&bin), views);
        let ids = |fd: &OwnedFd| {
            let st = rustix::fs::fstat(fd).unwrap();
            (st.st_dev, st.st_ino)
        };
        assert_eq!(ids(&first), ids(&again));
        // A new version of the binary (as an install replaces it) gets a view of its own, and
        // the old one is detached: a start already running from it keeps its file.
        let new = dir.path().join("stage1.new");
        std::fs::copy("/bin/false", &new).unwrap();
        std::fs::rename(&new, &bin).unwrap();
        let replaced = open(&bin).unwrap();
        let now = mounted_views(&bin);
        assert_eq!(now.len(), 1, "{now:?}");
        assert_ne!(now, views);
        assert!(!views[0].exists());
        assert_eq!(content(replaced), std::fs::read("/bin/false").unwrap());
        assert_eq!(content(first), std::fs::read("/bin/true").unwrap());
    }

    #[test]
    fn views_of_binaries_that_are_gone_are_removed() {
        let (_dir, bin, _views) = scratch_binary();
        drop(open(&bin).unwrap());
        let views = mounted_views(&bin);
        assert_eq!(views.len(), 1, "{views:?}");
        assert!(source_file(&views[0]).exists());
        // Still the binary: kept.
        remove_stale();
        assert_eq!(mounted_views(&bin), views);
        std::fs::remove_file(&bin).unwrap();
        remove_stale();
        assert_eq!(mounted_views(&bin), Vec::<PathBuf>::new());
        assert!(!views[0].exists() && !source_file(&views[0]).exists());
    }

    #[test]
    fn a_directory_that_is_no_view_is_not_trusted() {
        // What a view's path holds before anything is mounted there (or after a mount
        // namespace lost it): the real, writable file is not taken for a view.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("stage1");
        std::fs::copy("/bin/true", &bin).unwrap();
        let real = rustix::fs::stat(&bin).unwrap();
        assert!(open_verified(&bin, &real).is_none());
    }

    #[test]
    fn lower_dirs_escape_separators() {
        assert_eq!(escape_lower(r"/a:b\c"), r"/a\:b\\c");
    }

    #[test]
    fn view_names_change_with_the_binary_and_share_its_path_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("stage1");
        std::fs::write(&bin, "one").unwrap();
        let a = view_name(&bin, &rustix::fs::stat(&bin).unwrap());
        std::fs::write(&bin, "three").unwrap();
        let b = view_name(&bin, &rustix::fs::stat(&bin).unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(&path_prefix(&bin)) && b.starts_with(&path_prefix(&bin)));
        assert_ne!(path_prefix(&bin), path_prefix(&dir.path().join("other")));
    }
}
