//! A copy of every app log record for the host's journal, when the host runs journald.
//!
//! The supervisor writes each record ([`super::logs`]) to the pod's CRI log file first; the
//! journal gets a copy over journald's native protocol
//! (<https://systemd.io/JOURNAL_NATIVE_PROTOCOL/>): one datagram per record on the
//! `SOCK_DGRAM` socket [`SOCKET`], made of `KEY=value\n` fields, or `KEY\n<u64 LE
//! length><bytes>\n` for a value holding a newline. Fields ([`entry`]):
//!
//! | field | value |
//! |---|---|
//! | `MESSAGE` | the record's text (a line without its newline, or a 16 KiB part of one) |
//! | `PRIORITY` | `6` (info) for stdout, `3` (err) for stderr |
//! | `SYSLOG_IDENTIFIER`, `RKT_APP_NAME`, `CONTAINER_NAME` | the app's name |
//! | `RKT_POD_UUID` | the pod's UUID |
//! | `CONTAINER_ID`, `CONTAINER_ID_FULL` | the UUID's hex digits: the first 12, all 32 |
//! | `CONTAINER_PARTIAL_MESSAGE` | `true` on a part of a longer line (a CRI `P` record) |
//!
//! The `CONTAINER_*` fields are the ones Docker's and podman's journald drivers write, so
//! tools that know those (`journalctl CONTAINER_NAME=web`) work for rkt's apps too.
//!
//! The journal must never cost the pod anything: the socket is connected by stage1 before the
//! pod's namespaces exist (absent or refusing: no journal, one debug line), and every send is
//! non-blocking. A journald that does not keep up gets its records queued, up to
//! [`BACKLOG_BYTES`], and sent when the socket is writable again (the supervisor polls
//! [`Journal::wants_write`]); beyond that records are left out of the journal with one
//! warning. A journald that went away (the socket refuses) ends the copies, with one
//! warning. The log file has every record either way.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::SendFlags;

use super::error;
use super::logs::Stream;

/// journald's native-protocol socket.
pub const SOCKET: &str = "/run/systemd/journal/socket";
/// Records queued while journald is busy, in bytes; more are left out of the journal.
pub const BACKLOG_BYTES: usize = 4 << 20;
/// How long the supervisor waits, at the pod's end, for journald to take the queued records.
pub const FLUSH_GRACE: Duration = Duration::from_secs(2);
/// The send buffer asked for (as libsystemd does): it bounds the bytes in flight to journald,
/// so a bigger one means fewer records queued here. The kernel caps it at `wmem_max`.
const SEND_BUFFER: usize = 8 << 20;

/// Why the journal could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The socket could not be created or connected.
    #[error(
        "cannot connect to journald's socket {path} (app output still goes to the pod's log \
         files)"
    )]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The connection to journald for one pod, owned by the supervisor.
#[derive(Debug)]
pub struct Journal {
    /// `None` once journald went away.
    sock: Option<UnixDatagram>,
    uuid: String,
    /// The fields naming the pod, the same in every record ([`pod_fields`]).
    pod_fields: Vec<u8>,
    backlog: VecDeque<Vec<u8>>,
    backlog_bytes: usize,
    dropped: u64,
}

impl Journal {
    /// Connects to the host's journald for pod `uuid`, if the host has one: `None` when
    /// [`SOCKET`] is absent or refuses (one debug line), since journald is optional.
    pub fn open(uuid: &str) -> Option<Journal> {
        if !Path::new(SOCKET).exists() {
            tracing::debug!(
                "no journald on this host ({SOCKET} is absent): app logs go to files only"
            );
            return None;
        }
        match Journal::connect(Path::new(SOCKET), uuid) {
            Ok(j) => Some(j),
            Err(e) => {
                tracing::debug!("{}", error::error_line(&e));
                None
            }
        }
    }

    /// Connects to the native-protocol socket at `path`.
    pub fn connect(path: &Path, uuid: &str) -> Result<Journal, JournalError> {
        let err = |source| JournalError::Connect {
            path: path.to_owned(),
            source,
        };
        // std makes it close-on-exec: the apps never inherit it.
        let sock = UnixDatagram::unbound().map_err(err)?;
        sock.connect(path).map_err(err)?;
        if let Err(e) = rustix::net::sockopt::set_socket_send_buffer_size(&sock, SEND_BUFFER) {
            tracing::debug!("journald socket: cannot enlarge the send buffer: {e}");
        }
        Ok(Journal {
            sock: Some(sock),
            uuid: uuid.to_owned(),
            pod_fields: pod_fields(uuid),
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            dropped: 0,
        })
    }

    /// Sends one record of app `app` (or queues it, see the module doc); never blocks.
    pub fn record(&mut self, app: &str, stream: Stream, full: bool, text: &[u8]) {
        if self.sock.is_none() {
            return;
        }
        let datagram = entry(&self.pod_fields, app, stream, full, text);
        self.flush();
        if self.backlog.is_empty() && self.send(&datagram) {
            return;
        }
        if self.sock.is_none() {
            return;
        }
        if self.backlog_bytes + datagram.len() > BACKLOG_BYTES {
            if self.dropped == 0 {
                error::warn(&format!(
                    "journald is not keeping up with the output of pod {}: records are left out \
                     of the journal while it is busy (the pod's log files, which `rkt logs` \
                     reads, have every record)",
                    self.uuid
                ));
            }
            self.dropped += 1;
            return;
        }
        self.backlog_bytes += datagram.len();
        self.backlog.push_back(datagram);
    }

    /// Whether records wait for the socket to become writable (poll it for `POLLOUT`).
    pub fn wants_write(&self) -> bool {
        self.sock.is_some() && !self.backlog.is_empty()
    }

    /// The socket, to poll.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.sock.as_ref().map(|s| s.as_fd())
    }

    /// Sends queued records until the socket would block.
    pub fn flush(&mut self) {
        while let Some(front) = self.backlog.pop_front() {
            if self.send(&front) {
                self.backlog_bytes -= front.len();
                continue;
            }
            if self.sock.is_some() {
                self.backlog.push_front(front);
            }
            return;
        }
    }

    /// At the pod's end: gives journald up to `grace` to take the queued records.
    pub fn finish(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while self.wants_write() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let Some(fd) = self.fd() else { break };
            let ts = super::poll_timeout(left);
            let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(_) => break,
            }
            self.flush();
        }
        let lost = self.dropped + self.backlog.len() as u64;
        if lost > 0 {
            tracing::debug!(
                "{lost} log records of pod {} did not reach journald",
                self.uuid
            );
        }
    }

    /// One non-blocking send: whether journald took it. A refusal other than "busy" means
    /// journald is gone: the socket is dropped, with one warning.
    fn send(&mut self, datagram: &[u8]) -> bool {
        let Some(sock) = &self.sock else {
            return false;
        };
        loop {
            match rustix::net::send(sock, datagram, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                Ok(_) => return true,
                Err(Errno::INTR) => {}
                // Its queue or our send buffer is full (ENOBUFS: the kernel is short of
                // memory): worth trying again later.
                Err(Errno::AGAIN | Errno::NOBUFS) => return false,
                Err(e) => {
                    error::warn(&format!(
                        "journald stopped taking app output of pod {} ({e}); app output still \
                         goes to the pod's log files (`rkt logs`)",
                        self.uuid
                    ));
                    self.sock = None;
                    self.backlog.clear();
                    self.backlog_bytes = 0;
                    return false;
                }
            }
        }
    }
}

/// The fields naming pod `uuid`, encoded once per pod: `RKT_POD_UUID`, `CONTAINER_ID`,
/// `CONTAINER_ID_FULL`.
pub fn pod_fields(uuid: &str) -> Vec<u8> {
    let hex: String = uuid.chars().filter(char::is_ascii_hexdigit).collect();
    let mut out = Vec::new();
    field(&mut out, "RKT_POD_UUID", uuid.as_bytes());
    field(
        &mut out,
        "CONTAINER_ID",
        &hex.as_bytes()[..hex.len().min(12)],
    );
    field(&mut out, "CONTAINER_ID_FULL", hex.as_bytes());
    out
}

/// The datagram for one record: the fields of the module doc, in that order (`pod` from
/// [`pod_fields`]).
pub fn entry(pod: &[u8], app: &str, stream: Stream, full: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + pod.len() + 128);
    field(&mut out, "MESSAGE", text);
    let priority = match stream {
        Stream::Stdout => "6",
        Stream::Stderr => "3",
    };
    field(&mut out, "PRIORITY", priority.as_bytes());
    for key in ["SYSLOG_IDENTIFIER", "RKT_APP_NAME", "CONTAINER_NAME"] {
        field(&mut out, key, app.as_bytes());
    }
    out.extend_from_slice(pod);
    if !full {
        field(&mut out, "CONTAINER_PARTIAL_MESSAGE", b"true");
    }
    out
}

/// Appends one field: `KEY=value\n`, or the binary form when the value holds a newline
/// (which the text form would end the value at).
pub fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0f5b7c2e-9a41-4c3d-8e6f-1a2b3c4d5e6f";

    /// Parses a datagram back into its fields, both forms, as journald does.
    fn parse(mut d: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let nl = d.iter().position(|b| *b == b'\n').expect("a field ends");
            let line = &d[..nl];
            if let Some(eq) = line.iter().position(|b| *b == b'=') {
                out.push((
                    String::from_utf8(line[..eq].to_vec()).unwrap(),
                    line[eq + 1..].to_vec(),
                ));
                d = &d[nl + 1..];
            } else {
                let key = String::from_utf8(line.to_vec()).unwrap();
                let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
                let value = d[nl + 9..nl + 9 + len].to_vec();
                assert_eq!(
                    d[nl + 9 + len],
                    b'\n',
                    "binary field {key} ends in a newline"
                );
                out.push((key, value));
                d = &d[nl + 10 + len..];
            }
        }
        out
    }

    fn text(fields: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    #[test]
    fn a_value_with_a_newline_takes_the_binary_form() {
        let mut out = Vec::new();
        field(&mut out, "MESSAGE", b"plain");
        assert_eq!(out, b"MESSAGE=plain\n");
        let mut out = Vec::new();
        field(&mut out, "MESSAGE", b"two\nlines");
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&[9, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(out, want);
        // An empty line is an empty value, not a missing one.
        let mut out = Vec::new();
        field(&mut out, "MESSAGE", b"");
        assert_eq!(out, b"MESSAGE=\n");
    }

    #[test]
    fn an_entry_has_every_field() {
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let common = [
            kv("SYSLOG_IDENTIFIER", "web"),
            kv("RKT_APP_NAME", "web"),
            kv("CONTAINER_NAME", "web"),
            kv("RKT_POD_UUID", UUID),
            kv("CONTAINER_ID", "0f5b7c2e9a41"),
            kv("CONTAINER_ID_FULL", "0f5b7c2e9a414c3d8e6f1a2b3c4d5e6f"),
        ];
        let got = text(&parse(&entry(
            &pod_fields(UUID),
            "web",
            Stream::Stdout,
            true,
            b"hi there",
        )));
        let mut want = vec![kv("MESSAGE", "hi there"), kv("PRIORITY", "6")];
        want.extend(common.iter().cloned());
        assert_eq!(got, want);

        let got = text(&parse(&entry(
            &pod_fields(UUID),
            "web",
            Stream::Stderr,
            false,
            b"a\nb",
        )));
        let mut want = vec![kv("MESSAGE", "a\nb"), kv("PRIORITY", "3")];
        want.extend(common.iter().cloned());
        want.push(kv("CONTAINER_PARTIAL_MESSAGE", "true"));
        assert_eq!(got, want);
    }

    /// A bound datagram socket standing in for journald's (a real socket, read here).
    fn server() -> (tempfile::TempDir, PathBuf, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        (dir, path, sock)
    }

    fn received(server: &UnixDatagram) -> Vec<Vec<(String, Vec<u8>)>> {
        let mut buf = vec![0u8; 64 << 10];
        let mut out = Vec::new();
        while let Ok(n) = server.recv(&mut buf) {
            out.push(parse(&buf[..n]));
        }
        out
    }

    fn message(fields: &[(String, Vec<u8>)]) -> String {
        let (_, v) = fields.iter().find(|(k, _)| k == "MESSAGE").unwrap();
        String::from_utf8_lossy(v).into_owned()
    }

    #[test]
    fn records_reach_the_socket_and_a_missing_socket_is_an_error() {
        let (_dir, path, server) = server();
        let mut j = Journal::connect(&path, UUID).unwrap();
        j.record("a", Stream::Stdout, true, b"one");
        j.record("a", Stream::Stderr, true, b"two");
        let got = received(&server);
        assert_eq!(got.len(), 2);
        assert_eq!(message(&got[0]), "one");
        assert_eq!(message(&got[1]), "two");
        assert!(!j.wants_write());

        let err = Journal::connect(&path.with_file_name("absent"), UUID).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn a_busy_journald_gets_a_bounded_backlog_in_order() {
        let (_dir, path, server) = server();
        let mut j = Journal::connect(&path, UUID).unwrap();
        let line = vec![b'x'; 16 << 10];
        let total = 2 * BACKLOG_BYTES / line.len();
        for i in 0..total {
            let mut text = format!("{i:06} ").into_bytes();
            text.extend_from_slice(&line);
            j.record("a", Stream::Stdout, true, &text);
        }
        assert!(j.wants_write(), "nothing was queued");
        assert!(j.backlog_bytes <= BACKLOG_BYTES);
        assert!(j.dropped > 0, "nothing was dropped");
        // journald catches up: the queue drains, in order, without gaps but for the drops.
        let mut got = Vec::new();
        for _ in 0..10_000 {
            got.extend(received(&server));
            j.flush();
            if !j.wants_write() {
                break;
            }
        }
        got.extend(received(&server));
        assert!(!j.wants_write());
        let seq: Vec<usize> = got
            .iter()
            .map(|f| message(f)[..6].parse().unwrap())
            .collect();
        assert_eq!(seq.len() as u64 + j.dropped, total as u64);
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "out of order: {seq:?}");
        assert_eq!(seq[0], 0);
    }

    #[test]
    fn a_journald_that_went_away_ends_the_copies() {
        let (_dir, path, server) = server();
        let mut j = Journal::connect(&path, UUID).unwrap();
        drop(server);
        j.record("a", Stream::Stdout, true, b"lost");
        assert!(j.fd().is_none());
        assert!(!j.wants_write());
        j.record("a", Stream::Stdout, true, b"ignored");
        j.finish(Duration::from_millis(10));
    }
}
