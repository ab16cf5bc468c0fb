//! The large image: its layers really carry cross-layer whiteouts, an opaque directory, hard
//! links and symlinks, its expectations match an overlay-style merge of its layers, and its
//! sibling shares everything but the top layer.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Instant;

use common::{inspect, reported_digest};
use rkt_tests::Fixtures;
use rkt_tests::fixtures::OciLayout;
use rkt_types::Digest;

/// (name, type flag, link target) for every entry of a gzip layer.
fn entries(l: &OciLayout, i: usize) -> Vec<(String, u8, String)> {
    let d = &l.image.layers[i];
    let f = std::fs::File::open(l.path.join("blobs/sha256").join(d.digest.hex())).unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(
        Digest::sha256_of(&tar),
        l.image.diff_ids[i],
        "layer {i} diff id"
    );
    tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let link = e
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            (
                name.trim_end_matches('/').to_owned(),
                e.header().entry_type().as_byte(),
                link,
            )
        })
        .collect()
}

/// Applies layers the way overlayfs shows them: whiteouts delete from lower layers, an opaque
/// marker hides the lower layers' contents of its directory.
fn merge(l: &OciLayout) -> BTreeMap<String, (u8, String)> {
    let mut tree: BTreeMap<String, (u8, String)> = BTreeMap::new();
    for i in 0..l.image.layers.len() {
        let mut added = BTreeSet::new();
        for (name, kind, link) in entries(l, i) {
            let (dir, base) = name.rsplit_once('/').unwrap_or(("", &name));
            let under =
                |p: &str, d: &str| d.is_empty() || p == d || p.starts_with(&format!("{d}/"));
            if base == ".wh..wh..opq" {
                tree.retain(|p, _| added.contains(p) || !under(p, dir) || p == dir);
            } else if let Some(victim) = base.strip_prefix(".wh.") {
                let v = if dir.is_empty() {
                    victim.to_owned()
                } else {
                    format!("{dir}/{victim}")
                };
                tree.retain(|p, _| !under(p, &v));
            } else {
                added.insert(name.clone());
                tree.insert(name, (kind, link));
            }
        }
    }
    tree
}

#[test]
fn large_image_layers_and_expectations() {
    let fx = Fixtures::get();
    let t = Instant::now();
    let lf = fx.large();
    eprintln!("large fixture ready in {:?}", t.elapsed());
    let large = &lf.large;
    assert_eq!(large.image.layers.len(), 6);
    assert_eq!(
        large.image.layers[0], fx.busybox.image.layers[0],
        "shares the busybox base"
    );
    let uncompressed: u64 = lf.content_bytes;
    assert!(
        uncompressed >= lf.target_bytes * 9 / 10 && uncompressed <= lf.target_bytes + (16 << 20),
        "content {uncompressed} for target {}",
        lf.target_bytes
    );

    // Whiteouts across layers: the top layer and the last content layer both carry some.
    let top = entries(large, 5);
    assert!(top.iter().any(|(n, _, _)| n.ends_with("/.wh..wh..opq")));
    assert!(
        top.iter()
            .filter(|(n, _, _)| n.contains("/.wh.") && !n.ends_with(".wh..wh..opq"))
            .count()
            >= 4
    );
    let below = entries(large, 4);
    assert!(below.iter().any(|(n, _, _)| n.contains("/.wh.")));
    let mut kinds = BTreeSet::new();
    for i in 1..5 {
        for (_, k, _) in entries(large, i) {
            kinds.insert(k);
        }
    }
    assert!(
        kinds.contains(&b'1') && kinds.contains(&b'2'),
        "hard links and symlinks: {kinds:?}"
    );

    let merged = merge(large);
    for r in &lf.removed {
        assert!(!merged.contains_key(&r[1..]), "{r} should be removed");
    }
    for o in &lf.opaque {
        let kids: Vec<&str> = merged
            .keys()
            .filter_map(|p| p.strip_prefix(&format!("{}/", &o.path[1..])))
            .collect();
        assert_eq!(kids, o.entries, "opaque {}", o.path);
        assert!(!o.hidden.is_empty());
    }
    for (p, _) in &lf.present {
        assert_eq!(
            merged.get(&p[1..]).map(|e| e.0),
            Some(b'0'),
            "{p} should be present"
        );
    }
    for (l, t) in &lf.hardlinks {
        assert_eq!(merged[&l[1..]], (b'1', t[1..].to_owned()));
        assert!(
            merged.contains_key(&t[1..]),
            "hard link target {t} is hidden"
        );
    }
    assert_eq!(merged["etc/rkt-large-top"].0, b'0');

    // The sibling shares every layer but the top one.
    let sib = &lf.sibling;
    assert_eq!(sib.image.layers[..5], large.image.layers[..5]);
    assert_ne!(sib.image.layers[5], large.image.layers[5]);
    assert_ne!(sib.image.config.digest, large.image.config.digest);

    for l in [large, sib] {
        let r = format!("oci:{}", l.reference());
        assert_eq!(reported_digest(&inspect(&[&r])), l.image.manifest.digest);
    }
}
