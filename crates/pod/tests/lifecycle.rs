//! The pod state machine in one process: create, prepare, run, exit, mark, sweep, remove,
//! names and lookups, and `run_prepared` races between threads.

mod common;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{counts, data_dir, open, state_of};
use rkt_pod::{PodError, PodState};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_pod_goes_through_every_state() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    for d in [
        "embryo",
        "prepare",
        "prepared",
        "run",
        "exited-garbage",
        "garbage",
        "names",
    ] {
        assert!(tmp.path().join("pods").join(d).is_dir(), "{d} created");
    }

    let pod = pods.create(Some("web")).unwrap();
    let uuid = pod.uuid();
    assert_eq!(pod.name(), Some("web"));
    assert!(pod.dir().ends_with(format!("pods/prepare/{uuid}")));
    pod.write_file("stage1/request.json", b"{\"version\":1}")
        .unwrap();
    let list = pods.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].uuid, uuid);
    assert_eq!(list[0].state, PodState::Preparing);
    assert_eq!(list[0].name.as_deref(), Some("web"));
    assert!(list[0].created.is_some());
    assert_eq!(list[0].started, None);

    let prepared = pod.finish_prepared().unwrap();
    assert_eq!(prepared.state(), PodState::Prepared);
    assert_eq!(state_of(&pods, uuid), Some(PodState::Prepared));
    assert_eq!(
        std::fs::read(prepared.dir().join("stage1/request.json")).unwrap(),
        b"{\"version\":1}"
    );

    let running = pods.run_prepared(uuid).unwrap();
    assert!(running.dir().ends_with(format!("pods/run/{uuid}")));
    assert_eq!(state_of(&pods, uuid), Some(PodState::Running));
    // A running pod is never marked.
    assert!(pods.mark_exited().unwrap().is_empty());

    drop(running);
    assert_eq!(state_of(&pods, uuid), Some(PodState::Exited));
    let marked = pods.mark_exited().unwrap();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].uuid, uuid);
    assert_eq!(marked[0].from, PodState::Exited);
    assert_eq!(marked[0].to, PodState::ExitedGarbage);
    assert_eq!(state_of(&pods, uuid), Some(PodState::ExitedGarbage));

    let sweep = pods.sweepable(Duration::ZERO, HOUR).unwrap();
    assert_eq!(sweep.len(), 1);
    let doomed = pods.lock_for_delete(&sweep[0]).unwrap().expect("unlocked");
    assert_eq!(doomed.state(), PodState::ExitedDeleting);
    assert_eq!(state_of(&pods, uuid), Some(PodState::ExitedDeleting));
    // Someone else trying meanwhile is told it is busy.
    assert!(pods.lock_for_delete(&sweep[0]).unwrap().is_none());
    doomed.remove().unwrap();
    assert_eq!(state_of(&pods, uuid), None);
    assert!(pods.list().unwrap().is_empty());
    assert!(pods.lock_for_delete(&sweep[0]).unwrap().is_none());

    // The name went with the pod.
    let again = pods.create(Some("web")).unwrap();
    assert_ne!(again.uuid(), uuid);
}

#[test]
fn get_by_uuid_prefix_and_name() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let a = pods.create(None).unwrap();
    let ua = a.uuid();
    let full = ua.hyphenated().to_string();
    assert_eq!(pods.get(&full).unwrap().uuid(), ua);
    assert_eq!(pods.get(&full.to_uppercase()).unwrap().uuid(), ua);
    assert_eq!(pods.get(&ua.simple().to_string()).unwrap().uuid(), ua);
    assert_eq!(pods.get(&full[..8]).unwrap().uuid(), ua);
    assert_eq!(pods.get(&full[..13]).unwrap().uuid(), ua, "with a dash");
    let simple = ua.simple().to_string();
    assert_eq!(
        pods.get(&simple[..12]).unwrap().uuid(),
        ua,
        "without dashes"
    );
    let info = pods.info(ua).unwrap().unwrap();
    assert_eq!(info.state, PodState::Preparing);
    assert_eq!(info.dir, a.dir());
    assert_eq!(pods.info(rkt_pod::Uuid::new_v4()).unwrap(), None);
    assert_eq!(pods.get(&full[..8]).unwrap().state(), PodState::Preparing);
    assert!(matches!(
        pods.get(&full[..3]),
        Err(PodError::QueryTooShort { min: 4, .. })
    ));
    assert!(matches!(
        pods.get("nosuchpod"),
        Err(PodError::NotFound { .. })
    ));
    let missing = rkt_pod::Uuid::new_v4().to_string();
    assert!(matches!(pods.get(&missing), Err(PodError::NotFound { .. })));

    // A name that is also a prefix of another pod's UUID is ambiguous.
    let prefix = &full[..8];
    let b = pods.create(Some(prefix)).unwrap();
    match pods.get(prefix) {
        Err(PodError::Ambiguous { matches, .. }) => {
            let mut want = vec![ua, b.uuid()];
            want.sort();
            assert_eq!(matches, want);
        }
        other => panic!("expected ambiguity, got {other:?}"),
    }
    let c = pods.create(Some("db")).unwrap();
    assert_eq!(pods.get("db").unwrap().uuid(), c.uuid());
    assert_eq!(pods.get("db").unwrap().dir(), c.dir());
}

#[test]
fn names_are_unique_until_the_pod_is_removed() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let first = pods.create(Some("web")).unwrap();
    match pods.create(Some("web")) {
        Err(PodError::NameTaken {
            name,
            holder,
            state,
        }) => {
            assert_eq!(name, "web");
            assert_eq!(holder, first.uuid());
            assert_eq!(state, PodState::Preparing);
        }
        other => panic!("expected NameTaken, got {other:?}"),
    }
    // The failed create left nothing behind.
    assert_eq!(pods.list().unwrap().len(), 1);
    let msg = pods.create(Some("web")).unwrap_err().to_string();
    assert!(
        msg.contains(&first.uuid().to_string()) && msg.contains("rkt rm"),
        "{msg}"
    );

    // Still taken once the pod exited, and while it is garbage.
    let uuid = first.uuid();
    drop(first.into_running().unwrap());
    assert!(matches!(
        pods.create(Some("web")),
        Err(PodError::NameTaken {
            state: PodState::Exited,
            ..
        })
    ));
    pods.mark_exited().unwrap();
    let handle = pods.find(uuid).unwrap().unwrap();
    pods.lock_for_delete(&handle)
        .unwrap()
        .unwrap()
        .remove()
        .unwrap();
    let second = pods.create(Some("web")).unwrap();
    second.discard().unwrap();
    pods.create(Some("web")).unwrap();

    for bad in ["Web", "a_b", "-x", "", "a/b", ".lock"] {
        assert!(
            matches!(pods.create(Some(bad)), Err(PodError::InvalidName { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn a_stale_name_reservation_is_taken_over() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let names = tmp.path().join("pods/names");
    // Left by a process killed after removing its pod but before releasing the name.
    std::fs::write(names.join("ghost"), rkt_pod::Uuid::new_v4().to_string()).unwrap();
    // Damaged.
    std::fs::write(names.join("junk"), b"not a uuid").unwrap();
    let a = pods.create(Some("ghost")).unwrap();
    let b = pods.create(Some("junk")).unwrap();
    assert_eq!(pods.get("ghost").unwrap().uuid(), a.uuid());
    assert_eq!(pods.get("junk").unwrap().uuid(), b.uuid());

    // A pod removed behind our back (no release) leaves a stale name, too.
    let c = pods.create(Some("gone")).unwrap();
    let dir = c.dir().to_owned();
    drop(c);
    std::fs::remove_dir_all(dir).unwrap();
    assert!(matches!(pods.get("gone"), Err(PodError::NotFound { .. })));
    pods.create(Some("gone")).unwrap();

    // gc's mark phase clears such debris: a stale name and a temp of a dead creator, but not
    // live reservations.
    std::fs::write(names.join("ghost2"), rkt_pod::Uuid::new_v4().to_string()).unwrap();
    let tmp_file = names.join(format!(".tmp-{}", rkt_pod::Uuid::new_v4()));
    std::fs::write(&tmp_file, b"").unwrap();
    pods.mark_exited().unwrap();
    assert!(!names.join("ghost2").exists());
    assert!(!tmp_file.exists());
    let mut left: Vec<_> = std::fs::read_dir(&names)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".lock", "ghost", "gone", "junk"]);
}

#[test]
fn run_prepared_race_between_threads_has_one_winner() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    for _ in 0..10 {
        let uuid = pods.create(None).unwrap().finish_prepared().unwrap().uuid();
        let n = 6;
        let barrier = Arc::new(Barrier::new(n));
        let results: Vec<_> = (0..n)
            .map(|_| {
                let pods = pods.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    pods.run_prepared(uuid)
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let winners = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(winners, 1, "{results:?}");
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        PodError::NotPrepared {
                            state: Some(PodState::Running),
                            ..
                        }
                    ),
                    "{e:?}"
                );
            }
        }
        assert_eq!(state_of(&pods, uuid), Some(PodState::Running));
    }
}

#[test]
fn run_prepared_needs_a_prepared_pod() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let preparing = pods.create(None).unwrap();
    assert!(matches!(
        pods.run_prepared(preparing.uuid()),
        Err(PodError::NotPrepared {
            state: Some(PodState::Preparing),
            ..
        })
    ));
    let missing = rkt_pod::Uuid::new_v4();
    let err = pods.run_prepared(missing).unwrap_err();
    assert!(matches!(err, PodError::NotPrepared { state: None, .. }));
    assert!(err.to_string().contains("no longer exists"));
}

#[test]
fn sweepable_honours_the_grace_period_and_prepared_expiry() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let exited = pods.create(None).unwrap().into_running().unwrap().uuid();
    let prepared = pods.create(None).unwrap().finish_prepared().unwrap().uuid();
    let aborted = pods.create(None).unwrap().uuid();
    let marked = pods.mark_exited().unwrap();
    assert_eq!(marked.len(), 2, "{marked:?}");
    assert_eq!(state_of(&pods, aborted), Some(PodState::Garbage));
    assert_eq!(state_of(&pods, exited), Some(PodState::ExitedGarbage));

    // Long grace: only the garbage (a failed prepare) is due.
    let due: Vec<_> = pods.sweepable(HOUR, HOUR).unwrap();
    assert_eq!(
        due.iter().map(|h| h.uuid()).collect::<Vec<_>>(),
        vec![aborted]
    );
    assert_eq!(state_of(&pods, prepared), Some(PodState::Prepared));

    // Grace measured from the mark (directory ctime): 0 makes the exited pod due.
    std::thread::sleep(Duration::from_millis(50));
    let due = pods.sweepable(Duration::from_millis(20), HOUR).unwrap();
    let mut got: Vec<_> = due.iter().map(|h| h.uuid()).collect();
    got.sort();
    let mut want = vec![exited, aborted];
    want.sort();
    assert_eq!(got, want);
    assert!(
        pods.sweepable(Duration::from_secs(1), HOUR)
            .unwrap()
            .iter()
            .all(|h| h.uuid() != exited)
    );

    // Expiry moves the prepared pod to garbage.
    let due = pods.sweepable(HOUR, Duration::ZERO).unwrap();
    assert!(
        due.iter()
            .any(|h| h.uuid() == prepared && h.state() == PodState::Garbage)
    );
    assert_eq!(state_of(&pods, prepared), Some(PodState::Garbage));
    for h in due {
        pods.lock_for_delete(&h).unwrap().unwrap().remove().unwrap();
    }
    assert_eq!(pods.list().unwrap().len(), 1, "the exited pod is left");
}

#[test]
fn mark_exited_leaves_locked_and_young_pods_alone() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let preparing = pods.create(None).unwrap();
    let running = pods.create(None).unwrap().into_running().unwrap();
    // An embryo a concurrent create has just made and not locked yet.
    let embryo = rkt_pod::Uuid::new_v4();
    std::fs::create_dir(tmp.path().join(format!("pods/embryo/{embryo}"))).unwrap();
    assert!(pods.mark_exited().unwrap().is_empty());
    assert_eq!(state_of(&pods, preparing.uuid()), Some(PodState::Preparing));
    assert_eq!(state_of(&pods, running.uuid()), Some(PodState::Running));
    assert_eq!(state_of(&pods, embryo), Some(PodState::Embryo));
    assert_eq!(pods.list().unwrap().len(), 3);
}

#[test]
fn lock_for_delete_moves_pods_into_garbage_states() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let running = pods.create(None).unwrap().into_running().unwrap();
    let h = pods.find(running.uuid()).unwrap().unwrap();
    assert!(
        pods.lock_for_delete(&h).unwrap().is_none(),
        "running is busy"
    );
    let preparing = pods.create(None).unwrap();
    let hp = pods.find(preparing.uuid()).unwrap().unwrap();
    assert!(
        pods.lock_for_delete(&hp).unwrap().is_none(),
        "preparing is busy"
    );

    // An exited pod still in run/ goes to exited-garbage, so stage1 gc can run for it.
    drop(running);
    let d = pods.lock_for_delete(&h).unwrap().unwrap();
    assert_eq!(d.state(), PodState::ExitedDeleting);
    assert!(d.dir().ends_with(format!("exited-garbage/{}", h.uuid())));
    // Dropped without removing: it waits for the next gc.
    drop(d);
    assert_eq!(state_of(&pods, h.uuid()), Some(PodState::ExitedGarbage));

    // A prepared pod goes to garbage.
    let prepared = pods.create(None).unwrap().finish_prepared().unwrap();
    let d = pods.lock_for_delete(&prepared).unwrap().unwrap();
    assert_eq!(d.state(), PodState::Deleting);
    assert_eq!(state_of(&pods, prepared.uuid()), Some(PodState::Deleting));
    let listed = pods.list().unwrap();
    assert!(listed.iter().any(|p| p.state == PodState::Deleting));
    assert!(matches!(
        pods.run_prepared(prepared.uuid()),
        Err(PodError::NotPrepared {
            state: Some(PodState::Deleting),
            ..
        })
    ));
    d.remove().unwrap();
    assert_eq!(state_of(&pods, prepared.uuid()), None);
}

#[test]
fn write_file_stays_inside_the_pod() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let pod = pods.create(None).unwrap();
    for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/", "./a"] {
        assert!(
            matches!(pod.write_file(bad, b"x"), Err(PodError::InvalidPath { .. })),
            "{bad:?}"
        );
    }
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, pod.dir().join("link")).unwrap();
    assert!(pod.write_file("link/x", b"x").is_err());
    std::os::unix::fs::symlink(outside.join("f"), pod.dir().join("flink")).unwrap();
    pod.write_file("flink", b"replaced").unwrap();
    assert!(
        std::fs::symlink_metadata(pod.dir().join("flink"))
            .unwrap()
            .is_file(),
        "the link itself is replaced"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    pod.write_file("a/b/c", b"deep").unwrap();
    pod.write_file("a/b/c", b"again").unwrap();
    assert_eq!(std::fs::read(pod.dir().join("a/b/c")).unwrap(), b"again");
    let leftovers: Vec<_> = std::fs::read_dir(pod.dir().join("a/b"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("c")]);
    let handle = pod.finish_prepared().unwrap();
    assert_eq!(std::fs::read(handle.dir().join("a/b/c")).unwrap(), b"again");
}

#[test]
fn list_shows_a_thousand_pods_in_mixed_states() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    // exited garbage and garbage, by a mark
    for _ in 0..150 {
        pods.create(None).unwrap().into_running().unwrap();
    }
    for _ in 0..150 {
        pods.create(None).unwrap();
    }
    assert_eq!(pods.mark_exited().unwrap().len(), 300);
    let mut held_preparing = Vec::new();
    for i in 0..150 {
        held_preparing.push(pods.create(Some(&format!("p{i}"))).unwrap());
    }
    for _ in 0..150 {
        pods.create(None).unwrap(); // aborted prepare
    }
    for _ in 0..100 {
        pods.create(None).unwrap().finish_prepared().unwrap();
    }
    let mut held_running = Vec::new();
    for _ in 0..150 {
        held_running.push(pods.create(None).unwrap().into_running().unwrap());
    }
    for _ in 0..150 {
        pods.create(None).unwrap().into_running().unwrap(); // exited
    }
    let start = std::time::Instant::now();
    let list = pods.list().unwrap();
    eprintln!("listed {} pods in {:?}", list.len(), start.elapsed());
    assert_eq!(list.len(), 1000);
    let c = counts(&pods);
    assert_eq!(c[&PodState::ExitedGarbage], 150);
    assert_eq!(c[&PodState::Garbage], 150);
    assert_eq!(c[&PodState::Preparing], 150);
    assert_eq!(c[&PodState::AbortedPrepare], 150);
    assert_eq!(c[&PodState::Prepared], 100);
    assert_eq!(c[&PodState::Running], 150);
    assert_eq!(c[&PodState::Exited], 150);
    assert_eq!(list.iter().filter(|p| p.name.is_some()).count(), 150);
    for p in &held_preparing {
        let info = list.iter().find(|i| i.uuid == p.uuid()).unwrap();
        assert_eq!(info.name.as_deref(), p.name());
        assert_eq!(info.dir, p.dir());
    }
    assert!(list.windows(2).all(|w| w[0].created <= w[1].created));
}

#[test]
fn list_a_thousand_new_pods() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    for _ in 0..1000 {
        pods.create(None).unwrap().into_running().unwrap();
    }
    let start = std::time::Instant::now();
    let list = pods.list().unwrap();
    eprintln!("listed {} pods in {:?}", list.len(), start.elapsed());
    assert_eq!(list.len(), 1000);
    assert!(list.iter().all(|p| p.state == PodState::Exited));
}

/// Runs `f` on `n` threads released at once, returning their results.
fn race<T: Send + 'static>(n: usize, f: impl Fn() -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let (barrier, f) = (barrier.clone(), f.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn concurrent_creates_of_one_name_have_one_winner() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    // A fresh name, and a stale reservation that several creators try to take over at once.
    std::fs::write(
        tmp.path().join("pods/names/stale"),
        rkt_pod::Uuid::new_v4().to_string(),
    )
    .unwrap();
    for name in ["fresh", "stale"] {
        for round in 0..5 {
            let p = pods.clone();
            let results = race(8, move || {
                p.create(Some(name)).map(|pod| pod.into_running())
            });
            let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(winners.len(), 1, "{name} round {round}: {results:?}");
            let winner = winners[0].as_ref().unwrap().uuid();
            for r in &results {
                if let Err(e) = r {
                    assert!(
                        matches!(e, PodError::NameTaken { holder, .. } if *holder == winner),
                        "{e:?}"
                    );
                }
            }
            assert_eq!(pods.get(name).unwrap().uuid(), winner);
            drop(results);
            // Free the name for the next round.
            pods.mark_exited().unwrap();
            let h = pods.find(winner).unwrap().unwrap();
            pods.lock_for_delete(&h).unwrap().unwrap().remove().unwrap();
        }
    }
    // Losers left nothing behind.
    assert!(pods.list().unwrap().is_empty());
}

#[test]
fn many_concurrent_creates_all_succeed() {
    let tmp = data_dir();
    let pods = open(tmp.path());
    let p = pods.clone();
    let results = race(10, move || {
        (0..10)
            .map(|i| {
                let pod = p.create(None)?;
                if i % 2 == 0 {
                    pod.into_running().map(drop)
                } else {
                    pod.finish_prepared().map(drop)
                }
            })
            .collect::<Result<Vec<()>, PodError>>()
    });
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let c = counts(&pods);
    assert_eq!(c[&PodState::Exited], 50);
    assert_eq!(c[&PodState::Prepared], 50);
}

#[test]
fn races_stay_correct_while_other_processes_list_and_collect() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = data_dir();
    let pods = open(tmp.path());
    let stop = Arc::new(AtomicBool::new(false));
    let lister = {
        let (pods, stop) = (pods.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                for p in pods.list().unwrap() {
                    // Pods vanish under us (the collector); that is fine.
                    let _ = pods.get(&p.uuid.to_string());
                }
                rounds += 1;
            }
            rounds
        })
    };
    let collector = {
        let (pods, stop) = (pods.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut removed = 0;
            while !stop.load(Ordering::Relaxed) {
                pods.mark_exited().unwrap();
                for h in pods.sweepable(Duration::ZERO, HOUR).unwrap() {
                    if let Some(d) = pods.lock_for_delete(&h).unwrap() {
                        d.remove().unwrap();
                        removed += 1;
                    }
                }
            }
            removed
        })
    };
    for _ in 0..30 {
        let uuid = pods.create(None).unwrap().finish_prepared().unwrap().uuid();
        let p = pods.clone();
        let results = race(4, move || p.run_prepared(uuid));
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(
                        e,
                        PodError::NotPrepared {
                            state: Some(PodState::Running),
                            ..
                        }
                    ),
                    "{e:?}"
                );
            }
        }
        // Running pods are never collected.
        assert_eq!(state_of(&pods, uuid), Some(PodState::Running));
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = lister.join().unwrap();
    let removed = collector.join().unwrap();
    eprintln!("{rounds} listings, {removed} pods collected meanwhile");
    assert!(rounds > 0);
    pods.mark_exited().unwrap();
    for h in pods.sweepable(Duration::ZERO, HOUR).unwrap() {
        pods.lock_for_delete(&h).unwrap().unwrap().remove().unwrap();
    }
    assert!(pods.list().unwrap().is_empty());
}
