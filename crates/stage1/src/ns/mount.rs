//! Mounting with the new mount API (Linux 5.2+, `mount_setattr` 5.12+): a filesystem or a
//! bind is built as a detached mount, made read-only there if asked (so it never appears
//! writable, even for an instant), and attached to a target descriptor from
//! [`super::fsat`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags, fsconfig_create,
    fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, open_tree,
};

use crate::sync::ChildError;

/// Flags every pseudo filesystem and tmpfs of an app gets.
pub const NOSUID_NODEV_NOEXEC: MountAttrFlags = MountAttrFlags::MOUNT_ATTR_NOSUID
    .union(MountAttrFlags::MOUNT_ATTR_NODEV)
    .union(MountAttrFlags::MOUNT_ATTR_NOEXEC);

/// An option of a new filesystem.
pub enum Opt<'a> {
    /// `key=value`.
    Str(&'a str, &'a str),
    /// A flag without a value.
    Flag(&'a str),
}

/// Creates a new `fstype` filesystem with `options` and attaches it at `target` with the mount
/// attributes `attrs`; `what` names it in errors (`/proc`, `/dev/shm`, …). Returns the attached
/// mount's root (`O_PATH`), to bind it elsewhere too.
pub fn new_fs(
    stage: &str,
    what: &str,
    fstype: &str,
    options: &[Opt<'_>],
    attrs: MountAttrFlags,
    target: BorrowedFd<'_>,
) -> Result<OwnedFd, ChildError> {
    let err = |op: String| ChildError::new(stage, op).path(what);
    let fs = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| err(format!("create a {fstype} filesystem for")).errno(e))?;
    for opt in options {
        let (r, name) = match opt {
            Opt::Str(k, v) => (fsconfig_set_string(&fs, *k, *v), k),
            Opt::Flag(k) => (fsconfig_set_flag(&fs, *k), k),
        };
        r.map_err(|e| err(format!("set {fstype} option {name} for")).errno(e))?;
    }
    fsconfig_create(&fs)
        .map_err(|e| err(format!("create the {fstype} filesystem for")).errno(e))?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| err(format!("mount the {fstype} filesystem for")).errno(e))?;
    attach(stage, what, mnt.as_fd(), target)?;
    Ok(mnt)
}

/// Where a bind mount comes from.
pub enum Source<'a> {
    /// A host path (resolved normally: it comes from the user or from stage1, not the image).
    Host(&'a Path),
    /// An open descriptor (a path inside the rootfs, already resolved inside it).
    Fd(BorrowedFd<'a>),
}

/// Binds `source` (with the mounts below it if `recursive`) at `target`, read-only if asked
/// (then recursively so: no writable submount stays behind).
pub fn bind(
    stage: &str,
    what: &str,
    source: Source<'_>,
    recursive: bool,
    read_only: bool,
    target: BorrowedFd<'_>,
) -> Result<(), ChildError> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree: Result<OwnedFd, _> = match &source {
        Source::Host(p) => open_tree(rustix::fs::CWD, *p, flags),
        Source::Fd(fd) => open_tree(fd, "", flags | OpenTreeFlags::AT_EMPTY_PATH),
    };
    let tree = tree.map_err(|e| {
        let from = match &source {
            Source::Host(p) => p.display().to_string(),
            Source::Fd(_) => what.to_owned(),
        };
        ChildError::new(stage, format!("open {from} to bind it at"))
            .path(what)
            .errno(e)
    })?;
    if read_only {
        rkt_sys::mount_set_read_only(tree.as_fd(), recursive).map_err(|e| {
            ChildError::new(stage, "make read-only the bind mount for")
                .path(what)
                .message(e.to_string())
        })?;
    }
    attach(stage, what, tree.as_fd(), target)
}

/// Makes the mount whose root `fd` is open at read-only (not its submounts).
pub fn make_read_only(stage: &str, what: &str, fd: BorrowedFd<'_>) -> Result<(), ChildError> {
    rkt_sys::mount_set_read_only(fd, false).map_err(|e| {
        ChildError::new(stage, "make read-only")
            .path(what)
            .message(e.to_string())
    })
}

fn attach(
    stage: &str,
    what: &str,
    mnt: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
) -> Result<(), ChildError> {
    move_mount(
        mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| {
        ChildError::new(stage, "attach the mount at")
            .path(what)
            .errno(e)
    })
}
