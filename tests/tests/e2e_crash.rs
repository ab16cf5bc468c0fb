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
