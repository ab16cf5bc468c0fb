//! Filesystem primitives shared by unpack, render and the tree hash: directories opened strictly
//! inside a root, a small cache of parent directory fds, xattr listing and subtree removal.
//!
//! Every multi-component path handed to the kernel here is resolved by `openat2` with
//! `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS` against a root fd. The callers
//! only ever pass canonical paths (symlinks already resolved against their own model of the
//! tree), so `NO_SYMLINKS` turns any disagreement between that model and the disk into an error
//! instead of a walk somewhere unexpected, and `IN_ROOT` keeps even that walk inside the root.
//! Final components are always operated on relative to their parent fd with `O_NOFOLLOW` /
//! `AT_SYMLINK_NOFOLLOW`, or by `unlinkat` and re-creation.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;

/// Resolution flags for every path below a root.
pub(crate) const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_SYMLINKS);

/// Flags for opening a directory we will read, chmod, stamp or set xattrs on.
pub(crate) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How many parent directory fds stay open. Layer tars list a directory's entries together,
/// so a handful of slots catches almost every lookup and saves one `openat2` per entry.
const CACHE_SLOTS: usize = 8;

/// `rel` as a path `openat2` accepts (`.` for the root itself).
pub(crate) fn rel_arg(rel: &[u8]) -> &[u8] {
    if rel.is_empty() { b"." } else { rel }
}

/// Opens the directory at canonical path `rel` below `root`.
pub(crate) fn open_dir(root: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    rfs::openat2(root, rel_arg(rel), DIR_FLAGS, Mode::empty(), IN_ROOT).map_err(enosys)
}

/// openat2 came with Linux 5.6; say so rather than print a bare ENOSYS.
fn enosys(e: Errno) -> io::Error {
    if e == Errno::NOSYS {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel lacks openat2(2) (Linux 5.6 or later is required to unpack images safely)",
        )
    } else {
        e.into()
    }
}

/// Splits a canonical path into its parent and final component.
pub(crate) fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// `parent/name`, or `name` at the root.
pub(crate) fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// True when `path` is `dir` or lies below it.
pub(crate) fn is_within(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty()
        || (path.starts_with(dir) && (path.len() == dir.len() || path[dir.len()] == b'/'))
}

/// A root directory fd and a few recently used directories below it.
pub(crate) struct Dirs {
    root: Rc<OwnedFd>,
    slots: Vec<(Vec<u8>, Rc<OwnedFd>)>,
}

impl Dirs {
    pub(crate) fn new(root: OwnedFd) -> Self {
        Dirs {
            root: Rc::new(root),
            slots: Vec::with_capacity(CACHE_SLOTS),
        }
    }

    pub(crate) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The directory at canonical path `rel`.
    pub(crate) fn get(&mut self, rel: &[u8]) -> io::Result<Rc<OwnedFd>> {
        if rel.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some(i) = self.slots.iter().position(|(p, _)| p == rel) {
            let hit = self.slots.remove(i);
            let fd = hit.1.clone();
            self.slots.insert(0, hit);
            return Ok(fd);
        }
        let fd = Rc::new(open_dir(self.root.as_fd(), rel)?);
        if self.slots.len() == CACHE_SLOTS {
            self.slots.pop();
        }
        self.slots.insert(0, (rel.to_vec(), fd.clone()));
        Ok(fd)
    }

    /// Forgets cached fds for `rel` and everything below it (it is being removed or replaced).
    pub(crate) fn forget(&mut self, rel: &[u8]) {
        self.slots.retain(|(p, _)| !is_within(p, rel));
    }
}

/// Timestamps that set the modification time and leave the access time alone.
pub(crate) fn mtime_only(mtime: Option<(i64, u32)>) -> Timestamps {
    let omit = Timespec {
        tv_sec: 0,
        tv_nsec: rfs::UTIME_OMIT,
    };
    Timestamps {
        last_access: omit,
        last_modification: match mtime {
            Some((s, ns)) => Timespec {
                tv_sec: s,
                tv_nsec: ns.into(),
            },
            None => omit,
        },
    }
}

/// The xattrs of an open file whose names pass `keep`, sorted by name.
pub(crate) fn list_xattrs(
    fd: BorrowedFd<'_>,
    keep: impl Fn(&[u8]) -> bool,
) -> io::Result<crate::treehash::Xattrs> {
    let names = loop {
        let size = match rfs::flistxattr_query(fd) {
            Ok(n) => n,
            Err(e) if e == Errno::OPNOTSUPP => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match rfs::flistxattr(fd, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                break buf;
            }
            // The list grew between the two calls; ask again.
            Err(e) if e == Errno::RANGE => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !keep(name) {
            continue;
        }
        match get_xattr(fd, name)? {
            Some(value) => out.push((name.to_vec(), value)),
            None => continue,
        }
    }
    out.sort();
    Ok(out)
}

/// One xattr of an open file; `None` if it vanished meanwhile.
pub(crate) fn get_xattr(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match rfs::fgetxattr_query(fd, name) {
            Ok(n) => n,
            Err(e) if e == Errno::NODATA => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; size];
        match rfs::fgetxattr(fd, name, &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(Some(value));
            }
            Err(e) if e == Errno::RANGE => continue,
            Err(e) if e == Errno::NODATA => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything below it, without following
/// any symlink. Used where the tree's contents are not modelled in memory (render's
/// destination). Holds one directory fd at a time, so depth cannot exhaust fds.
pub(crate) fn remove_tree(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(e) if e == Errno::NOENT => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if rfs::FileType::from_raw_mode(st.st_mode) != rfs::FileType::Directory {
        return Ok(rfs::unlinkat(dir, name, AtFlags::empty())?);
    }
    // Pass 1: unlink every non-directory, remembering directories parent-first.
    let mut pending = vec![name.to_vec()];
    let mut dirs = Vec::new();
    while let Some(rel) = pending.pop() {
        let fd = rfs::openat2(dir, &rel[..], DIR_FLAGS, Mode::empty(), IN_ROOT).map_err(enosys)?;
        for child in read_names(fd.as_fd())? {
            let (name, is_dir) = child;
            if is_dir {
                pending.push(join(&rel, &name));
            } else {
                rfs::unlinkat(&fd, &name[..], AtFlags::empty())?;
            }
        }
        dirs.push(rel);
    }
    // Pass 2: children were pushed after their parents, so reverse order empties each
    // directory before removing it.
    for rel in dirs.iter().rev() {
        let (parent, leaf) = split_last(rel);
        let pfd = rfs::openat2(dir, rel_arg(parent), DIR_FLAGS, Mode::empty(), IN_ROOT)
            .map_err(enosys)?;
        rfs::unlinkat(&pfd, leaf, AtFlags::REMOVEDIR)?;
    }
    Ok(())
}

/// Names in a directory (without `.` and `..`) and whether each is a directory (per lstat
/// when the filesystem does not report a type).
pub(crate) fn read_names(fd: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, bool)>> {
    let mut out = Vec::new();
    let mut dir = rfs::Dir::read_from(fd)?;
    while let Some(ent) = dir.read() {
        let ent = ent?;
        let name: &CStr = ent.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let is_dir = match ent.file_type() {
            rfs::FileType::Directory => true,
            rfs::FileType::Unknown => {
                let st = rfs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
                rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory
            }
            _ => false,
        };
        out.push((bytes.to_vec(), is_dir));
    }
    Ok(out)
}
