//! The only crate of rkt allowed `unsafe`. Every other crate says `#![forbid(unsafe_code)]`
//! and calls these wrappers, each of which states the invariant that makes it sound.
//!
//! What is here, and why it cannot be safe elsewhere:
//! - [`fork`]: `fork(2)` is sound only in a single-threaded process (the child gets one
//!   thread; locks held by others would stay locked forever). We check that the process has
//!   one thread before forking instead of trusting every caller.
//! - [`fork_into_cgroup`]: the same fork through `clone3(2)` with `CLONE_INTO_CGROUP`, which
//!   libc does not wrap, so the child is born in a cgroup v2 directory.
//! - [`close_fds_from`], [`cloexec_fds_from`]: closing descriptors the process does not own as
//!   Rust objects.
//! - [`take_inherited_fd`]: owning a descriptor a parent process passed by number.
//! - [`set_interface_up`]: the `SIOCSIFFLAGS` ioctl, which neither rustix nor nix wraps.
//! - [`mount_set_read_only`]: `mount_setattr(2)`, which neither rustix nor nix wraps.
//! - [`reset_signal_dispositions`]: `signal(2)`, which nix marks unsafe for handlers' sake.
//! - [`bpf`]: loading and attaching a cgroup v2 device filter, which nothing wraps.
//! - [`pages`]: `madvise(2)` on the process's own clean code mappings when it goes idle.

pub mod bpf;
pub mod pages;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    /// The process has more than one thread, so forking is not sound.
    #[error(
        "refusing to fork: this process has {0} threads (rkt forks only from single-threaded \
         processes; this is a bug in rkt)"
    )]
    Threaded(usize),
    /// The kernel refused a BPF program.
    #[error("{op} failed{}", if verifier.is_empty() { String::new() } else { format!(" (verifier: {verifier})") })]
    Bpf {
        /// Which call.
        op: &'static str,
        /// The verifier's log, if it wrote one.
        verifier: String,
        /// The error.
        #[source]
        source: nix::Error,
    },
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

/// Refuses ([`SysError::Threaded`]) unless the calling process has exactly one thread, which
/// is what makes a forked child a consistent copy of the process.
fn ensure_single_threaded() -> Result<(), SysError> {
    let threads = thread_count().map_err(|e| SysError::Errno {
        op: "counting threads",
        source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    if threads != 1 {
        return Err(SysError::Threaded(threads));
    }
    Ok(())
}

/// `fork(2)`, refused unless the process is single-threaded.
///
/// In the child only async-signal-safe work is guaranteed to be sound in general; since the
/// process had one thread, the child is an exact copy of a consistent process and may run
/// ordinary Rust code (allocation included) before it execs or exits.
pub fn fork() -> Result<Fork, SysError> {
    ensure_single_threaded()?;
    // SAFETY: the process has exactly one thread (checked just above; nothing in this process
    // starts threads behind the caller's back between the check and the call, as the caller
    // is single-threaded), so the child is a consistent copy of the whole process.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { child }) => Ok(Fork::Parent(child)),
        Ok(nix::unistd::ForkResult::Child) => Ok(Fork::Child),
        Err(source) => Err(SysError::Errno { op: "fork", source }),
    }
}

/// `CLONE_INTO_CGROUP` (linux/sched.h); libc's constant is an overflowing `c_int`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `clone3(2)` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// [`fork`], but the child starts its life in the cgroup v2 directory `cgroup` (open with
/// `O_PATH` or `O_RDONLY`): `clone3(2)` with `CLONE_INTO_CGROUP` (Linux 5.7). Unlike writing
/// the child's pid to `cgroup.procs` afterwards, this takes no global lock (a migration's
/// first taking of the kernel's threadgroup lock waits for an RCU grace period, milliseconds),
/// and the child is never seen outside the cgroup. cgroup v1 memberships are inherited as
/// with `fork`.
///
/// Refused, like [`fork`], unless the process is single-threaded. A kernel without `clone3` or
/// `CLONE_INTO_CGROUP` answers [`SysError::Errno`] with `ENOSYS`, `E2BIG` or `EINVAL` and no
/// process is made: fall back to [`fork`] and a write to `cgroup.procs`.
pub fn fork_into_cgroup(cgroup: BorrowedFd<'_>) -> Result<Fork, SysError> {
    ensure_single_threaded()?;
    let fd = u64::try_from(cgroup.as_raw_fd()).unwrap_or(u64::MAX);
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: u64::try_from(libc::SIGCHLD).unwrap_or(17),
        cgroup: fd,
        ..CloneArgs::default()
    };
    // SAFETY: without CLONE_VM (and with stack 0) clone3 is fork: the child gets its own copy
    // of the address space and returns from this same call on its copy of our stack. The
    // process has exactly one thread (checked above), so no lock can be held by a thread that
    // does not exist in the child. What glibc's fork does beyond the syscall is skipped: its
    // atfork handlers (rkt registers none, and no library it links does), and refreshing the
    // TID cached in the thread descriptor, which keeps the parent's value in the child; glibc
    // uses it only to tell the threads of one process apart (recursive mutex owners), and
    // the child has one thread, so its value stays consistent; `getpid`, `gettid` and
    // `raise` ask the kernel. `args` is a valid clone_args that outlives the call, and its
    // size is passed with it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        -1 => Err(SysError::Errno {
            op: "clone3(CLONE_INTO_CGROUP)",
            source: nix::Error::last(),
        }),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(nix::unistd::Pid::from_raw(
            i32::try_from(pid).unwrap_or(i32::MAX),
        ))),
    }
}

/// Whether [`fork_into_cgroup`] failed because the kernel lacks `clone3` or
/// `CLONE_INTO_CGROUP` (then [`fork`] and a `cgroup.procs` write do the same, slower).
pub fn clone_into_cgroup_unsupported(e: &SysError) -> bool {
    matches!(
        e,
        SysError::Errno { op: "clone3(CLONE_INTO_CGROUP)", source }
            if matches!(*source, nix::Error::ENOSYS | nix::Error::E2BIG | nix::Error::EINVAL)
    )
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

/// Marks every descriptor numbered `first` or above close-on-exec (`close_range(2)` with
/// `CLOSE_RANGE_CLOEXEC`, Linux 5.11), so none of them reaches the program exec'd next while
/// they stay usable until then (an error pipe that must close exactly at exec, for one).
pub fn cloexec_fds_from(first: RawFd) -> Result<(), SysError> {
    let first = u32::try_from(first).unwrap_or(0);
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a descriptor flag; it closes
    // nothing and touches no memory, so no Rust object is invalidated.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(SysError::Errno {
            op: "close_range(CLOSE_RANGE_CLOEXEC)",
            source: nix::Error::last(),
        })
    }
}

/// Takes ownership of descriptor `fd`, which the parent process passed by number (the pod lock
/// in `RKT_LOCK_FD`), after checking that it is open and is not stdin, stdout or stderr.
///
/// Call it once per number, early in `main`, for a number that nothing else in the process
/// has opened or taken (the parent's contract says the descriptor is ours).
pub fn take_inherited_fd(fd: RawFd) -> Result<OwnedFd, SysError> {
    if fd <= 2 {
        return Err(SysError::Errno {
            op: "taking an inherited descriptor (0, 1 and 2 are stdio)",
            source: nix::Error::EBADF,
        });
    }
    // SAFETY: F_GETFD reads a descriptor flag; it takes no pointer and changes nothing.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(SysError::Errno {
            op: "taking an inherited descriptor",
            source: nix::Error::last(),
        });
    }
    // SAFETY: the descriptor is open (checked just above) and, by this function's contract, no
    // other object in the process owns it, so the OwnedFd is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Brings network interface `name` up (`SIOCGIFFLAGS`, then `SIOCSIFFLAGS` with `IFF_UP`) in
/// the calling thread's network namespace: what `ip link set lo up` does, without netlink.
pub fn set_interface_up(name: &str) -> Result<(), SysError> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let errno = |op, source| SysError::Errno { op, source };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(errno("naming a network interface", nix::Error::EINVAL));
    }
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| errno("socket(AF_INET, SOCK_DGRAM)", e))?;
    // SAFETY: ifreq is plain old data (a name array and a union of integers and structs of
    // integers), for which all-zero bytes are a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS writes the flags into the ifreq we pass, which lives for the call
    // and is as large as the kernel expects; the socket is open.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } == -1 {
        return Err(errno("ioctl(SIOCGIFFLAGS)", nix::Error::last()));
    }
    // SAFETY: the kernel just filled ifru_flags, the member SIOCGIFFLAGS writes.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads the name and flags from the ifreq, valid for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } == -1 {
        return Err(errno("ioctl(SIOCSIFFLAGS)", nix::Error::last()));
    }
    Ok(())
}

/// Makes the mount whose root `mount` is open at (and with `recursive` every mount below it)
/// read-only, with `mount_setattr(2)` (Linux 5.12). Unlike a `MS_REMOUNT|MS_BIND|MS_RDONLY`
/// remount this reaches the submounts of a recursive bind, in one atomic step.
pub fn mount_set_read_only(mount: BorrowedFd<'_>, recursive: bool) -> Result<(), SysError> {
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` is a valid mount_attr
    // that outlives the call and its size is passed with it; the descriptor is borrowed, so
    // open for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(SysError::Errno {
            op: "mount_setattr(MOUNT_ATTR_RDONLY)",
            source: nix::Error::last(),
        })
    }
}

/// Sets every signal's disposition back to the default, so a program exec'd next does not
/// inherit an ignored signal (the Rust runtime ignores SIGPIPE, and ignored dispositions
/// survive `execve`). Handlers are reset by `execve` anyway; this is for the ignored ones.
pub fn reset_signal_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler, so no code of ours can run in signal context;
        // signal numbers the kernel does not accept (glibc's reserved real-time ones) just
        // fail with EINVAL, which is fine to ignore.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
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

    #[test]
    fn fork_into_cgroup_refuses_a_threaded_process() {
        let t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let dir = std::fs::File::open("/").unwrap();
        assert!(matches!(
            fork_into_cgroup(std::os::fd::AsFd::as_fd(&dir)),
            Err(SysError::Threaded(n)) if n > 1
        ));
        t.join().unwrap();
    }

    #[test]
    fn take_inherited_fd_refuses_stdio_and_closed_numbers() {
        assert!(take_inherited_fd(1).is_err());
        // Far above anything a test process has open.
        assert!(take_inherited_fd(1_000_000).is_err());
    }

    #[test]
    fn set_interface_up_refuses_bad_names() {
        assert!(set_interface_up("").is_err());
        assert!(set_interface_up("a-name-longer-than-ifnamsiz").is_err());
        assert!(set_interface_up("no-such-if0").is_err());
    }
}
