//! App logs in the CRI format (what `kubectl logs` and `rkt logs` read):
//!
//! ```text
//! 2026-01-02T15:04:05.000000000Z stdout F a whole line
//! 2026-01-02T15:04:05.000000000Z stderr P the first 16 KiB of a longer line…
//! ```
//!
//! `F` ends a line, `P` is a part of a line that continues in the next record (a line longer
//! than [`MAX_LINE`], or output cut by the app's exit without a newline is written as `F`).
//! `apps/<app>/logs/current.log` is rotated when the next record would take it past
//! [`MAX_FILE`]: `current.log.1` becomes `.2`, `current.log` becomes `.1`; older files go.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The longest line kept in one record; longer lines are split into `P` records.
pub const MAX_LINE: usize = 16 << 10;
/// Rotation threshold of `current.log`.
pub const MAX_FILE: u64 = 10 << 20;
/// Rotated files kept (`current.log.1` … `.N`).
pub const KEEP: u32 = 2;

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One app's log file, with rotation.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
}

impl LogFile {
    /// Opens (appends to) `<dir>/current.log`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::with_limit(dir, MAX_FILE)
    }

    fn with_limit(dir: &Path, max: u64) -> io::Result<Self> {
        let path = dir.join("current.log");
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path,
            file,
            size,
            max,
        })
    }

    /// Writes one record.
    pub fn record(
        &mut self,
        at: SystemTime,
        stream: Stream,
        full: bool,
        text: &[u8],
    ) -> io::Result<()> {
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(humantime::format_rfc3339_nanos(at).to_string().as_bytes());
        line.push(b' ');
        line.extend_from_slice(stream.tag().as_bytes());
        line.extend_from_slice(if full { b" F " } else { b" P " });
        line.extend_from_slice(text);
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        for n in (1..KEEP).rev() {
            match std::fs::rename(numbered(n), numbered(n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Cuts one stream's bytes into records.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Feeds `data`, calling `emit(full, text)` for each record it completes.
    pub fn feed(&mut self, data: &[u8], mut emit: impl FnMut(bool, &[u8])) {
        let mut rest = data;
        while !rest.is_empty() {
            match rest.iter().position(|b| *b == b'\n') {
                Some(nl) if self.partial.len() + nl <= MAX_LINE => {
                    if self.partial.is_empty() {
                        emit(true, &rest[..nl]);
                    } else {
                        self.partial.extend_from_slice(&rest[..nl]);
                        emit(true, &self.partial);
                        self.partial.clear();
                    }
                    rest = &rest[nl + 1..];
                }
                _ => {
                    let room = MAX_LINE - self.partial.len();
                    let take = rest.len().min(room);
                    self.partial.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if self.partial.len() == MAX_LINE {
                        emit(false, &self.partial);
                        self.partial.clear();
                    }
                }
            }
        }
    }

    /// At EOF: the unfinished line, if any, as a last `F` record.
    pub fn finish(&mut self, mut emit: impl FnMut(bool, &[u8])) {
        if !self.partial.is_empty() {
            emit(true, &self.partial);
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<(bool, Vec<u8>)> {
        let mut l = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            l.feed(c, |f, t| out.push((f, t.to_vec())));
        }
        l.finish(|f, t| out.push((f, t.to_vec())));
        out
    }

    #[test]
    fn lines_across_chunks_and_long_lines() {
        assert_eq!(
            collect(&[b"a\nb", b"c\n\nd"]),
            vec![
                (true, b"a".to_vec()),
                (true, b"bc".to_vec()),
                (true, b"".to_vec()),
                (true, b"d".to_vec()),
            ]
        );
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let mut input = long.clone();
        input.push(b'\n');
        let out = collect(&[&input]);
        assert_eq!(
            out.iter().map(|(f, t)| (*f, t.len())).collect::<Vec<_>>(),
            vec![(false, MAX_LINE), (false, MAX_LINE), (true, 5)]
        );
    }

    #[test]
    fn records_are_cri_lines_and_the_file_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogFile::with_limit(dir.path(), 200).unwrap();
        let at =
            SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_767_366_245_000_000_123);
        log.record(at, Stream::Stdout, true, b"hi").unwrap();
        log.record(at, Stream::Stderr, false, b"part").unwrap();
        let text = std::fs::read_to_string(dir.path().join("current.log")).unwrap();
        assert_eq!(
            text,
            "2026-01-02T15:04:05.000000123Z stdout F hi\n\
             2026-01-02T15:04:05.000000123Z stderr P part\n"
        );
        for i in 0..20 {
            log.record(at, Stream::Stdout, true, format!("line {i}").as_bytes())
                .unwrap();
        }
        let current = std::fs::read_to_string(dir.path().join("current.log")).unwrap();
        let one = std::fs::read_to_string(dir.path().join("current.log.1")).unwrap();
        assert!(current.ends_with("line 19\n"));
        assert!(current.len() <= 200 && one.len() <= 200);
        assert!(dir.path().join("current.log.2").exists());
        assert!(!dir.path().join("current.log.3").exists());
        // Reopening appends.
        drop(log);
        let mut log = LogFile::with_limit(dir.path(), 200).unwrap();
        log.record(at, Stream::Stdout, true, b"again").unwrap();
        let after = std::fs::read_to_string(dir.path().join("current.log")).unwrap();
        assert!(after.ends_with("stdout F again\n"), "{after}");
        let again_len = "2026-01-02T15:04:05.000000123Z stdout F again\n".len();
        if current.len() + again_len <= 200 {
            assert!(after.starts_with(&current), "{after}");
        }
    }
}
