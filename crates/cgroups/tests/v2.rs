//! The cgroup v2 code paths on the host's cgroup2 hierarchy alone (`Hierarchies::unified_only`):
//! on a hybrid host that is `/sys/fs/cgroup/unified`, which offers few controllers (here only
//! hugetlb), so assertions that need memory, cpu or pids there print why they are skipped.
//! Needs root.

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::{Guard, discover, proc_cgroups, read, sleeper, unique, words};
use rkt_cgroups::{Cgroup, CgroupError, Hierarchies, Layout, Limits, SUPERVISOR};

/// The supervisor test changes the hierarchy root's `cgroup.subtree_control`.
static ROOT_SUBTREE: Mutex<()> = Mutex::new(());

fn unified() -> Option<Hierarchies> {
    let u = discover().unified_only();
    if u.is_none() {
        println!("SKIP: no cgroup2 hierarchy mounted");
    }
    u
}

#[test]
fn create_add_kill_remove_on_cgroup2() {
    let Some(u) = unified() else { return };
    assert_eq!(u.layout(), Layout::V2);
    let pod = Guard(Cgroup::create_pod(&u, &unique("v2")).unwrap());
    assert_eq!(pod.dirs().len(), 1);
    let app = pod.create_child("app").unwrap();
    let p = sleeper();
    app.add_process(p.pid()).unwrap();
    let (_, path) = proc_cgroups(p.pid())
        .into_iter()
        .find(|(c, _)| c.is_empty())
        .unwrap();
    assert!(path.ends_with("/app"), "{path}");
    assert_eq!(pod.procs().unwrap(), [p.pid()]);
    assert!(matches!(pod.remove(), Err(CgroupError::Busy { .. })));

    let app_dir = app.dirs()[0].path();
    let offered = words(&app_dir.join("cgroup.controllers"));
    if offered.iter().any(|c| c == "pids") {
        app.set_limits(&Limits {
            pids_max: Some(16),
            ..Limits::default()
        })
        .unwrap();
        assert_eq!(read(&app_dir.join("pids.max")), "16");
    } else {
        println!(
            "SKIP pids.max assertion: pids is not in {}/cgroup.controllers ({offered:?})",
            app_dir.display()
        );
    }
    if offered.iter().any(|c| c == "memory") {
        app.set_limits(&Limits {
            memory_max: Some(64 << 20),
            ..Limits::default()
        })
        .unwrap();
        assert_eq!(read(&app_dir.join("memory.max")), (64u64 << 20).to_string());
        assert_eq!(app.oom_kills().unwrap(), 0);
    } else {
        println!(
            "SKIP memory.max assertion: memory is not in {}/cgroup.controllers ({offered:?})",
            app_dir.display()
        );
    }

    if app_dir.join("cgroup.kill").exists() {
        println!(
            "killing through {}",
            pod.dirs()[0].path().join("cgroup.kill").display()
        );
    }
    pod.kill_all().unwrap();
    assert!(pod.procs().unwrap().is_empty());
    pod.remove().unwrap();
    assert!(!pod.exists());
}

#[test]
fn a_controller_the_hierarchy_lacks_is_an_error_that_says_so() {
    let Some(u) = unified() else { return };
    let pod = Guard(Cgroup::create_pod(&u, &unique("noctl")).unwrap());
    let offered = words(&pod.dirs()[0].path().join("cgroup.controllers"));
    let Some(absent) = ["memory", "cpu", "pids"]
        .into_iter()
        .find(|c| !offered.iter().any(|o| o == c))
    else {
        println!("SKIP: this cgroup2 hierarchy offers memory, cpu and pids");
        return;
    };
    let limits = match absent {
        "memory" => Limits {
            memory_max: Some(1 << 30),
            ..Limits::default()
        },
        "cpu" => Limits {
            cpu_shares: Some(100),
            ..Limits::default()
        },
        _ => Limits {
            pids_max: Some(10),
            ..Limits::default()
        },
    };
    let err = pod.set_limits(&limits).unwrap_err();
    let CgroupError::ControllerUnavailable {
        controller, reason, ..
    } = &err
    else {
        panic!("expected ControllerUnavailable, got {err}");
    };
    assert_eq!(controller, absent);
    println!("{err}");
    assert!(err.to_string().contains(absent));
    assert!(!reason.is_empty());
    assert!(pod.check_controller(absent).is_err());
    if absent == "memory" {
        assert_eq!(pod.memory_usage().unwrap(), None);
        assert!(pod.oom_kills().is_err());
    }
}

/// The no-internal-processes rule, for real: a cgroup `T` plays the caller's cgroup holding
/// only the "caller" (a sleep process). `create_pod_with_supervisor` must move it into
/// `T/<pod>/_supervisor`, then enable a controller in `T` and in the pod so apps get it. With a
/// second process in `T` it must leave the controller off and explain why.
#[test]
fn supervisor_leaf_lets_controllers_be_enabled_down_the_path() {
    let _lock = ROOT_SUBTREE.lock().unwrap_or_else(|e| e.into_inner());
    let Some(u) = unified() else { return };
    let top = u.current();
    let top_dir = top.dirs()[0].path().to_owned();
    // A controller the cgroup2 hierarchy offers us (hugetlb on this hybrid host).
    let Some(ctrl) = words(&top_dir.join("cgroup.controllers"))
        .into_iter()
        .next()
    else {
        println!(
            "SKIP: {} offers no controller to test with",
            top_dir.display()
        );
        return;
    };
    let was_enabled = words(&top_dir.join("cgroup.subtree_control")).contains(&ctrl);
    let u = u.with_v2_controllers(&[&ctrl]);
    let restore = RestoreSubtree {
        dir: &top_dir,
        ctrl: &ctrl,
        was_enabled,
    };

    // T, with the controller (its parent can enable it: it is the root, or already does).
    let t = Guard(Cgroup::create_pod(&u, &unique("T")).unwrap());
    let t_dir = t.dirs()[0].path().to_owned();
    if !words(&t_dir.join("cgroup.controllers")).contains(&ctrl) {
        println!(
            "SKIP: {} holds processes, so {ctrl} cannot be passed down to a test cgroup",
            top_dir.display()
        );
        return;
    }
    let caller = sleeper();
    std::fs::write(t_dir.join("cgroup.procs"), caller.pid().to_string()).unwrap();
    let h = Hierarchies::discover_for_pid(caller.pid())
        .unwrap()
        .unified_only()
        .unwrap()
        .with_v2_controllers(&[&ctrl]);
    assert_eq!(h.current().dirs()[0].path(), t_dir);

    let pc = Cgroup::create_pod_with_supervisor(&h, "pod", caller.pid()).unwrap();
    let pod_dir = pc.pod.dirs()[0].path().to_owned();
    assert_eq!(pc.supervisor.procs().unwrap(), [caller.pid()]);
    assert_eq!(read(&t_dir.join("cgroup.procs")), "");
    assert!(words(&t_dir.join("cgroup.subtree_control")).contains(&ctrl));
    assert!(words(&pod_dir.join("cgroup.controllers")).contains(&ctrl));
    assert!(words(&pod_dir.join("cgroup.subtree_control")).contains(&ctrl));
    assert!(words(&pod_dir.join(SUPERVISOR).join("cgroup.controllers")).contains(&ctrl));
    let app = pc.pod.create_child("app").unwrap();
    assert!(words(&app.dirs()[0].path().join("cgroup.controllers")).contains(&ctrl));
    app.check_controller(&ctrl).unwrap();
    // The kernel's rule, as our error: a cgroup passing controllers down takes no processes.
    let other = sleeper();
    let err = pc.pod.add_process(other.pid()).unwrap_err();
    assert!(matches!(err, CgroupError::NotALeaf { .. }), "{err}");
    app.add_process(other.pid()).unwrap();
    let mut both = vec![caller.pid(), other.pid()];
    both.sort_unstable();
    assert_eq!(t.procs().unwrap(), both);

    // T2 holds the "caller" and another process: nothing is moved but the caller, the
    // controller stays off below T2, and the error says why and what to do.
    let t2 = Guard(Cgroup::create_pod(&u, &unique("T2")).unwrap());
    let t2_dir = t2.dirs()[0].path().to_owned();
    let caller2 = sleeper();
    let bystander = sleeper();
    for p in [&caller2, &bystander] {
        std::fs::write(t2_dir.join("cgroup.procs"), p.pid().to_string()).unwrap();
    }
    let h2 = Hierarchies::discover_for_pid(caller2.pid())
        .unwrap()
        .unified_only()
        .unwrap()
        .with_v2_controllers(&[&ctrl]);
    let pc2 = Cgroup::create_pod_with_supervisor(&h2, "pod", caller2.pid()).unwrap();
    assert_eq!(pc2.supervisor.procs().unwrap(), [caller2.pid()]);
    assert_eq!(
        read(&t2_dir.join("cgroup.procs")),
        bystander.pid().to_string()
    );
    let app2 = pc2.pod.create_child("app").unwrap();
    let err = app2.check_controller(&ctrl).unwrap_err();
    println!("{err}");
    let CgroupError::ControllerUnavailable { reason, .. } = &err else {
        panic!("{err}")
    };
    assert!(reason.contains(&t2_dir.display().to_string()), "{reason}");
    assert!(reason.contains(&bystander.pid().to_string()), "{reason}");
    assert!(reason.contains("Delegate=yes"), "{reason}");

    drop((app, app2, pc, pc2));
    drop((t, t2));
    drop(restore);
}

/// Puts the hierarchy root's `cgroup.subtree_control` back as the test found it (best
/// effort: another cgroup may use the controller meanwhile).
struct RestoreSubtree<'a> {
    dir: &'a Path,
    ctrl: &'a str,
    was_enabled: bool,
}

impl Drop for RestoreSubtree<'_> {
    fn drop(&mut self) {
        if !self.was_enabled {
            let _ = std::fs::write(
                self.dir.join("cgroup.subtree_control"),
                format!("-{}", self.ctrl),
            );
        }
    }
}
