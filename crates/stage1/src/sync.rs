//! Parent/child synchronisation across `fork`: typed messages over pipes, and an error record
//! that survives the fork.
//!
//! Every process stage1 forks (the pod supervisor, each app, an entered command) is set up in
//! steps that the parent must be able to order and whose failures the parent must be able to
//! report with the detail the child had. Each fork gets one [`channel`]:
//!
//! ```text
//!   parent                                   child
//!   ──────                                   ─────
//!   fork ─────────────────────────────────▶ wait_release()        (blocks)
//!   (puts the child in its cgroup,
//!    records its pid)
//!   release() ───────── Release ──────────▶ sets itself up …
//!   wait_exec()  ◀──── ChildError ───────── on failure: report(), exit
//!                ◀──── EOF ──────────────── on success: execve closes the pipe (close-on-exec)
//! ```
//!
//! Messages are a little-endian `u32` length and that many bytes of JSON. EOF on the report pipe
//! is the success signal: its write end is close-on-exec and nothing else holds it, so it closes
//! exactly when `execve` succeeds (or when the child dies, which the parent then sees as the
//! child's exit status).
//!
//! The release goes over a Unix socket rather than a pipe so that it can carry descriptors the
//! parent made after the fork (`SCM_RIGHTS`): stage1 builds the apps' root filesystems while
//! its supervisor makes the pod's namespaces, and hands them over with the release.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The largest message either side accepts (an error record is a few hundred bytes).
const MAX_MESSAGE: u32 = 64 << 10;

/// The most descriptors one release carries: the kernel's `SCM_MAX_FD`. Slots past it go
/// empty, and their owner falls back to making the resource itself.
pub const MAX_PASSED_FDS: usize = 253;

/// A failure in a forked child, as it crosses back to the parent: which step (`stage`), which
/// operation, on which path, with which errno, and anything else worth saying.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildError {
    /// The setup step: `rootfs`, `mounts`, `dev`, `user`, `identity`, `seccomp`, `exec`, …
    pub stage: String,
    /// The operation that failed, as a phrase ("mount overlayfs", "look up the user").
    pub op: String,
    /// The path it was applied to, if any.
    #[serde(default)]
    pub path: Option<String>,
    /// The errno, if a syscall failed.
    #[serde(default)]
    pub errno: Option<i32>,
    /// More detail, or what to do about it.
    #[serde(default)]
    pub message: Option<String>,
}

impl ChildError {
    /// A failure of `op` in `stage`.
    pub fn new(stage: &str, op: impl Into<String>) -> Self {
        ChildError {
            stage: stage.to_owned(),
            op: op.into(),
            path: None,
            errno: None,
            message: None,
        }
    }

    /// Adds the path.
    #[must_use]
    pub fn path(mut self, path: impl AsRef<std::path::Path>) -> Self {
        self.path = Some(path.as_ref().display().to_string());
        self
    }

    /// Adds the errno of an I/O error (nothing if it has none), or its text as the message.
    #[must_use]
    pub fn io(mut self, e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => self.errno = Some(n),
            None => self.message = Some(e.to_string()),
        }
        self
    }

    /// Adds an errno.
    #[must_use]
    pub fn errno(self, errno: impl Into<io::Error>) -> Self {
        let e: io::Error = errno.into();
        self.io(&e)
    }

    /// Adds a message.
    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: could not {}", self.stage, self.op)?;
        if let Some(p) = &self.path {
            write!(f, " {p}")?;
        }
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        if let Some(n) = self.errno {
            write!(f, ": {}", nix::errno::Errno::from_raw(n).desc())?;
        }
        Ok(())
    }
}

impl std::error::Error for ChildError {}

/// What the parent tells a child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum ToChild {
    /// Sync 2: the child is in its cgroup and its pid is recorded; go on. Which of the
    /// parent's descriptor slots are filled: their descriptors ride along, in order.
    Release(Vec<bool>),
}

/// What a child tells its parent (besides EOF, which means "exec'd").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum ToParent {
    /// Setup failed; the child exits right after.
    Failed(ChildError),
}

/// Why the channel itself failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The pipes could not be made.
    #[error("could not create the synchronisation pipes")]
    Pipe(#[source] io::Error),
    /// Reading or writing a pipe failed.
    #[error("could not {0} the synchronisation pipe")]
    Io(&'static str, #[source] io::Error),
    /// The other side went away before the message this side waits for.
    #[error("the other process exited before {0}")]
    Closed(&'static str),
    /// A message that does not parse (a bug, or memory corruption in the child).
    #[error("unreadable message on the synchronisation pipe")]
    Garbled(#[source] serde_json::Error),
    /// A message longer than any we send.
    #[error("a synchronisation message of {0} bytes is longer than any rkt sends")]
    TooLong(u32),
    /// The descriptors that came with a release are not the ones it announced.
    #[error("a release announced {announced} descriptors but carried {carried}")]
    Descriptors {
        /// How many the message said.
        announced: usize,
        /// How many arrived.
        carried: usize,
    },
}

/// The parent's ends of a [`channel`].
#[derive(Debug)]
pub struct ParentSide {
    release: OwnedFd,
    report: File,
}

/// The child's ends of a [`channel`].
#[derive(Debug)]
pub struct ChildSide {
    release: OwnedFd,
    report: File,
}

/// A socket pair for the release and a pipe for the report, for one fork; all four ends are
/// close-on-exec. After the fork, the parent drops the [`ChildSide`] and the child drops the
/// [`ParentSide`].
pub fn channel() -> Result<(ParentSide, ChildSide), SyncError> {
    let (release_parent, release_child) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| SyncError::Pipe(e.into()))?;
    let (report_r, report_w) = pipe()?;
    Ok((
        ParentSide {
            release: release_parent,
            report: File::from(report_r),
        },
        ChildSide {
            release: release_child,
            report: File::from(report_w),
        },
    ))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SyncError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| SyncError::Pipe(e.into()))
}

impl ParentSide {
    /// Sync 2: lets the child go on with its setup.
    pub fn release(&mut self) -> Result<(), SyncError> {
        self.release_with(&[])
    }

    /// Sync 2, handing the child a copy of each descriptor in `fds` (the child gets the same
    /// slots back from [`ChildSide::wait_release_with`]; slots past [`MAX_PASSED_FDS`] filled
    /// ones arrive empty).
    pub fn release_with(&mut self, fds: &[Option<BorrowedFd<'_>>]) -> Result<(), SyncError> {
        let mut passed = Vec::new();
        let slots: Vec<bool> = fds
            .iter()
            .map(|fd| match fd {
                Some(fd) if passed.len() < MAX_PASSED_FDS => {
                    passed.push(*fd);
                    true
                }
                _ => false,
            })
            .collect();
        let frame = frame(&ToChild::Release(slots))?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !passed.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&passed)) {
            return Err(SyncError::Io(
                "write",
                io::Error::from(io::ErrorKind::InvalidInput),
            ));
        }
        // The descriptors go with the first byte; the rest of a frame (never more than one
        // socket buffer) follows in order.
        let mut sent = loop {
            match rustix::net::sendmsg(
                &self.release,
                &[IoSlice::new(&frame)],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r.map_err(|e| SyncError::Io("write", e.into()))?,
            }
        };
        while sent < frame.len() {
            match rustix::net::send(&self.release, &frame[sent..], SendFlags::NOSIGNAL) {
                Ok(n) => sent += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(SyncError::Io("write", e.into())),
            }
        }
        Ok(())
    }

    /// Sync 3: waits until the child has exec'd (`Ok(Ok(()))`, also if it died before: its exit
    /// status tells) or has reported a setup failure (`Ok(Err(_))`).
    pub fn wait_exec(&mut self) -> Result<Result<(), ChildError>, SyncError> {
        match recv::<ToParent, _>(&mut self.report)? {
            None => Ok(Ok(())),
            Some(ToParent::Failed(e)) => Ok(Err(e)),
        }
    }
}

impl ChildSide {
    /// Sync 2, child side: blocks until the parent releases it. An error means the parent is
    /// gone or broken; the child should exit.
    pub fn wait_release(&mut self) -> Result<(), SyncError> {
        self.wait_release_with().map(drop)
    }

    /// [`wait_release`](Self::wait_release), returning the descriptors the parent passed with
    /// [`ParentSide::release_with`] in their slots (close-on-exec).
    pub fn wait_release_with(&mut self) -> Result<Vec<Option<OwnedFd>>, SyncError> {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_PASSED_FDS))];
        let mut reader = SocketReader {
            socket: &self.release,
            control: RecvAncillaryBuffer::new(&mut space),
            received: Vec::new(),
            truncated: false,
        };
        let slots = match recv::<ToChild, _>(&mut reader)? {
            Some(ToChild::Release(slots)) => slots,
            None => return Err(SyncError::Closed("releasing the child")),
        };
        let SocketReader {
            received,
            truncated,
            ..
        } = reader;
        let announced = slots.iter().filter(|s| **s).count();
        if truncated || announced != received.len() {
            return Err(SyncError::Descriptors {
                announced,
                carried: received.len(),
            });
        }
        let mut fds = received.into_iter();
        Ok(slots
            .into_iter()
            .map(|filled| if filled { fds.next() } else { None })
            .collect())
    }

    /// Reports a setup failure to the parent (best effort: if the parent is gone there is no
    /// one left to tell).
    pub fn report(&mut self, err: &ChildError) {
        let _ = send(&mut self.report, &ToParent::Failed(err.clone()));
    }
}

/// Reads the release socket, keeping every descriptor that arrives with the bytes.
struct SocketReader<'s, 'b> {
    socket: &'s OwnedFd,
    control: RecvAncillaryBuffer<'b>,
    received: Vec<OwnedFd>,
    /// Some descriptors did not fit the control buffer.
    truncated: bool,
}

impl Read for SocketReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let msg = rustix::net::recvmsg(
            self.socket,
            &mut [IoSliceMut::new(buf)],
            &mut self.control,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        if msg.flags.contains(ReturnFlags::CTRUNC) {
            self.truncated = true;
        }
        for m in self.control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                self.received.extend(fds);
            }
        }
        Ok(msg.bytes)
    }
}

fn frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, SyncError> {
    let body = serde_json::to_vec(msg).map_err(SyncError::Garbled)?;
    let len = u32::try_from(body.len()).map_err(|_| SyncError::TooLong(u32::MAX))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn send<T: Serialize>(pipe: &mut File, msg: &T) -> Result<(), SyncError> {
    pipe.write_all(&frame(msg)?)
        .map_err(|e| SyncError::Io("write", e))
}

/// One message, or `None` on EOF before its first byte.
fn recv<T: DeserializeOwned, R: Read>(pipe: &mut R) -> Result<Option<T>, SyncError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < len.len() {
        match pipe.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(SyncError::Closed("finishing a message")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SyncError::Io("read", e)),
        }
    }
    let len = u32::from_le_bytes(len);
    if len > MAX_MESSAGE {
        return Err(SyncError::TooLong(len));
    }
    let mut body = vec![0u8; len as usize];
    pipe.read_exact(&mut body).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            SyncError::Closed("finishing a message")
        } else {
            SyncError::Io("read", e)
        }
    })?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(SyncError::Garbled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_then_error_then_eof() {
        let (mut parent, mut child) = channel().unwrap();
        parent.release().unwrap();
        child.wait_release().unwrap();
        let err = ChildError::new("exec", "find the executable")
            .path("nosuch")
            .errno(rustix::io::Errno::NOENT)
            .message("not in PATH /bin");
        child.report(&err);
        drop(child);
        assert_eq!(parent.wait_exec().unwrap(), Err(err.clone()));
        assert_eq!(parent.wait_exec().unwrap(), Ok(()));
        assert_eq!(
            err.to_string(),
            "exec: could not find the executable nosuch: not in PATH /bin: No such file or \
             directory"
        );
    }

    #[test]
    fn a_release_hands_over_descriptors_in_their_slots() {
        let (mut parent, mut child) = channel().unwrap();
        let (a_r, a_w) = pipe().unwrap();
        let (b_r, b_w) = pipe().unwrap();
        use std::os::fd::AsFd;
        parent
            .release_with(&[Some(a_w.as_fd()), None, Some(b_w.as_fd())])
            .unwrap();
        drop((a_w, b_w));
        let got = child.wait_release_with().unwrap();
        assert_eq!(got.len(), 3);
        assert!(got[1].is_none());
        // Each slot holds its own descriptor, close-on-exec: the copies write into the pipes
        // the parent made.
        for (fd, read_end, text) in [(&got[0], a_r, b"a"), (&got[2], b_r, b"b")] {
            let fd = fd.as_ref().unwrap();
            let flags = rustix::io::fcntl_getfd(fd).unwrap();
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
            rustix::io::write(fd, text).unwrap();
            let mut buf = [0u8; 1];
            rustix::io::read(&read_end, &mut buf).unwrap();
            assert_eq!(&buf, text);
        }
    }

    #[test]
    fn a_vanished_parent_is_an_error_for_the_child() {
        let (parent, mut child) = channel().unwrap();
        drop(parent);
        assert!(matches!(child.wait_release(), Err(SyncError::Closed(_))));
    }

    #[test]
    fn garbage_and_oversized_frames_are_refused() {
        let (mut parent, mut child) = channel().unwrap();
        child.report.write_all(&u32::MAX.to_le_bytes()).unwrap();
        assert!(matches!(parent.wait_exec(), Err(SyncError::TooLong(_))));
        child.report.write_all(&3u32.to_le_bytes()).unwrap();
        child.report.write_all(b"{x}").unwrap();
        assert!(matches!(parent.wait_exec(), Err(SyncError::Garbled(_))));
    }
}
