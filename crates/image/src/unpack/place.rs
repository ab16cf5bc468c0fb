//! Making room for entries: resolving and creating parent directories, replacing what an
//! entry supersedes, ownership and xattrs. Kept in step with the model in [`super::tree`].

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{self as rfs, AtFlags, Mode, XattrFlags};
use rustix::io::Errno;

use super::UnpackError;
use super::apply::{Unpacker, fs, lossy, resolve_error};
use super::fsops::{self, join, split_last};
use crate::treehash::{Kind, Record, Xattrs};

impl Unpacker<'_> {
    /// Resolves `comps` to a directory, creating missing ones; returns its canonical path.
    pub(super) fn parent_dir(
        &mut self,
        entry: &str,
        comps: &[&[u8]],
    ) -> Result<Vec<u8>, UnpackError> {
        let r = self
            .tree
            .resolve_dir(comps)
            .map_err(|e| resolve_error(entry, e))?;
        if r.clamped {
            self.skip(
                entry,
                "a symlink in its path points outside the layer; resolved inside the layer instead",
            );
        }
        let mut cur = r.existing;
        for leaf in r.missing {
            cur = self.implicit_dir(entry, &cur, &leaf)?;
        }
        Ok(cur)
    }

    /// A directory the archive did not list but an entry needs: 0755, root-owned (or the
    /// caller's without `ownership`), like containerd's.
    pub(super) fn implicit_dir(
        &mut self,
        entry: &str,
        parent: &[u8],
        leaf: &[u8],
    ) -> Result<Vec<u8>, UnpackError> {
        let path = join(parent, leaf);
        let pfd = self
            .dirs
            .get(parent)
            .map_err(fs(entry, "open directory", parent))?;
        rfs::mkdirat(&pfd, leaf, Mode::from_raw_mode(0o700)).map_err(fs(
            entry,
            "create directory",
            &path,
        ))?;
        let (uid, gid) =
            self.owner_at(pfd.as_fd(), leaf, 0, 0)
                .map_err(fs(entry, "set owner of", &path))?;
        self.tree.insert(
            path.clone(),
            Record {
                kind: Kind::Dir,
                mode: 0o755,
                uid,
                gid,
                xattrs: Vec::new(),
            },
        );
        Ok(path)
    }

    /// Sets (with `ownership`) or reads (without) the owner of `leaf` in `dir`.
    pub(super) fn owner_at(
        &self,
        dir: BorrowedFd<'_>,
        leaf: &[u8],
        uid: u32,
        gid: u32,
    ) -> io::Result<(u32, u32)> {
        if self.opts.ownership {
            rfs::chownat(
                dir,
                leaf,
                Some(rfs::Uid::from_raw(uid)),
                Some(rfs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
            Ok((uid, gid))
        } else {
            let st = rfs::statat(dir, leaf, AtFlags::SYMLINK_NOFOLLOW)?;
            Ok((st.st_uid, st.st_gid))
        }
    }

    /// Like [`Self::owner_at`] for an open file.
    pub(super) fn owner_fd(
        &self,
        fd: BorrowedFd<'_>,
        uid: u32,
        gid: u32,
    ) -> io::Result<(u32, u32)> {
        if self.opts.ownership {
            rfs::fchown(
                fd,
                Some(rfs::Uid::from_raw(uid)),
                Some(rfs::Gid::from_raw(gid)),
            )?;
            Ok((uid, gid))
        } else {
            let st = rfs::fstat(fd)?;
            Ok((st.st_uid, st.st_gid))
        }
    }

    /// Makes room for a new entry at `parent/leaf`: removes a non-directory, or an empty
    /// directory unless the new entry is a directory too, in which case the existing one is
    /// returned for a metadata update.
    pub(super) fn free_slot(
        &mut self,
        entry: &str,
        parent: &[u8],
        leaf: &[u8],
        for_dir: bool,
    ) -> Result<Option<usize>, UnpackError> {
        let path = join(parent, leaf);
        let Some(id) = self.tree.lookup(&path) else {
            return Ok(None);
        };
        let is_dir = self.tree.node(id).record.kind == Kind::Dir;
        if is_dir && for_dir {
            return Ok(Some(id));
        }
        if is_dir && self.tree.has_children(&path) {
            return Err(UnpackError::ReplacesDirectory {
                entry: entry.to_owned(),
                path: lossy(&path),
            });
        }
        let pfd = self
            .dirs
            .get(parent)
            .map_err(fs(entry, "open directory", parent))?;
        let flags = if is_dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rfs::unlinkat(&pfd, leaf, flags).map_err(fs(entry, "remove", &path))?;
        if is_dir {
            self.dirs.forget(&path);
        }
        self.tree.remove(&path);
        Ok(None)
    }

    /// Removes `path` and everything below it (a whiteout's target).
    pub(super) fn remove_subtree(&mut self, entry: &str, path: &[u8]) -> Result<(), UnpackError> {
        let mut doomed = self.tree.descendants(path);
        doomed.insert(0, path.to_vec());
        // Reverse order: every child before its parent.
        for p in doomed.iter().rev() {
            let Some(id) = self.tree.lookup(p) else {
                continue;
            };
            let flags = if self.tree.node(id).record.kind == Kind::Dir {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            let (parent, leaf) = split_last(p);
            let pfd = self
                .dirs
                .get(parent)
                .map_err(fs(entry, "open directory", parent))?;
            rfs::unlinkat(&pfd, leaf, flags).map_err(fs(entry, "remove", p))?;
            self.tree.remove(p);
        }
        self.dirs.forget(path);
        Ok(())
    }

    /// Sets the allowed xattrs on an open file or directory; returns what is now recorded.
    pub(super) fn set_xattrs(
        &mut self,
        entry: &str,
        fd: BorrowedFd<'_>,
        path: &[u8],
        xattrs: Xattrs,
    ) -> Result<Xattrs, UnpackError> {
        let mut applied = Vec::with_capacity(xattrs.len());
        for (name, value) in xattrs {
            match rfs::fsetxattr(fd, &name[..], &value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e) if e == Errno::OPNOTSUPP => {
                    let x = lossy(&name);
                    self.skip(
                        entry,
                        format_args!("xattr {x} not supported by the filesystem"),
                    );
                    continue;
                }
                Err(e) => return Err(fs(entry, "set an xattr on", path)(e)),
            }
            // The kernel may store file capabilities in another form than given (v3 → v2);
            // record what a later read will see.
            let value = if name == b"security.capability" {
                fsops::get_xattr(fd, &name)
                    .map_err(fs(entry, "read back an xattr of", path))?
                    .unwrap_or_default()
            } else {
                value
            };
            applied.push((name, value));
        }
        Ok(applied)
    }
}
