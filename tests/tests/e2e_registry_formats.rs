//! `rkt fetch docker://…` of every registry image shape: by tag and by digest, OCI with gzip,
//! zstd and uncompressed layers, Docker schema2, and multi-platform OCI indexes and Docker
//! manifest lists with `--platform`.

mod e2e_support;

use e2e_support::{blob_gets, docker, fetch, fetch_ok, key, listed, trees};
use rkt_tests::rkt::Rkt;
use rkt_tests::{Fixtures, Registry, RegistryOptions};

fn registry() -> Registry {
    Registry::start(RegistryOptions::plain())
}

#[test]
fn by_digest_then_by_tag() {
    let fx = Fixtures::get();
    let reg = registry();
    let pushed = reg.push_fixture("busybox:v1", "busybox");
    let rkt = Rkt::new();

    let by_digest = format!("busybox@{}", pushed.digest);
    let id = fetch_ok(&rkt, &reg, &by_digest, &[]);
    assert_eq!(&id, fx.busybox.image.image_id());
    // A digest names no tag.
    assert_eq!(listed(&rkt, &id)["names"], serde_json::json!([]));
    rkt.ok(&["image", "verify", &id.to_string()]);

    let id2 = fetch_ok(&rkt, &reg, "busybox:v1", &[]);
    assert_eq!(id2, id);
    assert_eq!(
        listed(&rkt, &id)["names"],
        serde_json::json!([format!("{}/busybox:v1", reg.host())])
    );
    assert_eq!(rkt.image_list().len(), 1);

    // A digest that is not in the repository.
    let missing = format!(
        "busybox@{}",
        rkt_types::Digest::sha256_of(b"no such manifest")
    );
    let out = fetch(&rkt, "image,http", &docker(&reg, &missing), &[]);
    assert_eq!(out.code(), Some(254), "{out}");
    assert!(out.stderr.contains("not found"), "{out}");
    // Nor a repository or tag that does not exist.
    for missing in ["nosuch:latest", "busybox:nosuch"] {
        let out = fetch(&rkt, "image,http", &docker(&reg, missing), &[]);
        assert_eq!(out.code(), Some(254), "{out}");
        assert!(out.stderr.contains("not found"), "{out}");
    }
    assert_eq!(rkt.image_list().len(), 1);
}

#[test]
fn compressions_and_docker_schema2() {
    let fx = Fixtures::get();
    let reg = registry();
    for (fixture, info, format) in [
        ("busybox", &fx.busybox.image, "oci"),
        ("busybox-zstd", &fx.busybox_zstd.image, "oci"),
        (
            "busybox-uncompressed",
            &fx.busybox_uncompressed.image,
            "oci",
        ),
        ("busybox-docker", &fx.busybox_docker.image, "docker"),
    ] {
        reg.push_fixture(&format!("{fixture}:latest"), fixture);
        let rkt = Rkt::new();
        let id = fetch_ok(&rkt, &reg, &format!("{fixture}:latest"), &[]);
        assert_eq!(&id, info.image_id(), "{fixture}");
        let entry = listed(&rkt, &id);
        assert_eq!(entry["format"], format, "{fixture}");
        assert_eq!(entry["name"], format!("{}/{fixture}:latest", reg.host()));
        let want: std::collections::BTreeSet<_> = info.diff_ids.iter().map(key).collect();
        assert_eq!(trees(&rkt), want, "{fixture}: one tree per diff id");
        let cat = rkt.ok(&["image", "cat-manifest", &id.to_string()]);
        let m: serde_json::Value = serde_json::from_str(&cat.stdout).unwrap();
        assert_eq!(
            m["layers"][0]["mediaType"], info.layers[0].media_type,
            "{fixture}"
        );
        rkt.ok(&["image", "verify", &id.to_string()]);
    }
}

#[test]
fn several_images_in_one_fetch_print_one_id_each() {
    let fx = Fixtures::get();
    let reg = registry();
    reg.push_fixture("busybox:latest", "busybox");
    let (other, other_id) = e2e_support::relabelled_layout(&fx.busybox, "other");
    reg.push(other.path(), "latest", "other:latest");
    let rkt = Rkt::new();
    let out = rkt.run(&[
        "--insecure-options=image,http",
        "fetch",
        &docker(&reg, "other:latest"),
        &docker(&reg, "busybox:latest"),
    ]);
    assert!(out.success(), "{out}");
    let ids: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        ids,
        [
            other_id.to_string(),
            fx.busybox.image.image_id().to_string()
        ],
        "{out}"
    );
    assert_eq!(rkt.image_list().len(), 2);
}

#[test]
fn same_layers_in_another_compression_are_unpacked_once() {
    let fx = Fixtures::get();
    let reg = registry();
    reg.push_fixture("busybox:latest", "busybox");
    reg.push_fixture("busybox-zstd:latest", "busybox-zstd");
    let rkt = Rkt::new();
    fetch_ok(&rkt, &reg, "busybox:latest", &[]);
    let trees_before = trees(&rkt);
    let id = fetch_ok(&rkt, &reg, "busybox-zstd:latest", &[]);
    assert_eq!(&id, fx.busybox_zstd.image.image_id());
    assert_eq!(
        trees(&rkt),
        trees_before,
        "the zstd layers got trees of their own"
    );
    rkt.ok(&["image", "verify", &id.to_string()]);
}

#[test]
fn multi_platform_index_and_manifest_list() {
    let fx = Fixtures::get();
    let reg = registry();
    for (fixture, layout) in [
        ("multiarch", &fx.multiarch),
        ("multiarch-docker", &fx.multiarch_docker),
    ] {
        let pushed = reg.push_fixture(&format!("{fixture}:latest"), fixture);
        assert_eq!(pushed.digest, layout.index.digest);
        let name = format!("{fixture}:latest");

        // The host's platform by default.
        let rkt = Rkt::new();
        let id = fetch_ok(&rkt, &reg, &name, &[]);
        let host = layout
            .for_arch(&fx.architecture)
            .expect("host arch in the index");
        assert_eq!(&id, host.image_id(), "{fixture}");
        assert_eq!(
            listed(&rkt, &id)["platform"],
            format!("linux/{}", fx.architecture)
        );

        // --platform picks another entry.
        let rkt = Rkt::new();
        let gets_before = blob_gets(&reg, fixture).len();
        let id = fetch_ok(&rkt, &reg, &name, &["--platform", "linux/arm64"]);
        let arm = layout.for_arch("arm64").unwrap();
        assert_eq!(&id, arm.image_id(), "{fixture}");
        assert_eq!(listed(&rkt, &id)["platform"], "linux/arm64");
        // Only the arm64 image's config was downloaded, not the amd64 one's.
        let gets = blob_gets(&reg, fixture).split_off(gets_before);
        let other = layout.for_arch("amd64").unwrap();
        assert!(!gets.contains(&other.config.digest), "{fixture}: {gets:?}");

        // A platform the index lacks: refused, listing what there is.
        let rkt = Rkt::new();
        let out = fetch(
            &rkt,
            "image,http",
            &docker(&reg, &name),
            &["--platform", "linux/s390x"],
        );
        assert_eq!(out.code(), Some(254), "{out}");
        for p in ["linux/amd64", "linux/arm64", "linux/s390x"] {
            assert!(out.stderr.contains(p), "{fixture}: {p} missing from: {out}");
        }
        assert!(rkt.image_list().is_empty());
    }
}

#[test]
fn another_platform_of_a_stored_index_is_fetched_not_reused() {
    let fx = Fixtures::get();
    let reg = registry();
    reg.push_fixture("multiarch:latest", "multiarch");
    let host = fx.multiarch.for_arch(&fx.architecture).unwrap();
    let arm = fx.multiarch.for_arch("arm64").unwrap();
    let rkt = Rkt::new();
    let id = fetch_ok(&rkt, &reg, "multiarch:latest", &[]);
    assert_eq!(&id, host.image_id());
    for policy in ["update", "new"] {
        let p = format!("--pull-policy={policy}");
        let id = fetch_ok(
            &rkt,
            &reg,
            "multiarch:latest",
            &["--platform=linux/arm64", &p],
        );
        assert_eq!(&id, arm.image_id(), "--pull-policy={policy}");
        // And back: the host's image is in the store, under its platform.
        let id = fetch_ok(&rkt, &reg, "multiarch:latest", &[&p]);
        assert_eq!(&id, host.image_id(), "--pull-policy={policy}");
    }
    assert_eq!(rkt.image_list().len(), 2);
}
