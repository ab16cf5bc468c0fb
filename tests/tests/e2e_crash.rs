//! `kill -9` of `rkt fetch` at various points (downloading, unpacking, committing blobs,
//! renaming trees): the store stays consistent (every listed image is whole), the next fetch
//! completes, and gc clears the debris.

mod e2e_support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e_support::{blobs, docker, key, tmp_entries, trees};
use rkt_tests::fixtures::ImageInfo;
use rkt_tests::rkt::Rkt;
use rkt_tests::{Fixtures, Registry, RegistryOptions};

/// When to kill the fetch.
#[derive(Debug, Clone, Copy)]
enum Aim {
    /// This long after it started.
    After(Duration),
    /// As soon as a layer blob of the image is in `store/blobs` (the commit has begun).
    BlobsCommitting,
    /// As soon as a tree is in `store/layers` (trees are being renamed into place).
    TreesCommitting,
}

/// Starts `rkt fetch IMAGE` and kills it with SIGKILL at `aim`. Returns whether it was killed
/// (it may finish first; that is not a failure, just a missed aim).
fn fetch_and_kill(rkt: &Rkt, image: &str, info: &ImageInfo, aim: Aim) -> bool {
    let mut c = rkt.command(&["--insecure-options=image,http", "fetch", image]);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = rkt_tests::spawn::spawn(c).expect("cannot start rkt");
    let start = Instant::now();
    let layer_blobs: BTreeSet<_> = info.layers.iter().map(|l| key(&l.digest)).collect();
    loop {
        if child.try_wait().unwrap().is_some() {
            eprintln!("{aim:?}: the fetch finished before it could be killed");
            return false;
        }
        let now = match aim {
            Aim::After(d) => start.elapsed() >= d,
            Aim::BlobsCommitting => blobs(rkt).intersection(&layer_blobs).next().is_some(),
            Aim::TreesCommitting => !trees(rkt).is_empty(),
        };
        if now || start.elapsed() > Duration::from_secs(300) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    eprintln!("{aim:?}: killed after {:?} ({status})", start.elapsed());
    true
}

/// Every image `rkt image list` shows is whole (`rkt image verify`), and `rkt image list`
/// itself still works.
fn assert_listed_images_whole(rkt: &Rkt) {
    for img in rkt.image_list() {
        let id = img["id"].as_str().unwrap();
        let out = rkt.run(&["image", "verify", id]);
        assert!(
            out.success(),
            "a listed image is not whole after a kill:\n{out}"
        );
    }
}

/// After a kill: the next fetch succeeds, the image verifies, and gc leaves exactly the
/// image's blobs and trees and an empty `store/tmp`.
fn recover(rkt: &Rkt, image: &str, info: &ImageInfo) {
    assert_listed_images_whole(rkt);
    let out = rkt.run(&["--insecure-options=image,http", "fetch", image]);
    assert!(out.success(), "{out}");
    assert_eq!(out.last_line(), info.image_id().to_string(), "{out}");
    let id = info.image_id().to_string();
    rkt.ok(&["image", "verify", &id]);

    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(tmp_entries(rkt).is_empty(), "{:?}", tmp_entries(rkt));
    let want_trees: BTreeSet<_> = info.diff_ids.iter().map(key).collect();
    assert_eq!(trees(rkt), want_trees);
    let want_blobs: BTreeSet<_> = info
        .layers
        .iter()
        .map(|l| &l.digest)
        .chain([&info.config.digest, &info.manifest.digest])
        .map(key)
        .collect();
    assert_eq!(blobs(rkt), want_blobs);
    let list = rkt.image_list();
    assert_eq!(list.len(), 1, "{list:#?}");
    rkt.ok(&["image", "verify", &id]);
}

fn large_registry() -> (Registry, String, &'static ImageInfo) {
    let info = &Fixtures::get().large().large.image;
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("large:latest", "large");
    let image = docker(&reg, "large:latest");
    (reg, image, info)
}

/// Kills while layers download and unpack, three times in one store, then recovers.
#[test]
fn killed_while_downloading() {
    let (_reg, image, info) = large_registry();
    let rkt = Rkt::new();
    fetch_and_kill(&rkt, &image, info, Aim::After(Duration::from_millis(50)));
    assert_listed_images_whole(&rkt);
    // gc removes a killed fetch's debris (its tmp entries are no longer locked).
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(tmp_entries(&rkt).is_empty(), "{:?}", tmp_entries(&rkt));
    for ms in [300, 1000] {
        fetch_and_kill(&rkt, &image, info, Aim::After(Duration::from_millis(ms)));
        assert_listed_images_whole(&rkt);
    }
    recover(&rkt, &image, info);
}

/// Kills while blobs are committed, then (the next fetch reusing those blobs) while trees are
/// renamed into place, then recovers.
#[test]
fn killed_while_committing() {
    let (_reg, image, info) = large_registry();
    let rkt = Rkt::new();
    for aim in [Aim::BlobsCommitting, Aim::TreesCommitting] {
        fetch_and_kill(&rkt, &image, info, aim);
        assert_listed_images_whole(&rkt);
    }
    recover(&rkt, &image, info);
}

/// The registry dies while layers stream in: the fetch fails (it does not hang), says what
/// happened, and stores nothing.
#[test]
fn registry_dying_mid_fetch_stores_nothing() {
    let (reg, image, _info) = large_registry();
    let rkt = Rkt::new();
    let mut c = rkt.command(&["--insecure-options=image,http", "fetch", &image]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = rkt_tests::spawn::spawn(c).expect("cannot start rkt");
    // Wait until layers are being written, then take the registry away.
    let start = Instant::now();
    while child.try_wait().unwrap().is_none()
        && tmp_entries(&rkt).is_empty()
        && start.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(reg);
    let out = rkt_tests::rkt::RktOutput::wait(format!("rkt fetch {image}"), child);
    if out.success() {
        eprintln!("the fetch finished before the registry was stopped");
        return;
    }
    assert_eq!(out.code(), Some(254), "{out}");
    e2e_support::assert_nothing_stored(&rkt, &Default::default(), &Default::default());
}

/// A fetch waiting for another fetch's layer locks takes over when that one is killed.
#[test]
fn waiting_fetch_takes_over_from_a_killed_one() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    let (_reg, image, info) = large_registry();
    let mut rkt = Rkt::new();
    // The fetch says (at info level) when it waits for another process's layer locks.
    rkt.set_env("RUST_LOG", "rkt_fetch::sources=info");
    let rkt = rkt;
    let start = || {
        let mut c = rkt.command(&["--insecure-options=image,http", "fetch", &image]);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        rkt_tests::spawn::spawn(c).expect("cannot start rkt")
    };
    let mut first = start();
    // The first holds the layer locks once its unpacking has begun.
    let t = Instant::now();
    while first.try_wait().unwrap().is_none()
        && tmp_entries(&rkt).is_empty()
        && t.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut second = start();
    let stderr = second.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let mut waiting = false;
    while !waiting && first.try_wait().unwrap().is_none() {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                waiting = line.contains("waiting for another rkt process");
                log.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if !waiting {
        eprintln!("the second fetch never waited for the first; nothing was taken over");
    }
    let _ = first.kill();
    let _ = first.wait();
    let out = second.wait_with_output().unwrap();
    reader.join().unwrap();
    log.extend(rx.try_iter());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let shown = format!(
        "{}\n--- stdout ---\n{stdout}--- stderr ---\n{}",
        out.status,
        log.join("\n")
    );
    assert!(out.status.success(), "{shown}");
    assert_eq!(stdout.trim(), info.image_id().to_string(), "{shown}");
    rkt.ok(&["image", "verify", &info.image_id().to_string()]);
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    assert!(tmp_entries(&rkt).is_empty(), "{:?}", tmp_entries(&rkt));
    let want: BTreeSet<_> = info.diff_ids.iter().map(key).collect();
    assert_eq!(trees(&rkt), want);
}
