//! The lock fd handed to stage1 survives `exec`, and the pod is running exactly as long as a
//! process holds it.
//!
//! Alone in its test binary: while the inheritable fd is open, any process another test spawned
//! would inherit it and keep the pod running.

mod common;

use std::os::fd::AsRawFd;
use std::process::Command;

use common::{data_dir, open, state_of};
use rkt_pod::PodState;

#[test]
fn the_lock_fd_survives_exec_and_the_pod_runs_until_its_holder_dies() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let pod = pods
        .create(Some("sleeper"))
        .unwrap()
        .into_running()
        .unwrap();
    let uuid = pod.uuid();
    let fd = pod.lock_fd().unwrap();
    let n = fd.as_raw_fd();
    let mut child = Command::new("sh")
        .arg("-c")
        // The fd is open in the shell, and (exec keeps fds) in sleep.
        .arg("test -d /proc/self/fd/$RKT_LOCK_FD || exit 3; exec sleep 2")
        .env("RKT_LOCK_FD", n.to_string())
        .spawn()
        .unwrap();
    drop(fd);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/fd/{n}", child.id())).unwrap(),
        tmp.path().join(format!("pods/run/{uuid}")),
        "sleep holds the pod directory open"
    );
    assert_eq!(state_of(&pods, uuid), Some(PodState::Running));
    assert!(pods.mark_exited().unwrap().is_empty());
    let listed = pods.list().unwrap();
    assert_eq!(listed[0].state, PodState::Running);

    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(state_of(&pods, uuid), Some(PodState::Exited));
    assert_eq!(pods.mark_exited().unwrap()[0].uuid, uuid);
}
