//! Where the apps' output goes, for the supervisor: each app's stdout and stderr pipes are cut
//! into CRI log records ([`super::logs`]) for its log file, a copy of each record goes to the
//! host's journal ([`super::journal`], when the host runs journald), and the bytes themselves
//! are copied to stage1's own stdout/stderr, so `rkt run` shows them.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime};

use super::error::{self, Stage1Error};
use super::journal::Journal;
use super::logs::{self, LogFile, Stream};

/// How much of a pipe is read at once.
const READ_SIZE: usize = 64 << 10;

/// One stdout or stderr pipe of an app.
pub struct Pipe {
    /// The read end (non-blocking).
    pub file: File,
    stream: Stream,
    lines: logs::Lines,
}

impl Pipe {
    /// Watches `fd`, the read end of an app's `stream`, making it non-blocking.
    pub fn new(fd: OwnedFd, stream: Stream) -> Result<Pipe, Stage1Error> {
        rustix::io::ioctl_fionbio(&fd, true)
            .map_err(|e| Stage1Error::sys("make a log pipe non-blocking", e))?;
        Ok(Pipe {
            file: File::from(fd),
            stream,
            lines: logs::Lines::default(),
        })
    }
}

/// One app's output: its open pipes and its log file.
#[derive(Default)]
pub struct AppOutput {
    /// The pipes still open.
    pub pipes: Vec<Pipe>,
    /// The CRI log file; `None` once writing it failed (or for an interactive app).
    pub log: Option<LogFile>,
}

/// What every app's output shares: the copies to stage1's stdout/stderr and the journal.
pub struct Outputs {
    copy_out: bool,
    copy_err: bool,
    /// The host's journald, if it runs.
    pub journal: Option<Journal>,
    buf: Vec<u8>,
}

impl Outputs {
    /// Copies go to stage1's stdout/stderr and, if given, to `journal`.
    pub fn new(journal: Option<Journal>) -> Outputs {
        Outputs {
            copy_out: true,
            copy_err: true,
            journal,
            buf: Vec::new(),
        }
    }

    /// Reads what pipe `p` of app `app` has (it is non-blocking), logs and copies it. A pipe
    /// at its end is logged to the end and dropped.
    pub fn drain(&mut self, app: &str, out: &mut AppOutput, p: usize) {
        if self.buf.is_empty() {
            self.buf = vec![0u8; READ_SIZE];
        }
        loop {
            let pipe = &mut out.pipes[p];
            let stream = pipe.stream;
            match pipe.file.read(&mut self.buf) {
                Ok(0) => {
                    let mut lines = std::mem::take(&mut pipe.lines);
                    out.pipes.remove(p);
                    let (log, journal) = (&mut out.log, &mut self.journal);
                    lines.finish(|full, text| record(log, journal, app, stream, full, text));
                    return;
                }
                Ok(n) => {
                    let (log, journal) = (&mut out.log, &mut self.journal);
                    pipe.lines.feed(&self.buf[..n], |full, text| {
                        record(log, journal, app, stream, full, text);
                    });
                    self.copy(stream, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Not expected from a pipe; stop watching it rather than spin on it.
                    tracing::debug!("app {app}: reading its output: {e}");
                    out.pipes.remove(p);
                    return;
                }
            }
        }
    }

    /// Gives journald up to `grace` to take the records still queued for it.
    pub fn finish(&mut self, grace: Duration) {
        if let Some(j) = &mut self.journal {
            j.finish(grace);
        }
    }

    /// Copies the first `n` bytes read to stage1's own stdout/stderr.
    fn copy(&mut self, stream: Stream, n: usize) {
        let bytes = &self.buf[..n];
        let ok = match stream {
            Stream::Stdout if self.copy_out => {
                let mut out = io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Stream::Stderr if self.copy_err => io::stderr().lock().write_all(bytes),
            _ => return,
        };
        if ok.is_err() {
            // Nobody reads any more (a closed terminal or pipe); the log still has it all.
            match stream {
                Stream::Stdout => self.copy_out = false,
                Stream::Stderr => self.copy_err = false,
            }
        }
    }
}

/// One record of app `app`: to its log file, then (a copy) to the journal.
fn record(
    log: &mut Option<LogFile>,
    journal: &mut Option<Journal>,
    app: &str,
    stream: Stream,
    full: bool,
    text: &[u8],
) {
    if let Some(file) = log
        && let Err(e) = file.record(SystemTime::now(), stream, full, text)
    {
        error::warn(&format!("cannot write the app log: {e}; logging stops"));
        *log = None;
    }
    if let Some(j) = journal {
        j.record(app, stream, full, text);
    }
}

/// A pipe for an app's stdout or stderr.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Stage1Error> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Stage1Error::sys("create a log pipe", e))
}
