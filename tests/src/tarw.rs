//! A small, deterministic tar writer.
//!
//! The `tar` crate refuses to write the entries the adversarial fixtures need (`..` components,
//! absolute names, PAX xattrs), and fixture digests must not depend on the host's clock or
//! users, so layers are written here: ustar headers with a fixed mtime and numeric owners, and a
//! PAX extended header only when a name is too long or an entry carries xattrs. Names are raw
//! bytes and are written exactly as given; validating them is the reader's job.

use std::io::{self, Read, Write};

/// The mtime of every fixture entry: 2024-01-01T00:00:00Z.
pub const FIXED_MTIME: u64 = 1_704_067_200;

const BLOCK: usize = 512;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`0`).
    File,
    /// A directory (`5`).
    Dir,
    /// A symbolic link (`2`); the target is `link`.
    Symlink,
    /// A hard link (`1`) to the earlier entry named `link`.
    Hardlink,
    /// A character device (`3`).
    CharDev,
    /// A block device (`4`).
    BlockDev,
    /// A named pipe (`6`).
    Fifo,
}

impl EntryKind {
    fn typeflag(self) -> u8 {
        match self {
            EntryKind::File => b'0',
            EntryKind::Hardlink => b'1',
            EntryKind::Symlink => b'2',
            EntryKind::CharDev => b'3',
            EntryKind::BlockDev => b'4',
            EntryKind::Dir => b'5',
            EntryKind::Fifo => b'6',
        }
    }
}

/// One entry's header fields.
#[derive(Debug, Clone)]
pub struct Header {
    /// The name, written as is (directories get a trailing `/` if they lack one).
    pub path: Vec<u8>,
    /// Entry type.
    pub kind: EntryKind,
    /// Permission bits (including setuid/sticky).
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Content length; only regular files carry content.
    pub size: u64,
    /// Symlink target or hard link name.
    pub link: Vec<u8>,
    /// Device numbers for device nodes.
    pub dev: (u32, u32),
    /// Extended attributes, written as PAX `SCHILY.xattr.<name>` records.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Modification time (seconds since the epoch).
    pub mtime: u64,
}

impl Header {
    /// A header of `kind` for `path`, owned by root, with the fixed mtime.
    pub fn new(kind: EntryKind, path: impl AsRef<[u8]>, mode: u32) -> Self {
        Header {
            path: path.as_ref().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            link: Vec::new(),
            dev: (0, 0),
            xattrs: Vec::new(),
            mtime: FIXED_MTIME,
        }
    }
}

/// Writes tar entries to `W`. Call [`TarWriter::finish`] to write the end-of-archive blocks.
pub struct TarWriter<W: Write> {
    out: W,
}

impl<W: Write> TarWriter<W> {
    /// A writer appending to `out`.
    pub fn new(out: W) -> Self {
        TarWriter { out }
    }

    /// A directory owned by root.
    pub fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        self.append(&Header::new(EntryKind::Dir, path, mode), io::empty())
    }

    /// A directory with an explicit owner.
    pub fn dir_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> io::Result<()> {
        let mut h = Header::new(EntryKind::Dir, path, mode);
        h.uid = uid;
        h.gid = gid;
        self.append(&h, io::empty())
    }

    /// A regular file owned by root with `data` as content.
    pub fn file(&mut self, path: impl AsRef<[u8]>, mode: u32, data: &[u8]) -> io::Result<()> {
        let mut h = Header::new(EntryKind::File, path, mode);
        h.size = data.len() as u64;
        self.append(&h, data)
    }

    /// A symbolic link owned by root.
    pub fn symlink(&mut self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> io::Result<()> {
        let mut h = Header::new(EntryKind::Symlink, path, 0o777);
        h.link = target.as_ref().to_vec();
        self.append(&h, io::empty())
    }

    /// A hard link to the earlier entry `target`.
    pub fn hardlink(&mut self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> io::Result<()> {
        let mut h = Header::new(EntryKind::Hardlink, path, 0o644);
        h.link = target.as_ref().to_vec();
        self.append(&h, io::empty())
    }

    /// Appends one entry; `data` must yield exactly `header.size` bytes for a regular file.
    pub fn append(&mut self, header: &Header, mut data: impl Read) -> io::Result<()> {
        let size = self.header_only(header)?;
        if size > 0 {
            let copied = io::copy(&mut (&mut data).take(size), &mut self.out)?;
            if copied != size {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "tar entry {:?} declared {size} bytes but its source gave {copied}",
                        String::from_utf8_lossy(&header.path)
                    ),
                ));
            }
            self.pad(size)?;
        }
        Ok(())
    }

    /// Writes only the header block(s) of `header` and returns the content length the caller
    /// must now write itself (followed by padding to 512 bytes). For content too large to
    /// stream through here, such as the zip bomb's.
    pub fn header_only(&mut self, header: &Header) -> io::Result<u64> {
        let mut path = header.path.clone();
        if header.kind == EntryKind::Dir && !path.ends_with(b"/") {
            path.push(b'/');
        }
        let size = if header.kind == EntryKind::File {
            header.size
        } else {
            0
        };

        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if path.len() > 100 {
            pax.push(("path".into(), path.clone()));
        }
        if header.link.len() > 100 {
            pax.push(("linkpath".into(), header.link.clone()));
        }
        for (name, value) in &header.xattrs {
            pax.push((format!("SCHILY.xattr.{name}"), value.clone()));
        }
        if !pax.is_empty() {
            self.write_pax(&path, &pax)?;
        }

        let mut block = [0u8; BLOCK];
        put_bytes(&mut block[0..100], &path);
        put_octal(&mut block[100..108], u64::from(header.mode & 0o7777))?;
        put_octal(&mut block[108..116], header.uid)?;
        put_octal(&mut block[116..124], header.gid)?;
        put_octal(&mut block[124..136], size)?;
        put_octal(&mut block[136..148], header.mtime)?;
        block[156] = header.kind.typeflag();
        put_bytes(&mut block[157..257], &header.link);
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        if matches!(header.kind, EntryKind::CharDev | EntryKind::BlockDev) {
            put_octal(&mut block[329..337], u64::from(header.dev.0))?;
            put_octal(&mut block[337..345], u64::from(header.dev.1))?;
        }
        seal(&mut block);
        self.out.write_all(&block)?;
        Ok(size)
    }

    /// The inner writer, without the end-of-archive blocks.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes the two zero blocks that end an archive and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        Ok(self.out)
    }

    fn write_pax(&mut self, path: &[u8], records: &[(String, Vec<u8>)]) -> io::Result<()> {
        let mut body = Vec::new();
        for (key, value) in records {
            body.extend_from_slice(&pax_record(key, value));
        }
        let base = path
            .rsplit(|&b| b == b'/')
            .find(|s| !s.is_empty())
            .unwrap_or(b"entry");
        let mut name = b"PaxHeaders/".to_vec();
        name.extend_from_slice(&base[..base.len().min(100 - name.len())]);
        let mut block = [0u8; BLOCK];
        put_bytes(&mut block[0..100], &name);
        put_octal(&mut block[100..108], 0o644)?;
        put_octal(&mut block[108..116], 0)?;
        put_octal(&mut block[116..124], 0)?;
        put_octal(&mut block[124..136], body.len() as u64)?;
        put_octal(&mut block[136..148], FIXED_MTIME)?;
        block[156] = b'x';
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        seal(&mut block);
        self.out.write_all(&block)?;
        self.out.write_all(&body)?;
        self.pad(body.len() as u64)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `len` counts the whole record.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Copies as much of `value` as fits; names that do not fit travel in a PAX record.
fn put_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Zero-padded octal followed by a NUL, as ustar numeric fields are.
fn put_octal(field: &mut [u8], value: u64) -> io::Result<()> {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    if s.len() > digits {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("value {value} does not fit a {digits}-digit tar header field"),
        ));
    }
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
    Ok(())
}

/// Fills in the header checksum: the byte sum with the checksum field read as spaces.
fn seal(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let r = pax_record("path", b"abc");
        assert_eq!(r, b"12 path=abc\n");
        let long = vec![b'x'; 95];
        let r = pax_record("path", &long);
        let len: usize = String::from_utf8_lossy(&r)
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, r.len());
    }

    #[test]
    fn tar_crate_reads_what_we_write() {
        let mut w = TarWriter::new(Vec::new());
        w.dir("etc", 0o755).unwrap();
        w.file("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/sh\n")
            .unwrap();
        let long = format!("usr/{}/file", "d".repeat(150));
        w.file(long.as_bytes(), 0o600, b"x").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.hardlink("etc/passwd2", "etc/passwd").unwrap();
        let mut h = Header::new(EntryKind::Dir, "opaque", 0o755);
        h.xattrs
            .push(("trusted.overlay.opaque".into(), b"y".to_vec()));
        w.append(&h, io::empty()).unwrap();
        w.file("../escape", 0o644, b"evil").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 512, 0);

        let mut ar = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let xattrs: Vec<String> = e
                .pax_extensions()
                .unwrap()
                .into_iter()
                .flatten()
                .map(|x| x.unwrap().key().unwrap().to_owned())
                .filter(|k| k.starts_with("SCHILY"))
                .collect();
            assert_eq!(e.header().mtime().unwrap(), FIXED_MTIME);
            seen.push((path, e.header().entry_type().as_byte(), xattrs));
        }
        assert_eq!(seen[0].0, "etc/");
        assert_eq!(seen[2].0, long);
        assert_eq!(seen[4].1, b'1');
        assert_eq!(seen[5].2, vec!["SCHILY.xattr.trusted.overlay.opaque"]);
        assert_eq!(seen[6].0, "../escape");
    }
}
