//! Applying tar entries to the tree: the filesystem operations, kept in step with the model.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{self as rfs, Mode};

use super::fsops::{self, Dirs};
use super::names::{self, Marker, NameError, Place};
use super::tree::{ResolveError, Tree};
use super::{UnpackError, UnpackOptions, UnpackReport};
use crate::treehash::{self, Kind, Record, Xattrs};

/// Copy buffer for file data: large enough that big files take few read/write pairs, small
/// enough to stay in cache next to the decoder's state.
pub(super) const COPY_BUF: usize = 1 << 20;
/// At most this many lines in [`UnpackReport::skipped`].
const MAX_SKIPPED: usize = 1000;
pub(super) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

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
pub(super) struct Meta {
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime: (i64, u32),
    /// Allowed xattrs only (see [`allowed_xattr`]), sorted.
    pub(super) xattrs: Xattrs,
}

/// xattrs an image may set: its own user namespace and file capabilities.
fn allowed_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name == b"security.capability"
}

pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Turns a failed filesystem call into [`UnpackError::Fs`].
pub(super) fn fs<E: Into<io::Error>>(
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

pub(super) fn resolve_error(entry: &str, e: ResolveError) -> UnpackError {
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
    pub(super) opts: &'o UnpackOptions,
    pub(super) dirs: Dirs,
    pub(super) tree: Tree,
    pub(super) buf: Vec<u8>,
    pub(super) entries: u64,
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

    pub(super) fn skip(&mut self, entry: &str, why: impl std::fmt::Display) {
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
        if raw.first() == Some(&b'/') {
            // GNU tar's rule; said out loud because such a name aims at the host.
            self.skip(&name, "absolute name; placed relative to the layer root");
        }
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
