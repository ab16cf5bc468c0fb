//! Forking a pod's process straight into its cgroup.
//!
//! A pid written to `cgroup.procs` waits for an RCU grace period the first time in a while
//! (the kernel's global threadgroup lock; ~8 ms, once most of a pod's start). So nothing is
//! moved that way on the way to an app: the cgroup2 membership comes with the fork
//! (`clone3(CLONE_INTO_CGROUP)`), and the v1 ones from the parent (stage1 joined the
//! supervisor's leaf before forking) or from the child itself, which joins its app cgroup by
//! its thread ([`rkt_cgroups::Cgroup::join_v1`]).

use std::io;
use std::os::fd::AsFd;

use rkt_cgroups::Cgroup;
use rkt_sys::Fork;

use super::error::Stage1Error;

/// Forks a child that is born in `cgroup`'s cgroup2 directory (if it spans one). On a kernel
/// without `CLONE_INTO_CGROUP` (before 5.7) it forks and moves the child there from the parent
/// before returning, so either way the child is in place before the parent releases it.
pub fn fork_into(cgroup: &Cgroup, what: &str) -> Result<Fork, Stage1Error> {
    let failed =
        |e: rkt_sys::SysError| Stage1Error::sys(format!("fork {what}"), io::Error::other(e));
    let dir = cgroup
        .open_v2()
        .map_err(|e| Stage1Error::cgroup(format!("open the cgroup of {what}"), e))?;
    let Some(dir) = dir else {
        return rkt_sys::fork().map_err(failed);
    };
    match rkt_sys::fork_into_cgroup(dir.as_fd()) {
        Ok(fork) => Ok(fork),
        Err(e) if rkt_sys::clone_into_cgroup_unsupported(&e) => {
            tracing::debug!("{e}: forking, then moving {what} into its cgroup");
            let fork = rkt_sys::fork().map_err(failed)?;
            if let Fork::Parent(pid) = fork
                && let Err(e) = cgroup.add_process_v2(pid.as_raw())
            {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(pid, None);
                return Err(Stage1Error::cgroup(format!("put {what} in its cgroup"), e));
            }
            Ok(fork)
        }
        Err(e) => Err(failed(e)),
    }
}
