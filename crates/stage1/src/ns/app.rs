//! One app's process, from the supervisor's `fork` to `execve`: crun's "do little, in the
//! right order", every step's failure reported to the supervisor as a
//! [`ChildError`](crate::sync::ChildError).
//!
//! 1. die with the supervisor; wait until it releases us (sync 2); join the app's cgroup in
//!    the v1 hierarchies (born in its cgroup2 one, see [`super::spawn`]);
//! 2. stdio: log pipes and a new session, or the caller's terminal as foreground job;
//! 3. our own mount and cgroup namespaces; the overlayfs rootfs; `/proc`, `/sys`, `/dev`, volumes,
//!    `/etc` files, masked paths, read-only root ([`super::mounts`]); `pivot_root`;
//! 4. the user from the image's own passwd; working directory; `oom_score_adj`; environment;
//! 5. groups, gid, uid, capabilities, `no_new_privs` ([`super::confine`]); the executable in
//!    the app's `PATH`; every fd but stdio close-on-exec; signal mask and dispositions reset;
//! 6. seccomp, then `execve`. Its success closes the report pipe (sync 3).

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::process::Signal;

use rkt_cgroups::Cgroup;

use super::mounts::{self, MountPlan};
use super::podfiles::{EtcFiles, PodPaths};
use super::{confine, exec, rootfs, user};
use crate::abi::{AppRequest, Volume};
use crate::seccomp::BpfProgram;
use crate::sync::{ChildError, ChildSide};

/// Where the app's stdio goes.
pub enum ChildStdio {
    /// stdin `/dev/null`, stdout and stderr the write ends of the supervisor's log pipes.
    Log {
        /// stdout pipe.
        out: OwnedFd,
        /// stderr pipe.
        err: OwnedFd,
    },
    /// The caller's stdin, stdout and stderr, as inherited.
    Interactive,
}

/// Everything the app's process needs, prepared by the supervisor before the fork.
pub struct AppSetup<'a> {
    /// The app.
    pub app: &'a AppRequest,
    /// The pod directory.
    pub paths: &'a PodPaths,
    /// The pod's `/etc` files.
    pub etc: &'a EtcFiles,
    /// The pod's volumes.
    pub volumes: &'a [Volume],
    /// The app's cgroup.
    pub cgroup: &'a Cgroup,
    /// The compiled seccomp filter, if the app has one.
    pub seccomp: Option<&'a BpfProgram>,
    /// `oom_score_adj` to set, already clamped to what this process may set.
    pub oom_score_adj: Option<i32>,
    /// stdio.
    pub stdio: ChildStdio,
    /// The app's overlayfs, built ahead by stage1 ([`rootfs::detached_overlay`]); without
    /// it the app mounts its own.
    pub overlay: Option<OwnedFd>,
}

/// Runs in the forked child; never returns. On failure, reports to the supervisor and exits
/// with [`super::error::EXIT_STAGE1_FAILED`].
pub fn run_child(setup: AppSetup<'_>, mut sync: ChildSide) -> ! {
    let Err(err) = setup_and_exec(setup, &mut sync);
    sync.report(&err);
    std::process::exit(super::error::EXIT_STAGE1_FAILED)
}

fn setup_and_exec(setup: AppSetup<'_>, sync: &mut ChildSide) -> Result<Infallible, ChildError> {
    let app = setup.app;
    // 1.
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| ChildError::new("start", "set the parent-death signal").errno(e))?;
    sync.wait_release()
        .map_err(|e| ChildError::new("start", "wait for the supervisor").message(e.to_string()))?;
    setup.cgroup.join_v1().map_err(|e| {
        ChildError::new("cgroup", "join the app's cgroup").message(rkt_types::error_text::chain(&e))
    })?;
    rustix::process::umask(Mode::empty());
    // 2.
    let interactive = matches!(setup.stdio, ChildStdio::Interactive);
    stdio(setup.stdio)?;
    // 3. A cgroup namespace too, rooted at the app's cgroup (which the supervisor has put us
    // in): the app sees its own cgroup as `/`, not the host's hierarchy.
    nix::sched::unshare(
        nix::sched::CloneFlags::CLONE_NEWNS | nix::sched::CloneFlags::CLONE_NEWCGROUP,
    )
    .map_err(|e| {
        ChildError::new("rootfs", "create the app's mount and cgroup namespaces").errno(e)
    })?;
    // Before anything is mounted: nothing mounted for the app reaches the host, nor the
    // reverse.
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|e| ChildError::new("rootfs", "make the app's mounts private").errno(e))?;
    // Mounted over the app's own directory, in this mount namespace only: no mount point to
    // create per app, and its upper and work dirs stay out of the app's view.
    let rootfs_dir = setup.paths.app(&app.name);
    match setup.overlay {
        Some(mnt) => rootfs::attach_overlay(mnt, &rootfs_dir)?,
        None => rootfs::mount_overlay(
            &app.layers,
            setup.etc.placeholders.as_deref(),
            &setup.paths.upper(&app.name),
            &setup.paths.work(&app.name),
            &rootfs_dir,
        )?,
    }
    let root = rootfs::open_root(&rootfs_dir)?;
    mounts::mount_all(
        root.as_fd(),
        &MountPlan {
            app,
            paths: setup.paths,
            etc: setup.etc,
            volumes: setup.volumes,
        },
    )?;
    rootfs::pivot_into(root.as_fd(), &rootfs_dir)?;
    drop(root);
    // 4.
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
    rustix::process::chdir(wd).map_err(|e| {
        ChildError::new("exec", "change to the working directory")
            .path(wd)
            .errno(e)
    })?;
    if let Some(adj) = setup.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
            ChildError::new("exec", format!("set oom_score_adj to {adj} in"))
                .path("/proc/self/oom_score_adj")
                .io(&e)
        })?;
    }
    let inherited: Vec<(String, String)> = if interactive {
        std::env::var("TERM")
            .map(|t| vec![("TERM".to_owned(), t)])
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let env = exec::environment(&app.name, &app.env, &id, &inherited);
    let argv = exec::c_args(&app.exec)?;
    // 5.
    rustix::process::umask(Mode::from_raw_mode(0o022));
    confine::drop_privileges(&id, app.caps)?;
    let path = exec::find_executable(
        &app.exec[0],
        exec::get(&env, "PATH").unwrap_or(exec::DEFAULT_PATH),
    )?;
    finish_process_state()?;
    // 6.
    confine::install_seccomp(setup.seccomp)?;
    Err(exec::exec(&path, &argv, &env))
}

/// Every descriptor above stdio close-on-exec (the report pipe among them: it must stay open
/// until `execve`), the signal mask empty and every disposition default.
pub fn finish_process_state() -> Result<(), ChildError> {
    rkt_sys::cloexec_fds_from(3).map_err(|e| {
        ChildError::new("exec", "mark descriptors close-on-exec").message(e.to_string())
    })?;
    rkt_sys::reset_signal_dispositions();
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(|e| ChildError::new("exec", "reset the signal mask").errno(e))
}

fn stdio(stdio: ChildStdio) -> Result<(), ChildError> {
    let err = |op: &str| ChildError::new("stdio", op.to_owned());
    match stdio {
        ChildStdio::Log { out, err: errfd } => {
            let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| err("open /dev/null for stdin").errno(e))?;
            nix::unistd::dup2_stdin(&null).map_err(|e| err("set stdin").errno(e))?;
            nix::unistd::dup2_stdout(&out).map_err(|e| err("set stdout").errno(e))?;
            nix::unistd::dup2_stderr(&errfd).map_err(|e| err("set stderr").errno(e))?;
            // Its own session: a terminal's Ctrl-C goes to stage1, which stops the pod in
            // order, not straight to the app.
            rustix::process::setsid().map_err(|e| err("start a session").errno(e))?;
        }
        ChildStdio::Interactive => {
            // The foreground job of the caller's terminal, as a shell makes a job: Ctrl-C and
            // Ctrl-Z reach the app alone, and the caller's shell keeps its terminal.
            rustix::process::setpgid(None, None)
                .map_err(|e| err("start a process group").errno(e))?;
            let stdin = std::io::stdin();
            if rustix::termios::isatty(stdin.as_fd()) {
                // A background process group changing the foreground one gets SIGTTOU.
                let mut ttou = nix::sys::signal::SigSet::empty();
                ttou.add(nix::sys::signal::Signal::SIGTTOU);
                nix::sys::signal::sigprocmask(
                    nix::sys::signal::SigmaskHow::SIG_BLOCK,
                    Some(&ttou),
                    None,
                )
                .map_err(|e| err("block SIGTTOU").errno(e))?;
                rustix::termios::tcsetpgrp(stdin.as_fd(), rustix::process::getpid())
                    .map_err(|e| err("become the terminal's foreground job").errno(e))?;
            }
        }
    }
    Ok(())
}
