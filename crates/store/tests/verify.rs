//! `verify_image`: blobs re-hashed, trees re-hashed with `rkt_image::treehash::hash_tree`.

mod common;

use common::{add_layer, make_image, name, store};
use rkt_store::{Check, StoreError};
use rkt_types::Digest;

#[test]
fn intact_then_damaged() {
    let (_d, store) = store();
    let base = add_layer(&store, "base");
    let app = add_layer(&store, "app");
    let rec = make_image(&store, None, vec![base.clone(), app.clone()]);
    store.insert_image(&rec, &[name("x:latest")], None).unwrap();

    let report = store.verify_image(&rec.id).unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.layers.len(), 2);
    assert_eq!(report.layers[1].diff_id, app.diff_id);

    // A file changed inside a tree.
    let tree = store.layer_tree(&app.diff_id).unwrap();
    std::fs::write(tree.join("etc/app"), "tampered").unwrap();
    // A blob changed on disk.
    std::fs::write(store.blob_path(&base.blob), "tampered").unwrap();
    // A blob gone.
    std::fs::remove_file(store.blob_path(&rec.config_blob)).unwrap();

    let report = store.verify_image(&rec.id).unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.manifest, Check::Ok);
    assert_eq!(report.config, Check::Missing);
    assert!(
        matches!(&report.layers[0].blob_check, Check::Mismatch { expected, actual }
            if *expected == base.blob && *actual == Digest::sha256_of(b"tampered")),
        "{report:?}"
    );
    assert_eq!(report.layers[0].tree_check, Check::Ok);
    assert_eq!(report.layers[1].blob_check, Check::Ok);
    assert!(
        matches!(report.layers[1].tree_check, Check::Mismatch { .. }),
        "{report:?}"
    );
    assert!(report.layers[1].tree_check.to_string().contains("modified"));
}

#[test]
fn unknown_image() {
    let (_d, store) = store();
    let err = store.verify_image(&Digest::sha256_of(b"x")).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
}
