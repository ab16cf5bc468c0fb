//! Creating each kind of entry: files, directories, links, FIFOs, whiteouts, opaque markers.
//! Every operation works on a parent directory fd and a single final component that is never
//! followed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use rkt_types::digest::{Algorithm, Hasher};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use super::UnpackError;
use super::apply::{Meta, OPAQUE_XATTR, Unpacker, fs, lossy};
use super::fsops::{self, join};
use super::names::{self, NameError, Place};
use crate::treehash::{self, Kind, Record};

impl Unpacker<'_> {
    pub(super) fn file<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        entry: &str,
        parent: &[u8],
        leaf: &[u8],
        meta: Meta,
    ) -> Result<(), UnpackError> {
        let path = join(parent, leaf);
        self.free_slot(entry, parent, leaf, false)?;
        let pfd = self
            .dirs
            .get(parent)
            .map_err(fs(entry, "open directory", parent))?;
        let fd = rfs::openat(
            &pfd,
            leaf,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(fs(entry, "create", &path))?;
        let mut file = File::from(fd);
        let mut h = Hasher::new(Algorithm::Sha256);
        let mut size = 0u64;
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(UnpackError::Read {
                        entries: self.entries,
                        source,
                    });
                }
            };
            h.update(&self.buf[..n]);
            file.write_all(&self.buf[..n])
                .map_err(fs(entry, "write", &path))?;
            size += n as u64;
        }
        if size != e.size() {
            return Err(UnpackError::Read {
                entries: self.entries,
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the archive ends inside {entry:?}"),
                ),
            });
        }
        // Order matters: chown clears setuid/setgid and file capabilities, so it goes first.
        let (uid, gid) = self.owner_fd(file.as_fd(), meta.uid, meta.gid).map_err(fs(
            entry,
            "set owner of",
            &path,
        ))?;
        rfs::fchmod(&file, Mode::from_raw_mode(meta.mode)).map_err(fs(
            entry,
            "set mode of",
            &path,
        ))?;
        let xattrs = self.set_xattrs(entry, file.as_fd(), &path, meta.xattrs)?;
        rfs::futimens(&file, &fsops::mtime_only(Some(meta.mtime))).map_err(fs(
            entry,
            "set mtime of",
            &path,
        ))?;
        drop(file);
        let sha256 = treehash::sha256_bytes(h.finish());
        self.tree.insert(
            path,
            Record {
                kind: Kind::File { size, sha256 },
                mode: meta.mode,
                uid,
                gid,
                xattrs,
            },
        );
        Ok(())
    }

    pub(super) fn dir(
        &mut self,
        entry: &str,
        parent: &[u8],
        leaf: &[u8],
        meta: Meta,
    ) -> Result<(), UnpackError> {
        let path = join(parent, leaf);
        let existing = if path.is_empty() {
            self.tree.lookup(b"")
        } else {
            self.free_slot(entry, parent, leaf, true)?
        };
        let pfd = self
            .dirs
            .get(parent)
            .map_err(fs(entry, "open directory", parent))?;
        let (uid, gid) = if path.is_empty() {
            let root = self
                .dirs
                .get(b"")
                .map_err(fs(entry, "open directory", b""))?;
            self.owner_fd(root.as_fd(), meta.uid, meta.gid)
        } else {
            if existing.is_none() {
                rfs::mkdirat(&pfd, leaf, Mode::from_raw_mode(0o700)).map_err(fs(
                    entry,
                    "create directory",
                    &path,
                ))?;
            }
            self.owner_at(pfd.as_fd(), leaf, meta.uid, meta.gid)
        }
        .map_err(fs(entry, "set owner of", &path))?;
        let mut xattrs = if meta.xattrs.is_empty() {
            Vec::new()
        } else {
            let dfd: OwnedFd = fsops::open_dir(self.dirs.root(), &path).map_err(fs(
                entry,
                "open directory",
                &path,
            ))?;
            self.set_xattrs(entry, dfd.as_fd(), &path, meta.xattrs)?
        };
        let id = match existing {
            Some(id) => {
                // Merge: xattrs already set (the opaque marker among them) stay.
                let old = std::mem::take(&mut self.tree.node_mut(id).record.xattrs);
                for (k, v) in old {
                    if !xattrs.iter().any(|(n, _)| *n == k) {
                        xattrs.push((k, v));
                    }
                }
                xattrs.sort();
                let rec = &mut self.tree.node_mut(id).record;
                rec.mode = meta.mode;
                rec.uid = uid;
                rec.gid = gid;
                rec.xattrs = xattrs;
                id
            }
            None => self.tree.insert(
                path,
                Record {
                    kind: Kind::Dir,
                    mode: meta.mode,
                    uid,
                    gid,
                    xattrs,
                },
            ),
        };
        self.tree.node_mut(id).mtime = Some(meta.mtime);
        Ok(())
    }

    pub(super) fn symlink(
        &mut self,
        entry: &str,
        parent: &[u8],
        leaf: &[u8],
        target: Option<Vec<u8>>,
        meta: Meta,
    ) -> Result<(), UnpackError> {
        let bad = |reason| UnpackError::BadName {
            entry: entry.to_owned(),
            reason,
        };
        let target = target
            .filter(|t| !t.is_empty())
            .ok_or(bad("a symlink without a target"))?;
        if target.contains(&0) {
            return Err(bad("a symlink target containing a NUL byte"));
        }
        let path = join(parent, leaf);
        self.free_slot(entry, parent, leaf, false)?;
        let pfd = self
            .dirs
            .get(parent)
            .map_err(fs(entry, "open directory", parent))?;
        rfs::symlinkat(&target[..], &pfd, leaf).map_err(fs(entry, "create symlink", &path))?;
        let (uid, gid) = self
            .owner_at(pfd.as_fd(), leaf, meta.uid, meta.gid)
            .map_err(fs(entry, "set owner of", &path))?;
        rfs::utimensat(
            &pfd,
            leaf,
            &fsops::mtime_only(Some(meta.mtime)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(fs(entry, "set mtime of", &path))?;
        self.tree.insert(
            path,
            Record {
                kind: Kind::Symlink(target),
                mode: 0o777,
                uid,
                gid,
                xattrs: Vec::new(),
            },
        );
        Ok(())
    }

    pub(super) fn hardlink(
        &mut self,
        entry: &str,
        parent: &[u8],
        leaf: &[u8],
        target: Option<Vec<u8>>,
    ) -> Result<(), UnpackError> {
        let raw = target.unwrap_or_default();
        let bad = |reason| UnpackError::BadLink {
            entry: entry.to_owned(),
            target: lossy(&raw),
            reason,
        };
        let tcomps = match names::normalize(&raw) {
            Ok(c) => c,
            Err(NameError::Escapes) => return Err(bad("points outside the layer")),
            Err(_) => return Err(bad("is not a usable name")),
        };
        let tcomps = match names::place(self.opts.layout, tcomps) {
            Place::Tree(c) => c,
            _ => return Err(bad("is outside the image's root filesystem")),
        };
        let Some((&tleaf, tparents)) = tcomps.split_last() else {
            return Err(bad("is the layer root, a directory"));
        };
        let missing = "does not exist earlier in this layer (hard links may only point to files \
                       the same layer created before them)";
        let tparent = match self.tree.resolve_dir(tparents) {
            Ok(r) if r.missing.is_empty() => r.existing,
            Ok(_) => return Err(bad(missing)),
            Err(_) => {
                return Err(bad(
                    "has a parent path that does not resolve to a directory",
                ));
            }
        };
        let tpath = join(&tparent, tleaf);
        let tid = self.tree.lookup(&tpath).ok_or_else(|| bad(missing))?;
        match self.tree.node(tid).record.kind {
            Kind::Dir => return Err(bad("is a directory")),
            Kind::WHITEOUT => return Err(bad("is a whiteout")),
            _ => {}
        }
        let path = join(parent, leaf);
        if path == tpath {
            return Ok(());
        }
        self.free_slot(entry, parent, leaf, false)?;
        let tfd = self
            .dirs
            .get(&tparent)
            .map_err(fs(entry, "open directory", &tparent))?;
        let pfd = self
            .dirs
            .get(parent)
            .map_err(fs(entry, "open directory", parent))?;
        rfs::linkat(&tfd, tleaf, &pfd, leaf, AtFlags::empty()).map_err(fs(
            entry,
            "create hard link",
            &path,
        ))?;
        self.tree.link(path, tid);
        Ok(())
    }

    pub(super) fn fifo(
        &mut self,
        entry: &str,
        parent: &[u8],
        leaf: &[u8],
        meta: Meta,
    ) -> Result<(), UnpackError> {
        let path = join(parent, leaf);
        self.free_slot(entry, parent, leaf, false)?;
        let pfd = self
            .dirs
            .get(parent)
            .map_err(fs(entry, "open directory", parent))?;
        rfs::mknodat(&pfd, leaf, FileType::Fifo, Mode::from_raw_mode(0o600), 0).map_err(fs(
            entry,
            "create FIFO",
            &path,
        ))?;
        // O_NONBLOCK: opening a FIFO for reading must not wait for a writer. Opening it gives
        // an fd for fchown/fchmod, which (unlike fchmodat) never follow a symlink.
        let fd = rfs::openat(
            &pfd,
            leaf,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fs(entry, "open", &path))?;
        let st = rfs::fstat(&fd).map_err(fs(entry, "stat", &path))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Fifo {
            return Err(fs(entry, "open", &path)(io::Error::other(
                "the FIFO just created was replaced",
            )));
        }
        let (uid, gid) = self.owner_fd(fd.as_fd(), meta.uid, meta.gid).map_err(fs(
            entry,
            "set owner of",
            &path,
        ))?;
        rfs::fchmod(&fd, Mode::from_raw_mode(meta.mode)).map_err(fs(
            entry,
            "set mode of",
            &path,
        ))?;
        rfs::futimens(&fd, &fsops::mtime_only(Some(meta.mtime))).map_err(fs(
            entry,
            "set mtime of",
            &path,
        ))?;
        self.tree.insert(
            path,
            Record {
                kind: Kind::Fifo,
                mode: meta.mode,
                uid,
                gid,
                xattrs: Vec::new(),
            },
        );
        Ok(())
    }

    /// `.wh.NAME`: remove whatever this layer put at NAME, then leave a 0:0 char device.
    pub(super) fn whiteout(
        &mut self,
        entry: &str,
        parents: &[&[u8]],
        target: &[u8],
    ) -> Result<(), UnpackError> {
        let parent = self.parent_dir(entry, parents)?;
        let path = join(&parent, target);
        if self.tree.lookup(&path).is_some() {
            self.remove_subtree(entry, &path)?;
        }
        let pfd = self
            .dirs
            .get(&parent)
            .map_err(fs(entry, "open directory", &parent))?;
        rfs::mknodat(
            &pfd,
            target,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(fs(entry, "create whiteout", &path))?;
        let (uid, gid) =
            self.owner_at(pfd.as_fd(), target, 0, 0)
                .map_err(fs(entry, "set owner of", &path))?;
        self.tree.insert(
            path,
            Record {
                kind: Kind::WHITEOUT,
                mode: 0,
                uid,
                gid,
                xattrs: Vec::new(),
            },
        );
        Ok(())
    }

    /// `.wh..wh..opq`: mark the containing directory opaque.
    pub(super) fn opaque(&mut self, entry: &str, dir: &[&[u8]]) -> Result<(), UnpackError> {
        let path = self.parent_dir(entry, dir)?;
        if path.is_empty() {
            self.skip(
                entry,
                "opaque marker at the layer root dropped (overlayfs ignores it on a layer root)",
            );
            return Ok(());
        }
        let fd =
            fsops::open_dir(self.dirs.root(), &path).map_err(fs(entry, "open directory", &path))?;
        rfs::fsetxattr(&fd, OPAQUE_XATTR, b"y", XattrFlags::empty()).map_err(|e| {
            let hint = if e == Errno::PERM {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "setting trusted.* xattrs needs CAP_SYS_ADMIN (run as root)",
                )
            } else {
                e.into()
            };
            fs(entry, "mark opaque", &path)(hint)
        })?;
        let id = self
            .tree
            .lookup(&path)
            .expect("resolved directory is in the model");
        let xattrs = &mut self.tree.node_mut(id).record.xattrs;
        xattrs.retain(|(n, _)| n != OPAQUE_XATTR.as_bytes());
        xattrs.push((OPAQUE_XATTR.as_bytes().to_vec(), b"y".to_vec()));
        xattrs.sort();
        Ok(())
    }
}
