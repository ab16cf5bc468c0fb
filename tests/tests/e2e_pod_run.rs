//! `rkt run` end to end through the real binary and stage1: what reaches the caller (output,
//! exit codes), pods of several apps, and the pod-level flags.

mod e2e_pod_support;

use e2e_pod_support::*;

#[test]
fn app_output_reaches_rkt_and_the_exit_code_passes_through() {
    let env = PodEnv::new();
    let out = env.sh(&[], &[], "echo to-stdout; echo to-stderr >&2");
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout, "to-stdout\n", "{out}");
    assert!(out.stderr.contains("to-stderr\n"), "{out}");

    // The image's own command when none is given.
    let out = env.ok(&["run", &busybox()]);
    assert_eq!(out.stdout, "hello from the rkt busybox fixture\n", "{out}");

    for (script, code) in [
        ("exit 3", 3),
        ("exit 0", 0),
        ("kill -KILL $$", 128 + 9),
        ("kill -TERM $$", 128 + 15),
        ("kill -USR1 $$", 128 + 10),
    ] {
        let out = env.sh(&[], &[], script);
        assert_eq!(out.code(), Some(code), "{script}: {out}");
    }
}

#[test]
fn arguments_after_the_image_reach_the_app() {
    let env = PodEnv::new();
    // `--` then arguments, `---` ends them and another image follows.
    let img = busybox();
    let out = env.ok(&[
        "run",
        &img,
        "--name=a",
        "--exec=/bin/echo",
        "--",
        "one",
        "two  spaces",
        "---",
        &img,
        "--name=b",
        "--exec=/bin/sh",
        "--",
        "-c",
        "sleep 0.2; echo b-done",
    ]);
    assert!(out.stdout.contains("one two  spaces\n"), "{out}");
    assert!(out.stdout.contains("b-done\n"), "{out}");
    // Arguments without --exec replace the image's default arguments, not its entrypoint
    // (`/bin/sh -c`).
    let out = env.ok(&["run", &img, "--", "echo replaced"]);
    assert_eq!(out.stdout, "replaced\n", "{out}");
}

/// `name ns:[inode]` lines from each app.
///
/// Each app reports only once both are up (they meet in a shared volume): the kernel reuses a
/// freed namespace's inode number, so two apps that never overlapped could show the same one.
fn ns_report(app: &str) -> String {
    format!(
        "touch /shared/{app}; while [ ! -e /shared/a ] || [ ! -e /shared/b ]; do sleep 0.05; done; \
         for n in pid uts ipc net mnt; do echo {app} $n $(readlink /proc/self/ns/$n); done; \
         echo {app} host $(hostname); touch /shared/{app}-done; \
         while [ ! -e /shared/a-done ] || [ ! -e /shared/b-done ]; do sleep 0.05; done"
    )
}

fn ns_of(stdout: &str, app: &str, ns: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{app} {ns} ")))
        .unwrap_or_else(|| panic!("no {ns} line for {app} in:\n{stdout}"))
        .to_owned()
}

#[test]
fn apps_share_pid_uts_ipc_and_net_namespaces_but_not_mounts_and_the_pod_waits_for_all() {
    let env = PodEnv::new();
    let img = busybox();
    let (a, b) = (ns_report("a"), ns_report("b"));
    let b = format!("{b}; sleep 0.3; echo b-done");
    let (out, uuid) = env.run_pod(
        &[
            "--volume=shared,kind=empty",
            "--mount=volume=shared,target=/shared",
        ],
        &[
            &img,
            "--name=a",
            "--exec=/bin/sh",
            "--",
            "-c",
            &a,
            "---",
            &img,
            "--name=b",
            "--exec=/bin/sh",
            "--",
            "-c",
            &b,
        ],
    );
    assert!(out.success(), "{out}");
    let s = &out.stdout;
    for ns in ["pid", "uts", "ipc", "net", "host"] {
        assert_eq!(ns_of(s, "a", ns), ns_of(s, "b", ns), "{ns} differs:\n{s}");
    }
    assert_ne!(ns_of(s, "a", "mnt"), ns_of(s, "b", "mnt"), "{s}");
    let me = namespaces(std::process::id() as i32);
    for ns in ["pid", "uts", "ipc", "net", "mnt"] {
        assert_ne!(
            ns_of(s, "a", ns),
            me[ns],
            "the pod shares the host's {ns} namespace"
        );
    }
    assert_eq!(ns_of(s, "a", "host"), format!("rkt-{uuid}"));
    // The slower app ran to its end: the pod lasted until both were done.
    assert!(s.contains("b-done\n"), "{out}");
    let st = env.status(&uuid);
    assert_eq!(st["app-a"], "0");
    assert_eq!(st["app-b"], "0");
}

#[test]
fn a_failing_app_stops_the_others_and_the_first_failure_is_the_pods_exit_code() {
    let env = PodEnv::new();
    let img = busybox();
    // b would run for ten minutes; stopped by a's failure, it answers SIGTERM with 5. The pod
    // exits with a's 3: the first app that failed, not the last.
    let (out, uuid) = env.run_pod(
        &[],
        &[
            &img,
            "--name=a",
            "--exec=/bin/sh",
            "--",
            "-c",
            "sleep 0.3; exit 3",
            "---",
            &img,
            "--name=b",
            "--exec=/bin/sh",
            "--",
            "-c",
            "trap 'echo b-got-term; exit 5' TERM; sleep 600 & wait",
        ],
    );
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(out.stdout.contains("b-got-term"), "{out}");
    let st = env.status(&uuid);
    assert_eq!(st["app-a"], "3", "{}", show_map(&st));
    assert_eq!(st["app-b"], "5", "{}", show_map(&st));
    assert_eq!(st["state"], "exited");

    // Without a trap the stopped app dies of SIGTERM; the pod still says 3.
    let (out, uuid) = env.run_pod(
        &[],
        &[
            &img,
            "--name=a",
            "--exec=/bin/sh",
            "--",
            "-c",
            "exit 3",
            "---",
            &img,
            "--name=b",
            "--exec=/bin/sleep",
            "--",
            "600",
        ],
    );
    assert_eq!(out.code(), Some(3), "{out}");
    let st = env.status(&uuid);
    assert_eq!(st["app-a"], "3", "{}", show_map(&st));
    assert_ne!(
        st.get("app-b").map(String::as_str),
        Some("0"),
        "{}",
        show_map(&st)
    );
}

#[test]
fn pod_hostname_hosts_and_dns() {
    let env = PodEnv::new();
    let out = env.sh_ok(
        &[
            "--hostname=web-1",
            "--hosts-entry=10.1.2.3=db.example",
            "--hosts-entry=10.1.2.4=cache.example",
            "--dns=10.0.0.53",
            "--dns=10.0.0.54",
            "--dns-search=a.example",
            "--dns-search=b.example",
            "--dns-opt=ndots:2",
            "--dns-domain=example",
        ],
        &[],
        "hostname; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname",
    );
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 4, "{out}");
    assert_eq!(parts[0], "web-1\n");
    assert!(parts[1].contains("10.1.2.3\tdb.example\n"), "{out}");
    assert!(parts[1].contains("10.1.2.4\tcache.example\n"), "{out}");
    assert!(parts[1].contains("web-1"), "{out}");
    let resolv = parts[2];
    assert!(
        resolv.contains("nameserver 10.0.0.53\nnameserver 10.0.0.54\n"),
        "{resolv}"
    );
    assert!(resolv.contains("search a.example b.example\n"), "{resolv}");
    assert!(resolv.contains("options ndots:2\n"), "{resolv}");
    assert!(resolv.contains("domain example\n"), "{resolv}");
    assert_eq!(parts[3].trim(), "web-1");

    // The host's files on request.
    let out = env.sh_ok(
        &["--hosts-entry=host", "--dns=host"],
        &[],
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf",
    );
    let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert_eq!(out, format!("{host_hosts}---\n{host_resolv}"));
}

#[test]
fn net_none_has_only_loopback_and_net_host_is_the_hosts_namespace() {
    let env = PodEnv::new();
    let me = namespaces(std::process::id() as i32);
    let out = env.sh_ok(
        &["--net=none"],
        &[],
        "ls /sys/class/net; readlink /proc/self/ns/net",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..lines.len() - 1], ["lo"], "{out}");
    assert_ne!(lines.last().unwrap(), &me["net"]);
    let out = env.sh_ok(&["--net=host"], &[], "readlink /proc/self/ns/net");
    assert_eq!(out.trim(), me["net"]);
}

#[test]
fn the_pod_name_and_the_saved_uuid_name_the_pod() {
    let env = PodEnv::new();
    let file = env.uuid_file();
    let save = format!("--uuid-file-save={}", file.display());
    env.ok(&[
        "run",
        "--name=nightly-job",
        &save,
        &busybox(),
        "--exec=/bin/true",
    ]);
    let uuid = std::fs::read_to_string(&file).unwrap();
    let uuid = uuid.trim();
    assert!(is_uuid(uuid), "{uuid:?}");
    let by_name = env.status("nightly-job");
    assert_eq!(by_name["state"], "exited");
    let by_file = parse_status(
        &env.ok(&["status", &format!("--uuid-file={}", file.display())])
            .stdout,
    );
    assert_eq!(by_name, by_file);
    let manifest = env.ok(&["cat-manifest", "nightly-job"]).stdout;
    assert!(
        manifest.contains("\"acKind\":\"PodManifest\""),
        "{manifest}"
    );
    // A second pod cannot take the name while the first exists.
    let out = env.fail(&["run", "--name=nightly-job", &busybox(), "--exec=/bin/true"]);
    assert!(out.stderr.contains("nightly-job"), "{out}");
    env.ok(&["rm", "nightly-job"]);
    env.assert_gone(uuid);
    env.ok(&["run", "--name=nightly-job", &busybox(), "--exec=/bin/true"]);
}

#[test]
fn interactive_connects_the_app_to_the_callers_terminal() {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    let env = PodEnv::new();
    let master = rustix::pty::openpt(
        rustix::pty::OpenptFlags::RDWR
            | rustix::pty::OpenptFlags::NOCTTY
            | rustix::pty::OpenptFlags::CLOEXEC,
    )
    .unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let slave_path = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(slave_path.to_str().unwrap())
        .unwrap();
    let script = "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; read line; echo got:$line; exit 5";
    let inner = env.rkt.command(&[
        "--insecure-options=image",
        "run",
        "--interactive",
        &busybox(),
        "--exec=/bin/sh",
        "--",
        "-c",
        script,
    ]);
    // util-linux setsid: a new session whose controlling terminal is the pty, as a login
    // shell has.
    let mut cmd = Command::new("setsid");
    cmd.arg("--ctty")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let stdio = || Stdio::from(slave.try_clone().unwrap());
    cmd.stdin(stdio()).stdout(stdio()).stderr(stdio());
    let mut child = rkt_tests::spawn::spawn(cmd).unwrap();
    drop(slave);
    let mut master = std::fs::File::from(master);
    master.write_all(b"typed-in\n").unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // EIO once every holder of the terminal is gone.
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let status = child.wait().unwrap();
    let seen = String::from_utf8_lossy(&seen).replace('\r', "");
    assert_eq!(status.code(), Some(5), "{seen}");
    // The terminal echoed what was typed, and the app read it from the terminal.
    assert!(seen.contains("typed-in\n"), "{seen}");
    assert!(seen.contains("on-a-tty\n"), "{seen}");
    assert!(seen.contains("got:typed-in\n"), "{seen}");
}

#[test]
fn rkt_run_becomes_the_pod_and_passes_signals_on() {
    let env = PodEnv::new();
    let (mut bg, uuid) = env.spawn_sh(
        &[],
        &["--name=svc"],
        "trap 'echo got-term; exit 12' TERM; sleep 100000 & wait",
    );
    // No daemon in between: the process that ran `rkt run` is the parent of the pod's PID 1.
    let pid: i32 = env.status(&uuid)["pid"].parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        status_field(&status, "PPid").as_deref(),
        Some(bg.pid().to_string().as_str())
    );
    // What supervises `rkt run` stops the pod by signalling it.
    bg.signal(rustix::process::Signal::TERM);
    let out = bg.wait();
    assert_eq!(out.code(), Some(12), "{out}");
    assert!(out.stdout.contains("got-term"), "{out}");
    assert_eq!(env.status(&uuid)["app-svc"], "12");
}

#[test]
fn the_app_rootfs_is_a_volatile_overlay_so_a_pod_exit_syncs_nothing() {
    let env = PodEnv::new();
    // Field 5 of mountinfo is the mount point; the super options come last.
    let out = env.sh_ok(&[], &[], "awk '$5 == \"/\"' /proc/self/mountinfo");
    assert!(
        out.contains(" - overlay "),
        "the root is not an overlay: {out}"
    );
    assert!(
        out.contains("volatile"),
        "the overlay is not volatile: {out}"
    );
}

#[test]
fn no_process_can_write_the_stage1_binary_through_the_pods_exe_link() {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    let env = PodEnv::new();
    // A copy of stage1 in a directory of its own: were the protection broken, the writes below
    // would change this copy, not the build's.
    let dir = tempfile::tempdir().unwrap();
    let stage1 = dir.path().join("rkt-stage1");
    let built = rkt_tests::rkt::rkt_bin().with_file_name("rkt-stage1");
    std::fs::copy(&built, &stage1).unwrap();
    let original = std::fs::read(&stage1).unwrap();
    let flag = format!("--stage1-path={}", stage1.display());
    let (mut bg, _uuid) = env.spawn_sh(&[&flag], &[], "exec sleep 100000");
    // `rkt run` is stage1 now; hold on to its executable as a process in the pod would try to
    // (CVE-2019-5736), and keep holding it after stage1 is gone, when a plain binary would no
    // longer be busy.
    let exe = rustix::fs::open(
        format!("/proc/{}/exe", bg.pid()),
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let write_through_it = || -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(format!("/proc/self/fd/{}", exe.as_raw_fd()))
            .map_err(|e| format!("open: {e}"))?;
        f.write_all(b"x").map_err(|e| format!("write: {e}"))
    };
    assert!(
        write_through_it().is_err(),
        "stage1 was writable while running"
    );
    bg.signal(rustix::process::Signal::TERM);
    let out = bg.wait();
    assert_eq!(out.code(), Some(143), "{out}");
    assert!(
        write_through_it().is_err(),
        "stage1's executable became writable once it exited"
    );
    assert!(std::fs::read(&stage1).unwrap() == original);
    // The read-only view stays attached for the next pods while that binary is there, and
    // goes with `rkt gc` (PodEnv's drop) once it is not.
    let view_of_copy = format!(
        "lowerdir={}:",
        std::fs::canonicalize(dir.path()).unwrap().display()
    );
    let views = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&view_of_copy))
            .count()
    };
    assert_eq!(views(), 1, "no view of the copy is attached");
    drop(exe);
    drop(dir);
    drop(env);
    assert_eq!(views(), 0, "the view of a removed stage1 is still attached");
}
