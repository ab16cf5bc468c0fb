//! The pod supervisor: PID 1 of the pod's PID namespace.
//!
//! It makes the pod's namespaces (UTS, IPC unless shared, network for `--net=none`; it joins
//! the one stage1 made for CNI networks; each app makes its own mount namespace),
//! starts the apps one after another, then loops on a `signalfd` and the apps' stdout/stderr
//! pipes with `poll`:
//! - `SIGCHLD`: reap every child (as PID 1 it inherits orphans too); an app's exit is written
//!   to `apps/<app>/exit`, and an app that failed (non-zero) stops the others (rkt's rule);
//! - `SIGTERM`, `SIGINT`, `SIGHUP`, `SIGQUIT` from outside the pod (stage1, `rkt stop`, a
//!   terminal): stop the pod: SIGTERM to each running app, SIGKILL to everything left in the
//!   pod after [`STOP_GRACE`]; the same signals from an app are ignored;
//! - pipe data: CRI log records, a copy of each for the host's journal and a copy of the
//!   bytes on stage1's own stdout/stderr ([`super::output`]).
//!
//! When every app has exited, whatever the apps left running is killed, the pipes are
//! drained, and the supervisor exits with the pod's status: the first failed app's code
//! (128 + n for a signal), else 0.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use rkt_cgroups::Cgroup;
use rustix::event::{PollFd, PollFlags};

use super::app::{self, AppSetup, ChildStdio};
use super::error::{self, Stage1Error};
use super::journal::{self, Journal};
use super::logs::{LogFile, Stream};
use super::output::{AppOutput, Outputs, Pipe};
use super::podfiles::{EtcFiles, PodPaths};
use super::signals;
use super::status::{self, AppExit};
use crate::abi::{NetMode, RunRequest};
use crate::seccomp::BpfProgram;
use crate::sync::{self, ChildSide};

/// How long apps get between SIGTERM and SIGKILL when the pod stops.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// What the supervisor works from, prepared by stage1 before the fork.
pub struct Pod<'a> {
    /// The request.
    pub req: &'a RunRequest,
    /// The pod directory.
    pub paths: &'a PodPaths,
    /// The pod's `/etc` files.
    pub etc: &'a EtcFiles,
    /// Each app's cgroup, in request order.
    pub cgroups: &'a [Cgroup],
    /// Each app's compiled seccomp filter.
    pub seccomp: &'a [Option<BpfProgram>],
    /// Each app's `oom_score_adj`, clamped.
    pub oom_score_adj: &'a [Option<i32>],
    /// Whether the one app has the caller's terminal.
    pub interactive: bool,
    /// The pod's network namespace, made by stage1 for contained networking.
    pub netns: Option<&'a OwnedFd>,
}

/// The supervisor's main: returns the pod's exit status. `journal` is the host's journald, if
/// stage1 could connect to it; `release` is the supervisor's end of the channel with stage1,
/// which releases it once the supervisor's pid is recorded (sync 1).
pub fn main(pod: &Pod<'_>, journal: Option<Journal>, mut release: ChildSide) -> i32 {
    let result = (|| {
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
            .map_err(|e| Stage1Error::sys("set the parent-death signal", e))?;
        // Before the release, while stage1 records the pid: making a network namespace is
        // the costliest step of a pod's start in the kernel, and nothing outside sees it.
        namespaces(pod.req, pod.netns)?;
        let overlays = release
            .wait_release_with()
            .map_err(|source| Stage1Error::Sync {
                what: "stage1".into(),
                source,
            })?;
        drop(release);
        Supervisor::new(pod, journal, overlays)?.run()
    })();
    result.unwrap_or_else(|e| {
        error::report(&e);
        error::EXIT_STAGE1_FAILED
    })
}

fn namespaces(req: &RunRequest, netns: Option<&OwnedFd>) -> Result<(), Stage1Error> {
    // No mount namespace of its own: each app makes one (and makes it private) as it starts,
    // and the supervisor mounts nothing. A copy of the host's mounts here would only be one
    // more to tear down, on the path of every pod's exit.
    let mut flags = CloneFlags::CLONE_NEWUTS;
    if !req.ipc_host {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if let Some(ns) = netns {
        // Made by stage1 with its loopback up, and already on its networks.
        nix::sched::setns(ns, CloneFlags::CLONE_NEWNET)
            .map_err(|e| Stage1Error::sys("join the pod's network namespace", e))?;
    } else if req.net == NetMode::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    nix::sched::unshare(flags).map_err(|e| Stage1Error::sys("create the pod's namespaces", e))?;
    nix::unistd::sethostname(&req.hostname)
        .map_err(|e| Stage1Error::sys(format!("set the hostname {:?}", req.hostname), e))?;
    if req.net == NetMode::None {
        rkt_sys::set_interface_up("lo").map_err(|e| {
            Stage1Error::sys("bring the loopback interface up", io::Error::other(e))
        })?;
    }
    Ok(())
}

struct AppState {
    name: String,
    pid: Option<Pid>,
    exited: bool,
    output: AppOutput,
}

struct Supervisor<'p, 'a> {
    pod: &'p Pod<'a>,
    apps: Vec<AppState>,
    signals: nix::sys::signalfd::SignalFd,
    stopping: Option<Instant>,
    killed: bool,
    first_failure: Option<i32>,
    outputs: Outputs,
    /// How many times the startup pages were given back ([`super::release_startup_pages`]).
    releases: u8,
    /// Each app's overlayfs as stage1 built it ahead, until the app takes it.
    overlays: Vec<Option<OwnedFd>>,
    /// When the pod started, until `started` records it: written while the first app sets
    /// itself up, not before its fork.
    started: Option<SystemTime>,
}

impl<'p, 'a> Supervisor<'p, 'a> {
    fn new(
        pod: &'p Pod<'a>,
        journal: Option<Journal>,
        overlays: Vec<Option<OwnedFd>>,
    ) -> Result<Self, Stage1Error> {
        Ok(Supervisor {
            pod,
            apps: pod
                .req
                .apps
                .iter()
                .map(|a| AppState {
                    name: a.name.clone(),
                    pid: None,
                    exited: false,
                    output: AppOutput::default(),
                })
                .collect(),
            signals: signals::signalfd(true)?,
            stopping: None,
            killed: false,
            first_failure: None,
            releases: 0,
            outputs: Outputs::new(journal),
            overlays,
            started: None,
        })
    }

    fn run(mut self) -> Result<i32, Stage1Error> {
        self.started = Some(SystemTime::now());
        let mut all_started = true;
        for i in 0..self.apps.len() {
            // A stop requested while the apps start wins over starting the rest.
            self.handle_signals()?;
            if self.stopping.is_some() {
                all_started = false;
                break;
            }
            if let Err(e) = self.start(i) {
                error::report(&e);
                all_started = false;
                if self.first_failure.is_none() {
                    self.first_failure = Some(error::EXIT_STAGE1_FAILED);
                }
                self.stop();
                break;
            }
        }
        self.record_start()?;
        if all_started {
            status::mark_ready(self.pod.paths.root())?;
        }
        self.event_loop()?;
        self.outputs.finish(journal::FLUSH_GRACE);
        Ok(self.first_failure.unwrap_or(0))
    }

    /// Writes `started`, once.
    fn record_start(&mut self) -> Result<(), Stage1Error> {
        match self.started.take() {
            Some(at) => status::write_started(self.pod.paths.root(), at),
            None => Ok(()),
        }
    }

    /// Forks app `i` and waits until it has exec'd. Between the fork and the release only
    /// what the app needs in place is done; the records (and the log file, which only the
    /// supervisor writes) follow while the app sets itself up.
    fn start(&mut self, i: usize) -> Result<(), Stage1Error> {
        let req = &self.pod.req.apps[i];
        let what = || format!("app {}", req.name);
        let (mut parent, child) = sync::channel().map_err(|source| Stage1Error::Sync {
            what: what(),
            source,
        })?;
        let (stdio, readers) = if self.pod.interactive {
            (ChildStdio::Interactive, Vec::new())
        } else {
            let (out_r, out_w) = super::output::pipe()?;
            let (err_r, err_w) = super::output::pipe()?;
            (
                ChildStdio::Log {
                    out: out_w,
                    err: err_w,
                },
                vec![(out_r, Stream::Stdout), (err_r, Stream::Stderr)],
            )
        };
        let logged = !readers.is_empty();
        let cgroup = &self.pod.cgroups[i];
        // The app's copy is the one that counts; the supervisor's goes with the fork.
        let overlay = self.overlays.get_mut(i).and_then(Option::take);
        let pid = match super::spawn::fork_into(cgroup, &what())? {
            rkt_sys::Fork::Child => {
                drop(parent);
                drop(readers);
                app::run_child(
                    AppSetup {
                        app: req,
                        paths: self.pod.paths,
                        etc: self.pod.etc,
                        volumes: &self.pod.req.volumes,
                        cgroup,
                        seccomp: self.pod.seccomp[i].as_ref(),
                        oom_score_adj: self.pod.oom_score_adj[i],
                        stdio,
                        overlay,
                    },
                    child,
                )
            }
            rkt_sys::Fork::Parent(pid) => pid,
        };
        drop(child);
        drop(stdio);
        drop(overlay);
        self.apps[i].pid = Some(pid);
        for (fd, stream) in readers {
            self.apps[i].output.pipes.push(Pipe::new(fd, stream)?);
        }
        // Sync 2: born in its cgroup2 cgroup, it joins its v1 ones itself once released.
        parent.release().map_err(|source| Stage1Error::Sync {
            what: what(),
            source,
        })?;
        // Until the log is open its output waits in the pipes. (On failure here the caller
        // stops the pod, this app with it.)
        self.record_start()?;
        if logged {
            let dir = self.pod.paths.logs(&req.name);
            self.apps[i].output.log = Some(LogFile::open(&dir).map_err(|e| {
                Stage1Error::sys(format!("open the log file in {}", dir.display()), e)
            })?);
        }
        // Not reaped before the event loop, so it is there to ask about even if it is gone.
        let host_pid = host_pid(pid)?;
        // Sync 3: exec'd, or its report. Its pid goes on record either way, once it is in its
        // cgroup everywhere (`rkt enter` checks that the recorded pid is the app's).
        let exec = parent.wait_exec();
        status::write_app_pid(self.pod.paths.root(), &req.name, host_pid)?;
        match exec {
            Ok(Ok(())) => {
                tracing::debug!("app {} started as pid {host_pid}", req.name);
                Ok(())
            }
            Ok(Err(source)) => Err(Stage1Error::Child {
                what: format!("starting app {}", req.name),
                source: Box::new(source),
            }),
            Err(source) => Err(Stage1Error::Sync {
                what: what(),
                source,
            }),
        }
    }

    fn event_loop(&mut self) -> Result<(), Stage1Error> {
        loop {
            self.reap()?;
            let all_exited = self.apps.iter().all(|a| a.pid.is_none() || a.exited);
            if all_exited && !self.killed {
                // Whatever the apps left behind (daemons, orphans) ends with the pod, and
                // must: it may hold the log pipes open.
                kill_everything_else();
                self.killed = true;
            }
            let open_pipes = self.apps.iter().any(|a| !a.output.pipes.is_empty());
            if all_exited && !open_pipes {
                return Ok(());
            }
            let timeout = match self.stopping {
                Some(deadline) if !self.killed => {
                    Some(deadline.saturating_duration_since(Instant::now()))
                }
                _ => None,
            };
            // A pod that runs on: once it has been quiet for a moment, give back the mappings
            // of the code that started it (most of this process's resident size); once more
            // after the next quiet moment, for what this loop and the release itself mapped
            // back in (the kernel maps code in 64 KiB windows).
            let idle_check = timeout.is_none() && self.releases < 2;
            let timeout = if idle_check {
                Some(super::IDLE_AFTER)
            } else {
                timeout
            };
            if !self.poll(timeout)? && idle_check {
                self.releases += 1;
                super::release_startup_pages();
            }
            if let Some(deadline) = self.stopping
                && !self.killed
                && Instant::now() >= deadline
            {
                tracing::debug!("grace period over: killing every process of the pod");
                kill_everything_else();
                self.killed = true;
            }
        }
    }

    /// Waits for the signals, the apps' output and journald; handles what came. Returns
    /// whether anything did.
    fn poll(&mut self, timeout: Option<Duration>) -> Result<bool, Stage1Error> {
        let ts = timeout.map(super::poll_timeout);
        let mut where_: Vec<(usize, usize)> = Vec::new();
        let ready: Vec<bool> = {
            let mut fds = vec![PollFd::new(&self.signals, PollFlags::IN)];
            for (a, app) in self.apps.iter().enumerate() {
                for (p, pipe) in app.output.pipes.iter().enumerate() {
                    fds.push(PollFd::new(&pipe.file, PollFlags::IN));
                    where_.push((a, p));
                }
            }
            // Last: records wait for journald to take them.
            if let Some(fd) = self
                .outputs
                .journal
                .as_ref()
                .filter(|j| j.wants_write())
                .and_then(Journal::fd)
            {
                fds.push(PollFd::from_borrowed_fd(fd, PollFlags::OUT));
            }
            match rustix::event::poll(&mut fds, ts.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Stage1Error::sys("poll", e)),
            }
            fds.iter().map(|f| !f.revents().is_empty()).collect()
        };
        if ready[0] {
            self.handle_signals()?;
        }
        // The queued records go before any new ones.
        if ready.len() > where_.len() + 1
            && ready[where_.len() + 1]
            && let Some(j) = &mut self.outputs.journal
        {
            j.flush();
        }
        // Drain in reverse so removing a closed pipe keeps the earlier indices valid.
        for (k, (a, p)) in where_.iter().enumerate().rev() {
            if ready[k + 1] {
                let app = &mut self.apps[*a];
                self.outputs.drain(&app.name, &mut app.output, *p);
            }
        }
        Ok(ready.iter().any(|r| *r))
    }

    fn handle_signals(&mut self) -> Result<(), Stage1Error> {
        loop {
            match self.signals.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) | Err(_) => {}
                    // A sender inside the pod has a pid here; stage1, `rkt stop` and the
                    // terminal are outside (pid 0). Only they may stop the pod: an app that
                    // signals PID 1 is ignored, as a PID 1 without a handler would be.
                    Ok(sig) if info.ssi_pid != 0 => {
                        tracing::debug!("ignoring {sig} from process {} of the pod", info.ssi_pid);
                    }
                    Ok(sig) => {
                        tracing::debug!("got {sig}: stopping the pod");
                        self.stop();
                    }
                },
                Ok(None) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Stage1Error::sys("read the signalfd", e)),
            }
        }
    }

    /// Reaps every exited child; records the apps' exits.
    fn reap(&mut self) -> Result<(), Stage1Error> {
        loop {
            let status =
                match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(()),
                    Ok(s) => s,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(Stage1Error::sys("reap children", e)),
                };
            let (Some(pid), Some((code, signal))) = (status.pid(), signals::exit_code(status))
            else {
                continue;
            };
            if let Some(i) = self
                .apps
                .iter()
                .position(|a| a.pid == Some(pid) && !a.exited)
            {
                self.app_exited(i, code, signal)?;
            }
        }
    }

    fn app_exited(&mut self, i: usize, code: i32, signal: Option<i32>) -> Result<(), Stage1Error> {
        self.apps[i].exited = true;
        let name = self.apps[i].name.clone();
        let oom_killed = match self.pod.cgroups[i].oom_kills() {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::debug!("app {name}: cannot read OOM kills: {e}");
                false
            }
        };
        tracing::debug!("app {name} exited: code {code}, signal {signal:?}, oom {oom_killed}");
        status::write_app_exit(
            self.pod.paths.root(),
            &name,
            &AppExit {
                code,
                signal,
                oom_killed,
                finished_at: SystemTime::now(),
            },
        )?;
        if code != 0 && self.first_failure.is_none() {
            self.first_failure = Some(code);
            self.stop();
        }
        Ok(())
    }

    /// Starts stopping the pod (once): SIGTERM to every running app, SIGKILL to all after the
    /// grace period.
    fn stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(Instant::now() + STOP_GRACE);
        for app in &self.apps {
            if let (Some(pid), false) = (app.pid, app.exited) {
                let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            }
        }
    }
}

/// SIGKILL to every process of the pod but the supervisor (`kill(-1)` from a PID namespace's
/// init reaches exactly the other processes of the namespace).
fn kill_everything_else() {
    match nix::sys::signal::kill(Pid::from_raw(-1), Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::debug!("kill(-1, SIGKILL): {e}"),
    }
}

/// The host pid of our child `pid` (a pid of the pod's namespace): what `/proc` of the host,
/// which the supervisor still sees, says in the fdinfo of a pidfd for it.
fn host_pid(pid: Pid) -> Result<i32, Stage1Error> {
    let err = |e: io::Error| Stage1Error::sys(format!("find the host pid of process {pid}"), e);
    let raw = rustix::process::Pid::from_raw(pid.as_raw())
        .ok_or_else(|| err(rustix::io::Errno::SRCH.into()))?;
    let fd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
        .map_err(|e| err(e.into()))?;
    let info = std::fs::read_to_string(format!(
        "/proc/self/fdinfo/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())
    ))
    .map_err(err)?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| err(io::Error::other("no Pid line in the pidfd's fdinfo")))
}
