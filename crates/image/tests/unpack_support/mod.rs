//! Shared by the `unpack_*` and `render_*` tests: a tar writer that can also write what no
//! honest tool would (raw names, `..`, long-name bombs), and a scene — a temporary directory
//! holding the unpack destination next to a sentinel directory that must stay untouched.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rkt_image::treehash::hash_tree;
use rkt_image::unpack::{UnpackError, UnpackOptions, UnpackReport, unpack_layer};
use tar::{EntryType, Header};

/// Builds tar streams entry by entry, with raw names.
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Self {
        Self::new()
    }
}

impl Tar {
    pub fn new() -> Self {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// Appends one entry with the name written as given (GNU long name when over 100 bytes).
    pub fn raw(
        &mut self,
        name: &[u8],
        typ: EntryType,
        data: &[u8],
        edit: impl FnOnce(&mut Header),
    ) -> &mut Self {
        if name.len() >= 100 {
            let mut long = name.to_vec();
            long.push(0);
            let mut h = Header::new_gnu();
            h.set_entry_type(EntryType::GNULongName);
            h.set_size(long.len() as u64);
            h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            h.set_cksum();
            self.b.append(&h, &long[..]).unwrap();
        }
        let mut h = Header::new_gnu();
        h.set_entry_type(typ);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        let n = name.len().min(99);
        h.as_gnu_mut().unwrap().name[..n].copy_from_slice(&name[..n]);
        edit(&mut h);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Regular, data, |h| {
            h.set_mode(mode)
        })
    }

    pub fn file_owned(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Regular, data, |h| {
            h.set_mode(mode);
            h.set_uid(uid);
            h.set_gid(gid);
        })
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Directory, b"", |h| {
            h.set_mode(mode)
        })
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let t = target.as_bytes().to_vec();
        self.raw(name.as_bytes(), EntryType::Symlink, b"", |h| {
            h.set_mode(0o777);
            set_link(h, &t);
        })
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let t = target.as_bytes().to_vec();
        self.raw(name.as_bytes(), EntryType::Link, b"", |h| set_link(h, &t))
    }

    pub fn fifo(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Fifo, b"", |h| h.set_mode(mode))
    }

    pub fn device(&mut self, name: &str, typ: EntryType, major: u32, minor: u32) -> &mut Self {
        self.raw(name.as_bytes(), typ, b"", |h| {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        })
    }

    /// A PAX extended header applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            // "<len> <key>=<value>\n", where len counts itself.
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.raw(b"PaxHeaders/x", EntryType::XHeader, &data, |_| {})
    }

    pub fn bytes(&mut self) -> Vec<u8> {
        self.b.finish().unwrap();
        std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()))
            .into_inner()
            .unwrap()
    }
}

fn set_link(h: &mut Header, target: &[u8]) {
    let n = target.len().min(100);
    h.as_gnu_mut().unwrap().linkname[..n].copy_from_slice(&target[..n]);
}

/// A temporary directory with `dest/` (empty, for the unpack) and `outside/` (a sentinel
/// that must never change).
pub struct Scene {
    pub tmp: tempfile::TempDir,
    pub dest: PathBuf,
    pub outside: PathBuf,
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

impl Scene {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("sentinel"), b"untouched").unwrap();
        Scene { tmp, dest, outside }
    }

    /// `dest/rel`.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.dest.join(rel)
    }

    /// The absolute host path of `outside/`, without its leading `/` (as it would appear
    /// inside the tree after an absolute name was made relative).
    pub fn outside_rel(&self) -> String {
        self.outside
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_owned()
    }

    pub fn unpack(&self, tar: &[u8]) -> Result<UnpackReport, UnpackError> {
        self.unpack_with(tar, &UnpackOptions::default())
    }

    pub fn unpack_with(
        &self,
        tar: &[u8],
        opts: &UnpackOptions,
    ) -> Result<UnpackReport, UnpackError> {
        let r = unpack_layer(tar, &self.dest, opts);
        self.assert_contained();
        r
    }

    /// Unpacks, expects success, and checks the recorded tree hash against a fresh walk.
    pub fn unpack_ok(&self, tar: &[u8]) -> UnpackReport {
        let report = self.unpack(tar).expect("unpack");
        assert_eq!(
            report.tree_hash,
            hash_tree(&self.dest).unwrap(),
            "recorded vs walked tree hash"
        );
        report
    }

    /// Nothing next to `dest` changed: only `dest` and `outside` exist, and `outside` holds
    /// only its sentinel, unchanged.
    pub fn assert_contained(&self) {
        let mut top: Vec<_> = fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        top.sort();
        assert_eq!(
            top,
            ["dest", "outside"],
            "something was created next to dest"
        );
        let inside: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            inside,
            ["sentinel"],
            "something was created in the sentinel dir"
        );
        assert_eq!(
            fs::read(self.outside.join("sentinel")).unwrap(),
            b"untouched"
        );
    }
}

/// lstat of `p`.
pub fn lmeta(p: &Path) -> fs::Metadata {
    fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Permission bits, setuid/setgid/sticky included.
pub fn mode(p: &Path) -> u32 {
    lmeta(p).mode() & 0o7777
}

/// An xattr of `p` (not following symlinks), if set.
pub fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    match rustix::fs::lgetxattr(p, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e) if e == rustix::io::Errno::NODATA => None,
        Err(e) => panic!("lgetxattr {}: {e}", p.display()),
    }
}

/// Whether `p` is an overlayfs whiteout (a 0:0 character device).
pub fn is_whiteout(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let m = lmeta(p);
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Whether anything (even a dangling symlink) is at `p`.
pub fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}
