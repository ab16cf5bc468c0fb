//! Races and crashes across processes: this test binary runs copies of itself (selected by
//! [`common::ROLE_ENV`]) and `flock(1)` as the other rkt processes.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    child_role, data_dir, next_report, open, report, spawn_role, state_of, wait_for_parent,
    wait_until,
};
use rkt_pod::{PodError, PodState, Uuid};
use rustix::process::{Pid, Signal};

/// Child roles. Each runs inside the test that spawned it and ends the process.
fn run_child_role() {
    let Some((role, dir, arg)) = child_role() else {
        return;
    };
    let pods = open(&dir);
    match role.as_str() {
        // Wait for the start signal, race for the pod, report, and hold it until told to go.
        "run_prepared" => {
            let uuid: Uuid = arg.parse().unwrap();
            report("ready");
            wait_for_parent();
            match pods.run_prepared(uuid) {
                Ok(running) => {
                    report("won");
                    wait_for_parent();
                    drop(running);
                }
                Err(PodError::NotPrepared {
                    state: Some(PodState::Running),
                    ..
                }) => report("lost"),
                Err(e) => report(&format!("error {e:?}")),
            }
        }
        // Create a named pod and hang while preparing it, to be killed.
        "create_and_hang" => {
            let pod = pods.create(Some(&arg)).unwrap();
            report(&pod.uuid().to_string());
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[test]
fn run_prepared_race_between_processes_has_one_winner() {
    run_child_role();
    let tmp = data_dir();
    let pods = open(tmp.path());
    let uuid = pods.create(None).unwrap().finish_prepared().unwrap().uuid();
    let mut children: Vec<_> = (0..4)
        .map(|_| {
            spawn_role(
                "run_prepared_race_between_processes_has_one_winner",
                "run_prepared",
                tmp.path(),
                &uuid.to_string(),
            )
        })
        .collect();
    for (_, out) in &mut children {
        assert_eq!(next_report(out).as_deref(), Some("ready"));
    }
    for (child, _) in &mut children {
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    let results: Vec<String> = children
        .iter_mut()
        .map(|(_, out)| next_report(out).unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| *r == "won").count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|r| *r == "lost").count(),
        3,
        "{results:?}"
    );
    // The winner holds the lock: the pod is running until it lets go.
    assert_eq!(state_of(&pods, uuid), Some(PodState::Running));
    for (mut child, _) in children {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(state_of(&pods, uuid), Some(PodState::Exited));
}

#[test]
fn mark_exited_waits_for_the_lock_holder_even_across_kill_9() {
    run_child_role();
    let tmp = data_dir();
    let pods = open(tmp.path());
    let running = pods.create(None).unwrap().into_running().unwrap();
    let uuid = running.uuid();
    let dir = running.dir().to_owned();
    let other = pods.create(None).unwrap().into_running().unwrap();
    let other_uuid = other.uuid();
    drop(other); // exited
    // Another process takes the pod's lock (flock(1) on the directory), and we let go of ours.
    // flock(1) and its `sleep` share the lock, so both are killed as one process group.
    let mut holder = Command::new("flock")
        .arg("--exclusive")
        .arg(&dir)
        .args(["sleep", "60"])
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .expect("run flock(1)");
    drop(running);
    wait_until("flock(1) to take the lock", || {
        pods.list()
            .unwrap()
            .iter()
            .any(|p| p.uuid == uuid && p.state == PodState::Running)
    });
    for _ in 0..5 {
        let marked = pods.mark_exited().unwrap();
        assert!(marked.iter().all(|m| m.uuid != uuid), "{marked:?}");
    }
    assert_eq!(state_of(&pods, uuid), Some(PodState::Running));
    assert_eq!(state_of(&pods, other_uuid), Some(PodState::ExitedGarbage));

    let pgid = Pid::from_raw(i32::try_from(holder.id()).unwrap()).unwrap();
    rustix::process::kill_process_group(pgid, Signal::KILL).unwrap();
    holder.wait().unwrap();
    wait_until("the kernel to drop the lock", || {
        state_of(&pods, uuid) == Some(PodState::Exited)
    });
    let marked = pods.mark_exited().unwrap();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].uuid, uuid);
    assert_eq!(state_of(&pods, uuid), Some(PodState::ExitedGarbage));
}

#[test]
fn a_killed_creator_does_not_block_its_name_forever() {
    run_child_role();
    let tmp = data_dir();
    let pods = open(tmp.path());
    let (mut child, mut out) = spawn_role(
        "a_killed_creator_does_not_block_its_name_forever",
        "create_and_hang",
        tmp.path(),
        "crashy",
    );
    let uuid: Uuid = next_report(&mut out).unwrap().parse().unwrap();
    assert_eq!(state_of(&pods, uuid), Some(PodState::Preparing));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The aborted pod still has the name, and says so.
    assert_eq!(state_of(&pods, uuid), Some(PodState::AbortedPrepare));
    match pods.create(Some("crashy")) {
        Err(PodError::NameTaken { holder, state, .. }) => {
            assert_eq!(holder, uuid);
            assert_eq!(state, PodState::AbortedPrepare);
        }
        other => panic!("expected NameTaken, got {other:?}"),
    }
    // gc collects the aborted pod, and the name with it.
    let marked = pods.mark_exited().unwrap();
    assert_eq!(marked[0].from, PodState::AbortedPrepare);
    for h in pods
        .sweepable(Duration::from_secs(3600), Duration::from_secs(3600))
        .unwrap()
    {
        pods.lock_for_delete(&h).unwrap().unwrap().remove().unwrap();
    }
    let again = pods.create(Some("crashy")).unwrap();
    assert_eq!(pods.get("crashy").unwrap().uuid(), again.uuid());
}
