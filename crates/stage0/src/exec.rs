//! Handing a pod to stage1: find the flavor's binary, seal a copy of it in memory, exec it.
//!
//! The copy matters: a process in the pod that could write to `/proc/<stage1 pid>/exe` would
//! otherwise overwrite the engine's binary on the host (runc's CVE-2019-5736). A sealed memfd
//! cannot be written by anyone, and stage1 keeps no other handle on the file.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{MemfdFlags, SealFlags};

use crate::Stage0Error;
use crate::spec::Stage1Location;

/// The ns flavor's binary name.
pub const STAGE1_BINARY: &str = "rkt-stage1";
/// Where an installed rkt keeps its stage1 when it is not next to the `rkt` binary.
pub const STAGE1_INSTALL_DIR: &str = "/usr/lib/rkt/stage1";

/// Finds the stage1 binary: `--stage1-path`, else next to the running `rkt`, else the install
/// directory.
pub fn stage1_binary(loc: &Stage1Location) -> Result<PathBuf, Stage0Error> {
    if let Some(p) = &loc.path {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(Stage0Error::Usage(format!(
                "--stage1-path {} is not a file",
                p.display()
            )))
        };
    }
    let mut tried = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        tried.push(dir.join(STAGE1_BINARY));
    }
    tried.push(Path::new(STAGE1_INSTALL_DIR).join(STAGE1_BINARY));
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        Stage0Error::Usage(format!(
            "no stage1 found (looked for {}); build it with `cargo build --bins` or pass \
             --stage1-path",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// A sealed in-memory copy of `bin`.
fn sealed_copy(bin: &Path) -> Result<OwnedFd, Stage0Error> {
    let err = |source: std::io::Error| Stage0Error::Stage1 {
        path: bin.display().to_string(),
        source,
    };
    let fd = rustix::fs::memfd_create(
        STAGE1_BINARY,
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
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

/// A stage1 binary on its way into a sealed memfd, copied on a thread of its own.
///
/// The copy is the costliest single step of `rkt run` on a small machine (a 2 MB binary into
/// fresh shmem pages, 1.5–2 ms here), and nothing before the exec needs it: `rkt run` starts it
/// as soon as it knows which stage1 to run, so it overlaps the store lookup and the pod
/// directory. Dropping it waits for the thread, so no thread outlives it (a process that forks
/// afterwards stays single-threaded).
pub struct Stage1Image {
    path: PathBuf,
    copy: Option<std::thread::JoinHandle<Result<OwnedFd, Stage0Error>>>,
}

impl Stage1Image {
    /// Starts sealing `path`. If no thread can be made the copy happens at exec time instead.
    pub fn start(path: PathBuf) -> Stage1Image {
        let src = path.clone();
        let copy = std::thread::Builder::new()
            .name("seal-stage1".into())
            .spawn(move || sealed_copy(&src))
            .ok();
        Stage1Image { path, copy }
    }

    /// `path`, to be copied only if it is exec'd (`rkt prepare` only checks it is there).
    pub fn unsealed(path: PathBuf) -> Stage1Image {
        Stage1Image { path, copy: None }
    }

    /// The binary being copied.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sealed copy, once finished.
    fn finish(mut self) -> Result<OwnedFd, Stage0Error> {
        match self.copy.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Stage0Error::Stage1 {
                    path: self.path.display().to_string(),
                    source: std::io::Error::other("the thread copying it panicked"),
                })
            }),
            None => sealed_copy(&self.path),
        }
    }
}

impl Drop for Stage1Image {
    fn drop(&mut self) {
        if let Some(thread) = self.copy.take() {
            let _ = thread.join();
        }
    }
}

/// Execs `ENTRYPOINT --pod-dir DIR [--debug] ARGS…` of `stage1` from its sealed copy.
/// `lock_fd`, if given, is passed as `RKT_LOCK_FD` and must already be inheritable. Returns
/// only on failure.
pub fn exec_stage1(
    stage1: Stage1Image,
    entrypoint: &str,
    pod_dir: &Path,
    debug: bool,
    args: &[String],
    lock_fd: Option<OwnedFd>,
) -> Stage0Error {
    let bin = stage1.path().to_owned();
    let err = |source: std::io::Error| Stage0Error::Stage1 {
        path: bin.display().to_string(),
        source,
    };
    let image = match stage1.finish() {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    let cstr =
        |b: &[u8]| CString::new(b).map_err(|_| err(std::io::Error::other("NUL in argument")));
    let mut argv = vec![
        STAGE1_BINARY.as_bytes().to_vec(),
        entrypoint.as_bytes().to_vec(),
    ];
    argv.push(b"--pod-dir".to_vec());
    argv.push(pod_dir.as_os_str().as_bytes().to_vec());
    if debug {
        argv.push(b"--debug".to_vec());
    }
    argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let argv: Result<Vec<CString>, _> = argv.iter().map(|a| cstr(a)).collect();
    let mut envp: Vec<Vec<u8>> = std::env::vars_os()
        .filter(|(k, _)| k != rkt_stage1::abi::LOCK_FD_ENV)
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .collect();
    if let Some(fd) = &lock_fd {
        envp.push(format!("{}={}", rkt_stage1::abi::LOCK_FD_ENV, fd.as_raw_fd()).into_bytes());
    }
    let envp: Result<Vec<CString>, _> = envp.iter().map(|e| cstr(e)).collect();
    let (argv, envp) = match (argv, envp) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    // The lock fd must stay open across exec: stage1 holds the pod's lock with it.
    let _keep = lock_fd;
    match nix::unistd::fexecve(image.as_fd(), &argv, &envp) {
        Ok(never) => match never {},
        Err(e) => err(std::io::Error::from(e)),
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
