//! The paths that move the calling process without a grace period, which only a
//! single-threaded process may take: so this test is its own `main` (no libtest threads).
//! `Cgroup::join_v1` and `Cgroup::create_pod_for_self` on the host's hierarchies, the
//! no-internal-processes case on its cgroup2 one, and a child forked into a cgroup2 cgroup
//! with `clone3(CLONE_INTO_CGROUP)`. Needs root; every check panics on failure.

mod common;

use std::path::Path;

use common::{Guard, discover, proc_cgroups, read, sleeper, unique, words};
use rkt_cgroups::{Cgroup, CgroupError, HierarchyKind, POD_CONTROLLERS, SUPERVISOR};

fn main() {
    joins_the_pod_cgroup_in_v1_and_stays_put_in_v2();
    a_threaded_process_is_refused();
    a_child_is_born_in_its_cgroup2_cgroup();
    moves_in_cgroup2_only_when_that_lets_controllers_be_enabled();
    println!("self_join: ok");
}

fn me() -> i32 {
    i32::try_from(std::process::id()).unwrap()
}

/// This process's cgroup path in the hierarchy whose `/proc/self/cgroup` controller field is
/// `controllers` (`""` for cgroup2).
fn my_path(controllers: &str) -> String {
    proc_cgroups(me())
        .into_iter()
        .find(|(c, _)| c == controllers)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no {controllers:?} line in /proc/self/cgroup"))
}

fn field(kind: &HierarchyKind) -> String {
    match kind {
        HierarchyKind::V1 { controllers } => controllers.join(","),
        HierarchyKind::V2 => String::new(),
    }
}

fn joins_the_pod_cgroup_in_v1_and_stays_put_in_v2() {
    let h = discover().for_controllers(POD_CONTROLLERS);
    let before: Vec<(String, String)> = h
        .hierarchies()
        .iter()
        .map(|x| (field(x.kind()), x.cgroup_path().to_owned()))
        .collect();
    let name = unique("self");
    let pc = Cgroup::create_pod_for_self(&h, &name).unwrap();
    let pod = Guard(pc.pod.clone());
    for (f, was) in &before {
        let now = my_path(f);
        if f.is_empty() {
            // The hybrid host's cgroup2 hierarchy passes none of cpu, memory, pids down, so
            // nothing is gained by a move there.
            assert_eq!(&now, was, "cgroup2");
        } else {
            // v1 allows processes beside child cgroups: the pod cgroup itself.
            assert!(now.ends_with(&format!("/{name}")), "{f}: {now}");
        }
    }
    if before.iter().any(|(f, _)| !f.is_empty()) {
        assert!(pc.supervisor.procs().unwrap().contains(&me()));
    }
    // And back, the same way.
    h.current().join_v1().unwrap();
    for (f, was) in &before {
        assert_eq!(&my_path(f), was, "{f}");
    }
    drop(pod);
    assert!(!pc.pod.exists());
}

fn a_threaded_process_is_refused() {
    let h = discover().for_controllers(POD_CONTROLLERS);
    if h.current()
        .dirs()
        .iter()
        .all(|d| d.kind() == &HierarchyKind::V2)
    {
        println!("SKIP: no v1 hierarchy to join");
        return;
    }
    let t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(300)));
    let err = h.current().join_v1().unwrap_err();
    assert!(
        matches!(err, CgroupError::Threaded { threads, .. } if threads > 1),
        "{err}"
    );
    t.join().unwrap();
}

fn a_child_is_born_in_its_cgroup2_cgroup() {
    let Some(u) = discover().unified_only() else {
        println!("SKIP: no cgroup2 hierarchy mounted");
        return;
    };
    let pod = Guard(Cgroup::create_pod(&u, &unique("born")).unwrap());
    let app = pod.create_child("app").unwrap();
    let dir = app.open_v2().unwrap().expect("a cgroup2 directory");
    match rkt_sys::fork_into_cgroup(std::os::fd::AsFd::as_fd(&dir)).unwrap() {
        rkt_sys::Fork::Child => {
            let ok = my_path("").ends_with("/app");
            std::process::exit(if ok { 0 } else { 1 });
        }
        rkt_sys::Fork::Parent(pid) => {
            let pid = rustix::process::Pid::from_raw(pid.as_raw()).unwrap();
            let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                .unwrap()
                .unwrap()
                .1;
            assert_eq!(
                status.exit_status(),
                Some(0),
                "the child was not in .../app"
            );
        }
    }
    assert!(!my_path("").ends_with("/app"));
}

/// A cgroup `T` plays the caller's cgroup on the cgroup2 hierarchy. Holding only this process,
/// `T` can pass a controller down once the process leaves: `create_pod_for_self` moves it into
/// `T/pod/_supervisor` and enables the controller on the way. With another process in `T` a
/// move gains nothing, and it stays.
fn moves_in_cgroup2_only_when_that_lets_controllers_be_enabled() {
    let Some(u) = discover().unified_only() else {
        println!("SKIP: no cgroup2 hierarchy mounted");
        return;
    };
    let top = u.current().dirs()[0].path().to_owned();
    let Some(ctrl) = words(&top.join("cgroup.controllers")).into_iter().next() else {
        println!("SKIP: {} offers no controller to test with", top.display());
        return;
    };
    let was_enabled = words(&top.join("cgroup.subtree_control")).contains(&ctrl);
    let u = u.with_v2_controllers(&[&ctrl]);
    let t = Guard(Cgroup::create_pod(&u, &unique("T")).unwrap());
    let t_dir = t.dirs()[0].path().to_owned();
    let result = std::panic::catch_unwind(|| {
        if !words(&t_dir.join("cgroup.controllers")).contains(&ctrl) {
            println!(
                "SKIP: {} cannot pass {ctrl} down to a test cgroup",
                top.display()
            );
            return;
        }
        // Alone in T: moved, and the controller reaches the pod's children.
        std::fs::write(t_dir.join("cgroup.procs"), me().to_string()).unwrap();
        let h = rkt_cgroups::Hierarchies::discover()
            .unwrap()
            .unified_only()
            .unwrap()
            .with_v2_controllers(&[&ctrl]);
        let pc = Cgroup::create_pod_for_self(&h, "pod").unwrap();
        let pod_dir = pc.pod.dirs()[0].path().to_owned();
        assert!(my_path("").ends_with(&format!("/pod/{SUPERVISOR}")));
        assert_eq!(read(&t_dir.join("cgroup.procs")), "");
        assert!(words(&t_dir.join("cgroup.subtree_control")).contains(&ctrl));
        assert!(words(&pod_dir.join("cgroup.subtree_control")).contains(&ctrl));
        let app = pc.pod.create_child("app").unwrap();
        app.check_controller(&ctrl).unwrap();
        back_to(&top);
        pc.pod.remove().unwrap();

        // T holds another process: a move would not let T pass anything down, so none.
        let t2 = Guard(Cgroup::create_pod(&u, &unique("T2")).unwrap());
        let t2_dir = t2.dirs()[0].path().to_owned();
        let bystander = sleeper();
        for pid in [bystander.pid(), me()] {
            std::fs::write(t2_dir.join("cgroup.procs"), pid.to_string()).unwrap();
        }
        let h2 = rkt_cgroups::Hierarchies::discover()
            .unwrap()
            .unified_only()
            .unwrap()
            .with_v2_controllers(&[&ctrl]);
        let pc2 = Cgroup::create_pod_for_self(&h2, "pod").unwrap();
        assert_eq!(
            Path::new(&my_path("")).file_name().unwrap(),
            t2_dir.file_name().unwrap()
        );
        assert!(!words(&t2_dir.join("cgroup.subtree_control")).contains(&ctrl));
        back_to(&top);
        pc2.pod.remove().unwrap();
        drop((bystander, t2));
    });
    back_to(&top);
    drop(t);
    if !was_enabled {
        let _ = std::fs::write(top.join("cgroup.subtree_control"), format!("-{ctrl}"));
    }
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Puts this process back into the cgroup2 cgroup `dir` (if it is not there already).
fn back_to(dir: &Path) {
    if let Err(e) = std::fs::write(dir.join("cgroup.procs"), me().to_string()) {
        panic!("cannot move back into {}: {e}", dir.display());
    }
}
