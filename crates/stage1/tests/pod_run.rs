//! `rkt-stage1 run` end to end: output, exit codes, logs, the pod's namespaces and PID 1.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{TestPod, empty_volume, sh, show};
use rkt_stage1::abi::MountRequest;

#[test]
fn output_and_exit_code_pass_through() {
    let pod = TestPod::new(vec![sh("hello", "echo hi; echo oops >&2; exit 3")]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("oops"),
        "{}",
        show(&out)
    );
    let exit = pod.exit("hello");
    assert_eq!(exit["code"], 3);
    assert_eq!(exit["signal"], serde_json::Value::Null);
    assert_eq!(exit["oom_killed"], false);
    let log = pod.log("hello");
    let line = log.lines().find(|l| l.contains(" stdout ")).unwrap();
    let (ts, rest) = line.split_once(' ').unwrap();
    assert_eq!(rest, "stdout F hi");
    assert!(
        ts.ends_with('Z') && ts.len() == "2026-01-02T15:04:05.000000000Z".len(),
        "{ts}"
    );
    assert_eq!(pod.logged("hello", "stderr"), "oops\n");
    assert!(pod.dir.join("ready").exists() && pod.dir.join("started").exists());
    let pid: i32 = std::fs::read_to_string(pod.dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 0);
}

#[test]
fn apps_share_pid_uts_and_ipc_namespaces_but_not_mounts() {
    // Each app records its namespaces in a shared volume and waits for the other's record,
    // so both are alive at once (namespace inode numbers are only unique among live ones).
    let script = |me: &str, other: &str| {
        format!(
            "for n in pid uts ipc mnt net; do echo $n=$(readlink /proc/self/ns/$n); done > /shared/{me}.tmp; \
             mv /shared/{me}.tmp /shared/{me}; \
             while [ ! -e /shared/{other} ]; do sleep 0.05; done; cat /shared/{me}"
        )
    };
    let mut a = sh("a", &script("a", "b"));
    let mut b = sh("b", &script("b", "a"));
    for app in [&mut a, &mut b] {
        app.mounts.push(MountRequest {
            volume: "shared".into(),
            path: "/shared".into(),
            read_only: false,
        });
    }
    let mut pod = TestPod::new(vec![a, b]);
    pod.req.volumes.push(empty_volume("shared"));
    let out = pod.run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ns = |app: &str| -> BTreeMap<String, String> {
        pod.logged(app, "stdout")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let (a, b) = (ns("a"), ns("b"));
    let host = |n: &str| std::fs::read_link(format!("/proc/self/ns/{n}")).unwrap();
    for n in ["pid", "uts", "ipc"] {
        assert_eq!(a[n], b[n], "{n}");
        assert_ne!(Path::new(&a[n]), host(n), "{n} must be the pod's own");
    }
    // --net=host: the host's network namespace.
    assert_eq!(Path::new(&a["net"]), host("net"));
    assert_ne!(a["mnt"], b["mnt"]);
}

#[test]
fn the_supervisor_is_pid_1_and_reaps_orphans() {
    // The inner shell exits at once, leaving its `sleep` to be re-parented to PID 1; once the
    // sleep ends, only PID 1 can reap it. Unreaped, it would stay a zombie (in /proc) for good.
    let pod = TestPod::new(vec![sh(
        "reaper",
        "sh -c 'sleep 1 & echo $! > /tmp/orphan'; p=$(cat /tmp/orphan); \
         grep -q '^PPid:[[:space:]]*1$' /proc/$p/status && echo adopted-by-1; \
         i=0; while [ -e /proc/$p ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; \
         if [ -e /proc/$p ]; then echo left; cat /proc/$p/stat; else echo reaped; fi; \
         cat /proc/1/comm",
    )]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        pod.logged("reaper", "stdout"),
        "adopted-by-1\nreaped\nrkt-stage1\n"
    );
}

#[test]
fn a_user_name_is_looked_up_in_the_image() {
    // /dev/stdout is /proc/self/fd/1: it opens only if the app is dumpable again after exec.
    let mut a = sh(
        "who",
        "id -u; id -g; id -G; echo $HOME $USER; pwd; echo via-dev-stdout > /dev/stdout",
    );
    a.user = "user".into();
    a.supplementary_gids = vec![100];
    a.working_dir = "/home/user".into();
    let pod = TestPod::new(vec![a]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1000\n1000\n1000 100\n/home/user user\n/home/user\nvia-dev-stdout\n"
    );
}

#[test]
fn an_unknown_user_is_a_clear_error() {
    let mut a = sh("who", "id");
    a.user = "daemon".into();
    let pod = TestPod::new(vec![a]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(254), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("rkt: stage1: ")
            && err.contains("\"daemon\"")
            && err.contains("/etc/passwd"),
        "{err}"
    );
    assert_eq!(pod.exit("who")["code"], 254);
}

#[test]
fn a_missing_executable_is_named() {
    let pod = TestPod::new(vec![common::app("ghost", &["nosuchbinary", "--flag"])]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(254), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuchbinary") && err.contains("PATH"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn a_failing_app_stops_the_others_and_sets_the_status() {
    let pod = TestPod::new(vec![
        common::app("long", &["sleep", "1000"]),
        sh("short", "sleep 0.2; exit 5"),
    ]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert_eq!(pod.exit("short")["code"], 5);
    let long = pod.exit("long");
    assert_eq!(long["signal"], 15, "{long}");
    assert_eq!(long["code"], 128 + 15);
}

#[test]
fn sigterm_to_stage1_stops_the_pod() {
    let pod = TestPod::new(vec![common::app("sleeper", &["sleep", "1000"])]);
    let mut running = pod.spawn();
    pod.wait_ready(&mut running);
    let pid = nix::unistd::Pid::from_raw(running.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = running.wait();
    assert_eq!(out.status.code(), Some(128 + 15), "{}", show(&out));
    assert_eq!(pod.exit("sleeper")["signal"], 15);
}

#[test]
fn an_app_ignoring_sigterm_is_killed_after_the_grace_period() {
    // `trap '' TERM` is inherited by the sleep too.
    let pod = TestPod::new(vec![sh(
        "stubborn",
        "trap '' TERM; touch /tmp/trapped; sleep 1000",
    )]);
    let mut running = pod.spawn();
    pod.wait_ready(&mut running);
    common::wait_until("the app's trap", || {
        pod.dir.join("apps/stubborn/upper/tmp/trapped").exists()
    });
    let pid = nix::unistd::Pid::from_raw(running.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let out = running.wait();
    assert_eq!(out.status.code(), Some(128 + 9), "{}", show(&out));
    assert_eq!(pod.exit("stubborn")["signal"], 9);
}

#[test]
fn a_memory_limit_oom_kills_and_says_so() {
    let mut a = common::app("hog", &["tail", "/dev/zero"]);
    a.limits.memory = Some(32 << 20);
    let pod = TestPod::new(vec![a]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(128 + 9), "{}", show(&out));
    let exit = pod.exit("hog");
    assert_eq!(exit["oom_killed"], true, "{exit}");
    assert_eq!(exit["signal"], 9);
}

#[test]
fn interactive_apps_get_the_callers_stdio() {
    let mut a = sh("tty", "read line; echo got $line; echo err >&2");
    a.stdio = rkt_stage1::abi::Stdio::Interactive;
    let mut pod = TestPod::new(vec![a]);
    pod.req.interactive = true;
    let out = pod.spawn_with_stdin(Some(b"hello\n")).wait();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(pod.log("tty"), "", "an interactive app is not logged");
}

#[test]
fn log_mode_stdin_is_dev_null() {
    let pod = TestPod::new(vec![sh("reader", "cat; echo done")]);
    let out = pod.spawn_with_stdin(Some(b"not for the app\n")).wait();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
}

#[test]
fn ctrl_c_on_the_terminal_of_an_interactive_pod_reaches_the_app_alone() {
    use std::io::{Read, Write};
    let pty = nix::pty::openpty(None, None).unwrap();
    // Ctrl-C must reach the app as SIGINT; had it reached stage1, the pod would have been
    // stopped with SIGTERM instead (exit 143).
    let mut a = sh(
        "tty",
        "trap 'echo got-int; exit 9' INT; echo ready; while true; do sleep 0.1; done",
    );
    a.stdio = rkt_stage1::abi::Stdio::Interactive;
    let mut pod = TestPod::new(vec![a]);
    pod.req.interactive = true;
    let running = pod.spawn_on_terminal(&pty.slave);
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let mut master = master.try_clone().unwrap();
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            // EIO once every holder of the terminal is gone.
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut seen = seen.lock().unwrap();
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                if seen.contains("got-int") {
                    break;
                }
            }
        })
    };
    // Ctrl-C once the app's trap is set (it says "ready" after), until it has answered.
    while !reader.is_finished() {
        if seen.lock().unwrap().contains("ready") {
            master.write_all(b"\x03").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    reader.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    let out = running.wait();
    assert_eq!(out.status.code(), Some(9), "{}\n{seen}", show(&out));
    assert!(seen.contains("ready") && seen.contains("got-int"), "{seen}");
}

#[test]
fn layers_stack_top_first_with_whiteouts_and_many_long_paths_fit() {
    // 80 more layers next to the busybox ones: like a store's layer trees, they share a long
    // directory and have short names. Their absolute paths overflow the one page of mount
    // options, so stage1 mounts them relative to that directory.
    let mut layers = common::layers();
    let store = layers[0].parent().unwrap().to_owned();
    for i in 0..80 {
        let l = store.join(format!("stack-{i:03}"));
        if !l.exists() {
            std::fs::create_dir_all(l.join("many")).unwrap();
            std::fs::write(l.join("many/which"), format!("{i}\n")).unwrap();
            std::fs::write(l.join(format!("many/{i}")), "").unwrap();
        }
        layers.push(l);
    }
    let total: usize = layers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        total > 4096,
        "the test needs more layer path bytes ({total})"
    );
    let mut a = sh(
        "stack",
        "cat /etc/rkt-top /many/which; ls /many | wc -l; test -e /etc/removed-by-top || echo whited-out",
    );
    a.layers = layers;
    let pod = TestPod::new(vec![a]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "top layer\n79\n81\nwhited-out\n"
    );
}

#[test]
fn layer_paths_with_overlayfs_separators_are_mounted_escaped() {
    // Such paths keep stage1 from building the overlay ahead (its fsconfig options are not
    // escaped); the app mounts it itself, escaped.
    let mut layers = common::layers();
    let odd = layers[0].parent().unwrap().join(r"odd,layer:1\x");
    if !odd.exists() {
        std::fs::create_dir_all(odd.join("etc")).unwrap();
        std::fs::write(odd.join("etc/odd"), "odd layer\n").unwrap();
    }
    layers.push(odd);
    let mut a = sh("odd", "cat /etc/odd /etc/rkt-top");
    a.layers = layers;
    let out = TestPod::new(vec![a]).run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "odd layer\ntop layer\n"
    );
}

#[test]
fn an_app_cannot_stop_the_pod_by_signalling_pid_1() {
    let pod = TestPod::new(vec![sh(
        "rogue",
        "kill -TERM 1; kill -INT 1; kill -HUP 1; sleep 0.5; echo still-here",
    )]);
    let out = pod.run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still-here\n");
}
