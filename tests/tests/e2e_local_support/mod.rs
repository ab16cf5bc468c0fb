//! Helpers shared by the `e2e_local*` and `e2e_image*` tests: running `rkt` in a sandbox and
//! looking at what it left in its store.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

use rkt_tests::Fixtures;
use rkt_tests::rkt::{Rkt, RktOutput};
use serde_json::Value;

/// rkt's exit status for errors.
pub const EXIT_ERROR: i32 = 254;

/// The shared fixtures.
pub fn fx() -> &'static Fixtures {
    Fixtures::get()
}

/// `rkt --insecure-options=image fetch ARGS…`, which must succeed; the printed ids.
pub fn fetch<S: AsRef<OsStr>>(rkt: &Rkt, args: &[S]) -> Vec<String> {
    let mut a: Vec<&OsStr> = vec!["--insecure-options=image".as_ref(), "fetch".as_ref()];
    a.extend(args.iter().map(AsRef::as_ref));
    let out = rkt.ok(&a);
    out.stdout.lines().map(|l| l.trim().to_owned()).collect()
}

/// Fetches one image and returns its id.
pub fn fetch1(rkt: &Rkt, src: impl AsRef<OsStr>) -> String {
    let ids = fetch(rkt, &[src.as_ref()]);
    assert_eq!(ids.len(), 1, "one id expected, got {ids:?}");
    ids.into_iter().next().unwrap()
}

/// Runs `rkt ARGS…`, which must fail with rkt's error status.
pub fn fail<S: AsRef<OsStr>>(rkt: &Rkt, args: &[S]) -> RktOutput {
    let out = rkt.run(args);
    assert_eq!(
        out.code(),
        Some(EXIT_ERROR),
        "expected exit {EXIT_ERROR}: {out}"
    );
    out
}

/// `oci:PATH:TAG` for a fixture layout.
pub fn oci(l: &rkt_tests::fixtures::OciLayout) -> String {
    format!("oci:{}", l.reference())
}

/// The image in `rkt image list --format=json` with this id.
pub fn listed(rkt: &Rkt, id: &str) -> Option<Value> {
    rkt.image_list().into_iter().find(|i| i["id"] == id)
}

/// The ids `rkt image list` shows.
pub fn listed_ids(rkt: &Rkt) -> Vec<String> {
    rkt.image_list()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The names of image `id` in `rkt image list --format=json`.
pub fn names_of(rkt: &Rkt, id: &str) -> Vec<String> {
    let img = listed(rkt, id).unwrap_or_else(|| panic!("{id} is not listed"));
    img["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

/// Entries of `dir`, sorted; empty if it does not exist.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every unpacked layer directory (`store/layers/<algo>/<hex>`).
pub fn layer_dirs(rkt: &Rkt) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for algo in entries(&rkt.store().join("layers")) {
        v.extend(entries(&algo));
    }
    v
}

/// Every blob file (`store/blobs/<algo>/<hex>`).
pub fn blob_files(rkt: &Rkt) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for algo in entries(&rkt.store().join("blobs")) {
        v.extend(entries(&algo));
    }
    v
}

/// `store/layers/sha256/<hex>` for a diff id.
pub fn layer_dir(rkt: &Rkt, diff_id: &rkt_types::Digest) -> PathBuf {
    rkt.store()
        .join("layers")
        .join(diff_id.algorithm().name())
        .join(diff_id.hex())
}

/// `store/blobs/sha256/<hex>` for a digest.
pub fn blob_file(rkt: &Rkt, digest: &rkt_types::Digest) -> PathBuf {
    rkt.store()
        .join("blobs")
        .join(digest.algorithm().name())
        .join(digest.hex())
}

/// Panics unless the store has no image, no layer tree and nothing in `tmp/`.
pub fn assert_store_empty(rkt: &Rkt, context: &str) {
    assert_eq!(listed_ids(rkt), Vec::<String>::new(), "{context}: images");
    assert_eq!(layer_dirs(rkt), Vec::<PathBuf>::new(), "{context}: trees");
    assert_eq!(
        entries(&rkt.store().join("tmp")),
        Vec::<PathBuf>::new(),
        "{context}: store/tmp"
    );
}
