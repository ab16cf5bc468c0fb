//! Random access into an uncompressed tar file without extracting it: one pass over the
//! headers records where each member's data lies, then members are read with positioned
//! reads (`pread`), so several readers can stream from one file at once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use tar::EntryType;

use super::SourceError;
use crate::compress::Compression;
use rkt_types::MAX_DOCUMENT_BYTES;

/// Most members an image archive may have; a docker save archive has about three per layer.
const MAX_MEMBERS: usize = 100_000;
/// Longest member path accepted.
const MAX_PATH: usize = 4096;
/// Most symlinks followed to reach one member.
const MAX_HOPS: usize = 16;

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Symlink(String),
    Hardlink(String),
    Dir,
    Other,
}

/// The index of one tar file's members, by normalised path.
#[derive(Debug)]
pub(crate) struct TarIndex {
    file: Arc<File>,
    location: String,
    members: HashMap<String, Member>,
}

/// Normalises a path inside an archive: drops `.` components, empty components and a
/// trailing `/`. Returns `None` for absolute paths and any `..` component.
pub(crate) fn normalize(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Joins a symlink target onto the link's directory, allowing `..` that stays inside.
fn resolve_link(link_path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link_path.split('/').collect();
    parts.pop();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl TarIndex {
    /// Reads every header of `file` (an uncompressed tar) once.
    pub(crate) fn scan(file: File, location: String) -> Result<Self, SourceError> {
        let bad = |reason: String| SourceError::BadArchive {
            location: location.clone(),
            reason,
        };
        let mut members = HashMap::new();
        // Member offsets are counted from where the archive starts: the start of the file.
        (&file)
            .seek(SeekFrom::Start(0))
            .map_err(|e| bad(e.to_string()))?;
        {
            let mut ar = tar::Archive::new(&file);
            let entries = ar.entries_with_seek().map_err(|e| bad(e.to_string()))?;
            for (n, entry) in entries.enumerate() {
                if n >= MAX_MEMBERS {
                    return Err(bad(format!(
                        "it has more than {MAX_MEMBERS} members, far more than an image archive"
                    )));
                }
                let entry = entry.map_err(|e| bad(e.to_string()))?;
                let raw = entry.path_bytes();
                if raw.len() > MAX_PATH {
                    return Err(bad(format!(
                        "a member path is longer than {MAX_PATH} bytes"
                    )));
                }
                // Names that are not UTF-8 cannot be referenced from a JSON document.
                let Ok(raw) = std::str::from_utf8(&raw) else {
                    continue;
                };
                let path = normalize(raw).ok_or_else(|| SourceError::EscapingPath {
                    location: location.clone(),
                    path: raw.to_owned(),
                })?;
                let link = || {
                    entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                };
                let member = match entry.header().entry_type() {
                    EntryType::Regular | EntryType::Continuous => Member::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                    EntryType::Symlink => Member::Symlink(link()),
                    EntryType::Link => Member::Hardlink(link()),
                    EntryType::Directory => Member::Dir,
                    EntryType::XGlobalHeader => continue,
                    _ => Member::Other,
                };
                if path.is_empty() {
                    continue;
                }
                // Later members replace earlier ones, as when tar extracts.
                members.insert(path, member);
            }
        }
        // A cut-off archive reads as a shorter one (seeking past the end is no error), so
        // say what happened rather than report the members that were lost as missing.
        let len = file.metadata().map_err(|e| bad(e.to_string()))?.len();
        if let Some((path, end)) = members
            .iter()
            .filter_map(|(p, m)| match m {
                Member::File { offset, size } => Some((p, offset.saturating_add(*size))),
                _ => None,
            })
            .find(|(_, end)| *end > len)
        {
            return Err(bad(format!(
                "it is truncated: member {path} ends at byte {end} but the file has {len} bytes; \
                 copy the archive again"
            )));
        }
        Ok(TarIndex {
            file: Arc::new(file),
            location,
            members,
        })
    }

    /// Opens `path` (a file system path) and scans it, refusing compressed files.
    pub(crate) fn open_file(path: &Path, location: String) -> Result<Self, SourceError> {
        let mut f = File::open(path).map_err(|e| SourceError::io(path, e))?;
        let mut magic = [0u8; Compression::MAGIC_LEN];
        let n = read_up_to(&mut f, &mut magic).map_err(|e| SourceError::io(path, e))?;
        let c = Compression::detect(&magic[..n]);
        if c != Compression::None {
            return Err(SourceError::Compressed {
                path: path.to_owned(),
                compression: c.name(),
                tool: crate::detect::tool(c),
            });
        }
        Self::scan(f, location)
    }

    /// The source description used in messages.
    pub(crate) fn location(&self) -> &str {
        &self.location
    }

    /// Finds the regular file at `path` (following links inside the archive):
    /// `Ok(None)` when there is nothing there, its `(offset, size)` otherwise.
    pub(crate) fn find(&self, path: &str) -> Result<Option<(u64, u64)>, SourceError> {
        let escaping = |p: &str| SourceError::EscapingPath {
            location: self.location.clone(),
            path: p.to_owned(),
        };
        let mut cur = normalize(path).ok_or_else(|| escaping(path))?;
        for _ in 0..MAX_HOPS {
            match self.members.get(&cur) {
                None => return Ok(None),
                Some(Member::File { offset, size }) => return Ok(Some((*offset, *size))),
                Some(Member::Symlink(t)) => {
                    cur = resolve_link(&cur, t).ok_or_else(|| escaping(t))?;
                }
                Some(Member::Hardlink(t)) => {
                    cur = normalize(t).ok_or_else(|| escaping(t))?;
                }
                Some(Member::Dir | Member::Other) => {
                    return Err(SourceError::NotRegular {
                        what: format!("{cur} in {}", self.location),
                    });
                }
            }
        }
        Err(SourceError::BadArchive {
            location: self.location.clone(),
            reason: format!("{path} is a chain of more than {MAX_HOPS} links"),
        })
    }

    /// A reader over `size` bytes at `offset`.
    pub(crate) fn section(&self, offset: u64, size: u64) -> SectionReader {
        SectionReader {
            file: Arc::clone(&self.file),
            pos: offset,
            end: offset.saturating_add(size),
        }
    }

    /// Reads a small member without a descriptor (`index.json`, `manifest.json`), capped at
    /// [`MAX_DOCUMENT_BYTES`]. `Ok(None)` when it is absent.
    pub(crate) fn read_small(&self, path: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let Some((offset, size)) = self.find(path)? else {
            return Ok(None);
        };
        if size > MAX_DOCUMENT_BYTES {
            return Err(SourceError::FileTooLarge {
                what: format!("{path} in {}", self.location),
            });
        }
        let mut buf = Vec::new();
        self.section(offset, size)
            .read_to_end(&mut buf)
            .map_err(|source| SourceError::BadArchive {
                location: self.location.clone(),
                reason: format!("cannot read {path}: {source}"),
            })?;
        Ok(Some(buf))
    }
}

/// Reads as much of `buf` as the reader has (short only at end of file).
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A byte range of a shared file, read with positioned reads.
#[derive(Debug)]
pub(crate) struct SectionReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for SectionReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a member; it is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_refuses_escapes() {
        assert_eq!(normalize("./a//b/./c/").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("./").as_deref(), Some(""));
        assert_eq!(normalize("/etc/passwd"), None);
        assert_eq!(normalize("a/../../b"), None);
        assert_eq!(normalize("a/../b"), None);
    }

    #[test]
    fn a_truncated_archive_says_so() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, len) in [("small", 10usize), ("big", 5000)] {
            let mut h = tar::Header::new_gnu();
            h.set_size(len as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &vec![7u8; len][..]).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.tar");
        std::fs::write(&whole, &bytes).unwrap();
        assert!(TarIndex::open_file(&whole, "whole".into()).is_ok());
        let cut = dir.path().join("cut.tar");
        std::fs::write(&cut, &bytes[..3000]).unwrap();
        let err = TarIndex::open_file(&cut, "cut".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated") && err.contains("big"), "{err}");
    }

    #[test]
    fn links_resolve_inside_only() {
        assert_eq!(
            resolve_link("x/layer.tar", "../y/layer.tar").as_deref(),
            Some("y/layer.tar")
        );
        assert_eq!(resolve_link("layer.tar", "../y"), None);
        assert_eq!(resolve_link("x/l", "/etc/passwd"), None);
    }
}
