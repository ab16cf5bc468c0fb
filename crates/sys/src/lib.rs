//! The only crate of rkt allowed `unsafe`. Every other crate says `#![forbid(unsafe_code)]`
//! and calls these wrappers, each of which states the invariant that makes it sound.
//!
//! What is here, and why it cannot be safe elsewhere:
//! - [`fork`]: `fork(2)` is sound only in a single-threaded process (the child gets one
//!   thread; locks held by others would stay locked forever). We check that the process has
//!   one thread before forking instead of trusting every caller.
//! - [`close_fds_from`]: closing descriptors the process does not own as Rust objects.

use std::os::fd::RawFd;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// The process has more than one thread, so forking is not sound.
    #[error(
        "refusing to fork: this process has {0} threads (rkt forks only from single-threaded \
         processes; this is a bug in rkt)"
    )]
    Threaded(usize),
    /// The syscall failed.
    #[error("{op} failed")]
    Errno {
        /// Which call.
        op: &'static str,
        /// The error.
        #[source]
        source: nix::Error,
    },
}

/// Which side of a [`fork`] we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// In the parent; the child's pid.
    Parent(nix::unistd::Pid),
    /// In the child.
    Child,
}

/// Number of threads of this process, from `/proc/self/task`.
pub fn thread_count() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// `fork(2)`, refused unless the process is single-threaded.
///
/// In the child only async-signal-safe work is guaranteed to be sound in general; since the
/// process had one thread, the child is an exact copy of a consistent process and may run
/// ordinary Rust code (allocation included) before it execs or exits.
pub fn fork() -> Result<Fork, SysError> {
    let threads = thread_count().map_err(|e| SysError::Errno {
        op: "counting threads",
        source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    if threads != 1 {
        return Err(SysError::Threaded(threads));
    }
    // SAFETY: the process has exactly one thread (checked just above; nothing in this process
    // starts threads behind the caller's back between the check and the call, as the caller
    // is single-threaded), so the child is a consistent copy of the whole process.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Fork::Parent(child)),
        Ok(nix::unistd::ForkResult::Child) => Ok(Fork::Child),
        Err(source) => Err(SysError::Errno { op: "fork", source }),
    }
}

/// Closes every descriptor numbered `first` or above (`close_range(2)`), so nothing the
/// engine holds leaks into an app.
///
/// Call it right before `exec` in a child whose descriptors at and above `first` are not owned
/// by live Rust objects that will be used again (after `exec` none are).
pub fn close_fds_from(first: RawFd) -> Result<(), SysError> {
    let first = u32::try_from(first).unwrap_or(0);
    // SAFETY: close_range takes plain integers and touches no memory; closing descriptors that
    // Rust objects still own is the hazard, and the documented contract is that the caller is
    // about to exec (or exit) and will not use them.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if rc == 0 {
        Ok(())
    } else {
        Err(SysError::Errno {
            op: "close_range",
            source: nix::Error::last(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_refuses_a_threaded_process() {
        // The test harness runs tests on threads, so this process is multi-threaded.
        let t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        assert!(matches!(fork(), Err(SysError::Threaded(n)) if n > 1));
        t.join().unwrap();
    }
}
