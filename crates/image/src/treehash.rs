//! The tree hash: one sha256 over a canonical encoding of an unpacked layer tree, so
//! `rkt image verify` can tell whether a tree still is what unpacking made.
//!
//! [`crate::unpack::unpack_layer`] computes it from its in-memory model while it writes (no
//! second pass over the data); [`hash_tree`] computes it by walking a tree on disk. Both feed
//! the same encoder, so for an untouched tree the two agree.
//!
//! # Encoding (version 1)
//!
//! The hash is sha256 of the magic `rkt-tree-hash-v1\0` followed by one record per entry of the
//! tree, the root included, in ascending byte order of their paths. Paths are relative to the
//! tree root, without a leading `/`; the root is the empty path. All integers are big-endian.
//!
//! | field | encoding |
//! |---|---|
//! | path | u32 length, bytes |
//! | type | one byte: `d` directory, `f` regular file, `l` symlink, `p` FIFO, `c` character device, `b` block device, `s` socket |
//! | mode | u32, permission bits including setuid, setgid and sticky (`mode & 0o7777`) |
//! | uid, gid | u32 each |
//! | xattrs | u32 count, then per xattr sorted by name: u32 length, name, u32 length, value |
//! | `f` only | u64 size, 32 bytes sha256 of the content |
//! | `l` only | u32 length, target bytes |
//! | `c`/`b` only | u32 major, u32 minor |
//! | hard links | non-directories only: byte 0, or byte 1 then u32 length and the smallest path of the entries sharing this inode when there are several |
//!
//! xattrs are recorded for regular files and directories only, and only in the namespaces
//! unpacking writes or that overlayfs reads: `user.*`, `security.capability` and
//! `trusted.overlay.*` (so a planted overlay xattr changes the hash). Labels a security module
//! assigns on creation (`security.selinux`, …) and ACLs are not part of an image and are left
//! out. Not encoded: timestamps, inode numbers, link counts, the order of directory entries.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rkt_types::digest::{Algorithm, Digest, Hasher};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::unpack::fsops;

const MAGIC: &[u8] = b"rkt-tree-hash-v1\0";

/// Why a tree could not be hashed.
#[derive(Debug, thiserror::Error)]
pub enum TreeHashError {
    /// A file or directory in the tree could not be read.
    #[error("cannot {op} {path:?} while hashing the tree at {root}")]
    Io {
        /// The tree being hashed.
        root: PathBuf,
        /// Path inside the tree.
        path: String,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// xattrs as (name, value) pairs, sorted by name.
pub(crate) type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// What kind of entry a [`Record`] describes, with the kind-specific data that is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File { size: u64, sha256: [u8; 32] },
    Symlink(Vec<u8>),
    Fifo,
    Char { major: u32, minor: u32 },
    Block { major: u32, minor: u32 },
    Socket,
}

impl Kind {
    /// The overlayfs whiteout: a character device 0:0.
    pub(crate) const WHITEOUT: Kind = Kind::Char { major: 0, minor: 0 };

    fn tag(&self) -> u8 {
        match self {
            Kind::Dir => b'd',
            Kind::File { .. } => b'f',
            Kind::Symlink(_) => b'l',
            Kind::Fifo => b'p',
            Kind::Char { .. } => b'c',
            Kind::Block { .. } => b'b',
            Kind::Socket => b's',
        }
    }
}

/// Everything the hash covers about one inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub kind: Kind,
    /// Permission bits, `mode & 0o7777`.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Sorted by name; only names passing [`is_hashed_xattr`].
    pub xattrs: Xattrs,
}

/// xattr namespaces covered by the hash (see the module documentation).
pub(crate) fn is_hashed_xattr(name: &[u8]) -> bool {
    name.starts_with(b"user.")
        || name == b"security.capability"
        || name.starts_with(b"trusted.overlay.")
}

/// Hashes `entries`: (path, record, inode identity), sorted by path. The iterator is walked
/// twice (hard link groups first), hence `Clone`.
pub(crate) fn digest<'a, I>(entries: I) -> Digest
where
    I: Iterator<Item = (&'a [u8], &'a Record, u64)> + Clone,
{
    // Inode identity → (number of paths, smallest path). Paths arrive sorted, so the first
    // one seen is the smallest.
    let mut groups: HashMap<u64, (u32, &'a [u8])> = HashMap::new();
    for (path, rec, ino) in entries.clone() {
        if rec.kind != Kind::Dir {
            groups.entry(ino).or_insert((0, path)).0 += 1;
        }
    }
    let mut h = Hasher::new(Algorithm::Sha256);
    h.update(MAGIC);
    let mut buf = Vec::with_capacity(512);
    for (path, rec, ino) in entries {
        buf.clear();
        put_bytes(&mut buf, path);
        buf.push(rec.kind.tag());
        put_u32(&mut buf, rec.mode & 0o7777);
        put_u32(&mut buf, rec.uid);
        put_u32(&mut buf, rec.gid);
        put_u32(&mut buf, len32(rec.xattrs.len()));
        for (name, value) in &rec.xattrs {
            put_bytes(&mut buf, name);
            put_bytes(&mut buf, value);
        }
        match &rec.kind {
            Kind::File { size, sha256 } => {
                buf.extend_from_slice(&size.to_be_bytes());
                buf.extend_from_slice(sha256);
            }
            Kind::Symlink(target) => put_bytes(&mut buf, target),
            Kind::Char { major, minor } | Kind::Block { major, minor } => {
                put_u32(&mut buf, *major);
                put_u32(&mut buf, *minor);
            }
            Kind::Dir | Kind::Fifo | Kind::Socket => {}
        }
        if rec.kind != Kind::Dir {
            match groups.get(&ino) {
                Some(&(n, leader)) if n > 1 => {
                    buf.push(1);
                    put_bytes(&mut buf, leader);
                }
                _ => buf.push(0),
            }
        }
        h.update(&buf);
    }
    h.finish()
}

fn len32(n: usize) -> u32 {
    // Paths, names and values are bounded far below 4 GiB by the kernel (PATH_MAX, XATTR_SIZE_MAX).
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_u32(buf, len32(b.len()));
    buf.extend_from_slice(b);
}

/// Hashes the tree at `dir` as it is on disk now. Symlinks are not followed; nothing is
/// written. Reads every regular file, so it costs about as much as reading the layer.
pub fn hash_tree(dir: &Path) -> Result<Digest, TreeHashError> {
    let err = |path: &[u8], op: &'static str| {
        let root = dir.to_path_buf();
        let path = String::from_utf8_lossy(path).into_owned();
        move |source: io::Error| TreeHashError::Io {
            root,
            path,
            op,
            source,
        }
    };
    let root = rfs::open(dir, fsops::DIR_FLAGS, Mode::empty())
        .map_err(io::Error::from)
        .map_err(err(b"", "open"))?;
    let mut entries: Vec<(Vec<u8>, Record, u64)> = Vec::new();
    let mut inodes: HashMap<(u64, u64), u64> = HashMap::new();
    // Stat field types differ between architectures, so the casts are not always no-ops.
    #[allow(clippy::unnecessary_cast)]
    let mut ident = |st: &rfs::Stat| {
        let n = inodes.len() as u64;
        *inodes
            .entry((st.st_dev as u64, st.st_ino as u64))
            .or_insert(n)
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut pending: Vec<Vec<u8>> = vec![Vec::new()];
    while let Some(rel) = pending.pop() {
        let dfd = fsops::open_dir(root.as_fd(), &rel).map_err(err(&rel, "open directory"))?;
        let st = rfs::fstat(&dfd)
            .map_err(io::Error::from)
            .map_err(err(&rel, "stat"))?;
        let xattrs =
            fsops::list_xattrs(dfd.as_fd(), is_hashed_xattr).map_err(err(&rel, "read xattrs"))?;
        let id = ident(&st);
        entries.push((rel.clone(), base_record(&st, Kind::Dir, xattrs), id));
        let names = fsops::read_names(dfd.as_fd()).map_err(err(&rel, "list"))?;
        for (name, is_dir) in names {
            let path = fsops::join(&rel, &name);
            if is_dir {
                pending.push(path);
                continue;
            }
            let (rec, st) =
                leaf_record(dfd.as_fd(), &name, &mut buf).map_err(err(&path, "read"))?;
            let id = ident(&st);
            entries.push((path, rec, id));
        }
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(digest(entries.iter().map(|(p, r, i)| (&p[..], r, *i))))
}

fn base_record(st: &rfs::Stat, kind: Kind, xattrs: Xattrs) -> Record {
    Record {
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        xattrs,
    }
}

/// The record of a non-directory `name` in `dir`.
fn leaf_record(
    dir: BorrowedFd<'_>,
    name: &[u8],
    buf: &mut [u8],
) -> io::Result<(Record, rfs::Stat)> {
    let st = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let dev = st.st_rdev as rfs::Dev;
    let (major, minor) = (rfs::major(dev), rfs::minor(dev));
    let rec = match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            let fd = rfs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            let xattrs = fsops::list_xattrs(fd.as_fd(), is_hashed_xattr)?;
            let mut file = File::from(fd);
            let mut h = Hasher::new(Algorithm::Sha256);
            let mut size = 0u64;
            loop {
                let n = match file.read(buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                h.update(&buf[..n]);
                size += n as u64;
            }
            let sha256 = sha256_bytes(h.finish());
            return Ok((base_record(&st, Kind::File { size, sha256 }, xattrs), st));
        }
        FileType::Symlink => Kind::Symlink(rfs::readlinkat(dir, name, Vec::new())?.into_bytes()),
        FileType::Fifo => Kind::Fifo,
        FileType::CharacterDevice => Kind::Char { major, minor },
        FileType::BlockDevice => Kind::Block { major, minor },
        FileType::Socket => Kind::Socket,
        // Directories are handled by the caller; anything else cannot exist.
        _ => return Err(io::Error::other("unexpected file type")),
    };
    Ok((base_record(&st, rec, Vec::new()), st))
}

/// The raw 32 bytes of a sha256 [`Digest`].
pub(crate) fn sha256_bytes(d: Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    // A sha256 Digest always holds 64 valid hex digits.
    hex::decode_to_slice(d.hex(), &mut out).unwrap_or_default();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: Kind) -> Record {
        Record {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn encoding_separates_fields() {
        let file = rec(Kind::File {
            size: 1,
            sha256: [1; 32],
        });
        let base = digest([(&b"a"[..], &file, 1)].into_iter());
        let renamed = digest([(&b"b"[..], &file, 1)].into_iter());
        assert_ne!(base, renamed);
        let mut other = file.clone();
        other.mode = 0o4644;
        assert_ne!(base, digest([(&b"a"[..], &other, 1)].into_iter()));
        other = file.clone();
        other.xattrs = vec![(b"user.x".to_vec(), b"1".to_vec())];
        assert_ne!(base, digest([(&b"a"[..], &other, 1)].into_iter()));
        // Two paths on one inode differ from two separate inodes with the same content.
        let linked = digest([(&b"a"[..], &file, 1), (&b"b"[..], &file, 1)].into_iter());
        let copies = digest([(&b"a"[..], &file, 1), (&b"b"[..], &file, 2)].into_iter());
        assert_ne!(linked, copies);
    }
}
