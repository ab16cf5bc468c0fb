//! The stage1 binary as stage0 execs it: a file no process in the pod can write.
//!
//! A process in the pod that could write to `/proc/<stage1 pid>/exe` would otherwise overwrite
//! the engine's binary on the host (runc's CVE-2019-5736). Two ways to close that, as runc
//! 1.2 has them:
//!
//! - **A read-only overlayfs view** of the binary's directory ([`crate::stage1_view`]): the
//!   binary is opened through it, so `/proc/<pid>/exe` is a file on a read-only filesystem
//!   with no upper layer, which no process in a pod can remount or unwrap. Nothing is copied:
//!   the pages are the page cache's, shared by every pod; and the view is made once per
//!   version of the binary, attached under `/run/rkt`, not once per pod.
//! - **A sealed memfd copy**, where overlayfs or the new mount API is not available (or the
//!   binary's directory cannot be a lower layer). It costs a copy of the binary into fresh
//!   memory on every pod start, and freeing it when stage1 exits.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{MemfdFlags, SealFlags};

use crate::Stage0Error;

/// The memfd's name (its `/proc/<pid>/exe` reads `/memfd:rkt-stage1 (deleted)`).
const MEMFD_NAME: &str = "rkt-stage1";

/// A stage1 binary ready to exec: a read-only view of it, or a sealed copy being made.
pub struct Stage1Image {
    path: PathBuf,
    state: State,
}

enum State {
    /// Opened through the overlay view, or copied already.
    Ready(OwnedFd),
    /// Being copied into a sealed memfd on a thread of its own.
    Copying(std::thread::JoinHandle<Result<OwnedFd, Stage0Error>>),
    /// Not prepared (`rkt prepare` only checks that it is there).
    Unsealed,
}

impl Stage1Image {
    /// Opens `path` through a read-only overlay view, or, where that cannot be made, starts
    /// copying it into a sealed memfd on a thread, so the copy (1.5–2 ms on a small machine)
    /// overlaps the store lookup and the pod directory. If no thread can be made the copy
    /// happens at exec time instead.
    pub fn start(path: PathBuf) -> Stage1Image {
        let state = match crate::stage1_view::open(&path) {
            Ok(fd) => State::Ready(fd),
            Err(e) => {
                tracing::debug!(
                    "no read-only overlay view of {} ({e}); copying it into a sealed memfd",
                    path.display()
                );
                let src = path.clone();
                match std::thread::Builder::new()
                    .name("seal-stage1".into())
                    .spawn(move || sealed_copy(&src))
                {
                    Ok(thread) => State::Copying(thread),
                    Err(_) => State::Unsealed,
                }
            }
        };
        Stage1Image { path, state }
    }

    /// `path`, to be protected only if it is exec'd.
    pub fn unsealed(path: PathBuf) -> Stage1Image {
        Stage1Image {
            path,
            state: State::Unsealed,
        }
    }

    /// The binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The protected binary, to exec.
    pub(crate) fn finish(mut self) -> Result<OwnedFd, Stage0Error> {
        match std::mem::replace(&mut self.state, State::Unsealed) {
            State::Ready(fd) => Ok(fd),
            State::Copying(thread) => thread.join().unwrap_or_else(|_| {
                Err(Stage0Error::Stage1 {
                    path: self.path.display().to_string(),
                    source: std::io::Error::other("the thread copying it panicked"),
                })
            }),
            State::Unsealed => sealed_copy(&self.path),
        }
    }
}

impl Drop for Stage1Image {
    /// Waits for a copy still being made, so no thread outlives the image (a process that
    /// forks afterwards stays single-threaded).
    fn drop(&mut self) {
        if let State::Copying(thread) = std::mem::replace(&mut self.state, State::Unsealed) {
            let _ = thread.join();
        }
    }
}

/// A sealed in-memory copy of `bin`.
fn sealed_copy(bin: &Path) -> Result<OwnedFd, Stage0Error> {
    let err = |source: std::io::Error| Stage0Error::Stage1 {
        path: bin.display().to_string(),
        source,
    };
    let fd = rustix::fs::memfd_create(MEMFD_NAME, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| err(e.into()))?;
    let mut out = File::from(fd);
    let mut src = File::open(bin).map_err(err)?;
    std::io::copy(&mut src, &mut out).map_err(err)?;
    retry_while_busy(SEAL_ATTEMPTS, || {
        rustix::fs::fcntl_add_seals(
            out.as_fd(),
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
        )
    })
    .map_err(|e| err(e.into()))?;
    Ok(OwnedFd::from(out))
}

/// How many times sealing is tried before `rkt run` gives up.
const SEAL_ATTEMPTS: u32 = 5;

/// Runs `op` until it returns anything but `EBUSY`, at most `attempts` times.
///
/// `F_SEAL_WRITE` fails with `EBUSY` while any page of the file has a reference beyond the page
/// cache's. The kernel drains its per-CPU page lists once and then waits up to 150 ms for the
/// rest, but on a busy host a page that reclaim or compaction just put back sits in such a list
/// again (CI saw this once with a 47 MB debug stage1). Each new attempt drains them again.
fn retry_while_busy<T>(
    attempts: u32,
    mut op: impl FnMut() -> rustix::io::Result<T>,
) -> rustix::io::Result<T> {
    let mut left = attempts.max(1);
    loop {
        left -= 1;
        match op() {
            Err(rustix::io::Errno::BUSY) if left > 0 => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    #[test]
    fn sealing_is_tried_again_while_pages_are_busy() {
        let mut calls = 0;
        let got = retry_while_busy(5, || {
            calls += 1;
            if calls < 3 {
                Err(Errno::BUSY)
            } else {
                Ok(calls)
            }
        });
        assert_eq!(got, Ok(3));
    }

    #[test]
    fn a_page_busy_for_good_fails_after_the_last_attempt() {
        let mut calls = 0;
        let got: rustix::io::Result<()> = retry_while_busy(5, || {
            calls += 1;
            Err(Errno::BUSY)
        });
        assert_eq!(got, Err(Errno::BUSY));
        assert_eq!(calls, 5);
    }

    #[test]
    fn other_errors_are_not_retried() {
        let mut calls = 0;
        let got: rustix::io::Result<()> = retry_while_busy(5, || {
            calls += 1;
            Err(Errno::PERM)
        });
        assert_eq!(got, Err(Errno::PERM));
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_sealed_copy_cannot_be_written_or_resized() {
        let bin = std::env::current_exe().unwrap();
        let fd = sealed_copy(&bin).unwrap();
        let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
        assert!(
            seals
                .contains(SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL)
        );
        let len = rustix::fs::fstat(&fd).unwrap().st_size;
        assert_eq!(len as u64, std::fs::metadata(&bin).unwrap().len());
        assert_eq!(rustix::io::pwrite(&fd, b"x", 0), Err(Errno::PERM));
    }
}
