//! Archiving a directory tree into tar, through directory file descriptors so no symlink is
//! ever followed, keeping metadata, hard links and extended attributes.
//!
//! Two styles: [`Style::Plain`] archives a tree as it is (an ACI's `rootfs/`);
//! [`Style::OverlayUpper`] archives an overlayfs upper directory as an OCI layer, turning
//! overlay whiteouts into OCI ones on the way (see [`super::upper`]).

use std::collections::HashMap;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use tar::{Builder, EntryType, Header};

use super::ExportError;

/// Deepest directory nesting archived; deeper trees are refused rather than risk the stack.
const MAX_DEPTH: usize = 512;

/// How entries of the walked tree become tar entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
    /// Everything as it is, the root included.
    Plain,
    /// An overlayfs upper dir as an OCI layer: no root entry; a 0:0 character device becomes
    /// a `.wh.NAME` file, a directory marked `trusted.overlay.opaque=y` gets a `.wh..wh..opq`
    /// entry; `trusted.overlay.*` and `security.selinux` xattrs are dropped; overlayfs
    /// features whose meaning lives outside the upper dir (redirects, metacopy) are refused.
    OverlayUpper,
}

/// `trusted.overlay.opaque`: the directory hides the lower layers' content.
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
/// Prefix of an OCI whiteout file name.
const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker.
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

struct Walk<'a, W: Write> {
    b: &'a mut Builder<W>,
    style: Style,
    /// Archive paths left out, with everything below them.
    skip: &'a [PathBuf],
    /// `(dev, ino)` of files with several links → archive path of the first one written.
    links: HashMap<(u64, u64), PathBuf>,
}

/// Appends `dir` (itself as `prefix/`, then everything below it) to `b`.
pub(super) fn append_tree<W: Write>(
    b: &mut Builder<W>,
    dir: &Path,
    prefix: &Path,
) -> Result<(), ExportError> {
    let err = |source: io::Error| ExportError::Tree {
        path: dir.to_owned(),
        source,
    };
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(e.into()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| err(e.into()))?;
    let mut walk = Walk {
        b,
        style: Style::Plain,
        skip: &[],
        links: HashMap::new(),
    };
    let xattrs = list_xattrs(Target::Fd(&fd)).map_err(err)?;
    walk.entry(&st, prefix, dir, &xattrs, EntryData::Dir)?;
    walk.dir(&fd, dir, prefix, 0)
}

/// Appends everything below the overlayfs upper dir `dir` (not `dir` itself) to `b` as an OCI
/// layer ([`Style::OverlayUpper`]), except the paths (relative to `dir`) in `skip`. `dir`
/// itself must not be a symlink.
pub(super) fn append_upper<W: Write>(
    b: &mut Builder<W>,
    dir: &Path,
    skip: &[PathBuf],
) -> Result<(), ExportError> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ExportError::Tree {
        path: dir.to_owned(),
        source: e.into(),
    })?;
    let mut walk = Walk {
        b,
        style: Style::OverlayUpper,
        skip,
        links: HashMap::new(),
    };
    walk.dir(&fd, dir, Path::new(""), 0)
}

enum EntryData<'a> {
    Dir,
    File(&'a mut dyn Read),
    Symlink(&'a Path),
    Hardlink(&'a Path),
    Special,
}

impl<W: Write> Walk<'_, W> {
    fn dir(
        &mut self,
        fd: &OwnedFd,
        host: &Path,
        arc: &Path,
        depth: usize,
    ) -> Result<(), ExportError> {
        let err = |path: &Path, source: io::Error| ExportError::Tree {
            path: path.to_owned(),
            source,
        };
        if depth >= MAX_DEPTH {
            return Err(err(
                host,
                io::Error::other(format!("directories nest more than {MAX_DEPTH} deep")),
            ));
        }
        let mut names: Vec<CString> = Vec::new();
        for e in Dir::read_from(fd).map_err(|e| err(host, e.into()))? {
            let e = e.map_err(|e| err(host, e.into()))?;
            let n = e.file_name();
            if n.to_bytes() != b"." && n.to_bytes() != b".." {
                names.push(n.to_owned());
            }
        }
        names.sort();
        for name in names {
            let os_name = OsStr::from_bytes(name.to_bytes());
            let host_path = host.join(os_name);
            let arc_path = arc.join(os_name);
            let e = |source: io::Error| err(&host_path, source);
            if self.skip.contains(&arc_path) {
                continue;
            }
            let st = rustix::fs::statat(fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|x| e(x.into()))?;
            let kind = FileType::from_raw_mode(st.st_mode);
            if self.style == Style::OverlayUpper {
                if name.to_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
                    return Err(e(io::Error::other(format!(
                        "a file named {WHITEOUT_PREFIX}… cannot be stored in an OCI layer, \
                         where the name means a deleted file; rename or remove it"
                    ))));
                }
                if kind == FileType::CharacterDevice && st.st_rdev == 0 {
                    let mut wh = OsString::from(WHITEOUT_PREFIX);
                    wh.push(os_name);
                    self.whiteout(&st, &arc.join(wh), &host_path)?;
                    continue;
                }
            }
            match kind {
                FileType::Directory => {
                    let sub = rustix::fs::openat(
                        fd,
                        &name,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|x| e(x.into()))?;
                    let raw = list_xattrs(Target::Fd(&sub)).map_err(e)?;
                    let opaque = self.style == Style::OverlayUpper
                        && raw.iter().any(|(n, v)| n == OPAQUE_XATTR && v == b"y");
                    let xattrs = self.kept_xattrs(raw).map_err(e)?;
                    self.entry(&st, &arc_path, &host_path, &xattrs, EntryData::Dir)?;
                    if opaque {
                        self.whiteout(&st, &arc_path.join(OPAQUE_WHITEOUT), &host_path)?;
                    }
                    self.dir(&sub, &host_path, &arc_path, depth + 1)?;
                }
                FileType::RegularFile => self.file(fd, &name, &st, &host_path, &arc_path)?,
                FileType::Symlink => {
                    let target =
                        rustix::fs::readlinkat(fd, &name, Vec::new()).map_err(|x| e(x.into()))?;
                    let target = PathBuf::from(OsStr::from_bytes(target.to_bytes()));
                    let raw = list_xattrs(Target::Path(&host_path)).map_err(e)?;
                    let xattrs = self.kept_xattrs(raw).map_err(e)?;
                    self.entry(
                        &st,
                        &arc_path,
                        &host_path,
                        &xattrs,
                        EntryData::Symlink(&target),
                    )?;
                }
                FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                    let raw = list_xattrs(Target::Path(&host_path)).map_err(e)?;
                    let xattrs = self.kept_xattrs(raw).map_err(e)?;
                    self.entry(&st, &arc_path, &host_path, &xattrs, EntryData::Special)?;
                }
                _ => tracing::warn!(path = %host_path.display(), "skipping socket while exporting"),
            }
        }
        Ok(())
    }

    fn file(
        &mut self,
        dir: &OwnedFd,
        name: &CString,
        st: &Stat,
        host: &Path,
        arc: &Path,
    ) -> Result<(), ExportError> {
        let e = |source: io::Error| ExportError::Tree {
            path: host.to_owned(),
            source,
        };
        // The stat field types differ between architectures.
        #[allow(clippy::unnecessary_cast)]
        let key = (st.st_dev as u64, st.st_ino as u64);
        if st.st_nlink > 1 {
            if let Some(first) = self.links.get(&key).cloned() {
                return self.entry(st, arc, host, &[], EntryData::Hardlink(&first));
            }
            self.links.insert(key, arc.to_owned());
        }
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|x| e(x.into()))?;
        let now = rustix::fs::fstat(&fd).map_err(|x| e(x.into()))?;
        if now.st_ino != st.st_ino || now.st_dev != st.st_dev {
            return Err(e(io::Error::other(
                "the file was replaced while it was being archived",
            )));
        }
        let xattrs = self
            .kept_xattrs(list_xattrs(Target::Fd(&fd)).map_err(e)?)
            .map_err(e)?;
        let mut exact = Exact {
            inner: File::from(fd),
            left: now.st_size as u64,
        };
        self.entry(&now, arc, host, &xattrs, EntryData::File(&mut exact))
    }

    fn entry(
        &mut self,
        st: &Stat,
        arc: &Path,
        host: &Path,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        data: EntryData<'_>,
    ) -> Result<(), ExportError> {
        let e = |source: io::Error| ExportError::Tree {
            path: host.to_owned(),
            source,
        };
        if !xattrs.is_empty() {
            self.pax_xattrs(xattrs).map_err(ExportError::Write)?;
        }
        let mut h = Header::new_gnu();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        match data {
            EntryData::Dir => {
                h.set_entry_type(EntryType::Directory);
                let mut p = arc.as_os_str().to_owned();
                p.push("/");
                self.b
                    .append_data(&mut h, Path::new(&p), io::empty())
                    .map_err(e)
            }
            EntryData::File(r) => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(st.st_size as u64);
                self.b.append_data(&mut h, arc, r).map_err(e)
            }
            EntryData::Symlink(target) => {
                h.set_entry_type(EntryType::Symlink);
                self.b.append_link(&mut h, arc, target).map_err(e)
            }
            EntryData::Hardlink(first) => {
                h.set_entry_type(EntryType::Link);
                self.b.append_link(&mut h, arc, first).map_err(e)
            }
            EntryData::Special => {
                let kind = match FileType::from_raw_mode(st.st_mode) {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                h.set_entry_type(kind);
                if kind != EntryType::Fifo {
                    h.set_device_major(rustix::fs::major(st.st_rdev))
                        .map_err(e)?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))
                        .map_err(e)?;
                }
                self.b.append_data(&mut h, arc, io::empty()).map_err(e)
            }
        }
    }

    /// An empty regular file standing for a deletion (`.wh.NAME`) or an opaque directory
    /// (`.wh..wh..opq`), with the owner and mtime of what it stands for.
    fn whiteout(&mut self, st: &Stat, arc: &Path, host: &Path) -> Result<(), ExportError> {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        self.b
            .append_data(&mut h, arc, io::empty())
            .map_err(|source| ExportError::Tree {
                path: host.to_owned(),
                source,
            })
    }

    /// The xattrs of an entry that go into the archive: all of them in [`Style::Plain`]; in
    /// [`Style::OverlayUpper`], none of overlayfs's bookkeeping (`trusted.overlay.*`) nor
    /// `security.selinux` (the destination's policy decides it), and an error for overlayfs
    /// redirects and metacopy files, whose content is elsewhere.
    fn kept_xattrs(&self, raw: Vec<(Vec<u8>, Vec<u8>)>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if self.style == Style::Plain {
            return Ok(raw);
        }
        if let Some((n, _)) = raw.iter().find(|(n, _)| {
            n.as_slice() == b"trusted.overlay.redirect"
                || n.as_slice() == b"trusted.overlay.metacopy"
        }) {
            return Err(io::Error::other(format!(
                "it carries {}: overlayfs keeps part of it outside the upper directory \
                 (the redirect_dir or metacopy feature was on when the pod ran), so the \
                 changes cannot be exported as a layer",
                String::from_utf8_lossy(n)
            )));
        }
        Ok(raw
            .into_iter()
            .filter(|(n, _)| {
                !n.starts_with(b"trusted.overlay.") && n.as_slice() != b"security.selinux"
            })
            .collect())
    }

    /// Writes a PAX extended header carrying `SCHILY.xattr.<name>` records for the next entry.
    fn pax_xattrs(&mut self, xattrs: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
        let mut body = Vec::new();
        for (name, value) in xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(name);
            pax_record(&mut body, &key, value);
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_path("PaxHeaders/xattrs")?;
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        self.b.append(&h, &body[..])
    }
}

/// Appends one PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record
/// including its own digits.
fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

enum Target<'a> {
    Fd(&'a OwnedFd),
    Path(&'a Path),
}

/// The extended attributes of a file, sorted by name. File systems without xattr support
/// give none.
fn list_xattrs(t: Target<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let unsupported = |e: &rustix::io::Errno| *e == rustix::io::Errno::NOTSUP;
    let names = match get_sized(|buf| match &t {
        Target::Fd(fd) => rustix::fs::flistxattr(fd.as_fd(), buf),
        Target::Path(p) => rustix::fs::llistxattr(*p, buf),
    }) {
        Ok(n) => n,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(io::Error::other)?;
        let value = get_sized(|buf| match &t {
            Target::Fd(fd) => rustix::fs::fgetxattr(fd.as_fd(), cname.as_c_str(), buf),
            Target::Path(p) => rustix::fs::lgetxattr(*p, cname.as_c_str(), buf),
        });
        match value {
            Ok(v) => out.push((name.to_vec(), v)),
            // Removed between listing and reading.
            Err(rustix::io::Errno::NODATA) => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort();
    Ok(out)
}

/// Calls a size-probing xattr syscall with a growing buffer until the value fits.
fn get_sized(
    mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    let mut size = 256;
    loop {
        let mut buf = vec![0u8; size];
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if size < (1 << 20) => size *= 4,
            Err(e) => return Err(e),
        }
    }
}

/// Yields exactly `left` bytes of `inner`, failing if it ends sooner (the file shrank while
/// it was archived, which would corrupt the tar stream).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut v = Vec::new();
        pax_record(&mut v, b"a", b"b");
        assert_eq!(v, b"6 a=b\n");
        let mut v = Vec::new();
        // 1 + 1 + 1 + 94 + 1 = 98 bytes besides the length, whose 3 digits make it 101.
        let value = vec![b'x'; 94];
        pax_record(&mut v, b"k", &value);
        assert!(v.starts_with(b"101 k="));
        assert_eq!(v.len(), 101);
        let mut v = Vec::new();
        pax_record(&mut v, b"k", &value[..93]);
        assert!(v.starts_with(b"99 k="));
        assert_eq!(v.len(), 99);
    }
}
