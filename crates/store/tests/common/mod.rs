//! Helpers shared by the store's integration tests: real stores in temp dirs, real blobs and
//! trees.
#![allow(dead_code)]

use std::path::Path;

use rkt_store::{ImageName, LayerInfo, Store};
use rkt_types::{Digest, ImageConfig, ImageFormat, ImageRecord, LayerRecord, Platform};

/// A fresh store in a temp dir (on the same ext4 as /tmp).
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    (dir, store)
}

/// Entries of `tmp/`.
pub fn tmp_entries(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.root().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A digest with a chosen hex prefix, for ids that share prefixes.
pub fn id_with_prefix(prefix: &str, n: u32) -> Digest {
    let rest = format!("{n:08x}");
    let pad = 64 - prefix.len() - rest.len();
    format!("sha256:{prefix}{}{rest}", "0".repeat(pad))
        .parse()
        .unwrap()
}

/// Writes `files` under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (name, body) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

/// A committed layer: a blob (the "compressed" form) and a tree. Returns its record.
pub fn add_layer(store: &Store, seed: &str) -> LayerRecord {
    let blob_bytes = format!("blob of layer {seed}").into_bytes();
    let blob = store.put_blob(&blob_bytes, None).unwrap();
    let diff_id = Digest::sha256_of(format!("tar of layer {seed}").as_bytes());
    let tx = store.new_layer().unwrap();
    write_files(
        tx.tree_dir(),
        &[(&format!("etc/{seed}"), seed), ("bin/sh", "#!")],
    );
    let tree_hash = rkt_image::treehash::hash_tree(tx.tree_dir()).unwrap();
    store.sync().unwrap();
    let bytes = (seed.len() + 2) as u64;
    store
        .commit_layer(
            tx,
            &LayerInfo {
                diff_id: diff_id.clone(),
                tree_hash,
                entries: 4,
                bytes,
            },
        )
        .unwrap();
    LayerRecord {
        diff_id,
        blob,
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        size: blob_bytes.len() as u64,
    }
}

/// An image record over `layers`, with its manifest and config blobs stored.
pub fn make_image(store: &Store, id: Option<Digest>, layers: Vec<LayerRecord>) -> ImageRecord {
    let seed: String = layers
        .iter()
        .map(|l| l.diff_id.hex()[..8].to_owned())
        .collect();
    let config = store
        .put_blob(format!("config {seed} {id:?}").as_bytes(), None)
        .unwrap();
    let manifest = store
        .put_blob(format!("manifest {seed} {id:?}").as_bytes(), None)
        .unwrap();
    ImageRecord {
        id: id.unwrap_or_else(|| config.clone()),
        format: ImageFormat::Oci,
        manifest,
        config_blob: config,
        platform: Platform::host(),
        config: ImageConfig::default(),
        layers,
    }
}

/// `name:tag`.
pub fn name(s: &str) -> ImageName {
    let (n, t) = s.rsplit_once(':').unwrap();
    ImageName::new(n, t)
}
