//! What `rkt` says when a pod cannot be made or acted on: a message naming the problem,
//! rkt's error status (254), and no half-made pod left in `pods/`.

mod e2e_pod_support;

use e2e_pod_support::*;

/// Runs `rkt VERB ARGS…` for `run` and `prepare`, each of which must fail with a message
/// containing `needle` and leave no pod directory and no name reservation behind.
fn refused(env: &PodEnv, args: &[&str], needle: &str) {
    for verb in ["run", "prepare"] {
        let before = env.pod_dirs();
        let mut a = vec![verb];
        a.extend_from_slice(args);
        let out = env.fail(&a);
        assert!(
            out.stderr.contains(needle),
            "expected {needle:?} in the message: {out}"
        );
        assert_eq!(env.pod_dirs(), before, "{verb} left a pod behind: {out}");
        let names: Vec<_> = std::fs::read_dir(env.rkt.dir().join("pods/names"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            names.iter().all(|n| n.to_string_lossy().starts_with('.')),
            "{names:?}"
        );
    }
}

#[test]
fn refused_before_a_pod_exists() {
    let env = PodEnv::new();
    let img = busybox();
    let missing = format!("oci:{}/no-such-layout:latest", env.rkt.home().display());
    refused(&env, &[&missing], "no-such-layout");
    refused(
        &env,
        &["--name=pod-x", &img, "--mount=volume=nowhere,target=/x"],
        "nowhere",
    );
    refused(
        &env,
        &["--interactive", &img, &img, "--name=two"],
        "interactive",
    );
    refused(
        &env,
        &[&img, "--name=same", "--exec=/bin/true", &img, "--name=same"],
        "same",
    );
    refused(&env, &[&img, "--name=Not_An_ACName"], "Not_An_ACName");
    refused(&env, &[&img, "--memory=lots"], "lots");
    refused(&env, &["--volume=v,kind=nfs", &img], "nfs");
    refused(&env, &[&img, "--working-dir=relative/dir"], "relative/dir");
    refused(&env, &["--dns=not-an-ip", &img], "not-an-ip");
    refused(
        &env,
        &[&img, "--seccomp=mode=remove,no_such_syscall"],
        "no_such_syscall",
    );
    refused(&env, &["--hosts-entry=oops", &img], "oops");
    // The UUID file cannot be written: the pod made for it is taken away again.
    let nowhere = format!(
        "--uuid-file-save={}/no-such-dir/uuid",
        env.rkt.home().display()
    );
    refused(&env, &[&nowhere, &img, "--exec=/bin/true"], "no-such-dir");
    // A stage1 that is missing, or that cannot be executed.
    refused(
        &env,
        &["--stage1-path=/no/such/stage1", &img],
        "/no/such/stage1",
    );
    let not_a_program = env.rkt.home().join("not-a-program");
    std::fs::write(&not_a_program, "just text\n").unwrap();
    let before = env.pod_dirs();
    let out = env.fail(&[
        "run",
        &format!("--stage1-path={}", not_a_program.display()),
        &img,
    ]);
    assert!(out.stderr.contains("not-a-program"), "{out}");
    assert_eq!(
        env.pod_dirs(),
        before,
        "a pod that never started was left: {out}"
    );
    // Gone before the env's gc, which then detaches the read-only view made of it.
    std::fs::remove_file(&not_a_program).unwrap();
    // No image at all, and an app flag before any image.
    refused(&env, &[], "image");
    refused(&env, &["--exec=/bin/true", &img], "--exec");

    // A name another pod holds.
    let (_, holder) = env.run_pod(&["--name=taken"], &[&img, "--exec=/bin/true"]);
    let before = env.pod_dirs();
    for verb in ["run", "prepare"] {
        let out = env.fail(&[verb, "--name=taken", &img, "--exec=/bin/true"]);
        assert!(out.stderr.contains("taken"), "{out}");
    }
    assert_eq!(env.pod_dirs(), before);
    assert_eq!(env.status("taken")["state"], "exited");
    assert!(env.ok(&["status", "taken"]).stdout.contains("exited"));
    env.ok(&["rm", &holder]);
}

#[test]
fn failures_inside_the_pod_are_reported_and_the_pod_is_left_exited() {
    let env = PodEnv::new();
    let img = busybox();
    for (flags, needle) in [
        (vec!["--user=nosuchuser"], "nosuchuser"),
        (vec!["--group=nosuchgroup"], "nosuchgroup"),
        (vec!["--exec=/no/such/binary"], "/no/such/binary"),
    ] {
        let mut apps = vec![img.as_str()];
        apps.extend(flags.iter().copied());
        let (out, uuid) = env.run_pod(&[], &apps);
        assert_eq!(out.code(), Some(EXIT_ERROR), "{out}");
        assert!(out.stderr.contains(needle), "{out}");
        assert!(!out.stderr.contains("panicked"), "{out}");
        // A whole pod that ran and failed: exited, its failure recorded, removable.
        let st = env.status(&uuid);
        assert_eq!(st["state"], "exited", "{}", show_map(&st));
        assert_eq!(
            st["app-busybox"],
            EXIT_ERROR.to_string(),
            "{}",
            show_map(&st)
        );
        env.ok(&["rm", &uuid]);
        env.assert_gone(&uuid);
    }
}

#[test]
fn verbs_on_pods_in_the_wrong_state_or_missing() {
    let env = PodEnv::new();
    let (_, exited) = env.run_pod(&[], &[&busybox(), "--exec=/bin/true"]);
    let prepared = env
        .ok(&["prepare", &busybox(), "--exec=/bin/true"])
        .stdout
        .trim()
        .to_owned();
    let out = env.fail(&["enter", &exited, "/bin/true"]);
    assert!(out.stderr.contains("not running"), "{out}");
    let out = env.fail(&["enter", &prepared, "/bin/true"]);
    assert!(out.stderr.contains("not running"), "{out}");
    for pod in [&exited, &prepared] {
        let out = env.fail(&["stop", pod]);
        assert!(out.stderr.contains("not running"), "{out}");
    }
    let unknown = "00000000-0000-4000-8000-000000000000";
    for verb in [
        "status",
        "enter",
        "stop",
        "rm",
        "cat-manifest",
        "logs",
        "run-prepared",
    ] {
        let out = env.fail(&[verb, unknown]);
        assert!(out.stderr.contains(unknown), "{verb}: {out}");
    }
    // Too short a prefix is refused rather than guessed.
    let out = env.fail(&["status", &exited[..2]]);
    assert!(out.stderr.contains(&exited[..2]), "{out}");
    // Nothing changed.
    assert_eq!(env.status(&exited)["state"], "exited");
    assert_eq!(env.status(&prepared)["state"], "prepared");
}

#[test]
fn run_prepared_refusals_leave_the_pod_prepared() {
    let env = PodEnv::new();
    let img = busybox();
    let uuid = env
        .ok(&[
            "prepare",
            &img,
            "--name=a",
            "--exec=/bin/true",
            &img,
            "--name=b",
            "--exec=/bin/true",
        ])
        .stdout
        .trim()
        .to_owned();
    let out = env.fail(&["run-prepared", "--interactive", &uuid]);
    assert!(out.stderr.contains("interactive"), "{out}");
    assert_eq!(env.status(&uuid)["state"], "prepared");
    let out = env.fail(&["run-prepared", "--stage1-path=/no/such/stage1", &uuid]);
    assert!(out.stderr.contains("/no/such/stage1"), "{out}");
    assert_eq!(env.status(&uuid)["state"], "prepared");
    env.ok(&["run-prepared", &uuid]);
    let st = env.status(&uuid);
    assert_eq!((st["app-a"].as_str(), st["app-b"].as_str()), ("0", "0"));
}

#[test]
fn a_reader_that_goes_away_early_is_no_crash() {
    let env = PodEnv::new();
    for _ in 0..3 {
        env.ok(&["prepare", "--quiet", &busybox(), "--exec=/bin/true"]);
    }
    let uuid = env.list_json()[0]["uuid"].as_str().unwrap().to_owned();
    // `rkt list | head -0`: the pipe's reader is gone before rkt writes a byte.
    for args in [
        vec!["list"],
        vec!["list", "--format=json"],
        vec!["status", &uuid],
        vec!["cat-manifest", "--pretty-print", &uuid],
        vec!["image", "list"],
    ] {
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        drop(reader);
        let mut full = vec!["--insecure-options=image"];
        full.extend(&args);
        let mut c = env.rkt.command(&full);
        c.stdout(std::process::Stdio::from(writer))
            .stderr(std::process::Stdio::piped());
        let out = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && stderr.trim().is_empty(),
            "rkt {args:?} with a closed stdout: {stderr}"
        );
        assert!(!out.status.success(), "rkt {args:?} claims to have printed");
    }
}
