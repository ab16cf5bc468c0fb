//! The crate's error type.
//!
//! Every message names the cgroup file or directory involved and, where the user can do
//! something about it, says what. Sources are chained with `#[source]`, not repeated.

use std::io;
use std::path::PathBuf;

/// Everything a cgroup operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading a cgroup file (or `/proc/…/cgroup`, `/proc/self/mountinfo`) failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing a cgroup file failed: the kernel refused the value or the file.
    #[error("cannot write {value:?} to {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What we tried to write.
        value: String,
        /// The OS error (EINVAL: value out of range; EBUSY: see the file's rules).
        #[source]
        source: io::Error,
    },
    /// Creating a cgroup directory failed.
    #[error("cannot create cgroup {path}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The cgroup to create exists already.
    #[error(
        "cgroup {path} already exists: another pod or app uses this name, or a crashed pod left \
         it behind (`rkt gc` removes it)"
    )]
    AlreadyExists {
        /// The directory.
        path: PathBuf,
    },
    /// Removing a cgroup directory failed for a reason other than live processes.
    #[error("cannot remove cgroup {path}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A cgroup could not be removed because processes still live in it.
    #[error(
        "cannot remove cgroup {path}: processes {pids:?} still run in it; stop the pod first \
         (`rkt stop`), then try again"
    )]
    Busy {
        /// The directory.
        path: PathBuf,
        /// The processes found in it.
        pids: Vec<i32>,
    },
    /// Processes survived SIGKILL for the whole wait.
    #[error(
        "processes {pids:?} in cgroup {path} are still there {waited_ms} ms after SIGKILL \
         (probably stuck in the kernel, state D in `ps`); try again later"
    )]
    KillTimeout {
        /// The cgroup (its first hierarchy's directory).
        path: PathBuf,
        /// The survivors.
        pids: Vec<i32>,
        /// How long we waited.
        waited_ms: u64,
    },
    /// `kill_all` was called from a process inside the cgroup it would kill.
    #[error(
        "refusing to kill every process in cgroup {path}: the calling process (pid {pid}) is \
         inside it"
    )]
    KillSelf {
        /// The cgroup directory holding the caller.
        path: PathBuf,
        /// Our pid.
        pid: i32,
    },
    /// A process to move into a cgroup does not exist (any more).
    #[error("cannot move process {pid} into cgroup {path}: no such process (it has exited)")]
    NoSuchProcess {
        /// The pid.
        pid: i32,
        /// The cgroup directory.
        path: PathBuf,
    },
    /// A cgroup v2 cgroup with controllers enabled for its children cannot hold processes.
    #[error(
        "cannot move process {pid} into cgroup {path}: it has controllers enabled for its \
         children (cgroup.subtree_control) and cgroup v2 lets only leaf cgroups hold processes; \
         put the process into a child cgroup instead"
    )]
    NotALeaf {
        /// The pid.
        pid: i32,
        /// The cgroup directory.
        path: PathBuf,
    },
    /// No cgroup filesystem is mounted at all.
    #[error(
        "no cgroup filesystem is mounted (none in /proc/self/mountinfo that holds this process's \
         cgroups): mount cgroup2 on /sys/fs/cgroup, or the v1 controllers under it"
    )]
    NotMounted,
    /// A cgroup of the caller lies outside every mount of its hierarchy.
    #[error(
        "the process's cgroup {cgroup} in hierarchy {hierarchy} is not reachable through any \
         mount of that hierarchy (mount roots: {roots:?}); mount the hierarchy's root (or the \
         process's cgroup namespace root) under /sys/fs/cgroup"
    )]
    Unreachable {
        /// The hierarchy (`cpu,cpuacct`, `name=systemd`, `unified`).
        hierarchy: String,
        /// The cgroup path from `/proc/<pid>/cgroup`.
        cgroup: String,
        /// The roots of the mounts found for it.
        roots: Vec<String>,
    },
    /// A `/proc` file or cgroup file did not have the expected format.
    #[error("cannot parse {path}: {reason} (in {line:?})")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The offending line.
        line: String,
        /// What was wrong.
        reason: String,
    },
    /// A controller is needed but no hierarchy has it.
    #[error(
        "the {controller} cgroup controller is not mounted (no v1 hierarchy and no cgroup2 \
         hierarchy offers it): mount it, or do without the limit or statistic that needs it"
    )]
    ControllerNotMounted {
        /// The controller (`memory`, `cpu`, `pids`).
        controller: String,
    },
    /// A cgroup2 controller is needed but not enabled for this cgroup.
    #[error("the {controller} controller is not available for cgroup {path}: {reason}")]
    ControllerUnavailable {
        /// The controller.
        controller: String,
        /// The cgroup directory.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A cgroup name that cannot be a single directory name.
    #[error("invalid cgroup name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A limit out of the range the kernel accepts.
    #[error("invalid {limit} limit: {reason}")]
    InvalidLimit {
        /// Which limit.
        limit: &'static str,
        /// The range it must be in.
        reason: String,
    },
    /// A recorded cgroup directory is not on a cgroup filesystem; nothing was done there.
    #[error(
        "{path} is not a directory of a {expected} filesystem; refusing to use it as a cgroup \
         (the pod's `cgroup` record is damaged, or the hierarchy was unmounted)"
    )]
    NotCgroupFs {
        /// The directory.
        path: PathBuf,
        /// `cgroup` or `cgroup2`.
        expected: &'static str,
    },
    /// `statfs` on a cgroup directory failed.
    #[error("cannot statfs {path}")]
    Statfs {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A process that moves itself thread by thread must have one thread.
    #[error(
        "cannot move this process into cgroup {path} by its thread: it has {threads} threads \
         (only a single-threaded process moves itself this way; this is a bug in rkt)"
    )]
    Threaded {
        /// The cgroup directory.
        path: PathBuf,
        /// How many threads the process has.
        threads: usize,
    },
    /// A serialized cgroup record is inconsistent.
    #[error("invalid cgroup record: {0}")]
    InvalidRecord(String),
}
