//! `rkt-stage1 run`: from the pod directory stage0 prepared to a running pod.
//!
//! stage1 does everything that can fail cheaply first (read and check the request, compile
//! the seccomp filters, write the pod's files), then creates the pod cgroup (recorded in
//! `cgroup` at once, so `gc` finds it whatever happens next), unshares a PID namespace and
//! forks the supervisor into it as its PID 1. While the supervisor makes the pod's other
//! namespaces, stage1 makes the app cgroups with their limits and each app's overlayfs, as a
//! detached mount (the two lanes overlap on a machine with two cores). stage1 itself stays
//! outside: it records the supervisor's host pid in `pid`, releases it (sync 1) handing it the
//! overlayfs mounts (`SCM_RIGHTS`; each app attaches its own with `move_mount`), passes on
//! the signals it is sent, and exits with the supervisor's status, which is the pod's. It
//! keeps the pod lock (`RKT_LOCK_FD`) open all along; so does the supervisor.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rkt_cgroups::{Cgroup, CpuQuota, DEFAULT_DEVICES, DeviceControl, DeviceRule, Hierarchies};
use rustix::process::Signal;

use super::error::Stage1Error;
use super::journal::Journal;
use super::network::{self, PodNetwork};
use super::podfiles::{self, EtcFiles, EtcSource, PodPaths};
use super::supervisor::{self, Pod};
use super::{request, signals, status};
use crate::abi::{AppRequest, LOCK_FD_ENV, RunRequest, VolumeKind};
use crate::seccomp::{self, Arch, BpfProgram};
use crate::sync;

/// Runs the pod in `pod_dir`; returns the pod's exit status.
pub fn run(pod_dir: &Path) -> Result<i32, Stage1Error> {
    // The binary is a sealed copy, but its memory is still worth keeping from the pod.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| Stage1Error::sys("make stage1 non-dumpable", e))?;
    let pod_dir = std::path::absolute(pod_dir)
        .map_err(|e| Stage1Error::sys(format!("resolve {}", pod_dir.display()), e))?;
    let lock = lock_fd(&pod_dir)?;
    let mut req = request::load(&pod_dir)?;
    if req.debug {
        super::debug_logging();
    }
    let paths = PodPaths::new(pod_dir);
    let seccomp = compile_filters(&req)?;
    let oom_score_adj = clamp_oom_score_adj(&req.apps)?;
    let mut etc = podfiles::prepare(&paths, &req)?;
    let net = network::setup(&paths, &req)?;
    let result = (|| {
        if let Some(net) = &net {
            network_dns(&paths, &req, net, &mut etc)?;
        }
        podfiles::add_placeholders(&mut etc);
        start_and_wait(
            &paths,
            &mut req,
            &etc,
            net.as_ref(),
            &seccomp,
            &oom_score_adj,
        )
    })();
    if let Some(net) = net {
        // While the lock is held, so that no gc runs the same DELs alongside.
        drop(net.netns);
        if let Err(e) = network::teardown(paths.root(), &req.uuid, &net.plugin_dirs) {
            super::error::warn(&format!(
                "{} (rkt gc will try again)",
                super::error::error_line(&e)
            ));
        }
    }
    drop(lock);
    result
}

/// Creates the cgroups, forks the supervisor into a new PID namespace and waits for it;
/// returns the pod's exit status.
fn start_and_wait(
    paths: &PodPaths,
    req: &mut RunRequest,
    etc: &EtcFiles,
    net: Option<&PodNetwork>,
    seccomp: &[Option<BpfProgram>],
    oom_score_adj: &[Option<i32>],
) -> Result<i32, Stage1Error> {
    let Cgroups {
        pod: pod_cgroup,
        apps: cgroups,
        supervisor: supervisor_cgroup,
        devices,
    } = cgroups(paths, req)?;
    if let DeviceControl::Unavailable { why } = &devices
        && !insecure_paths(req)
    {
        // Nothing would stop an app with CAP_MKNOD from making a node for the host's disk.
        super::error::warn(&format!(
            "nothing on this host can restrict the pod's devices ({why}); apps run without \
             CAP_MKNOD so they cannot create device nodes"
        ));
        for app in &mut req.apps {
            app.caps.remove(crate::caps::Capability::CAP_MKNOD);
        }
    }
    let req = &*req;

    let foreground = terminal_foreground(req);
    // Connected now, from the host's namespaces, so the supervisor need not reach the socket
    // from the pod's; an interactive app's output goes to the terminal, not to logs.
    let journal = if request::is_interactive(req) {
        None
    } else {
        Journal::open(&req.uuid)
    };
    signals::block()?;
    // The networks are torn down after the pod's PID namespace is gone, by plugins forked from
    // here: their PID namespace has to be this one again by then.
    let host_pidns = match net {
        Some(_) => Some(
            File::open("/proc/self/ns/pid")
                .map_err(|e| Stage1Error::sys("open this process's PID namespace", e))?,
        ),
        None => None,
    };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
        .map_err(|e| Stage1Error::sys("create the pod's PID namespace", e))?;
    let result = supervise(
        paths,
        req,
        &Pod {
            req,
            paths,
            etc,
            cgroups: &cgroups,
            seccomp,
            oom_score_adj,
            interactive: request::is_interactive(req),
            netns: net.map(|n| &n.netns),
        },
        &pod_cgroup,
        &supervisor_cgroup,
        journal,
    );
    if let Some(ns) = host_pidns {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWPID)
            .map_err(|e| Stage1Error::sys("return to the host's PID namespace", e))?;
    }
    if let Some(pgrp) = foreground {
        restore_foreground(pgrp);
    }
    result
}

/// Forks the supervisor (handing it `journal`), makes the apps' cgroups in `pod_cgroup` while
/// it makes the pod's namespaces, releases it once its pid is on record and waits for it.
fn supervise(
    paths: &PodPaths,
    req: &RunRequest,
    pod: &Pod<'_>,
    pod_cgroup: &Cgroup,
    supervisor_cgroup: &Cgroup,
    journal: Option<Journal>,
) -> Result<i32, Stage1Error> {
    let (mut parent, child) = sync::channel().map_err(|source| Stage1Error::Sync {
        what: "the supervisor".into(),
        source,
    })?;
    // stage1 is in the supervisor's cgroup in the v1 hierarchies already; the fork puts the
    // supervisor in its cgroup2 leaf.
    let pid = match super::spawn::fork_into(supervisor_cgroup, "the supervisor")? {
        rkt_sys::Fork::Child => {
            drop(parent);
            let code = supervisor::main(pod, journal, child);
            std::process::exit(code)
        }
        // The supervisor owns the journal from here.
        rkt_sys::Fork::Parent(pid) => {
            drop(journal);
            pid
        }
    };
    drop(child);
    // Sync 1: the supervisor waits until its apps' cgroups exist and its pid is on record.
    if let Err(e) = create_app_cgroups(pod_cgroup, req)
        .and_then(|()| status::write_pid(paths.root(), pid.as_raw()))
    {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        return Err(e);
    }
    // The apps' root filesystems, while the supervisor is still making the namespaces.
    let overlays: Vec<Option<OwnedFd>> = req
        .apps
        .iter()
        .map(|a| {
            super::rootfs::detached_overlay(
                &a.layers,
                pod.etc.placeholders.as_deref(),
                &paths.upper(&a.name),
                &paths.work(&a.name),
            )
        })
        .collect();
    let passed: Vec<_> = overlays
        .iter()
        .map(|o| o.as_ref().map(|f| f.as_fd()))
        .collect();
    if let Err(source) = parent.release_with(&passed) {
        // The supervisor is gone: it failed to make the pod's namespaces, and said why.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let ended = nix::sys::wait::waitpid(pid, None)
            .ok()
            .and_then(signals::exit_code);
        if let Some((code @ super::error::EXIT_STAGE1_FAILED, None)) = ended {
            return Ok(code);
        }
        return Err(Stage1Error::Sync {
            what: "the supervisor".into(),
            source,
        });
    }
    drop(passed);
    drop((parent, overlays));
    let (code, signal) = signals::forward_and_wait(pid)?;
    // Before the lock goes: whoever sees the pod exited must see how every app ended. A
    // supervisor that returned any other status than its own failure's recorded every app
    // that started before it returned, so only a killed or failed one leaves any to record.
    if signal.is_some() || code == super::error::EXIT_STAGE1_FAILED {
        record_apps_killed_with_the_supervisor(paths, req);
    }
    Ok(code)
}

/// `/etc/resolv.conf` from the networks' DNS, unless `--dns` said otherwise (rkt's
/// precedence: `--dns*`, then CNI, then a volume or the image's own).
fn network_dns(
    paths: &PodPaths,
    req: &RunRequest,
    net: &PodNetwork,
    etc: &mut EtcFiles,
) -> Result<(), Stage1Error> {
    if req.resolv_conf.is_some() || req.resolv_conf_from_host || req.ignore_network_dns {
        return Ok(());
    }
    let Some(text) = network::resolv_conf(&net.attachments) else {
        return Ok(());
    };
    let file = paths.etc("resolv.conf");
    podfiles::write(&file, &text)?;
    etc.resolv_conf = EtcSource::Pod(file);
    Ok(())
}

/// An app that started but whose exit the supervisor did not record died with it: the kernel
/// SIGKILLs every process of a PID namespace whose PID 1 is gone (`rkt stop --force`, or the
/// supervisor killed), and reaping PID 1 waits for them. Recorded here, so that `rkt status`
/// says how every app that started ended.
fn record_apps_killed_with_the_supervisor(paths: &PodPaths, req: &RunRequest) {
    let dir = paths.root();
    for app in &req.apps {
        let started = matches!(status::read_app_pid(dir, &app.name), Ok(Some(_)));
        if !started || !matches!(status::app_exited(dir, &app.name), Ok(false)) {
            continue;
        }
        let exit = status::AppExit {
            code: 128 + Signal::KILL.as_raw(),
            signal: Some(Signal::KILL.as_raw()),
            oom_killed: false,
            finished_at: std::time::SystemTime::now(),
        };
        if let Err(e) = status::write_app_exit(dir, &app.name, &exit) {
            tracing::warn!("app {}: {e}", app.name);
        }
    }
}

/// For an interactive pod on a terminal, the terminal's foreground process group before the
/// app makes itself the foreground job.
fn terminal_foreground(req: &RunRequest) -> Option<rustix::process::Pid> {
    let stdin = std::io::stdin();
    if !request::is_interactive(req) || !rustix::termios::isatty(&stdin) {
        return None;
    }
    rustix::termios::tcgetpgrp(&stdin).ok()
}

/// Gives the terminal back to the process group that had it (the app's group is gone), as a
/// shell does when a job ends, so a caller that is not a shell gets its terminal back too.
fn restore_foreground(pgrp: rustix::process::Pid) {
    // From a background group this would stop us with SIGTTOU.
    let mut ttou = nix::sys::signal::SigSet::empty();
    ttou.add(nix::sys::signal::Signal::SIGTTOU);
    let _ =
        nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&ttou), None);
    if let Err(e) = rustix::termios::tcsetpgrp(std::io::stdin(), pgrp) {
        tracing::debug!("cannot give the terminal back to process group {pgrp:?}: {e}");
    }
}

/// The pod lock stage0 passed in `RKT_LOCK_FD`, checked to be an fd of the pod directory and
/// made close-on-exec (the apps must not hold it).
fn lock_fd(pod_dir: &Path) -> Result<OwnedFd, Stage1Error> {
    let bad = |source: io::Error| Stage1Error::LockFd {
        var: LOCK_FD_ENV,
        source,
    };
    let value = std::env::var(LOCK_FD_ENV).map_err(|_| bad(io::Error::other("it is not set")))?;
    let raw: i32 = value
        .trim()
        .parse()
        .map_err(|_| bad(io::Error::other(format!("{value:?} is not a number"))))?;
    let fd = rkt_sys::take_inherited_fd(raw).map_err(|e| bad(io::Error::other(e)))?;
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC).map_err(|e| bad(e.into()))?;
    let held = rustix::fs::fstat(&fd).map_err(|e| bad(e.into()))?;
    let dir = rustix::fs::stat(pod_dir).map_err(|e| {
        Stage1Error::sys(format!("open the pod directory {}", pod_dir.display()), e)
    })?;
    if (held.st_dev, held.st_ino) != (dir.st_dev, dir.st_ino) {
        return Err(bad(io::Error::other(format!(
            "descriptor {raw} is not the pod directory {}",
            pod_dir.display()
        ))));
    }
    // Ours already (a no-op), or taken now; held by anyone else, the pod is not ours to run.
    rustix::fs::flock(&fd, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        bad(io::Error::other(format!(
            "the pod directory is locked by another process ({e})"
        )))
    })?;
    Ok(fd)
}

fn compile_filters(req: &RunRequest) -> Result<Vec<Option<BpfProgram>>, Stage1Error> {
    req.apps
        .iter()
        .map(|app| {
            let Some(policy) = &app.seccomp else {
                return Ok(None);
            };
            let err = |source| Stage1Error::Seccomp {
                app: app.name.clone(),
                source,
            };
            let arch = Arch::native().ok_or_else(|| {
                err(seccomp::SeccompError::UnsupportedArch(
                    std::env::consts::ARCH,
                ))
            })?;
            seccomp::compile(policy, arch).map(Some).map_err(err)
        })
        .collect()
}

/// Each app's `oom_score_adj`. Lowering it below stage1's own needs CAP_SYS_RESOURCE; without
/// it the value is clamped to stage1's, with one warning for the pod (DESIGN.md's quirk: root
/// on this project's machines lacks that capability).
fn clamp_oom_score_adj(apps: &[AppRequest]) -> Result<Vec<Option<i32>>, Stage1Error> {
    if apps.iter().all(|a| a.limits.oom_score_adj.is_none()) {
        return Ok(vec![None; apps.len()]);
    }
    let current: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .map_err(|e| Stage1Error::sys("read /proc/self/oom_score_adj", e))?
        .trim()
        .parse()
        .map_err(|_| {
            Stage1Error::sys(
                "parse /proc/self/oom_score_adj",
                io::Error::other("not a number"),
            )
        })?;
    let can_lower = ::caps::has_cap(
        None,
        ::caps::CapSet::Effective,
        crate::caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(false);
    let mut warned = false;
    Ok(apps
        .iter()
        .map(|a| {
            let want = a.limits.oom_score_adj?;
            let want = want.clamp(-1000, 1000);
            if want < current && !can_lower {
                if !warned {
                    super::error::warn(&format!(
                        "cannot lower oom_score_adj below {current} without CAP_SYS_RESOURCE; \
                         app {} gets {current} instead of {want}",
                        a.name
                    ));
                    warned = true;
                }
                return Some(current);
            }
            Some(want)
        })
        .collect())
}

/// Whether `--insecure-options=paths` lifted the pod's path and device restrictions.
fn insecure_paths(req: &RunRequest) -> bool {
    req.apps.iter().all(|a| !a.masked_paths)
}

/// The device rules of a pod: the defaults, plus each host volume that is a device node
/// (read-only volumes allow reading only), as rkt did.
fn device_rules(req: &RunRequest) -> Vec<DeviceRule> {
    use std::os::unix::fs::FileTypeExt as _;
    let mut rules = DEFAULT_DEVICES.to_vec();
    for v in &req.volumes {
        let VolumeKind::Host {
            source, read_only, ..
        } = &v.kind
        else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(source) else {
            continue;
        };
        let ft = meta.file_type();
        let kind = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            continue;
        };
        let rdev = std::os::unix::fs::MetadataExt::rdev(&meta);
        rules.push(DeviceRule {
            kind,
            major: Some(rustix::fs::major(rdev)),
            minor: Some(rustix::fs::minor(rdev)),
            access: if *read_only { "rm" } else { "rwm" },
        });
    }
    rules
}

/// What [`cgroups`] made.
struct Cgroups {
    /// The pod's cgroup.
    pod: Cgroup,
    /// Each app's cgroup, in request order: named, made by [`create_app_cgroups`] before the
    /// supervisor, which gets these copies, is released.
    apps: Vec<Cgroup>,
    /// The supervisor's cgroup, which stage1 has joined in the v1 hierarchies.
    supervisor: Cgroup,
    /// Whether a device list is enforced.
    devices: DeviceControl,
}

/// The pod cgroup (recorded in `cgroup` before anything else can fail) with its device list,
/// and the supervisor's place in it (joined, see [`Cgroup::create_pod_for_self`]). The apps'
/// cgroups are only named: stage1 makes them while the supervisor makes the pod's namespaces.
fn cgroups(paths: &PodPaths, req: &RunRequest) -> Result<Cgroups, Stage1Error> {
    let h = Hierarchies::discover()
        .map_err(|e| Stage1Error::cgroup("find the cgroup hierarchies", e))?
        .for_controllers(rkt_cgroups::POD_CONTROLLERS);
    let made = Cgroup::create_pod_for_self(&h, &format!("rkt-{}", req.uuid))
        .map_err(|e| Stage1Error::cgroup("create the pod cgroup", e))?;
    let (pod, supervisor) = (made.pod, made.supervisor);
    let record =
        serde_json::to_vec(&pod).map_err(|e| Stage1Error::sys("encode the pod cgroup", e))?;
    status::write_file(paths.root(), status::CGROUP, &record)?;
    // Once, on the pod, before its app cgroups exist: v1 lets a cgroup switch to deny-all only
    // while it has no child cgroups, and children made afterwards inherit the list; a cgroup2
    // filter covers everything below it. Apps, the supervisor and stage1 itself get the list.
    let devices = if insecure_paths(req) {
        DeviceControl::Unavailable {
            why: "--insecure-options=paths".into(),
        }
    } else {
        pod.restrict_devices(&device_rules(req))
            .map_err(|e| Stage1Error::cgroup("restrict the devices of the pod", e))?
    };
    let apps = req
        .apps
        .iter()
        .map(|app| {
            pod.child_made_before_use(&app.name)
                .map_err(|e| Stage1Error::cgroup(format!("name the cgroup of app {}", app.name), e))
        })
        .collect::<Result<Vec<_>, Stage1Error>>()?;
    Ok(Cgroups {
        pod,
        apps,
        supervisor,
        devices,
    })
}

/// Makes each app's cgroup, with its limits.
fn create_app_cgroups(pod: &Cgroup, req: &RunRequest) -> Result<(), Stage1Error> {
    for app in &req.apps {
        let cg = pod.create_child(&app.name).map_err(|e| {
            Stage1Error::cgroup(format!("create the cgroup of app {}", app.name), e)
        })?;
        let l = &app.limits;
        let limits = rkt_cgroups::Limits {
            memory_max: l.memory,
            cpu_quota: l.cpu_millis.map(CpuQuota::from_millicores),
            cpu_shares: l.cpu_shares,
            pids_max: None,
        };
        if limits != rkt_cgroups::Limits::default() {
            cg.set_limits(&limits).map_err(|e| {
                Stage1Error::cgroup(format!("set the limits of app {}", app.name), e)
            })?;
        }
    }
    Ok(())
}

/// The pod's cgroup as `run` recorded it, if it did.
pub fn recorded_cgroup(pod_dir: &Path) -> Result<Option<Cgroup>, Stage1Error> {
    let path: PathBuf = pod_dir.join(status::CGROUP);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Stage1Error::State(format!("{} is not a cgroup record: {e}", path.display()))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Stage1Error::sys(format!("read {}", path.display()), e)),
    }
}
