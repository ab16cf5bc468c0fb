//! `enter`, `stop` and `gc` against running and finished pods.

mod common;

use std::path::Path;

use common::{Running, TestPod, app, sh, show, status_fields};

/// Starts a pod of one long-running app as `user`, waits until it is ready.
fn running_pod(user: &str) -> (TestPod, Running) {
    let mut a = sh(
        "web",
        "cat /proc/self/cgroup > /tmp/cgroup; exec sleep 1000",
    );
    a.user = user.into();
    a.supplementary_gids = vec![100];
    a.env = vec![("GREETING".into(), "hello".into())];
    let pod = TestPod::new(vec![a]);
    let mut running = pod.spawn();
    pod.wait_ready(&mut running);
    common::wait_until("the app's first command", || {
        pod.dir.join("apps/web/upper/tmp/cgroup").exists()
    });
    (pod, running)
}

fn stop(pod: &TestPod, running: Running) {
    let out = pod.stage1("stop", &[]);
    assert!(out.status.success(), "{}", show(&out));
    let out = running.wait();
    assert_eq!(out.status.code(), Some(128 + 15), "{}", show(&out));
}

#[test]
fn enter_gets_exactly_the_apps_namespaces_cgroup_identity_and_confinement() {
    let (pod, running) = running_pod("user");
    let app_pid = pod.app_pid("web").unwrap();
    let script = "cat /proc/self/status; echo ---; \
                  for n in pid mnt uts ipc net cgroup; do readlink /proc/self/ns/$n; done; \
                  echo ---; cat /proc/self/cgroup; echo ---; ps -o pid,comm; echo ---; \
                  echo $GREETING $AC_APP_NAME $HOME";
    let out = pod.stage1("enter", &["--app", "web", "--", "sh", "-c", script]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = text.split("---\n").collect();
    assert_eq!(parts.len(), 5, "{text}");

    let entered = status_fields(parts[0]);
    let app = status_fields(&std::fs::read_to_string(format!("/proc/{app_pid}/status")).unwrap());
    for field in [
        "Uid",
        "Gid",
        "Groups",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
        "NoNewPrivs",
        "Seccomp",
        "Seccomp_filters",
    ] {
        assert_eq!(entered[field], app[field], "{field}");
    }
    assert_eq!(entered["Uid"], "1000\t1000\t1000\t1000");

    let ns: Vec<&str> = parts[1].lines().collect();
    for (i, n) in ["pid", "mnt", "uts", "ipc", "net", "cgroup"]
        .iter()
        .enumerate()
    {
        let want = std::fs::read_link(format!("/proc/{app_pid}/ns/{n}")).unwrap();
        assert_eq!(Path::new(ns[i]), want, "{n} namespace");
    }
    // The same cgroups as the app, seen through the app's cgroup namespace, rooted at the
    // app's cgroup.
    let app_view = std::fs::read_to_string(pod.dir.join("apps/web/upper/tmp/cgroup")).unwrap();
    assert_eq!(parts[2], app_view);
    assert!(app_view.lines().all(|l| l.ends_with(":/")), "{app_view}");
    let host_view = std::fs::read_to_string(format!("/proc/{app_pid}/cgroup")).unwrap();
    assert!(
        host_view.contains(&format!("/rkt-{}/web", pod.req.uuid)),
        "{host_view}"
    );

    // It sees the app's processes, and PID 1 is the pod's supervisor.
    assert!(parts[3].contains("1 rkt-stage1"), "{}", parts[3]);
    assert!(parts[3].contains("sleep"), "{}", parts[3]);
    assert_eq!(parts[4], "hello web /home/user\n");
    stop(&pod, running);
}

#[test]
fn enter_runs_a_shell_by_default_and_passes_the_exit_status() {
    let (pod, running) = running_pod("");
    let out = pod.stage1_with_stdin(
        "enter",
        &["--app", "web"],
        Some(b"echo in $AC_APP_NAME; hostname; exit 7\n"),
    );
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in web\ntestpod\n");
    let out = pod.stage1("enter", &["--app", "web", "--", "nosuchcommand"]);
    assert_eq!(out.status.code(), Some(254), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nosuchcommand"),
        "{}",
        show(&out)
    );
    let out = pod.stage1("enter", &["--app", "db"]);
    assert_eq!(out.status.code(), Some(254));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no app named \"db\""));
    stop(&pod, running);
    let out = pod.stage1("enter", &["--app", "web"]);
    assert_eq!(out.status.code(), Some(254), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has exited"),
        "{}",
        show(&out)
    );
}

#[test]
fn stop_force_kills_a_pod_that_ignores_sigterm() {
    let pod = TestPod::new(vec![sh(
        "stubborn",
        "trap '' TERM; touch /tmp/trapped; sleep 1000",
    )]);
    let mut running = pod.spawn();
    pod.wait_ready(&mut running);
    common::wait_until("the app's trap", || {
        pod.dir.join("apps/stubborn/upper/tmp/trapped").exists()
    });
    let out = pod.stage1("stop", &["--force"]);
    assert!(out.status.success(), "{}", show(&out));
    let out = running.wait();
    assert_eq!(out.status.code(), Some(128 + 9), "{}", show(&out));
    let out = pod.stage1("stop", &[]);
    assert_eq!(out.status.code(), Some(254));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not running"),
        "{}",
        show(&out)
    );
}

#[test]
fn stop_and_gc_leave_no_cgroup_and_no_mount() {
    let (pod, running) = running_pod("");
    let dir = pod.dir.to_string_lossy().into_owned();
    let host_mounts = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    // The pod's mounts live in its own mount namespaces only.
    assert!(
        !host_mounts().contains(&dir),
        "a pod mount leaked to the host"
    );
    let cgroups = pod.cgroup_dirs();
    assert!(cgroups.iter().all(|d| d.is_dir()));
    stop(&pod, running);
    let out = pod.stage1("gc", &[]);
    assert!(out.status.success(), "{}", show(&out));
    for d in &cgroups {
        assert!(!d.exists(), "{} is left", d.display());
    }
    assert!(!host_mounts().contains(&dir));
    // Again: nothing left to remove is fine.
    let out = pod.stage1("gc", &[]);
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn gc_kills_what_is_left_in_the_pod_cgroup() {
    // A pod whose stage1 was SIGKILLed: the supervisor dies with it (parent-death signal),
    // and gc must not trip over anything still in the cgroup.
    let pod = TestPod::new(vec![app("web", &["sleep", "1000"])]);
    let mut running = pod.spawn();
    pod.wait_ready(&mut running);
    running.child.kill().unwrap();
    let _ = running.wait();
    let out = pod.stage1("gc", &[]);
    assert!(out.status.success(), "{}", show(&out));
    for d in pod.cgroup_dirs() {
        assert!(!d.exists(), "{} is left", d.display());
    }
}

#[test]
fn run_needs_the_pod_lock() {
    let pod = TestPod::new(vec![app("web", &["true"])]);
    // No RKT_LOCK_FD at all.
    let out = pod.stage1("run", &[]);
    assert_eq!(out.status.code(), Some(254), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("rkt: stage1: RKT_LOCK_FD"), "{err}");
    assert!(!pod.dir.join("cgroup").exists(), "nothing was started");
}

#[test]
fn run_refuses_a_pod_locked_by_someone_else() {
    let pod = TestPod::new(vec![app("web", &["true"])]);
    // Another open of the directory holds the lock; stage1 gets a descriptor of its own.
    let _other = common::lock_dir(&pod.dir);
    let out = pod.spawn_unlocked().wait();
    assert_eq!(out.status.code(), Some(254), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("locked by another process"),
        "{}",
        show(&out)
    );
}
