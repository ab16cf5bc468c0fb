//! Applying tar entries to the tree: the filesystem operations, kept in step with the model.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rkt_types::digest::{Algorithm, Hasher};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use super::fsops::{self, Dirs, join, split_last};
use super::names::{self, Marker, NameError, Place};
use super::tree::{ResolveError, Tree};
use super::{UnpackError, UnpackOptions, UnpackReport};
use crate::treehash::{self, Kind, Record, Xattrs};

/// Copy buffer for file data: large enough that big files take few read/write pairs, small
/// enough to stay in cache next to the decoder's state.
const COPY_BUF: usize = 1 << 20;
/// At most this many lines in [`UnpackReport::skipped`].
const MAX_SKIPPED: usize = 1000;
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What kind of entry the tar header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryKind {
    File,
    HardLink,
    Symlink,
    Dir,
    Fifo,
    Device,
}

/// Metadata from the header and PAX records.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    /// Allowed xattrs only (see [`allowed_xattr`]), sorted.
    xattrs: Xattrs,
}

/// xattrs an image may set: its own user namespace and file capabilities.
fn allowed_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name == b"security.capability"
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Turns a failed filesystem call into [`UnpackError::Fs`].
fn fs<E: Into<io::Error>>(
    entry: &str,
    op: &'static str,
    path: &[u8],
) -> impl FnOnce(E) -> UnpackError {
    let entry = entry.to_owned();
    let path = lossy(path);
    move |e| UnpackError::Fs {
        entry,
        op,
        path,
        source: e.into(),
    }
}

fn name_error(entry: &str, e: NameError) -> UnpackError {
    UnpackError::BadName {
        entry: entry.to_owned(),
        reason: match e {
            NameError::Escapes => "its name climbs above the layer root with '..'",
            NameError::Nul => "its name contains a NUL byte",
            NameError::TooLong => {
                "its name is longer than Linux allows (255 per component, 4095 in all)"
            }
        },
    }
}

fn resolve_error(entry: &str, e: ResolveError) -> UnpackError {
    let reason = match e {
        ResolveError::NotADirectory(p) => {
            format!(
                "a parent path component, {:?}, is not a directory",
                lossy(&p)
            )
        }
        ResolveError::Loop => "too many levels of symbolic links in its parent path".to_owned(),
        ResolveError::DotDotAfterMissing(p) => format!(
            "its parent path goes through the missing directory {:?} and then '..'",
            lossy(&p)
        ),
    };
    UnpackError::Resolve {
        entry: entry.to_owned(),
        reason,
    }
}

pub(super) struct Unpacker<'o> {
    opts: &'o UnpackOptions,
    dirs: Dirs,
    tree: Tree,
    buf: Vec<u8>,
    entries: u64,
    bytes: u64,
    skipped: Vec<String>,
    skipped_more: u64,
    aci_manifest: Option<Vec<u8>>,
}

impl<'o> Unpacker<'o> {
    pub(super) fn new(dest: &Path, opts: &'o UnpackOptions) -> Result<Self, UnpackError> {
        let dest_err = |e: io::Error| UnpackError::Destination {
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
            return Err(UnpackError::DestinationNotEmpty {
                path: dest.to_path_buf(),
            });
        }
        let st = rfs::fstat(&root)
            .map_err(io::Error::from)
            .map_err(dest_err)?;
        let xattrs =
            fsops::list_xattrs(root.as_fd(), treehash::is_hashed_xattr).map_err(dest_err)?;
        let tree = Tree::new(Record {
            kind: Kind::Dir,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            xattrs,
        });
        Ok(Unpacker {
            opts,
            dirs: Dirs::new(root),
            tree,
            buf: vec![0; COPY_BUF],
            entries: 0,
            bytes: 0,
            skipped: Vec::new(),
            skipped_more: 0,
            aci_manifest: None,
        })
    }

    pub(super) fn entries(&self) -> u64 {
        self.entries
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    fn skip(&mut self, entry: &str, why: impl std::fmt::Display) {
        tracing::debug!(entry, %why, "layer entry neutralised");
        if self.skipped.len() < MAX_SKIPPED {
            self.skipped.push(format!("{entry}: {why}"));
        } else {
            self.skipped_more += 1;
        }
    }

    /// Applies one entry. Its data, if not consumed here, is drained by the caller.
    pub(super) fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.opts.max_entries {
            return Err(UnpackError::TooManyEntries {
                limit: self.opts.max_entries,
            });
        }
        self.bytes = self.bytes.saturating_add(e.size());
        if self.bytes > self.opts.max_bytes {
            return Err(UnpackError::TooLarge {
                limit: self.opts.max_bytes,
            });
        }
        let raw = e.path_bytes().into_owned();
        let name = lossy(&raw);
        let kind = match e.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                EntryKind::File
            }
            tar::EntryType::Link => EntryKind::HardLink,
            tar::EntryType::Symlink => EntryKind::Symlink,
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Fifo => EntryKind::Fifo,
            tar::EntryType::Char | tar::EntryType::Block => EntryKind::Device,
            tar::EntryType::XGlobalHeader => return Ok(()),
            other => {
                let t = other.as_byte() as char;
                self.skip(&name, format_args!("unsupported entry type {t:?} ignored"));
                return Ok(());
            }
        };
        let comps = names::normalize(&raw).map_err(|err| name_error(&name, err))?;
        let comps = match names::place(self.opts.layout, comps) {
            Place::Tree(c) => c,
            Place::AciManifest => return self.aci_manifest(e, &name, kind),
            Place::Outside => return Ok(()),
        };
        let marker = names::marker(&comps).map_err(|reason| UnpackError::WhiteoutTrick {
            entry: name.clone(),
            reason,
        })?;
        let parents = &comps[..comps.len().saturating_sub(1)];
        match marker {
            Marker::None => {}
            Marker::AufsMeta => {
                self.skip(&name, "AUFS metadata dropped");
                return Ok(());
            }
            Marker::Opaque => return self.opaque(&name, parents),
            Marker::Whiteout(target) => return self.whiteout(&name, parents, target),
        }
        if kind == EntryKind::Device {
            self.skip(&name, "device node not created");
            return Ok(());
        }
        let meta = self.meta(e, &name, kind)?;
        let Some((&leaf, _)) = comps.split_last() else {
            if kind != EntryKind::Dir {
                return Err(UnpackError::BadName {
                    entry: name,
                    reason: "a non-directory entry for the layer root",
                });
            }
            return self.dir(&name, b"", b"", meta);
        };
        let parent = self.parent_dir(&name, parents)?;
        match kind {
            EntryKind::File => self.file(e, &name, &parent, leaf, meta),
            EntryKind::Dir => self.dir(&name, &parent, leaf, meta),
            EntryKind::Symlink => {
                let target = e.link_name_bytes().map(|t| t.into_owned());
                self.symlink(&name, &parent, leaf, target, meta)
            }
            EntryKind::HardLink => {
                let target = e.link_name_bytes().map(|t| t.into_owned());
                self.hardlink(&name, &parent, leaf, target)
            }
            EntryKind::Fifo => self.fifo(&name, &parent, leaf, meta),
            EntryKind::Device => unreachable!("handled above"),
        }
    }

    fn meta<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        name: &str,
        kind: EntryKind,
    ) -> Result<Meta, UnpackError> {
        let bad = |source| UnpackError::BadHeader {
            entry: name.to_owned(),
            source,
        };
        let h = e.header();
        let mode = h.mode().map_err(bad)? & 0o7777;
        // u32::MAX is chown's "leave unchanged", so it cannot be applied either.
        let id = |v: u64| {
            u32::try_from(v)
                .ok()
                .filter(|&id| id != u32::MAX)
                .ok_or_else(|| {
                    bad(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "uid/gid out of range (at most 2^32 - 2)",
                    ))
                })
        };
        let uid = id(h.uid().map_err(bad)?)?;
        let gid = id(h.gid().map_err(bad)?)?;
        let secs = h.mtime().map_err(bad)?;
        let mut mtime = (i64::try_from(secs).unwrap_or(i64::MAX), 0);
        let mut xattrs = Vec::new();
        let mut dropped = Vec::new();
        if let Some(exts) = e.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    if let Some(t) = parse_pax_time(ext.value_bytes()) {
                        mtime = t;
                    }
                } else if let Some(x) = key.strip_prefix(b"SCHILY.xattr.") {
                    let applicable = matches!(kind, EntryKind::File | EntryKind::Dir);
                    if applicable && allowed_xattr(x) {
                        xattrs.push((x.to_vec(), ext.value_bytes().to_vec()));
                    } else {
                        dropped.push(lossy(x));
                    }
                }
            }
        }
        for x in dropped {
            self.skip(name, format_args!("xattr {x} dropped"));
        }
        xattrs.sort();
        xattrs.dedup_by(|a, b| a.0 == b.0);
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    /// Resolves `comps` to a directory, creating missing ones; returns its canonical path.
    fn parent_dir(&mut self, entry: &str, comps: &[&[u8]]) -> Result<Vec<u8>, UnpackError> {
        let r = self
            .tree
            .resolve_dir(comps)
            .map_err(|e| resolve_error(entry, e))?;
        let mut cur = r.existing;
        for leaf in r.missing {
            cur = self.implicit_dir(entry, &cur, &leaf)?;
        }
        Ok(cur)
    }

    /// A directory the archive did not list but an entry needs: 0755, root-owned (or the
    /// caller's without `ownership`), like containerd's.
    fn implicit_dir(
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
    fn owner_at(
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
    fn owner_fd(&self, fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<(u32, u32)> {
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
    fn free_slot(
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
    fn remove_subtree(&mut self, entry: &str, path: &[u8]) -> Result<(), UnpackError> {
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
    fn set_xattrs(
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

    fn file<R: Read>(
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

    fn dir(
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

    fn symlink(
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

    fn hardlink(
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

    fn fifo(
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
    fn whiteout(
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
    fn opaque(&mut self, entry: &str, dir: &[&[u8]]) -> Result<(), UnpackError> {
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

    fn aci_manifest<R: Read>(
        &mut self,
        e: &mut tar::Entry<'_, R>,
        entry: &str,
        kind: EntryKind,
    ) -> Result<(), UnpackError> {
        if kind != EntryKind::File {
            self.skip(entry, "ACI manifest that is not a regular file ignored");
            return Ok(());
        }
        let limit = rkt_types::MAX_DOCUMENT_BYTES;
        if e.size() > limit {
            return Err(UnpackError::ManifestTooLarge { limit });
        }
        let mut doc = Vec::with_capacity(e.size() as usize);
        e.read_to_end(&mut doc)
            .map_err(|source| UnpackError::Read {
                entries: self.entries,
                source,
            })?;
        self.aci_manifest = Some(doc);
        Ok(())
    }

    /// Applies directory modes and mtimes (deepest first: creating children changes a
    /// directory's mtime, and a read-only mode is best applied last) and reports.
    pub(super) fn finish(mut self) -> Result<UnpackReport, UnpackError> {
        for (path, node) in self.tree.dirs_deepest_first() {
            let name = lossy(path);
            let fd = fsops::open_dir(self.dirs.root(), path).map_err(fs(
                &name,
                "open directory",
                path,
            ))?;
            rfs::fchmod(&fd, Mode::from_raw_mode(node.record.mode)).map_err(fs(
                &name,
                "set mode of",
                path,
            ))?;
            if node.mtime.is_some() {
                rfs::futimens(&fd, &fsops::mtime_only(node.mtime)).map_err(fs(
                    &name,
                    "set mtime of",
                    path,
                ))?;
            }
        }
        if self.skipped_more > 0 {
            let more = self.skipped_more;
            self.skipped.push(format!("… and {more} more"));
        }
        Ok(UnpackReport {
            entries: self.entries,
            bytes: self.bytes,
            tree_hash: self.tree.digest(),
            aci_manifest: self.aci_manifest,
            skipped: self.skipped,
        })
    }
}

/// A PAX time (`secs[.frac]`) as seconds and nanoseconds.
fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    // Times before the epoch are clamped to it: utimensat refuses negative seconds.
    let secs: i64 = secs.parse().ok()?;
    if secs < 0 {
        return Some((0, 0));
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Some((secs, 0));
    }
    let mut digits: String = frac.chars().take(9).collect();
    while digits.len() < 9 {
        digits.push('0');
    }
    Some((secs, digits.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::parse_pax_time;

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(
            parse_pax_time(b"1700000000.25"),
            Some((1_700_000_000, 250_000_000))
        );
        assert_eq!(parse_pax_time(b"1.1234567891"), Some((1, 123_456_789)));
        assert_eq!(parse_pax_time(b"x"), None);
        assert_eq!(parse_pax_time(b"-5.5"), Some((0, 0)));
    }
}
