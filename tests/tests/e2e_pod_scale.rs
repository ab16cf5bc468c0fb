//! Many pods at once against one data directory, for real but within a 2-core budget: 50
//! concurrent `rkt run`s, a thousand pods to list, and gc of them all. Correctness only; no
//! timing is asserted.

mod e2e_pod_support;

use e2e_pod_support::*;

#[test]
fn fifty_concurrent_runs_all_succeed_and_gc_removes_them_all() {
    let env = PodEnv::new();
    let img = busybox();
    // Not fetched beforehand: the first runs race to fetch the image into the empty store.
    let mut running: Vec<(Background, std::path::PathBuf)> = (0..50)
        .map(|_| {
            let file = env.uuid_file();
            std::fs::write(&file, "").unwrap();
            let save = format!("--uuid-file-save={}", file.display());
            let bg = env.spawn(&["run", &save, &img, "--exec=/bin/true"]);
            (bg, file)
        })
        .collect();
    let mut uuids = Vec::new();
    let mut failed = Vec::new();
    for (bg, file) in &mut running {
        let out = bg.wait();
        if !out.success() {
            failed.push(out.to_string());
        }
        uuids.push(std::fs::read_to_string(file).unwrap().trim().to_owned());
    }
    assert!(
        failed.is_empty(),
        "{} runs failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 50);
    let list = env.list_json();
    assert_eq!(list.len(), 50);
    for p in &list {
        assert_eq!(p["state"], "exited", "{p}");
        assert_eq!(p["apps"][0]["exit"]["code"], 0, "{p}");
    }
    assert_eq!(env.rkt.image_list().len(), 1);

    let out = env.ok(&["gc", "--grace-period=0s"]);
    assert_eq!(
        out.stderr.matches("garbage collected pod").count(),
        50,
        "{out}"
    );
    for u in &uuids {
        env.assert_gone(u);
    }
    assert!(env.list_json().is_empty());
}

#[test]
fn list_answers_with_a_thousand_pods_and_gc_expires_them() {
    const PODS: usize = 1000;
    const WORKERS: usize = 4;
    let env = PodEnv::new();
    let img = busybox();
    env.ok(&["fetch", &img]);
    let mut uuids: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                s.spawn(|| {
                    (0..PODS / WORKERS)
                        .map(|_| {
                            env.ok(&["prepare", "--quiet", &img, "--exec=/bin/true"])
                                .stdout
                                .trim()
                                .to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), PODS);

    let table = env.ok(&["list", "--no-legend", "--full"]).stdout;
    let mut listed: Vec<&str> = table
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, uuids);
    assert!(table.lines().all(|l| l.contains(" prepared ")));
    assert_eq!(env.list_json().len(), PODS);

    // Prepared pods younger than --expire-prepared stay; then they all go.
    env.ok(&["gc", "--grace-period=0s"]);
    assert_eq!(env.list_json().len(), PODS);
    env.ok(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    assert!(env.list_json().is_empty());
    assert!(env.pod_dirs().is_empty(), "{} left", env.pod_dirs().len());
}

#[test]
fn gc_and_list_running_alongside_runs_and_prepares_break_nothing() {
    let env = PodEnv::new();
    let img = busybox();
    env.ok(&["fetch", &img]);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (runs, prepared) = std::thread::scope(|s| {
        let chaos = s.spawn(|| {
            let mut rounds = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let gc = env.run(&["gc", "--grace-period=0s"]);
                assert!(gc.success(), "{gc}");
                let list = env.run(&["list", "--format=json"]);
                assert!(list.success(), "{list}");
                let _: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).unwrap();
                rounds += 1;
            }
            rounds
        });
        let mut runs: Vec<Background> = (0..12)
            .map(|i| {
                env.spawn(&[
                    "run",
                    &img,
                    "--exec=/bin/sh",
                    "--",
                    "-c",
                    &format!("sleep 0.2; echo run-{i}"),
                ])
            })
            .collect();
        let prepared: Vec<String> = (0..6)
            .map(|_| {
                env.ok(&["prepare", "--quiet", &img, "--exec=/bin/true"])
                    .stdout
                    .trim()
                    .to_owned()
            })
            .collect();
        let outs: Vec<_> = runs.iter_mut().map(Background::wait).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(chaos.join().unwrap() > 0);
        (outs, prepared)
    });
    for (i, out) in runs.iter().enumerate() {
        assert!(out.success(), "{out}");
        assert_eq!(out.stdout, format!("run-{i}\n"), "{out}");
    }
    // gc left the prepared pods alone, and they still run.
    for p in &prepared {
        assert_eq!(env.status(p)["state"], "prepared");
    }
    env.ok(&["run-prepared", &prepared[0]]);
    env.ok(&["gc", "--grace-period=0s", "--expire-prepared=0s"]);
    assert!(env.pod_dirs().is_empty(), "{:?}", env.pod_dirs());
    for p in &prepared {
        env.assert_gone(p);
    }
}
