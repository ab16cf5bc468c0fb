//! Paths inside an app's root filesystem, resolved inside it.
//!
//! An image's symlinks are untrusted: `/etc/hosts -> /host/etc/shadow` or `/proc -> /` must
//! not make stage1 mount over or create something on the host. Every target is therefore opened
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to the rootfs, where `..`
//! and absolute symlinks stop at the rootfs, and mounts are attached to the resulting `O_PATH`
//! descriptors (`move_mount` with `MOVE_MOUNT_T_EMPTY_PATH`), never to a path the kernel would
//! resolve again.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::sync::ChildError;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// What to create at a missing target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (mode 0755), as a mount point for a directory.
    Dir,
    /// An empty regular file (mode 0644), as a mount point for a file.
    File,
}

/// `path` (absolute or not) relative to the root, `.` for the root itself.
fn relative(path: &Path) -> &Path {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// Opens `path` inside `root` with `flags` (plus `O_CLOEXEC`).
pub fn open(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        relative(path),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .map_err(io::Error::from)
}

/// Opens `path` inside `root` as an `O_PATH` descriptor, or `None` if it does not exist.
pub fn open_path(root: BorrowedFd<'_>, path: &Path) -> Result<Option<OwnedFd>, ChildError> {
    match rustix::fs::openat2(
        root,
        relative(path),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(ChildError::new("mounts", "open").path(path).errno(e)),
    }
}

/// Whether `fd` is a directory.
pub fn is_dir(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// How many dangling symlinks [`ensure`] follows before giving up (the kernel's limit).
const MAX_LINKS: usize = 40;

/// Opens `path` inside `root` (`O_PATH`), first creating it as `kind`, and its missing parents
/// as directories, if it does not exist. A dangling symlink on the way is followed and its
/// target created, inside the root (an image's `/etc/resolv.conf -> ../run/…/resolv.conf`
/// gets the file it points to, as runc does). An existing target of the other kind is an
/// error (a file cannot be mounted over a directory, nor the reverse).
pub fn ensure(root: BorrowedFd<'_>, path: &Path, kind: Kind) -> Result<OwnedFd, ChildError> {
    let err = |op: &str| ChildError::new("mounts", op.to_owned()).path(path);
    let mut want: PathBuf = relative(path).to_owned();
    'follow: for _ in 0..MAX_LINKS {
        if let Some(fd) = open_path(root, &want)? {
            return check_kind(fd, kind, path);
        }
        let comps: Vec<Component<'_>> = want.components().collect();
        let mut prefix = PathBuf::new();
        let mut parent = open_path(root, Path::new("."))?.ok_or_else(|| err("open the root"))?;
        for (i, c) in comps.iter().enumerate() {
            let next = prefix.join(c);
            if let Some(fd) = open_path(root, &next)? {
                parent = fd;
                prefix = next;
                continue;
            }
            let Component::Normal(name) = c else {
                return Err(err("create").message("the path leads nowhere"));
            };
            let last = i + 1 == comps.len();
            match rustix::fs::readlinkat(&parent, *name, Vec::new()) {
                Ok(target) => {
                    // A dangling link: go where it points (still inside the root).
                    let target = PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes()));
                    let mut redirected = if target.is_absolute() {
                        relative(&target).to_owned()
                    } else {
                        prefix.join(target)
                    };
                    redirected.extend(&comps[i + 1..]);
                    want = redirected;
                    continue 'follow;
                }
                Err(Errno::NOENT | Errno::INVAL) => {}
                Err(e) => return Err(err("read the link").errno(e)),
            }
            let made = if last && kind == Kind::File {
                rustix::fs::openat(
                    &parent,
                    *name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop)
            } else {
                rustix::fs::mkdirat(&parent, *name, Mode::from_raw_mode(0o755))
            };
            match made {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(err("create").errno(e)),
            }
            parent = open_path(root, &next)?.ok_or_else(|| err("create"))?;
            prefix = next;
        }
        return check_kind(parent, kind, path);
    }
    Err(err("resolve").errno(Errno::LOOP))
}

fn check_kind(fd: OwnedFd, kind: Kind, path: &Path) -> Result<OwnedFd, ChildError> {
    let err = |op: &str| ChildError::new("mounts", op.to_owned()).path(path);
    let dir = is_dir(fd.as_fd()).map_err(|e| err("stat").io(&e))?;
    match (kind, dir) {
        (Kind::Dir, true) | (Kind::File, false) => Ok(fd),
        (Kind::Dir, false) => {
            Err(err("mount a directory on")
                .message("it exists in the image and is not a directory"))
        }
        (Kind::File, true) => Err(err("mount a file on").message("it is a directory in the image")),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn root() -> (tempfile::TempDir, OwnedFd) {
        let dir = tempfile::tempdir().unwrap();
        let fd =
            rustix::fs::open(dir.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        (dir, fd)
    }

    #[test]
    fn creates_targets_and_their_parents() {
        let (dir, fd) = root();
        ensure(fd.as_fd(), Path::new("/a/b/c"), Kind::Dir).unwrap();
        ensure(fd.as_fd(), Path::new("/etc/hosts"), Kind::File).unwrap();
        assert!(dir.path().join("a/b/c").is_dir());
        assert!(dir.path().join("etc/hosts").is_file());
        // Existing ones are opened, not recreated.
        ensure(fd.as_fd(), Path::new("a/b"), Kind::Dir).unwrap();
        let e = ensure(fd.as_fd(), Path::new("/a/b"), Kind::File).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = ensure(fd.as_fd(), Path::new("/etc/hosts"), Kind::Dir).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }

    #[test]
    fn symlinks_out_of_the_root_stay_inside_it() {
        let (dir, fd) = root();
        let outside = tempfile::tempdir().unwrap();
        // An absolute link and a ../ link, both aimed at the "host".
        symlink(outside.path(), dir.path().join("abs")).unwrap();
        symlink("../../../../../../..", dir.path().join("up")).unwrap();
        ensure(fd.as_fd(), Path::new("/abs/x"), Kind::Dir).unwrap();
        ensure(fd.as_fd(), Path::new("/up/y"), Kind::File).unwrap();
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // The absolute link resolved to <root>/<outside path>, the ../ one to the root.
        assert!(
            dir.path()
                .join(outside.path().strip_prefix("/").unwrap())
                .join("x")
                .is_dir()
        );
        assert!(dir.path().join("y").is_file());
    }

    #[test]
    fn dangling_symlinks_get_their_target_made_inside_the_root() {
        let (dir, fd) = root();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        symlink(
            "../run/resolve/stub.conf",
            dir.path().join("etc/resolv.conf"),
        )
        .unwrap();
        symlink("/nowhere", dir.path().join("gone")).unwrap();
        symlink("loop", dir.path().join("loop")).unwrap();
        ensure(fd.as_fd(), Path::new("/etc/resolv.conf"), Kind::File).unwrap();
        assert!(dir.path().join("run/resolve/stub.conf").is_file());
        ensure(fd.as_fd(), Path::new("/gone/deeper"), Kind::Dir).unwrap();
        assert!(dir.path().join("nowhere/deeper").is_dir());
        let e = ensure(fd.as_fd(), Path::new("/loop/x"), Kind::Dir).unwrap_err();
        assert!(e.to_string().contains("symbolic links"), "{e}");
    }
}
