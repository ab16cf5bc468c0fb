//! The pod lifecycle from other `rkt` processes, end to end: prepare and run-prepared, list,
//! status (and waiting on it), cat-manifest and logs.

mod e2e_pod_support;

use std::time::{Duration, Instant};

use e2e_pod_support::*;

#[test]
fn prepare_prints_a_uuid_and_run_prepared_runs_the_pod_once() {
    let env = PodEnv::new();
    let out = env.ok(&[
        "prepare",
        &busybox(),
        "--exec=/bin/sh",
        "--",
        "-c",
        "echo prepared-and-ran; exit 4",
    ]);
    let uuid = out.stdout.trim().to_owned();
    assert!(is_uuid(&uuid), "prepare printed {:?}", out.stdout);
    assert_eq!(env.pod_dirs(), [format!("prepared/{uuid}")]);
    let list = env.ok(&["list", "--no-legend", "--full"]).stdout;
    let line = list.lines().find(|l| l.starts_with(&uuid)).unwrap();
    assert!(line.contains(" prepared "), "{list}");
    let st = env.status(&uuid);
    assert_eq!(st["state"], "prepared");
    assert_eq!(st["exited"], "false");

    let out = env.code(&["run-prepared", &uuid], 4);
    assert_eq!(out.stdout, "prepared-and-ran\n");
    assert_eq!(env.status(&uuid)["app-busybox"], "4");
    let again = env.fail(&["run-prepared", &uuid]);
    assert!(again.stderr.contains("not prepared"), "{again}");

    // A prefix of the UUID names the pod too.
    let st = env.status(&uuid[..8]);
    assert_eq!(st["state"], "exited");
}

#[test]
fn two_run_prepared_at_once_exactly_one_wins() {
    let env = PodEnv::new();
    for _ in 0..3 {
        let uuid = env
            .ok(&[
                "prepare",
                &busybox(),
                "--exec=/bin/sh",
                "--",
                "-c",
                "echo the-pod-ran",
            ])
            .stdout
            .trim()
            .to_owned();
        let mut a = env.spawn(&["run-prepared", &uuid]);
        let mut b = env.spawn(&["run-prepared", &uuid]);
        let (a, b) = (a.wait(), b.wait());
        let winners: Vec<_> = [&a, &b].into_iter().filter(|o| o.success()).collect();
        assert_eq!(winners.len(), 1, "{a}\n{b}");
        assert_eq!(winners[0].stdout, "the-pod-ran\n");
        let loser = if a.success() { &b } else { &a };
        assert_eq!(loser.code(), Some(EXIT_ERROR), "{loser}");
        assert!(loser.stdout.is_empty(), "{loser}");
        assert!(loser.stderr.contains(&uuid), "{loser}");
    }
}

#[test]
fn list_shows_rkts_columns_in_every_format() {
    let env = PodEnv::new();
    let img = busybox();
    let (out, uuid) = env.run_pod(
        &[],
        &[
            &img,
            "--name=first",
            "--exec=/bin/true",
            &img,
            "--name=second",
            "--exec=/bin/true",
        ],
    );
    assert!(out.success(), "{out}");
    let prepared = env
        .ok(&["prepare", &img, "--exec=/bin/true"])
        .stdout
        .trim()
        .to_owned();
    let id = fx().busybox.image.image_id().to_string();

    let table = env.ok(&["list"]).stdout;
    let mut lines = table.lines();
    let legend: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    let rkt_columns = [
        "UUID",
        "APP",
        "IMAGE NAME",
        "IMAGE ID",
        "STATE",
        "CREATED",
        "STARTED",
        "NETWORKS",
    ];
    let in_legend: Vec<&str> = legend
        .iter()
        .copied()
        .filter(|c| rkt_columns.contains(c))
        .collect();
    assert_eq!(in_legend, rkt_columns, "{table}");
    let rows: Vec<&str> = lines.collect();
    // One row per app.
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows.iter()
            .any(|r| r.contains("first") && r.contains("exited"))
    );
    assert!(rows.iter().any(|r| r.contains("second")));
    assert!(rows.iter().any(|r| r.contains("prepared")), "{table}");
    // Short UUIDs and image ids without --full.
    assert!(rows.iter().any(|r| r.starts_with(&uuid[..8])), "{table}");
    assert!(!table.contains(&uuid), "{table}");
    assert!(!table.contains(&id), "{table}");
    assert!(table.contains("localhost/busybox:latest"), "{table}");

    let no_legend = env.ok(&["list", "--no-legend"]).stdout;
    assert_eq!(no_legend.lines().collect::<Vec<_>>(), rows);

    let full = env.ok(&["list", "--full", "--no-legend"]).stdout;
    assert!(full.contains(&uuid) && full.contains(&prepared), "{full}");
    assert!(full.contains(&id), "{full}");

    for format in ["--format=json", "--format=json-pretty"] {
        let out = env.ok(&["list", format]).stdout;
        assert_eq!(out.lines().count() > 1, format.ends_with("pretty"), "{out}");
        let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(v.len(), 2, "{out}");
        let pod = v.iter().find(|p| p["uuid"] == uuid.as_str()).unwrap();
        assert_eq!(pod["state"], "exited");
        let apps: Vec<&str> = pod["apps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap())
            .collect();
        assert_eq!(apps, ["first", "second"]);
        assert_eq!(pod["apps"][0]["image_id"], id.as_str());
        let p = v.iter().find(|p| p["uuid"] == prepared.as_str()).unwrap();
        assert_eq!(p["state"], "prepared");
    }
}

#[test]
fn status_waits_and_reports() {
    let env = PodEnv::new();
    let gate = env.rkt.home().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let vol = format!("--volume=gate,kind=host,source={}", gate.display());
    let (mut bg, uuid) = env.spawn_sh(
        &[&vol],
        &["--name=waiter", "--mount=volume=gate,target=/gate"],
        "while [ ! -e /gate/go ]; do sleep 0.05; done; exit 9",
    );
    // Running: a pid, not exited, no exit code yet.
    let st = env.status(&uuid);
    assert_eq!(st["state"], "running", "{}", show_map(&st));
    assert_eq!(st["exited"], "false");
    let pid: i32 = st["pid"].parse().unwrap();
    assert!(pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!st.contains_key("app-waiter"), "{}", show_map(&st));
    assert!(!st["created"].is_empty() && !st["started"].is_empty());
    // --wait-ready returns for a running pod.
    env.ok(&["status", "--wait-ready", &uuid]);
    // A bounded --wait on a pod that does not exit is an error.
    let t = Instant::now();
    let out = env.fail(&["status", "--wait=1s", &uuid]);
    assert!(t.elapsed() >= Duration::from_secs(1), "{out}");
    assert!(out.stderr.contains(&uuid), "{out}");
    // --wait returns once the pod has exited, with the final state.
    let mut waiting = env.spawn(&["status", "--wait", &uuid]);
    std::fs::write(gate.join("go"), "").unwrap();
    let out = waiting.wait();
    assert!(out.success(), "{out}");
    let st = parse_status(&out.stdout);
    assert_eq!(st["state"], "exited", "{out}");
    assert_eq!(st["exited"], "true");
    assert_eq!(st["app-waiter"], "9");
    assert_eq!(bg.wait().code(), Some(9));

    // JSON, and the UUID from a file.
    let file = env.rkt.home().join("the-uuid");
    std::fs::write(&file, format!("{uuid}\n")).unwrap();
    let out = env.ok(&[
        "status",
        "--format=json",
        &format!("--uuid-file={}", file.display()),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["uuid"], uuid.as_str());
    assert_eq!(v["state"], "exited");
    assert_eq!(v["apps"][0]["name"], "waiter");
    assert_eq!(v["apps"][0]["exit"]["code"], 9);
    let out = env.fail(&["status", "--format=yaml", &uuid]);
    assert!(out.stderr.contains("yaml"), "{out}");
}

#[test]
fn cat_manifest_prints_the_appc_pod_manifest() {
    let env = PodEnv::new();
    let (_, uuid) = env.run_pod(
        &[],
        &[&busybox(), "--name=web", "--exec=/bin/echo", "--", "hello"],
    );
    let compact = env.ok(&["cat-manifest", &uuid]).stdout;
    assert_eq!(compact.trim().lines().count(), 1, "{compact}");
    let pretty = env.ok(&["cat-manifest", "--pretty-print", &uuid]).stdout;
    assert!(pretty.lines().count() > 10, "{pretty}");
    let a: serde_json::Value = serde_json::from_str(&compact).unwrap();
    let b: serde_json::Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(a, b);
    assert_eq!(a["acKind"], "PodManifest");
    assert!(a["acVersion"].is_string());
    let app = &a["apps"][0];
    assert_eq!(app["name"], "web");
    assert_eq!(
        app["image"]["id"],
        fx().busybox.image.image_id().to_string()
    );
    assert_eq!(
        app["app"]["exec"],
        serde_json::json!(["/bin/echo", "hello"])
    );
    // Also for a prepared pod, before anything ran.
    let prepared = env
        .ok(&["prepare", &busybox(), "--exec=/bin/true"])
        .stdout
        .trim()
        .to_owned();
    let m: serde_json::Value =
        serde_json::from_str(&env.ok(&["cat-manifest", &prepared]).stdout).unwrap();
    assert_eq!(m["acKind"], "PodManifest");
}

#[test]
fn logs_of_an_exited_pod_keep_stdout_and_stderr_apart() {
    let env = PodEnv::new();
    let img = busybox();
    let (out, uuid) = env.run_pod(
        &[],
        &[
            &img,
            "--name=a",
            "--exec=/bin/sh",
            "--",
            "-c",
            "for i in 1 2 3 4 5; do echo a-out-$i; done",
            "---",
            &img,
            "--name=b",
            "--exec=/bin/sh",
            "--",
            "-c",
            "echo b-out; echo b-err >&2",
        ],
    );
    assert!(out.success(), "{out}");
    let a = env.ok(&["logs", "--app=a", &uuid]);
    assert_eq!(
        a.stdout, "a-out-1\na-out-2\na-out-3\na-out-4\na-out-5\n",
        "{a}"
    );
    assert_eq!(a.stderr, "", "{a}");
    let b = env.ok(&["logs", "--app=b", &uuid]);
    assert_eq!(
        (b.stdout.as_str(), b.stderr.as_str()),
        ("b-out\n", "b-err\n")
    );
    // Every app, each line marked with its app.
    let all = env.ok(&["logs", &uuid]);
    for l in ["a-out-1", "a-out-5", "b-out"] {
        assert!(all.stdout.contains(l), "{all}");
    }
    assert_eq!(all.stderr, "b: b-err\n", "{all}");
    assert!(!all.stdout.contains("err"), "{all}");
    let a_lines = all.stdout.lines().filter(|l| l.contains("a-out")).count();
    assert_eq!(a_lines, 5, "{all}");
    assert!(
        all.stdout
            .lines()
            .all(|l| l.starts_with("a") || l.starts_with("b")),
        "{all}"
    );

    // (Only within one stream is the order certain: stdout and stderr are separate pipes.)
    let tail = env.ok(&["logs", "--app=a", "--tail=2", &uuid]);
    assert_eq!(tail.stdout, "a-out-4\na-out-5\n", "{tail}");
    let future = env.ok(&["logs", "--since=2999-01-01T00:00:00Z", &uuid]);
    assert_eq!((future.stdout.as_str(), future.stderr.as_str()), ("", ""));
    let recent = env.ok(&["logs", "--app=b", "--since=1h", &uuid]);
    assert_eq!(recent.stdout, "b-out\n");
    env.fail(&["logs", "--app=nope", &uuid]);
}

#[test]
fn logs_since_a_time_between_two_lines() {
    let env = PodEnv::new();
    let gate = env.rkt.home().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let vol = format!("--volume=gate,kind=host,source={}", gate.display());
    let (mut bg, uuid) = env.spawn_sh(
        &[&vol],
        &["--mount=volume=gate,target=/gate"],
        "echo early; touch /gate/said-early; while [ ! -e /gate/go ]; do sleep 0.05; done; echo late",
    );
    eventually(60, "the first line", || {
        gate.join("said-early").exists().then_some(())
    });
    // The first line is in the log before the app could answer; make sure its time is behind
    // the cut by waiting for it to be logged and letting the clock move on.
    eventually(60, "the first line in the log", || {
        env.ok(&["logs", &uuid])
            .stdout
            .contains("early")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(20));
    let cut = humantime_now();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(gate.join("go"), "").unwrap();
    assert!(bg.wait().success());
    let all = env.ok(&["logs", &uuid]);
    assert_eq!(all.stdout, "early\nlate\n");
    let since = env.ok(&["logs", &format!("--since={cut}"), &uuid]);
    assert_eq!(since.stdout, "late\n", "since {cut}: {since}");
}

/// Now, as RFC 3339 with nanoseconds (UTC).
fn humantime_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let days = (d.as_secs() / 86400) as i64;
    let secs = d.as_secs() % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_nanos()
    )
}

#[test]
fn logs_follow_prints_until_the_pod_exits() {
    let env = PodEnv::new();
    let gate = env.rkt.home().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let vol = format!("--volume=gate,kind=host,source={}", gate.display());
    let (mut pod, uuid) = env.spawn_sh(
        &[&vol],
        &["--mount=volume=gate,target=/gate"],
        "echo before; echo before-err >&2; while [ ! -e /gate/go ]; do sleep 0.05; done; \
         echo after; echo after-err >&2",
    );
    let mut follow = env.spawn(&["logs", "-f", &uuid]);
    // `logs -f` keeps going while the pod runs.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!follow.exited(), "logs -f ended while the pod ran");
    std::fs::write(gate.join("go"), "").unwrap();
    assert!(pod.wait().success());
    let out = follow.wait();
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "before\nafter\n", "{out}");
    assert_eq!(out.stderr, "before-err\nafter-err\n", "{out}");
}
