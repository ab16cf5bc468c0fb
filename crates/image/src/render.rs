//! Flattening overlay-style layer trees (as [`crate::unpack`] makes them) into one directory:
//! the root filesystem `rkt image render`/`extract` write out, and what an overlayfs mount of
//! the same trees shows.
//!
//! Layers are applied base first. In each layer: a 0:0 character device (whiteout) removes its
//! path from the destination and is not copied; a directory marked `trusted.overlay.opaque=y`
//! has its destination emptied before the layer's children are copied in (ignored on a layer
//! root, as overlayfs does); a directory over a non-directory replaces it, and a non-directory
//! replaces whatever was there. Everything is copied with mode, owner (with
//! [`RenderOptions::ownership`]), mtime and xattrs — except `trusted.overlay.*`, which is
//! layer bookkeeping, and `security.selinux`, which belongs to the destination's policy. Hard
//! links within one layer stay hard links. Other device nodes and sockets are not copied; they
//! are listed in [`RenderReport::skipped`].
//!
//! The destination is handled with the same rules as unpacking: directories are opened with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)` below the
//! destination root and final components are never followed. Every directory on the way to a
//! copied entry has been made a real directory by this walk, so no symlink a lower layer left
//! in the destination is ever traversed.
//!
//! Speed: file data goes through `std::io::copy` between two files, which uses
//! `copy_file_range(2)` (in-kernel, reflinks where the filesystem can).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, XattrFlags};

use crate::treehash::Xattrs;
use crate::unpack::fsops::{self, join, split_last};

/// How to render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Copy uid/gid (needs root); when false, everything belongs to the caller.
    pub ownership: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { ownership: true }
    }
}

/// What a render did.
#[derive(Debug, Clone, Default)]
pub struct RenderReport {
    /// Entries written (all layers; an entry a later layer overrides counts twice).
    pub entries: u64,
    /// Bytes of file content copied.
    pub bytes: u64,
    /// Entries that were not copied, one line each.
    pub skipped: Vec<String>,
}

/// Why rendering failed. The destination is partial and should be discarded.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The destination could not be opened or inspected.
    #[error("cannot use {path} as the destination of a render")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The destination has entries in it already.
    #[error("the render destination {path} is not empty")]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// A filesystem operation on a layer or the destination failed.
    #[error("cannot {op} {path:?} while rendering layer {layer}")]
    Fs {
        /// The layer tree being applied.
        layer: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Path inside the layer / destination.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";

/// xattrs that travel from a layer into the rendered tree.
fn copied_xattr(name: &[u8]) -> bool {
    !name.starts_with(b"trusted.overlay.") && name != b"security.selinux"
}

/// Applies `layers` (base first) into the empty directory `dest`.
pub fn render(
    layers: &[&Path],
    dest: &Path,
    opts: &RenderOptions,
) -> Result<RenderReport, RenderError> {
    let dest_err = |e: io::Error| RenderError::Destination {
        path: dest.to_path_buf(),
        source: e,
    };
    let root = rfs::open(dest, fsops::DIR_FLAGS, Mode::empty())
        .map_err(io::Error::from)
        .map_err(dest_err)?;
    if !fsops::read_names(root.as_fd())
        .map_err(dest_err)?
        .is_empty()
    {
        return Err(RenderError::DestinationNotEmpty {
            path: dest.to_path_buf(),
        });
    }
    let mut report = RenderReport::default();
    for layer in layers {
        Layer {
            path: layer,
            dest: root.as_fd(),
            opts,
            report: &mut report,
            links: HashMap::new(),
            dirs: Vec::new(),
        }
        .apply()?;
    }
    Ok(report)
}

/// One layer being applied.
struct Layer<'a> {
    path: &'a Path,
    dest: BorrowedFd<'a>,
    opts: &'a RenderOptions,
    report: &'a mut RenderReport,
    /// (dev, ino) of multiply linked sources → where the first one went in `dest`.
    links: HashMap<(u64, u64), Vec<u8>>,
    /// Directories whose mode and mtime are applied once the layer is done.
    dirs: Vec<(Vec<u8>, u32, (i64, u32))>,
}

impl Layer<'_> {
    fn err<E: Into<io::Error>>(
        &self,
        op: &'static str,
        path: &[u8],
    ) -> impl FnOnce(E) -> RenderError {
        let layer = self.path.to_path_buf();
        let path = String::from_utf8_lossy(path).into_owned();
        move |e| RenderError::Fs {
            layer,
            op,
            path,
            source: e.into(),
        }
    }

    fn apply(mut self) -> Result<(), RenderError> {
        let src_root = rfs::open(self.path, fsops::DIR_FLAGS, Mode::empty())
            .map_err(self.err("open the layer tree", b""))?;
        let mut pending: Vec<Vec<u8>> = vec![Vec::new()];
        while let Some(rel) = pending.pop() {
            let sfd = fsops::open_dir(src_root.as_fd(), &rel)
                .map_err(self.err("open directory", &rel))?;
            let dfd = fsops::open_dir(self.dest, &rel)
                .map_err(self.err("open destination directory", &rel))?;
            self.dir_metadata(&rel, sfd.as_fd(), dfd.as_fd())?;
            let mut names = fsops::read_names(sfd.as_fd()).map_err(self.err("list", &rel))?;
            names.sort();
            for (name, _) in names {
                let path = join(&rel, &name);
                if self.child(sfd.as_fd(), dfd.as_fd(), &name, &path)? {
                    pending.push(path);
                }
            }
        }
        // Deepest first: reverse path order puts every child before its parent.
        self.dirs.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        for (path, mode, mtime) in &self.dirs {
            let fd = fsops::open_dir(self.dest, path)
                .map_err(self.err("open destination directory", path))?;
            rfs::fchmod(&fd, Mode::from_raw_mode(*mode)).map_err(self.err("set mode of", path))?;
            rfs::futimens(&fd, &fsops::mtime_only(Some(*mtime)))
                .map_err(self.err("set mtime of", path))?;
        }
        Ok(())
    }

    /// Owner and xattrs of a directory (mode and mtime come at the end); empties the
    /// destination first if the layer's directory is opaque.
    fn dir_metadata(
        &mut self,
        rel: &[u8],
        sfd: BorrowedFd<'_>,
        dfd: BorrowedFd<'_>,
    ) -> Result<(), RenderError> {
        let st = rfs::fstat(sfd).map_err(self.err("stat", rel))?;
        let src_x = fsops::list_xattrs(sfd, |_| true).map_err(self.err("read xattrs of", rel))?;
        let opaque = src_x.iter().any(|(n, v)| n == OPAQUE_XATTR && v == b"y");
        if opaque && !rel.is_empty() {
            for (name, _) in fsops::read_names(dfd).map_err(self.err("list", rel))? {
                fsops::remove_tree(dfd, &name).map_err(self.err("remove", &join(rel, &name)))?;
            }
        }
        self.owner(dfd, None, &st)
            .map_err(self.err("set owner of", rel))?;
        // A merged directory shows the upper layer's xattrs only.
        let dst_x =
            fsops::list_xattrs(dfd, copied_xattr).map_err(self.err("read xattrs of", rel))?;
        for (name, _) in dst_x {
            if !src_x.iter().any(|(n, _)| *n == name) {
                rfs::fremovexattr(dfd, &name[..]).map_err(self.err("remove an xattr of", rel))?;
            }
        }
        self.set_xattrs(dfd, src_x, rel)?;
        self.dirs
            .push((rel.to_vec(), st.st_mode & 0o7777, mtime_of(&st)));
        self.report.entries += 1;
        Ok(())
    }

    /// Applies `name` of the layer directory `sfd` into `dfd`. Returns true for a directory
    /// to descend into.
    fn child(
        &mut self,
        sfd: BorrowedFd<'_>,
        dfd: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
    ) -> Result<bool, RenderError> {
        let st =
            rfs::statat(sfd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(self.err("stat", path))?;
        let ftype = FileType::from_raw_mode(st.st_mode);
        let is_whiteout = ftype == FileType::CharacterDevice && st.st_rdev == 0;
        if ftype == FileType::Directory {
            match rfs::statat(dfd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(d) if FileType::from_raw_mode(d.st_mode) == FileType::Directory => {}
                found => {
                    if found.is_ok() {
                        fsops::remove_tree(dfd, name).map_err(self.err("remove", path))?;
                    }
                    rfs::mkdirat(dfd, name, Mode::from_raw_mode(0o700))
                        .map_err(self.err("create directory", path))?;
                }
            }
            return Ok(true);
        }
        fsops::remove_tree(dfd, name).map_err(self.err("remove", path))?;
        if is_whiteout {
            return Ok(false);
        }
        if !matches!(
            ftype,
            FileType::RegularFile | FileType::Symlink | FileType::Fifo
        ) {
            let p = String::from_utf8_lossy(path);
            self.report
                .skipped
                .push(format!("{p}: {ftype:?} not copied"));
            return Ok(false);
        }
        self.report.entries += 1;
        if st.st_nlink > 1 {
            let key = (st.st_dev as u64, st.st_ino as u64);
            if let Some(first) = self.links.get(&key) {
                let (fparent, fleaf) = split_last(first);
                let pfd = fsops::open_dir(self.dest, fparent)
                    .map_err(self.err("open destination directory", fparent))?;
                rfs::linkat(&pfd, fleaf, dfd, name, AtFlags::empty())
                    .map_err(self.err("create hard link", path))?;
                return Ok(false);
            }
            self.links.insert(key, path.to_vec());
        }
        match ftype {
            FileType::RegularFile => self.file(sfd, dfd, name, path, &st)?,
            FileType::Symlink => {
                let target = rfs::readlinkat(sfd, name, Vec::new())
                    .map_err(self.err("read symlink", path))?;
                rfs::symlinkat(target.as_c_str(), dfd, name)
                    .map_err(self.err("create symlink", path))?;
                self.owner(dfd, Some(name), &st)
                    .map_err(self.err("set owner of", path))?;
                rfs::utimensat(
                    dfd,
                    name,
                    &fsops::mtime_only(Some(mtime_of(&st))),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(self.err("set mtime of", path))?;
            }
            _ => {
                rfs::mknodat(dfd, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                    .map_err(self.err("create FIFO", path))?;
                let fd = rfs::openat(
                    dfd,
                    name,
                    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(self.err("open", path))?;
                self.finish_file(&fd, &st, Vec::new(), path)?;
            }
        }
        Ok(false)
    }

    fn file(
        &mut self,
        sfd: BorrowedFd<'_>,
        dfd: BorrowedFd<'_>,
        name: &[u8],
        path: &[u8],
        st: &rfs::Stat,
    ) -> Result<(), RenderError> {
        let src = rfs::openat(
            sfd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(self.err("open", path))?;
        let xattrs = fsops::list_xattrs(src.as_fd(), copied_xattr)
            .map_err(self.err("read xattrs of", path))?;
        let dst = rfs::openat(
            dfd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(self.err("create", path))?;
        let (mut src, mut dst) = (File::from(src), File::from(dst));
        self.report.bytes += io::copy(&mut src, &mut dst).map_err(self.err("copy", path))?;
        self.finish_file(&dst.into(), st, xattrs, path)
    }

    /// Owner, mode, xattrs and mtime of a new file or FIFO, in the order that keeps
    /// setuid bits and capabilities (chown clears both).
    fn finish_file(
        &mut self,
        fd: &OwnedFd,
        st: &rfs::Stat,
        xattrs: Xattrs,
        path: &[u8],
    ) -> Result<(), RenderError> {
        self.owner(fd.as_fd(), None, st)
            .map_err(self.err("set owner of", path))?;
        rfs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))
            .map_err(self.err("set mode of", path))?;
        self.set_xattrs(fd.as_fd(), xattrs, path)?;
        rfs::futimens(fd, &fsops::mtime_only(Some(mtime_of(st))))
            .map_err(self.err("set mtime of", path))
    }

    /// Sets the owner from `st`: of `fd` itself, or of `leaf` in directory `fd` (not followed).
    fn owner(&self, fd: BorrowedFd<'_>, leaf: Option<&[u8]>, st: &rfs::Stat) -> io::Result<()> {
        if !self.opts.ownership {
            return Ok(());
        }
        let (uid, gid) = (
            Some(rfs::Uid::from_raw(st.st_uid)),
            Some(rfs::Gid::from_raw(st.st_gid)),
        );
        match leaf {
            None => rfs::fchown(fd, uid, gid)?,
            Some(leaf) => rfs::chownat(fd, leaf, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?,
        }
        Ok(())
    }

    fn set_xattrs(
        &mut self,
        fd: BorrowedFd<'_>,
        xattrs: Xattrs,
        path: &[u8],
    ) -> Result<(), RenderError> {
        for (name, value) in xattrs.into_iter().filter(|(n, _)| copied_xattr(n)) {
            rfs::fsetxattr(fd, &name[..], &value, XattrFlags::empty())
                .map_err(self.err("set an xattr on", path))?;
        }
        Ok(())
    }
}

// Stat field types differ between architectures, so the casts are not always no-ops.
#[allow(clippy::unnecessary_cast)]
fn mtime_of(st: &rfs::Stat) -> (i64, u32) {
    (st.st_mtime as i64, st.st_mtime_nsec as u32)
}
