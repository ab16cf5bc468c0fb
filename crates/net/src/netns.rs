//! Persistent network namespaces: a bind mount of `/proc/<pid>/ns/net` on a file.
//!
//! The mount is made in the caller's mount namespace (stage1 runs in the host's), so the pod's
//! network namespace outlives its processes until gc unmounts it, and CNI plugins (which open
//! `CNI_NETNS` by path) reach it from any process of that mount namespace. The new mount takes
//! the propagation of the mount it sits on, and its unmount (`MNT_DETACH`) propagates the same
//! way, so peers that received a copy lose it again; the pod's own mount namespace is private
//! (stage1 makes it so before the netns is bound), so no copy lands there. As with
//! `ip netns add`, a mount namespace made in between with private propagation keeps its own copy,
//! and with it the namespace, until that mount namespace ends.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::FsWord;
use rustix::io::Errno;
use rustix::mount::{UnmountFlags, mount_bind, unmount};

use crate::error::NetError;

/// `NSFS_MAGIC`: the filesystem of `/proc/<pid>/ns/*` and of their bind mounts.
const NSFS_MAGIC: FsWord = 0x6e73_6673;

/// Whether `path` is a live namespace (an nsfs mount), not just the empty file it is mounted on.
pub fn is_netns(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|st| st.f_type == NSFS_MAGIC)
}

/// Binds the network namespace of process `pid` onto a new empty file at `path`.
///
/// The file is created (mode 0444, like `ip netns add`'s) if missing; an existing empty file left
/// by an interrupted earlier attempt is reused. A path that already holds a namespace is refused,
/// since stacking a second mount there would hide the first.
pub fn create_netns_file(pid: i32, path: &Path) -> Result<(), NetError> {
    if is_netns(path) {
        return Err(NetError::io(
            "bind a network namespace on",
            path,
            std::io::Error::new(
                ErrorKind::AlreadyExists,
                "a namespace is already bound there",
            ),
        ));
    }
    let source = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let created = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
    {
        Ok(_) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
        Err(e) => return Err(NetError::io("create", path, e)),
    };
    if let Err(e) = mount_bind(&source, path) {
        if created {
            let _ = fs::remove_file(path);
        }
        let action = if e == Errno::NOENT {
            "bind a network namespace (is the process gone?) from"
        } else {
            "bind-mount"
        };
        return Err(NetError::io(action, source, e.into()));
    }
    Ok(())
}

/// Unmounts (`MNT_DETACH`) and removes a file made by [`create_netns_file`]. A path that is
/// already gone, or a file with nothing mounted on it, is fine.
pub fn remove_netns_file(path: &Path) -> Result<(), NetError> {
    // More than one mount may be stacked there (an older bug, or someone else's): unmount all.
    for _ in 0..16 {
        match unmount(path, UnmountFlags::DETACH) {
            Ok(()) => continue,
            Err(Errno::INVAL | Errno::NOENT) => break,
            Err(e) => return Err(NetError::io("unmount", path, e.into())),
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetError::io("remove", path, e)),
    }
}
