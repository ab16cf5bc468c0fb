//! `rkt-stage1 enter`: runs a command inside a running app with exactly what the app has —
//! its namespaces (PID, mount, UTS, IPC, network, cgroup), its cgroup, its root, user, groups,
//! capabilities, `no_new_privs` and seccomp filter. rkt's own enter gave the command the
//! namespaces and nothing else (CVE-2019-10144/10145/10147).
//!
//! The app is identified by the pid the supervisor recorded, checked to still belong to the
//! app (it is in the app's cgroup) through a pidfd opened before the check, and its
//! namespaces are joined through that pidfd, so a recycled pid cannot send the command
//! elsewhere. stage1 joins the app's cgroup and PID namespace (which applies to children) and
//! forks (into the app's cgroup2 cgroup); the child joins the other namespaces (the pod's `/proc` would hide stage1 from
//! itself) and the app's root, takes on the app's identity and confinement and execs. stage1
//! waits for it, passing on signals, and exits with its status.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use rustix::fs::{Mode, OFlags};
use rustix::process::Signal;

use super::error::Stage1Error;
use super::{app, confine, exec, request, run, signals, status, user};
use crate::abi::AppRequest;
use crate::seccomp::{self, Arch, BpfProgram};
use crate::sync::{self, ChildError, ChildSide};

/// What runs when no command is given.
pub const DEFAULT_COMMAND: &str = "/bin/sh";

/// Runs `command` in app `app_name` of the pod in `pod_dir`; returns its exit status.
pub fn enter(pod_dir: &Path, app_name: &str, command: Vec<OsString>) -> Result<i32, Stage1Error> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Stage1Error::sys("make stage1 non-dumpable", e))?;
    let req = request::load(pod_dir)?;
    let app = req
        .apps
        .iter()
        .find(|a| a.name == app_name)
        .ok_or_else(|| Stage1Error::State(format!("the pod has no app named {app_name:?}")))?;
    if status::app_exited(pod_dir, app_name)? {
        return Err(Stage1Error::State(format!("app {app_name} has exited")));
    }
    let pid = status::read_app_pid(pod_dir, app_name)?
        .ok_or_else(|| Stage1Error::State(format!("app {app_name} has not started")))?;
    let gone = || Stage1Error::State(format!("app {app_name} (pid {pid}) is not running"));
    let raw = rustix::process::Pid::from_raw(pid).ok_or_else(gone)?;
    let pidfd = match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Err(gone()),
        Err(e) => {
            return Err(Stage1Error::sys(
                format!("open a pidfd for process {pid}"),
                e,
            ));
        }
    };
    let cgroup = run::recorded_cgroup(pod_dir)?
        .ok_or_else(|| Stage1Error::State("the pod has no cgroup record".into()))?
        .child(app_name)
        .map_err(|e| Stage1Error::cgroup("find the app's cgroup", e))?;
    let members = cgroup
        .procs()
        .map_err(|e| Stage1Error::cgroup("list the app's cgroup", e))?;
    if !members.contains(&pid) {
        return Err(gone());
    }
    let root = rustix::fs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Stage1Error::sys(format!("open the root of process {pid}"), e))?;
    let filter = match &app.seccomp {
        Some(policy) => {
            let err = |source| Stage1Error::Seccomp {
                app: app.name.clone(),
                source,
            };
            let arch = Arch::native().ok_or_else(|| {
                err(seccomp::SeccompError::UnsupportedArch(
                    std::env::consts::ARCH,
                ))
            })?;
            Some(seccomp::compile(policy, arch).map_err(err)?)
        }
        None => None,
    };

    // The app's cgroup: stage1 joins it in the v1 hierarchies (the command inherits them), the
    // command is forked into it in the cgroup2 one (see `super::spawn`).
    cgroup
        .join_v1()
        .map_err(|e| Stage1Error::cgroup("join the app's cgroup", e))?;
    // The PID namespace here (it applies to the child forked next); the others in the child,
    // which stage1 itself need not join.
    nix::sched::setns(pidfd.as_fd(), CloneFlags::CLONE_NEWPID).map_err(|e| {
        if e == nix::errno::Errno::ESRCH {
            gone()
        } else {
            Stage1Error::sys(format!("join the PID namespace of app {app_name}"), e)
        }
    })?;
    signals::block()?;
    let (mut parent, child) = sync::channel().map_err(|source| Stage1Error::Sync {
        what: "the entered command".into(),
        source,
    })?;
    let command = if command.is_empty() {
        vec![OsString::from(DEFAULT_COMMAND)]
    } else {
        command
    };
    let child_pid = match super::spawn::fork_into(&cgroup, "the command")? {
        rkt_sys::Fork::Child => {
            drop(parent);
            run_child(
                &Target {
                    app,
                    pidfd: &pidfd,
                    root: &root,
                    filter: filter.as_ref(),
                },
                &command,
                child,
            )
        }
        rkt_sys::Fork::Parent(pid) => pid,
    };
    drop(child);
    parent.release().map_err(|source| Stage1Error::Sync {
        what: "the entered command".into(),
        source,
    })?;
    match parent.wait_exec() {
        Ok(Ok(())) => {}
        Ok(Err(source)) => {
            let _ = nix::sys::wait::waitpid(child_pid, None);
            return Err(Stage1Error::Child {
                what: format!("entering app {app_name}"),
                source: Box::new(source),
            });
        }
        Err(source) => {
            return Err(Stage1Error::Sync {
                what: "the entered command".into(),
                source,
            });
        }
    }
    signals::forward_and_wait(child_pid).map(|(code, _)| code)
}

/// What the command's process joins.
struct Target<'a> {
    app: &'a AppRequest,
    /// A pidfd of the app's process.
    pidfd: &'a OwnedFd,
    /// The app's root directory (`/proc/<pid>/root`).
    root: &'a OwnedFd,
    filter: Option<&'a BpfProgram>,
}

/// The command's process: the app's namespaces and root, its identity and confinement, then
/// `execve`.
fn run_child(target: &Target<'_>, command: &[OsString], mut sync: ChildSide) -> ! {
    let Err(err) = child_setup(target, command, &mut sync);
    sync.report(&err);
    std::process::exit(super::error::EXIT_STAGE1_FAILED)
}

fn child_setup(
    target: &Target<'_>,
    command: &[OsString],
    sync: &mut ChildSide,
) -> Result<std::convert::Infallible, ChildError> {
    let app = target.app;
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| ChildError::new("enter", "set the parent-death signal").errno(e))?;
    sync.wait_release()
        .map_err(|e| ChildError::new("enter", "wait for stage1").message(e.to_string()))?;
    let rest = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWCGROUP;
    nix::sched::setns(target.pidfd.as_fd(), rest)
        .map_err(|e| ChildError::new("enter", "join the app's namespaces").errno(e))?;
    rustix::process::fchdir(target.root)
        .map_err(|e| ChildError::new("enter", "change to the app's root").errno(e))?;
    rustix::process::chroot(".")
        .map_err(|e| ChildError::new("enter", "chroot into the app's root").errno(e))?;
    let id = user::resolve(
        Path::new("/"),
        &app.user,
        &app.group,
        &app.supplementary_gids,
    )?;
    let wd = if app.working_dir.is_empty() {
        "/"
    } else {
        app.working_dir.as_str()
    };
    if let Err(e) = rustix::process::chdir(wd) {
        tracing::debug!("cannot change to {wd}: {e}; staying in /");
    }
    let inherited: Vec<(String, String)> = std::env::var("TERM")
        .map(|t| vec![("TERM".to_owned(), t)])
        .unwrap_or_default();
    let env = exec::environment(&app.name, &app.env, &id, &inherited);
    let argv = exec::c_args(command)?;
    confine::drop_privileges(&id, app.caps)?;
    // Changing credentials cleared it; the command must not outlive `rkt enter`.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| ChildError::new("enter", "set the parent-death signal").errno(e))?;
    let name = command[0].to_string_lossy();
    let path = exec::find_executable(&name, exec::get(&env, "PATH").unwrap_or(exec::DEFAULT_PATH))?;
    app::finish_process_state()?;
    confine::install_seccomp(target.filter)?;
    Err(exec::exec(&path, &argv, &env))
}
