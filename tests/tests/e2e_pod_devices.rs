//! Apps keep CAP_MKNOD (rkt's default set), so the pod's device list is what stops them from
//! opening a device they create a node for (the host's disk, say). `--insecure-options=paths`
//! lifts the list, as in rkt.
//!
//! The test device is the host's `/dev/fuse`: root may open it without extra capabilities, and
//! it is not in a pod's list. (This sandbox forbids opening the host's disk even to root, so
//! the disk itself cannot serve as the witness.)

mod e2e_pod_support;

use std::os::unix::fs::MetadataExt as _;

use e2e_pod_support::{PodEnv, busybox};

fn fuse_device() -> (u32, u32) {
    let rdev = std::fs::metadata("/dev/fuse")
        .expect("/dev/fuse exists on the test hosts")
        .rdev();
    (rustix::fs::major(rdev), rustix::fs::minor(rdev))
}

fn script() -> String {
    let (maj, min) = fuse_device();
    format!("mknod /tmp/dev c {maj} {min} && echo made; exec 3</tmp/dev && echo opened")
}

#[test]
fn an_app_cannot_open_a_device_node_it_creates() {
    let env = PodEnv::new();
    let out = env.sh(&["--net=none"], &[], &script());
    assert!(
        out.stdout.contains("made"),
        "creating a node is allowed: {out}"
    );
    assert!(
        !out.stdout.contains("opened"),
        "a device outside the list opened: {out}"
    );
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
    // The usual /dev still works.
    let ok = env.sh_ok(
        &["--net=none"],
        &[],
        "echo x >/dev/null && head -c 4 /dev/urandom | wc -c",
    );
    assert_eq!(ok.trim(), "4");
}

#[test]
fn insecure_paths_lift_the_device_list() {
    let env = PodEnv::new();
    let out = env.run(&[
        "--insecure-options=image,paths",
        "run",
        "--net=none",
        &busybox(),
        "--exec=/bin/sh",
        "--",
        "-c",
        &script(),
    ]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("opened"), "{out}");
}

/// `rkt run` of busybox `sh -c SCRIPT` in a private mount namespace without the v1 devices
/// hierarchy, as on a host whose devices controller is on cgroup v2 (or missing): the pod's
/// device list is then a BPF program on its cgroup2 directories, which this hybrid host also
/// runs.
fn sh_without_v1_devices(env: &PodEnv, script: &str) -> rkt_tests::rkt::RktOutput {
    let image = busybox();
    let all = [
        "--insecure-options=image",
        "run",
        "--net=none",
        &image,
        "--exec=/bin/sh",
        "--",
        "-c",
        script,
    ];
    let inner = env.rkt.command(&all);
    let mut c = std::process::Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("umount /sys/fs/cgroup/devices && exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let child = rkt_tests::spawn::spawn(c).expect("unshare runs");
    rkt_tests::rkt::RktOutput::wait(format!("rkt {} (no v1 devices)", all.join(" ")), child)
}

#[test]
fn without_a_v1_devices_controller_a_bpf_filter_keeps_the_list() {
    assert!(
        std::path::Path::new("/sys/fs/cgroup/devices").is_dir()
            && std::path::Path::new("/sys/fs/cgroup/unified").is_dir(),
        "this test needs the hybrid layout of the test hosts (v1 devices and a cgroup2)"
    );
    let env = PodEnv::new();
    let script = format!("{}; echo x >/dev/null && echo null-ok", script());
    let out = sh_without_v1_devices(&env, &script);
    // CAP_MKNOD is kept (no warning, the node is made) because the filter enforces the list.
    assert!(!out.stderr.contains("CAP_MKNOD"), "{out}");
    assert!(out.stdout.contains("made"), "{out}");
    assert!(
        !out.stdout.contains("opened"),
        "a device outside the list opened: {out}"
    );
    assert!(out.stderr.contains("Operation not permitted"), "{out}");

    let ok = sh_without_v1_devices(
        &env,
        "echo x >/dev/null && head -c 4 /dev/urandom | wc -c && echo done",
    );
    assert!(ok.success(), "{ok}");
    assert!(ok.stdout.contains("4\ndone"), "{ok}");
}
