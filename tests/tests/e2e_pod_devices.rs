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
