//! `rkt-stage1 stop`: SIGTERM (or SIGKILL with `--force`) to the pod's supervisor, which
//! stops the apps in order (SIGKILL to PID 1 ends the whole PID namespace at once).
//!
//! The signal goes through a pidfd opened only once the pod is known to be running (its lock
//! is held) and the pid known to be its supervisor (the process is in the pod's supervisor
//! cgroup), so a recycled pid never receives it.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::process::{PidfdFlags, Signal};

use super::error::Stage1Error;
use super::{run, status};

/// Stops the pod in `pod_dir`.
pub fn stop(pod_dir: &Path, force: bool) -> Result<(), Stage1Error> {
    if !is_running(pod_dir)? {
        return Err(Stage1Error::State(format!(
            "the pod in {} is not running",
            pod_dir.display()
        )));
    }
    let pid = status::read_supervisor_pid(pod_dir)?.ok_or_else(|| {
        Stage1Error::State("the pod has not recorded its supervisor's pid yet; try again".into())
    })?;
    let not_running = || Stage1Error::State(format!("the pod's supervisor (pid {pid}) is gone"));
    let raw = rustix::process::Pid::from_raw(pid).ok_or_else(not_running)?;
    let pidfd = match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Err(not_running()),
        Err(e) => {
            return Err(Stage1Error::sys(
                format!("open a pidfd for process {pid}"),
                e,
            ));
        }
    };
    let cgroup = run::recorded_cgroup(pod_dir)?
        .ok_or_else(|| Stage1Error::State("the pod has no cgroup record".into()))?;
    let supervisor = cgroup
        .supervisor()
        .map_err(|e| Stage1Error::cgroup("find the supervisor's cgroup", e))?;
    let procs = supervisor
        .procs()
        .map_err(|e| Stage1Error::cgroup("list the supervisor's cgroup", e))?;
    if !procs.contains(&pid) {
        return Err(not_running());
    }
    let sig = if force { Signal::KILL } else { Signal::TERM };
    match rustix::process::pidfd_send_signal(pidfd.as_fd(), sig) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::SRCH) => Err(not_running()),
        Err(e) => Err(Stage1Error::sys(format!("signal process {pid}"), e)),
    }
}

/// Whether some process holds the pod's lock (a shared lock cannot be had while stage1 holds
/// its exclusive one).
pub fn is_running(pod_dir: &Path) -> Result<bool, Stage1Error> {
    let dir = rustix::fs::open(
        pod_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Stage1Error::sys(format!("open the pod directory {}", pod_dir.display()), e))?;
    match rustix::fs::flock(&dir, FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(false),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(true),
        Err(e) => Err(Stage1Error::sys("probe the pod lock", e)),
    }
}
