//! A registry that serves bad content: a blob that does not hash to its digest, a layer whose
//! uncompressed content does not match the config's diff id, a zip bomb. Each fetch must fail
//! with a message that names the problem and leave nothing behind: no image, no new blob, no
//! tree, nothing in `store/tmp`.

mod e2e_support;

use e2e_support::{assert_nothing_stored, blobs, docker, fetch, fetch_ok, trees};
use rkt_tests::fixtures::AdversarialKind;
use rkt_tests::rkt::Rkt;
use rkt_tests::{Fixtures, Registry, RegistryOptions};

/// Pushes the adversarial image `kind` and fetches it into a fresh store; returns the store
/// and `rkt fetch`'s stderr after checking that it failed and stored nothing.
fn fetch_refused(kind: AdversarialKind, extra: &[&str]) -> (Rkt, String) {
    let reg = Registry::start(RegistryOptions::plain());
    let name = format!("{}:latest", kind.name());
    reg.push_fixture(&name, &format!("adversarial/{}", kind.name()));
    let rkt = Rkt::new();
    let out = fetch(&rkt, "image,http", &docker(&reg, &name), extra);
    assert_eq!(out.code(), Some(254), "{out}");
    assert_nothing_stored(&rkt, &Default::default(), &Default::default());
    (rkt, out.stderr)
}

#[test]
fn tampered_blob_is_a_digest_mismatch() {
    let fx = Fixtures::get();
    let bad = fx
        .adversarial(AdversarialKind::BlobDigestMismatch)
        .tampered_blob
        .clone()
        .expect("the fixture has a tampered blob");
    let (_, stderr) = fetch_refused(AdversarialKind::BlobDigestMismatch, &[]);
    assert!(stderr.contains("digest"), "{stderr}");
    assert!(stderr.contains(&bad.digest.to_string()), "{stderr}");
    assert!(stderr.contains("tampered"), "{stderr}");
}

#[test]
fn wrong_diff_id_is_a_digest_mismatch() {
    let (_, stderr) = fetch_refused(AdversarialKind::WrongDiffId, &[]);
    assert!(stderr.contains("diff id"), "{stderr}");
    assert!(stderr.contains("digest"), "{stderr}");
}

#[test]
fn zip_bomb_hits_max_layer_size() {
    let (_, stderr) = fetch_refused(AdversarialKind::ZipBomb, &["--max-layer-size=64MiB"]);
    assert!(stderr.contains("--max-layer-size"), "{stderr}");
}

/// A failed fetch into a store that already holds images leaves those alone and adds nothing.
#[test]
fn failed_fetch_leaves_an_existing_store_as_it_was() {
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("busybox:latest", "busybox");
    reg.push_fixture("evil:latest", "adversarial/blob-digest-mismatch");
    let rkt = Rkt::new();
    let id = fetch_ok(&rkt, &reg, "busybox:latest", &[]);
    let (blobs_before, trees_before) = (blobs(&rkt), trees(&rkt));
    let out = fetch(&rkt, "image,http", &docker(&reg, "evil:latest"), &[]);
    assert_eq!(out.code(), Some(254), "{out}");
    let list = rkt.image_list();
    assert_eq!(list.len(), 1, "{list:#?}");
    assert_eq!(list[0]["id"], id.to_string());
    assert_eq!(blobs(&rkt), blobs_before);
    assert_eq!(trees(&rkt), trees_before);
    assert!(e2e_support::tmp_entries(&rkt).is_empty());
    rkt.ok(&["image", "verify", &id.to_string()]);
}

/// Pushes busybox, lets `corrupt` change the registry's storage, and checks that the fetch
/// fails with a message containing every one of `words` and stores nothing.
fn corrupted_busybox(
    corrupt: impl FnOnce(&Registry, &rkt_tests::fixtures::ImageInfo),
    reference: impl FnOnce(&rkt_tests::PushedImage) -> String,
    words: &[&str],
) {
    let fx = Fixtures::get();
    let reg = Registry::start(RegistryOptions::plain());
    let pushed = reg.push_fixture("busybox:latest", "busybox");
    corrupt(&reg, &fx.busybox.image);
    let rkt = Rkt::new();
    let out = fetch(&rkt, "image,http", &docker(&reg, &reference(&pushed)), &[]);
    assert_eq!(out.code(), Some(254), "{out}");
    for w in words {
        assert!(out.stderr.contains(w), "{w:?} missing: {out}");
    }
    assert_nothing_stored(&rkt, &Default::default(), &Default::default());
}

/// A blob of the busybox fixture.
fn blob_bytes(d: &rkt_types::Digest) -> Vec<u8> {
    let layout = &Fixtures::get().busybox.path;
    std::fs::read(layout.join("blobs/sha256").join(d.hex())).unwrap()
}

#[test]
fn tampered_config_is_refused() {
    corrupted_busybox(
        |reg, info| {
            let mut bytes = blob_bytes(&info.config.digest);
            let i = bytes.len() / 2;
            bytes[i] ^= 0x01;
            reg.replace_blob(&info.config.digest, &bytes).unwrap();
        },
        |_| "busybox:latest".into(),
        &[
            "digest",
            &Fixtures::get().busybox.image.config.digest.to_string(),
        ],
    );
}

#[test]
fn layer_longer_or_shorter_than_its_descriptor_is_refused() {
    for (grow, word) in [(true, "longer than"), (false, "ended after")] {
        corrupted_busybox(
            |reg, info| {
                let top = &info.layers[1].digest;
                let mut bytes = blob_bytes(top);
                if grow {
                    bytes.extend_from_slice(&[0u8; 4096]);
                } else {
                    bytes.truncate(bytes.len() - 16);
                }
                reg.replace_blob(top, &bytes).unwrap();
            },
            |_| "busybox:latest".into(),
            &[word],
        );
    }
}
