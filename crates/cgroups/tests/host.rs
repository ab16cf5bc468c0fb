//! Real cgroups on this host with every hierarchy (hybrid here): discovery, pod and app
//! cgroups, processes, limits, OOM kills, kill and remove. Needs root.

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Guard, Proc, discover, proc_cgroups, read, sleeper, unique};
use rkt_cgroups::{Cgroup, CgroupError, CpuQuota, HierarchyKind, Layout, Limits};

#[test]
fn discover_matches_proc_self_cgroup_and_mounts() {
    let h = discover();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let v1 = mounts.lines().any(|l| {
        l.split(' ').nth(2) == Some("cgroup")
            && l.split(' ')
                .nth(3)
                .is_some_and(|o| o.split(',').any(|o| o == "memory" || o == "cpu"))
    });
    let v2 = mounts
        .lines()
        .any(|l| l.split(' ').nth(2) == Some("cgroup2"));
    let expected = match (v1, v2) {
        (true, true) => Layout::Hybrid,
        (true, false) => Layout::V1,
        _ => Layout::V2,
    };
    assert_eq!(h.layout(), expected);
    println!("layout {:?}", h.layout());

    let me = i32::try_from(std::process::id()).unwrap();
    let lines = proc_cgroups(me);
    for hier in h.hierarchies() {
        let key = match hier.kind() {
            HierarchyKind::V1 { controllers } => controllers.join(","),
            HierarchyKind::V2 => String::new(),
        };
        let (_, path) = lines
            .iter()
            .find(|(k, _)| *k == key)
            .expect("hierarchy in /proc/self/cgroup");
        assert_eq!(hier.cgroup_path(), path);
        assert!(hier.current_dir().ends_with(path.trim_start_matches('/')));
        // The directory really is our cgroup: it lists us.
        let procs = read(&hier.current_dir().join("cgroup.procs"));
        assert!(
            procs.lines().any(|l| l == me.to_string()),
            "{}",
            hier.current_dir().display()
        );
        println!("{key:>14} {} ({path})", hier.current_dir().display());
    }

    if Path::new("/sys/fs/cgroup/unified").is_dir() && Path::new("/sys/fs/cgroup/memory").is_dir() {
        // This project's CI and dev hosts.
        assert_eq!(h.layout(), Layout::Hybrid);
        assert_eq!(
            h.hierarchy_of("memory").unwrap().mount_point(),
            Path::new("/sys/fs/cgroup/memory")
        );
        let unified = h
            .hierarchies()
            .iter()
            .find(|x| x.kind() == &HierarchyKind::V2)
            .unwrap();
        assert_eq!(unified.mount_point(), Path::new("/sys/fs/cgroup/unified"));
        assert!(
            h.hierarchies()
                .iter()
                .any(|x| x.kind().is_v1_with("name=systemd"))
        );
    }
}

#[test]
fn pod_and_app_hold_a_process_until_killed() {
    let h = discover();
    let name = unique("pod");
    let pod = Guard(Cgroup::create_pod(&h, &name).unwrap());
    assert_eq!(pod.dirs().len(), h.hierarchies().len());
    for (d, hier) in pod.dirs().iter().zip(h.hierarchies()) {
        assert_eq!(d.path(), hier.current_dir().join(&name));
        assert!(d.path().is_dir());
    }
    // Making it again is an error that names it.
    let again = Cgroup::create_pod(&h, &name).unwrap_err();
    assert!(
        matches!(again, CgroupError::AlreadyExists { .. }),
        "{again}"
    );

    let app = pod.create_child("app").unwrap();
    let p = sleeper();
    app.add_process(p.pid()).unwrap();
    for (ctrls, path) in proc_cgroups(p.pid()) {
        let in_pod = path.ends_with(&format!("/{name}/app"));
        let mounted = h.hierarchies().iter().any(|x| match x.kind() {
            HierarchyKind::V1 { controllers } => controllers.join(",") == ctrls,
            HierarchyKind::V2 => ctrls.is_empty(),
        });
        assert_eq!(in_pod, mounted, "{ctrls}:{path}");
    }
    assert_eq!(app.procs().unwrap(), [p.pid()]);
    assert_eq!(pod.procs().unwrap(), [p.pid()]);

    let busy = pod.remove().unwrap_err();
    match &busy {
        CgroupError::Busy { path, pids } => {
            assert!(path.ends_with("app"), "{}", path.display());
            assert_eq!(pids, &[p.pid()]);
        }
        e => panic!("expected Busy, got {e}"),
    }
    assert!(app.exists() && pod.exists());

    pod.kill_all().unwrap();
    let mut p = p;
    let status = p.0.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    assert!(pod.procs().unwrap().is_empty());
    pod.remove().unwrap();
    assert!(!pod.exists());
    // Gone already: still fine (gc may run twice).
    pod.remove().unwrap();
    pod.kill_all().unwrap();
    assert!(pod.procs().unwrap().is_empty());
}

#[test]
fn supervisor_leaf_holds_the_given_process_and_the_record_reopens() {
    let h = discover();
    let s = sleeper();
    let pc = Cgroup::create_pod_with_supervisor(&h, &unique("sup"), s.pid()).unwrap();
    let pod = Guard(pc.pod.clone());
    assert_eq!(pc.supervisor, pod.supervisor().unwrap());
    assert_eq!(pc.supervisor.procs().unwrap(), [s.pid()]);
    // The test process itself stayed where it was.
    let me = i32::try_from(std::process::id()).unwrap();
    assert!(!pod.procs().unwrap().contains(&me));
    assert!(h.current().procs().unwrap().contains(&me));

    // stage1 writes the record; gc reads it back and cleans up with it.
    let record = serde_json::to_vec(&pc.pod).unwrap();
    let reopened: Cgroup = serde_json::from_slice(&record).unwrap();
    assert_eq!(reopened, pc.pod);
    assert_eq!(reopened.procs().unwrap(), [s.pid()]);
    reopened.kill_all().unwrap();
    reopened.remove().unwrap();
    assert!(!pod.exists());
    drop(s);
}

#[test]
fn memory_limit_gets_an_allocating_process_oom_killed() {
    let h = discover();
    let pod = Guard(Cgroup::create_pod(&h, &unique("oom")).unwrap());
    let app = pod.create_child("hog").unwrap();
    app.set_limits(&Limits {
        memory_max: Some(32 << 20),
        ..Limits::default()
    })
    .unwrap();
    let mem = h.hierarchy_of("memory").expect("a memory hierarchy");
    let limit_file = match mem.kind() {
        HierarchyKind::V1 { .. } => "memory.limit_in_bytes",
        HierarchyKind::V2 => "memory.max",
    };
    let dir = app
        .dirs()
        .iter()
        .find(|d| d.kind() == mem.kind())
        .unwrap()
        .path();
    assert_eq!(read(&dir.join(limit_file)), (32u64 << 20).to_string());
    assert_eq!(app.oom_kills().unwrap(), 0);

    // `tail -n 1` keeps the whole (newline-free) 128 MiB line in memory; the shell waits on
    // stdin so it is in the cgroup before anything is allocated.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "read _ && head -c 134217728 /dev/zero | tail -n 1 >/dev/null",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    app.add_process(pid).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut child = Proc(child);
    let status = child.0.wait().unwrap();
    // The OOM killer picks tail (the shell then exits 137), but now and then, with tail's
    // memory not yet reaped, the shell itself: either way, SIGKILL in the cgroup.
    use std::os::unix::process::ExitStatusExt as _;
    assert!(
        status.code() == Some(128 + 9) || status.signal() == Some(9),
        "the pipeline should be SIGKILLed by the OOM killer: {status:?}"
    );
    assert!(app.oom_kills().unwrap() >= 1);
    // The pod sees its app's kills (summed over the subtree on v1, hierarchical on v2).
    assert!(pod.oom_kills().unwrap() >= 1);
    let usage = app.memory_usage().unwrap().expect("memory usage");
    assert!(usage <= 32 << 20, "{usage}");
}

#[test]
fn cpu_and_pids_limits_land_in_the_right_files() {
    let h = discover();
    let pod = Guard(Cgroup::create_pod(&h, &unique("cpu")).unwrap());
    let app = pod.create_child("app").unwrap();
    let limits = Limits {
        cpu_quota: Some(CpuQuota {
            quota_us: 50_000,
            period_us: 100_000,
        }),
        cpu_shares: Some(512),
        pids_max: Some(32),
        ..Limits::default()
    };
    app.set_limits(&limits).unwrap();

    let dir_of = |c: &str| {
        let kind = h.hierarchy_of(c).unwrap().kind().clone();
        (
            app.dirs()
                .iter()
                .find(|d| d.kind() == &kind)
                .unwrap()
                .path()
                .to_owned(),
            kind,
        )
    };
    let (cpu, kind) = dir_of("cpu");
    if kind == HierarchyKind::V2 {
        assert_eq!(read(&cpu.join("cpu.max")), "50000 100000");
        assert_eq!(read(&cpu.join("cpu.weight")), "59");
    } else {
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cpu.join("cpu.shares")), "512");
    }
    let (pids, _) = dir_of("pids");
    assert_eq!(read(&pids.join("pids.max")), "32");

    // A shorter period with a proportionally smaller quota: v1 may refuse the period alone
    // first, the pair must still land.
    app.set_limits(&Limits {
        cpu_quota: Some(CpuQuota {
            quota_us: 5_000,
            period_us: 10_000,
        }),
        ..Limits::default()
    })
    .unwrap();
    if kind != HierarchyKind::V2 {
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "5000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "10000");

        // v1 refuses a child more CPU than its parent: the error names the file.
        let limited = pod.create_child("limited").unwrap();
        limited
            .set_limits(&Limits {
                cpu_quota: Some(CpuQuota::from_millicores(100)),
                ..Limits::default()
            })
            .unwrap();
        let greedy = limited.create_child("greedy").unwrap();
        let err = greedy
            .set_limits(&Limits {
                cpu_quota: Some(CpuQuota::from_millicores(900)),
                ..Limits::default()
            })
            .unwrap_err();
        assert!(matches!(err, CgroupError::Write { .. }), "{err}");
        assert!(err.to_string().contains("cpu.cfs_"), "{err}");
    }

    // Invalid values change nothing.
    let err = app.set_limits(&Limits {
        cpu_shares: Some(1),
        pids_max: Some(7),
        ..Limits::default()
    });
    assert!(matches!(err, Err(CgroupError::InvalidLimit { .. })));
    assert_eq!(read(&pids.join("pids.max")), "32");
}

#[test]
fn v1_cpuset_children_get_cpus_and_mems_and_can_take_processes() {
    let h = discover();
    let Some(cpuset) = h
        .hierarchies()
        .iter()
        .find(|x| x.kind().is_v1_with("cpuset"))
    else {
        println!("SKIP: no v1 cpuset hierarchy on this host");
        return;
    };
    let pod = Guard(Cgroup::create_pod(&h, &unique("cpuset")).unwrap());
    let app = pod.create_child("app").unwrap();
    let dir = app
        .dirs()
        .iter()
        .find(|d| d.kind() == cpuset.kind())
        .unwrap()
        .path();
    for f in ["cpuset.cpus", "cpuset.mems"] {
        assert_eq!(read(&dir.join(f)), read(&cpuset.current_dir().join(f)));
        assert!(!read(&dir.join(f)).is_empty());
    }
    let p = sleeper();
    app.add_process(p.pid()).unwrap();
    assert_eq!(app.procs().unwrap(), [p.pid()]);
}

#[test]
fn errors_for_a_gone_process_and_a_bad_name() {
    let h = discover();
    let pod = Guard(Cgroup::create_pod(&h, &unique("err")).unwrap());
    let mut p = sleeper();
    let pid = p.pid();
    p.0.kill().unwrap();
    p.0.wait().unwrap();
    let err = pod.add_process(pid).unwrap_err();
    assert!(matches!(err, CgroupError::NoSuchProcess { .. }), "{err}");
    assert!(matches!(
        pod.create_child("a/b"),
        Err(CgroupError::InvalidName { .. })
    ));
}

/// Without `cgroup.kill` (v1 hierarchies only, or kernels before 5.14) `kill_all` signals
/// pids round after round; a record without the unified directory takes that path here.
#[test]
fn kill_all_without_cgroup_kill_signals_every_process() {
    let h = discover();
    if h.layout() == Layout::V2 {
        // Every directory is a cgroup2 one with `cgroup.kill`: no record lacks it.
        println!("SKIP: a pure cgroup2 host has no v1 hierarchy to kill round by round");
        return;
    }
    let pod = Guard(Cgroup::create_pod(&h, &unique("sigkill")).unwrap());
    let app = pod.create_child("app").unwrap();
    // A shell that keeps forking children: each round must catch the new ones.
    let forker = Command::new("sh")
        .args(["-c", "read _; while :; do sleep 100 & sleep 0.01; done"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut forker = Proc(forker);
    app.add_process(forker.pid()).unwrap();
    forker.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(pod.procs().unwrap().len() > 2);

    let mut record: serde_json::Value = serde_json::to_value(&pod.0).unwrap();
    record["dirs"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["hierarchy"] != "v2");
    let v1_only: Cgroup = serde_json::from_value(record).unwrap();
    assert!(
        v1_only
            .dirs()
            .iter()
            .all(|d| d.kind() != &HierarchyKind::V2)
    );
    v1_only.kill_all().unwrap();
    assert!(v1_only.procs().unwrap().is_empty());
    assert!(pod.procs().unwrap().is_empty());
    assert_eq!(forker.0.wait().unwrap().signal(), Some(9));
}
