//! Acting on pods from other `rkt` processes, end to end: enter, stop, rm, gc, and image gc
//! next to pods. After each removal nothing of the pod may be left on the host.

mod e2e_pod_support;

use e2e_pod_support::*;

#[test]
fn enter_runs_a_command_exactly_as_confined_as_the_app() {
    let env = PodEnv::new();
    let (mut pod, uuid) = env.spawn_pod(
        &[],
        &[
            &busybox(),
            "--name=web",
            "--user=user",
            "--group=nobody",
            "--supplementary-gids=7",
            "--caps-retain=CAP_NET_BIND_SERVICE,CAP_KILL",
            "--seccomp=mode=remove,errno=EPERM,chmod,fchmodat",
            "--memory=64Mi",
            "--exec=/bin/sleep",
            "--",
            "100000",
        ],
    );
    let app = env.app_pid(&uuid, "web");
    let mut enter = env.spawn(&["enter", &uuid, "/bin/sleep", "99999"]);
    let entered = eventually(60, "the entered command", || {
        let p = pids_with_cmdline(&["/bin/sleep", "99999"]);
        (!p.is_empty()).then(|| p[0])
    });
    let (want, got) = (confinement(app), confinement(entered));
    assert_eq!(
        got,
        want,
        "app:\n{}entered:\n{}",
        show_map(&want),
        show_map(&got)
    );
    assert_eq!(want["Uid"].split_whitespace().next(), Some("1000"));
    assert_eq!(cap_mask(&want["CapEff"]), (1 << 10) | (1 << 5));
    let cgroup = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroup(entered), cgroup(app));
    assert!(
        cgroup(app).contains(&format!("rkt-{uuid}/web")),
        "{}",
        cgroup(app)
    );
    assert_eq!(namespaces(entered), namespaces(app));
    let root = |pid: i32| {
        let m = std::fs::metadata(format!("/proc/{pid}/root/")).unwrap();
        std::os::unix::fs::MetadataExt::ino(&m)
    };
    assert_eq!(root(entered), root(app));
    e2e_pod_support::signal(entered, rustix::process::Signal::KILL);
    let out = enter.wait();
    assert_eq!(out.code(), Some(137), "{out}");

    // enter passes the command's output and exit code through; the command sees the app's
    // files.
    let out = env.code(
        &[
            "enter",
            &uuid,
            "/bin/sh",
            "-c",
            "id -u; cat /etc/rkt-fixture-top >/dev/null && echo in-rootfs; exit 7",
        ],
        7,
    );
    assert_eq!(out.stdout, "1000\nin-rootfs\n", "{out}");
    // With several apps --app chooses; an unknown app is an error.
    env.fail(&["enter", "--app=nope", &uuid, "/bin/true"]);
    env.ok(&["stop", "--force", &uuid]);
    pod.wait();
}

#[test]
fn stop_terms_the_apps_and_force_kills_them() {
    let env = PodEnv::new();
    let script = "trap 'echo got-term; exit 7' TERM; echo up; sleep 100000 & wait";
    let (mut pod, uuid) = env.spawn_sh(&[], &["--name=svc"], script);
    let out = env.ok(&["stop", &uuid]);
    assert!(out.stdout.contains(&uuid), "{out}");
    let run = pod.wait();
    assert_eq!(run.code(), Some(7), "{run}");
    assert!(run.stdout.contains("got-term"), "{run}");
    let st = env.status(&uuid);
    assert_eq!(
        (st["state"].as_str(), st["app-svc"].as_str()),
        ("exited", "7")
    );

    // --force does not ask: the trap never runs.
    let (mut pod, uuid) = env.spawn_sh(&[], &["--name=svc"], script);
    env.ok(&["stop", "--force", &uuid]);
    let run = pod.wait();
    assert!(!run.stdout.contains("got-term"), "{run}");
    assert_eq!(run.code(), Some(137), "{run}");
    let st = env.status(&uuid);
    assert_eq!(st["state"], "exited");
    // The app died with the pod's PID 1; its end is on record all the same.
    assert_eq!(
        st.get("app-svc").map(String::as_str),
        Some("137"),
        "{}",
        show_map(&st)
    );

    // Stopping what does not run is an error.
    let out = env.fail(&["stop", &uuid]);
    assert!(out.stderr.contains("not running"), "{out}");
}

#[test]
fn rm_removes_an_exited_pod_entirely_and_refuses_a_running_one() {
    let env = PodEnv::new();
    let (mut pod, uuid) = env.spawn_sh(&[], &[], "sleep 100000");
    // While it runs, its mounts live only in the pod's own mount namespaces.
    let mounts = host_mounts_under(&env.rkt.dir());
    assert!(mounts.is_empty(), "pod mounts on the host: {mounts:?}");
    assert!(!pod_cgroups(&uuid).is_empty(), "no pod cgroup found");
    let out = env.fail(&["rm", &uuid]);
    assert!(out.stderr.contains("running"), "{out}");
    assert!(env.pod_dir(&uuid).is_some());
    env.ok(&["stop", &uuid]);
    pod.wait();
    // The exited pod keeps its cgroups (for status and stats) until it is removed.
    assert!(env.pod_dir(&uuid).is_some());
    let out = env.ok(&["rm", &uuid]);
    assert_eq!(out.stdout.trim().trim_matches('"'), uuid, "{out}");
    env.assert_gone(&uuid);
    let out = env.fail(&["rm", &uuid]);
    assert!(out.stderr.contains(&uuid), "{out}");

    // By name and from a UUID file, several at once.
    let (_, a) = env.run_pod(&["--name=job-a"], &[&busybox(), "--exec=/bin/true"]);
    let (_, b) = env.run_pod(&[], &[&busybox(), "--exec=/bin/true"]);
    let file = env.rkt.home().join("b-uuid");
    std::fs::write(&file, &b).unwrap();
    env.ok(&["rm", "job-a", &format!("--uuid-file={}", file.display())]);
    env.assert_gone(&a);
    env.assert_gone(&b);
    assert!(env.pod_dirs().is_empty(), "{:?}", env.pod_dirs());
}

#[test]
fn gc_marks_then_sweeps_after_the_grace_period() {
    let env = PodEnv::new();
    let (_, exited) = env.run_pod(&[], &[&busybox(), "--exec=/bin/true"]);
    let prepared = env
        .ok(&["prepare", &busybox(), "--exec=/bin/true"])
        .stdout
        .trim()
        .to_owned();
    let (mut running, live) = env.spawn_sh(&[], &[], "sleep 100000");

    env.ok(&["gc", "--mark-only"]);
    assert_eq!(env.status(&exited)["state"], "exited garbage");
    assert!(
        env.pod_dir(&exited)
            .unwrap()
            .starts_with(env.rkt.dir().join("pods/exited-garbage"))
    );
    assert!(!pod_cgroups(&exited).is_empty());
    // Within the grace period nothing is removed.
    env.ok(&["gc", "--grace-period=1h"]);
    assert!(env.pod_dir(&exited).is_some());
    // Past it the exited pod goes; the prepared one stays until it expires; the running one
    // is not touched.
    env.ok(&["gc", "--grace-period=0s"]);
    env.assert_gone(&exited);
    assert_eq!(env.status(&prepared)["state"], "prepared");
    assert_eq!(env.status(&live)["state"], "running");
    env.ok(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    env.assert_gone(&prepared);
    assert_eq!(env.status(&live)["state"], "running");

    env.ok(&["stop", "--force", &live]);
    running.wait();
    env.ok(&["gc", "--grace-period=0s"]);
    env.assert_gone(&live);
    assert!(env.pod_dirs().is_empty(), "{:?}", env.pod_dirs());
}

#[test]
fn image_gc_keeps_the_layer_trees_of_pods_until_they_are_removed() {
    let env = PodEnv::new();
    let (out, uuid) = env.run_pod(&[], &[&busybox(), "--exec=/bin/true"]);
    assert!(out.success(), "{out}");
    let prepared = env
        .ok(&[
            "prepare",
            &busybox(),
            "--exec=/bin/cat",
            "--",
            "/etc/rkt-fixture-top",
        ])
        .stdout
        .trim()
        .to_owned();
    let layers = env.rkt.store().join("layers");
    let trees: Vec<std::path::PathBuf> = fx()
        .busybox
        .image
        .diff_ids
        .iter()
        .map(|d| layers.join(d.algorithm().name()).join(d.hex()))
        .collect();
    assert!(trees.iter().all(|t| t.is_dir()), "{trees:?}");
    let id = fx().busybox.image.image_id().to_string();
    env.ok(&["image", "rm", &id]);
    env.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(env.rkt.image_list().is_empty());
    for t in &trees {
        assert!(
            t.is_dir(),
            "image gc removed {} while a pod uses it",
            t.display()
        );
    }
    // The prepared pod still runs from those trees.
    let out = env.ok(&["run-prepared", &prepared]);
    assert!(!out.stdout.is_empty(), "{out}");
    env.ok(&["rm", &uuid]);
    env.ok(&["image", "gc", "--grace-period=0s"]);
    for t in &trees {
        assert!(
            t.is_dir(),
            "image gc removed {} while a pod uses it",
            t.display()
        );
    }
    env.ok(&["rm", &prepared]);
    env.ok(&["image", "gc", "--grace-period=0s"]);
    for t in &trees {
        assert!(!t.exists(), "{} outlived its last pod", t.display());
    }
}

#[test]
fn enter_chooses_the_app_of_a_pod_with_several() {
    let env = PodEnv::new();
    let img = busybox();
    let (mut pod, uuid) = env.spawn_pod(
        &[],
        &[
            &img,
            "--name=a",
            "--exec=/bin/sleep",
            "--",
            "100000",
            "---",
            &img,
            "--name=b",
            "--exec=/bin/sh",
            "--",
            "-c",
            "echo mark > /only-in-b; exec sleep 100000",
        ],
    );
    let out = env.fail(&["enter", &uuid, "/bin/true"]);
    assert!(out.stderr.contains("--app"), "{out}");
    let b = eventually(60, "b's file", || {
        let out = env.run(&["enter", "--app=b", &uuid, "/bin/cat", "/only-in-b"]);
        out.success().then_some(out)
    });
    assert_eq!(b.stdout, "mark\n");
    // a has its own root filesystem.
    let a = env.run(&["enter", "--app=a", &uuid, "/bin/cat", "/only-in-b"]);
    assert!(!a.success(), "{a}");
    env.ok(&["stop", &uuid]);
    pod.wait();
}

#[test]
fn a_killed_rkt_run_takes_its_pod_down_and_gc_cleans_up() {
    let env = PodEnv::new();
    let (mut bg, uuid) = env.spawn_sh(&[], &["--name=app"], "sleep 100000");
    let app = env.app_pid(&uuid, "app");
    bg.signal(rustix::process::Signal::KILL);
    let out = bg.wait();
    assert_eq!(out.status.code(), None, "{out}");
    // The apps die with it: nothing runs on unsupervised.
    eventually(60, "the app to die", || {
        let stat = std::fs::read_to_string(format!("/proc/{app}/stat")).unwrap_or_default();
        // Gone, or a zombie about to be reaped.
        (stat.is_empty() || stat.contains(") Z ")).then_some(())
    });
    eventually(60, "the pod to read as exited", || {
        (env.status(&uuid)["state"] == "exited").then_some(())
    });
    env.ok(&["gc", "--grace-period=0s"]);
    env.assert_gone(&uuid);
}

#[test]
fn apps_killed_with_their_supervisor_are_recorded_as_killed() {
    let env = PodEnv::new();
    let (mut bg, uuid) = env.spawn_sh(&[], &["--name=app"], "sleep 100000");
    env.app_pid(&uuid, "app");
    let dir = env.pod_dir(&uuid).expect("the pod has a directory");
    let supervisor: i32 = std::fs::read_to_string(dir.join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    e2e_pod_support::signal(supervisor, rustix::process::Signal::KILL);
    // stage1 outlives its supervisor, says how the app ended, and exits with the pod's status.
    let out = bg.wait();
    assert_eq!(out.status.code(), Some(137), "{out}");
    let st = env.status(&uuid);
    assert_eq!(st["state"], "exited", "{}", show_map(&st));
    assert_eq!(st["app-app"], "137", "{}", show_map(&st));
}
