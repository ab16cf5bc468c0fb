//! `rkt fetch --pull-policy=new|never|update` against the real registry: what each policy
//! asks of the registry (read from its access log), and what it does when the registry is gone
//! or the tag moved.

mod e2e_support;

use e2e_support::{blob_gets, docker, fetch, fetch_ok, listed, relabelled_layout, rkt_requests};
use rkt_tests::rkt::Rkt;
use rkt_tests::{Fixtures, Registry, RegistryOptions};

fn registry_with_busybox() -> Registry {
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("busybox:latest", "busybox");
    reg
}

#[test]
fn new_uses_the_stored_image_without_the_registry() {
    let fx = Fixtures::get();
    let reg = registry_with_busybox();
    let rkt = Rkt::new();
    // Nothing stored yet: `new` fetches.
    let id = fetch_ok(&rkt, &reg, "busybox:latest", &["--pull-policy=new"]);
    assert_eq!(&id, fx.busybox.image.image_id());
    let requests = rkt_requests(&reg, "busybox").len();
    let again = fetch_ok(&rkt, &reg, "busybox:latest", &["--pull-policy=new"]);
    assert_eq!(again, id);
    assert_eq!(rkt_requests(&reg, "busybox").len(), requests);

    // With the registry gone, it still answers from the store.
    let image = docker(&reg, "busybox:latest");
    drop(reg);
    let out = fetch(&rkt, "image,http", &image, &["--pull-policy=new"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.last_line(), id.to_string());
}

#[test]
fn never_only_reads_the_store() {
    let reg = registry_with_busybox();
    let image = docker(&reg, "busybox:latest");
    let rkt = Rkt::new();
    let out = fetch(&rkt, "image,http", &image, &["--pull-policy=never"]);
    assert_eq!(out.code(), Some(254), "{out}");
    assert!(out.stderr.contains("not in the store"), "{out}");
    assert!(out.stderr.contains("--pull-policy=never"), "{out}");
    assert!(rkt_requests(&reg, "busybox").is_empty());
    assert!(rkt.image_list().is_empty());

    let id = fetch_ok(&rkt, &reg, "busybox:latest", &[]);
    drop(reg);
    let out = fetch(&rkt, "image,http", &image, &["--pull-policy=never"]);
    assert!(out.success(), "{out}");
    assert_eq!(out.last_line(), id.to_string());
    // By id and by stored name too.
    for name in [
        id.to_string(),
        image.trim_start_matches("docker://").to_owned(),
    ] {
        let out = rkt.run(&["fetch", "--pull-policy=never", &name]);
        assert!(out.success(), "{out}");
        assert_eq!(out.last_line(), id.to_string());
    }
}

#[test]
fn update_checks_the_manifest_and_follows_a_moved_tag() {
    let fx = Fixtures::get();
    let reg = registry_with_busybox();
    let rkt = Rkt::new();
    let id = fetch_ok(&rkt, &reg, "busybox:latest", &["--pull-policy=update"]);
    let before = rkt_requests(&reg, "busybox").len();

    // Unchanged: the manifest is checked, no blob is downloaded.
    let again = fetch_ok(&rkt, &reg, "busybox:latest", &["--pull-policy=update"]);
    assert_eq!(again, id);
    let since: Vec<_> = rkt_requests(&reg, "busybox").split_off(before);
    assert!(
        since.iter().any(|a| a.is_manifest("busybox")),
        "update did not ask for the manifest: {since:?}"
    );
    assert!(
        !since.iter().any(|a| a.is_blob_get("busybox")),
        "update downloaded blobs of an unchanged image: {since:?}"
    );

    // The tag moves to another image with the same layers.
    let (layout, new_id) = relabelled_layout(&fx.busybox, "v2");
    reg.push(layout.path(), "latest", "busybox:latest");
    let gets_before = blob_gets(&reg, "busybox").len();
    let moved = fetch_ok(&rkt, &reg, "busybox:latest", &["--pull-policy=update"]);
    assert_eq!(moved, new_id);
    assert_ne!(moved, id);
    // Only the new config was downloaded; the layers were already there.
    let gets = blob_gets(&reg, "busybox").split_off(gets_before);
    assert_eq!(gets, vec![new_id.clone()]);
    let name = format!("{}/busybox:latest", reg.host());
    assert_eq!(listed(&rkt, &new_id)["names"], serde_json::json!([name]));
    assert_eq!(listed(&rkt, &id)["names"], serde_json::json!([]));
    rkt.ok(&["image", "verify", &new_id.to_string()]);
    // And `new` now answers with the moved tag's image.
    let out = fetch(
        &rkt,
        "image,http",
        &docker(&reg, "busybox:latest"),
        &["--pull-policy=new"],
    );
    assert_eq!(out.last_line(), new_id.to_string(), "{out}");
}

#[test]
fn removed_image_is_fetched_again_from_the_layers_left_in_the_store() {
    let fx = Fixtures::get();
    let reg = registry_with_busybox();
    let rkt = Rkt::new();
    let id = fetch_ok(&rkt, &reg, "busybox:latest", &[]);
    rkt.ok(&["image", "rm", &id.to_string()]);
    assert!(rkt.image_list().is_empty());
    // `new` finds nothing stored (rm removed the remote record too) and fetches, reusing the
    // blobs and trees gc has not collected yet.
    let gets_before = blob_gets(&reg, "busybox").len();
    let again = fetch_ok(&rkt, &reg, "busybox:latest", &["--pull-policy=new"]);
    assert_eq!(again, id);
    let gets = blob_gets(&reg, "busybox").split_off(gets_before);
    for l in &fx.busybox.image.layers {
        assert!(
            !gets.contains(&l.digest),
            "layer {} downloaded again",
            l.digest
        );
    }
    rkt.ok(&["image", "verify", &id.to_string()]);
}
