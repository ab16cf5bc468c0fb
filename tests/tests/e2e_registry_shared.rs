//! Images that share layers share downloads and trees: after the large image, fetching its
//! sibling (the same layers but the top one) downloads only the sibling's own layer.

mod e2e_support;

use std::collections::BTreeSet;

use e2e_support::{blob_gets, fetch_ok, key, listed, trees};
use rkt_tests::rkt::Rkt;
use rkt_tests::{Fixtures, Registry, RegistryOptions};

#[test]
fn sibling_downloads_only_its_own_layer() {
    let large = Fixtures::get().large();
    let (big, sib) = (&large.large.image, &large.sibling.image);
    let reg = Registry::start(RegistryOptions::plain());
    reg.push_fixture("large:latest", "large");
    reg.push_fixture("sibling:latest", "large-sibling");

    let new_layers: Vec<_> = sib
        .layers
        .iter()
        .filter(|l| !big.layers.contains(l))
        .map(|l| l.digest.clone())
        .collect();
    assert_eq!(
        new_layers.len(),
        1,
        "the fixture's sibling should differ in one layer"
    );

    let rkt = Rkt::new();
    let id = fetch_ok(&rkt, &reg, "large:latest", &[]);
    assert_eq!(&id, big.image_id());
    let want: BTreeSet<_> = big.diff_ids.iter().map(key).collect();
    assert_eq!(trees(&rkt), want);

    let sib_id = fetch_ok(&rkt, &reg, "sibling:latest", &[]);
    assert_eq!(&sib_id, sib.image_id());
    let layer_gets: Vec<_> = blob_gets(&reg, "sibling")
        .into_iter()
        .filter(|d| *d != sib.config.digest)
        .collect();
    assert_eq!(
        layer_gets, new_layers,
        "the sibling fetch downloaded shared layers"
    );
    let want: BTreeSet<_> = big.diff_ids.iter().chain(&sib.diff_ids).map(key).collect();
    assert_eq!(trees(&rkt), want);

    // Both are whole, and the list shows what they share.
    let out = rkt.ok(&["image", "verify", &id.to_string(), &sib_id.to_string()]);
    assert_eq!(out.stdout.matches(": OK").count(), 2, "{out}");
    assert!(listed(&rkt, &sib_id)["shared_size"].as_u64().unwrap() > 0);
}
