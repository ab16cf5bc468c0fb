//! Several `rkt fetch` processes at once on one store: all succeed, agree on the id, and the
//! store ends up with each layer once, downloaded once (flock on each layer, not a daemon).

mod e2e_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use e2e_support::{blob_gets, docker, key, tmp_entries, trees};
use rkt_tests::rkt::{Rkt, RktOutput};
use rkt_tests::{Fixtures, Registry, RegistryOptions};

/// Starts one `rkt fetch` per image, all at once, and waits for all of them.
fn fetch_at_once(rkt: &Rkt, images: &[String]) -> Vec<RktOutput> {
    let children: Vec<_> = images
        .iter()
        .map(|image| {
            let args = ["--insecure-options=image,http", "fetch", image.as_str()];
            let mut c = rkt.command(&args);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            let child = rkt_tests::spawn::spawn(c).expect("cannot start rkt");
            (format!("rkt {}", args.join(" ")), child)
        })
        .collect();
    children
        .into_iter()
        .map(|(cmd, child)| RktOutput::wait(cmd, child))
        .collect()
}

/// How often each digest appears.
fn counts(ds: impl IntoIterator<Item = rkt_types::Digest>) -> BTreeMap<rkt_types::Digest, usize> {
    let mut m = BTreeMap::new();
    for d in ds {
        *m.entry(d).or_default() += 1;
    }
    m
}

#[test]
fn six_fetches_of_one_image_store_it_once() {
    let large = Fixtures::get().large();
    let img = &large.large.image;
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("large:latest", "large");
    let rkt = Rkt::new();

    let image = docker(&reg, "large:latest");
    let outs = fetch_at_once(&rkt, &vec![image; 6]);
    for out in &outs {
        assert!(out.success(), "{out}");
        assert_eq!(out.last_line(), img.image_id().to_string(), "{out}");
    }

    let want: BTreeSet<_> = img.diff_ids.iter().map(key).collect();
    assert_eq!(trees(&rkt), want);
    assert!(tmp_entries(&rkt).is_empty(), "{:?}", tmp_entries(&rkt));
    let gets = counts(blob_gets(&reg, "large"));
    for l in &img.layers {
        assert_eq!(
            gets.get(&l.digest),
            Some(&1),
            "layer {} downloads: {gets:?}",
            l.digest
        );
    }
    let list = rkt.image_list();
    assert_eq!(list.len(), 1, "{list:#?}");
    rkt.ok(&["image", "verify", &img.image_id().to_string()]);
}

#[test]
fn overlapping_images_at_once_share_downloads() {
    let fx = Fixtures::get();
    let large = fx.large();
    let (big, sib) = (&large.large.image, &large.sibling.image);
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("large:latest", "large");
    reg.push_fixture("sibling:latest", "large-sibling");
    let rkt = Rkt::new();

    let (a, b) = (docker(&reg, "large:latest"), docker(&reg, "sibling:latest"));
    let outs = fetch_at_once(&rkt, &[a.clone(), b.clone(), a, b]);
    for (i, out) in outs.iter().enumerate() {
        assert!(out.success(), "{out}");
        let want = if i % 2 == 0 { big } else { sib };
        assert_eq!(out.last_line(), want.image_id().to_string(), "{out}");
    }

    let want: BTreeSet<_> = big.diff_ids.iter().chain(&sib.diff_ids).map(key).collect();
    assert_eq!(trees(&rkt), want);
    assert!(tmp_entries(&rkt).is_empty(), "{:?}", tmp_entries(&rkt));
    // A layer of both images is downloaded from one repository or the other, once.
    let gets = counts(
        blob_gets(&reg, "large")
            .into_iter()
            .chain(blob_gets(&reg, "sibling")),
    );
    let layers: BTreeSet<_> = big
        .layers
        .iter()
        .chain(&sib.layers)
        .map(|l| &l.digest)
        .collect();
    for l in layers {
        assert_eq!(gets.get(l), Some(&1), "layer {l} downloads: {gets:?}");
    }
    assert_eq!(rkt.image_list().len(), 2);
    rkt.ok(&[
        "image",
        "verify",
        &big.image_id().to_string(),
        &sib.image_id().to_string(),
    ]);
}

#[test]
fn concurrent_fetches_into_a_fresh_store_of_a_small_image() {
    // Opening a store that does not exist yet, from several processes at once.
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("busybox:latest", "busybox");
    let rkt = Rkt::new();
    let outs = fetch_at_once(&rkt, &vec![docker(&reg, "busybox:latest"); 6]);
    let id = Fixtures::get().busybox.image.image_id().to_string();
    for out in &outs {
        assert!(out.success(), "{out}");
        assert_eq!(out.last_line(), id, "{out}");
    }
    let gets = counts(blob_gets(&reg, "busybox"));
    for l in &Fixtures::get().busybox.image.layers {
        assert_eq!(
            gets.get(&l.digest),
            Some(&1),
            "layer {} downloads: {gets:?}",
            l.digest
        );
    }
    assert!(tmp_entries(&rkt).is_empty());
    assert_eq!(rkt.image_list().len(), 1);
}

#[test]
fn gc_running_during_a_fetch_spares_the_layers_it_reuses() {
    let large = Fixtures::get().large();
    let (big, sib) = (&large.large.image, &large.sibling.image);
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("large:latest", "large");
    reg.push_fixture("sibling:latest", "large-sibling");
    let rkt = Rkt::new();

    // The sibling's layers (all but the large image's top one) are in the store but no
    // longer referenced: gc may take them, unless a fetch has decided to reuse them.
    let sib_id = e2e_support::fetch_ok(&rkt, &reg, "sibling:latest", &[]);
    rkt.ok(&["image", "rm", &sib_id.to_string()]);

    // Once the fetch holds layer locks it has looked at the store (under the gc fence) and
    // chosen to reuse the sibling's trees; gc runs from then until the fetch is done.
    let locks = rkt.store().join("locks");
    let holds_layer_locks = || {
        std::fs::read_dir(&locks).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("layer-"))
        })
    };
    // Lock files go with their holders, so none is left from the sibling's fetch.
    assert!(!holds_layer_locks(), "stale layer lock files in the store");
    let args = [
        "--insecure-options=image,http",
        "fetch",
        &docker(&reg, "large:latest"),
    ];
    let mut c = rkt.command(&args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut fetch = rkt_tests::spawn::spawn(c).expect("cannot start rkt");
    while fetch.try_wait().unwrap().is_none() && !holds_layer_locks() {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let mut gcs = 0;
    while fetch.try_wait().unwrap().is_none() || gcs == 0 {
        rkt.ok(&["image", "gc", "--grace-period=0s"]);
        gcs += 1;
    }
    let out = RktOutput::wait(format!("rkt {}", args.join(" ")), fetch);
    assert!(out.success(), "{out}");
    assert_eq!(out.last_line(), big.image_id().to_string(), "{out}");
    rkt.ok(&["image", "verify", &big.image_id().to_string()]);
    // The shared layers were reused, not downloaded again.
    let gets = blob_gets(&reg, "large");
    let shared: Vec<_> = big
        .layers
        .iter()
        .filter(|l| sib.layers.contains(l))
        .collect();
    assert!(!shared.is_empty());
    for l in shared {
        assert!(
            !gets.contains(&l.digest),
            "shared layer {} downloaded again",
            l.digest
        );
    }

    // Once the fetch is done, gc takes what only the removed sibling used.
    rkt.ok(&["image", "gc", "--grace-period=0s"]);
    let want: BTreeSet<_> = big.diff_ids.iter().map(key).collect();
    assert_eq!(trees(&rkt), want);
    assert!(tmp_entries(&rkt).is_empty(), "{:?}", tmp_entries(&rkt));
    rkt.ok(&["image", "verify", &big.image_id().to_string()]);
}
