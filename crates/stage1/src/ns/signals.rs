//! Signals, the single-threaded way: the signals stage1 acts on are blocked and read from a
//! `signalfd`, so no handler ever runs and nothing is lost between a check and a wait.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::error::Stage1Error;

/// The signals that stop a pod (and that `run` and `enter` pass on to their child).
pub const STOP: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// `si_code` of a signal the kernel sent on its own, such as a terminal's Ctrl-C to its
/// foreground process group (`SI_KERNEL`).
const SI_KERNEL: i32 = 0x80;

/// [`STOP`] and `SIGCHLD`.
pub fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in STOP {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Blocks [`handled`] in the calling thread (and so in every child forked after this, until
/// it resets its mask before `execve`).
pub fn block() -> Result<(), Stage1Error> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled()), None)
        .map_err(|e| Stage1Error::sys("block signals", e))
}

/// A `signalfd` for [`handled`] (which must be blocked).
pub fn signalfd(nonblocking: bool) -> Result<SignalFd, Stage1Error> {
    let mut flags = SfdFlags::SFD_CLOEXEC;
    if nonblocking {
        flags |= SfdFlags::SFD_NONBLOCK;
    }
    SignalFd::with_flags(&handled(), flags).map_err(|e| Stage1Error::sys("create a signalfd", e))
}

/// The shell's view of a wait status: the exit code, or 128 + the signal number.
pub fn exit_code(status: WaitStatus) -> Option<(i32, Option<i32>)> {
    match status {
        WaitStatus::Exited(_, code) => Some((code, None)),
        WaitStatus::Signaled(_, sig, _) => Some((128 + sig as i32, Some(sig as i32))),
        _ => None,
    }
}

/// Waits for `child` (the only child of the caller), passing on [`STOP`] signals that
/// another process sent to the caller, and returns the child's exit code (128 + n for a
/// signal death). Signals the kernel sent itself, a terminal's Ctrl-C, reached the child's
/// process group directly if the child is in it, and are not doubled. Also returns the signal
/// that killed it, if one did.
pub fn forward_and_wait(child: Pid) -> Result<(i32, Option<i32>), Stage1Error> {
    let sfd = signalfd(false)?;
    let mut idle = false;
    loop {
        match nix::sys::wait::waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(status) => {
                if let Some(ended) = exit_code(status) {
                    return Ok(ended);
                }
                continue;
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Stage1Error::sys("wait for the child process", e)),
        }
        if !idle {
            // Quiet for a moment: the pod runs on; give back the startup pages.
            idle = true;
            if !readable_within(&sfd, super::IDLE_AFTER) {
                super::release_startup_pages();
            }
        }
        let info = match sfd.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Stage1Error::sys("read the signalfd", e)),
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        if sig != Signal::SIGCHLD && info.ssi_code != SI_KERNEL {
            tracing::debug!("passing {sig} on to process {child}");
            let _ = nix::sys::signal::kill(child, sig);
        }
    }
}

/// Whether `sfd` has a signal to read within `wait`.
fn readable_within(sfd: &nix::sys::signalfd::SignalFd, wait: std::time::Duration) -> bool {
    use std::os::fd::AsFd as _;
    let ts = super::poll_timeout(wait);
    let fd = sfd.as_fd();
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    // Interrupted or failed: say yes, and let the read find out.
    rustix::event::poll(&mut fds, Some(&ts)).map_or(true, |n| n > 0)
}
