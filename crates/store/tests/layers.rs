//! Layer trees: transactions in tmp/, commit, races between stores, locks.

mod common;

use std::sync::{Arc, Barrier};

use common::{store, tmp_entries, write_files};
use rkt_store::{LayerInfo, Store};
use rkt_types::Digest;

fn info(diff_id: &Digest) -> LayerInfo {
    LayerInfo {
        diff_id: diff_id.clone(),
        tree_hash: Digest::sha256_of(b"tree"),
        entries: 1,
        bytes: 5,
    }
}

#[test]
fn tree_is_visible_only_once_committed() {
    let (_d, store) = store();
    let diff_id = Digest::sha256_of(b"layer tar");
    let tx = store.new_layer().unwrap();
    assert!(tx.tree_dir().starts_with(store.root().join("tmp")));
    assert_eq!(std::fs::read_dir(tx.tree_dir()).unwrap().count(), 0);
    write_files(tx.tree_dir(), &[("etc/hostname", "hello")]);
    assert_eq!(store.layer_tree(&diff_id), None);
    assert_eq!(store.layer_info(&diff_id).unwrap(), None);
    store.sync().unwrap();
    let tree = store.commit_layer(tx, &info(&diff_id)).unwrap();
    assert_eq!(store.layer_tree(&diff_id), Some(tree.clone()));
    assert!(tree.starts_with(store.root().join("layers/sha256").join(diff_id.hex())));
    assert_eq!(
        std::fs::read_to_string(tree.join("etc/hostname")).unwrap(),
        "hello"
    );
    assert_eq!(store.layer_info(&diff_id).unwrap(), Some(info(&diff_id)));
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn dropped_transaction_is_removed() {
    let (_d, store) = store();
    let tx = store.new_layer().unwrap();
    write_files(tx.tree_dir(), &[("a/b/c", "x")]);
    assert_eq!(tmp_entries(&store).len(), 1);
    drop(tx);
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn commit_race_between_two_stores_keeps_one_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let diff_id = Digest::sha256_of(b"shared layer");
    for _round in 0..5 {
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = ["first", "second"]
            .into_iter()
            .map(|who| {
                let (root, diff_id, barrier) = (root.clone(), diff_id.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let store = Store::open(&root).unwrap();
                    let tx = store.new_layer().unwrap();
                    write_files(tx.tree_dir(), &[("who", who)]);
                    barrier.wait();
                    store.commit_layer(tx, &info(&diff_id)).unwrap()
                })
            })
            .collect();
        let paths: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(paths[0], paths[1]);
        let store = Store::open(&root).unwrap();
        let who = std::fs::read_to_string(paths[0].join("who")).unwrap();
        assert!(who == "first" || who == "second");
        assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));
        // Start the next round from an empty store again.
        std::fs::remove_dir_all(store.root().join("layers/sha256").join(diff_id.hex())).unwrap();
    }
}

#[test]
fn committing_an_existing_layer_returns_it() {
    let (_d, store) = store();
    let diff_id = Digest::sha256_of(b"l");
    let tx = store.new_layer().unwrap();
    write_files(tx.tree_dir(), &[("v", "1")]);
    let a = store.commit_layer(tx, &info(&diff_id)).unwrap();
    let tx = store.new_layer().unwrap();
    write_files(tx.tree_dir(), &[("v", "2")]);
    let b = store.commit_layer(tx, &info(&diff_id)).unwrap();
    assert_eq!(a, b);
    assert_eq!(std::fs::read_to_string(a.join("v")).unwrap(), "1");
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn key_locks_exclude_across_stores_and_clean_up() {
    let (_d, store) = store();
    let other = Store::open(store.root()).unwrap();
    let key = "layer:sha256:abc/with odd chars";
    let g = store.lock(key).unwrap();
    assert!(other.try_lock(key).unwrap().is_none());
    assert!(other.try_lock("another key").unwrap().is_some());
    let handle = {
        let root = store.root().to_owned();
        std::thread::spawn(move || {
            let s = Store::open(&root).unwrap();
            let _g = s.lock(key).unwrap();
            std::time::Instant::now()
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let released = std::time::Instant::now();
    drop(g);
    let acquired = handle.join().unwrap();
    assert!(
        acquired >= released,
        "the blocked locker got in before release"
    );
    // Guards remove their lock files, so locks/ does not grow.
    let left: Vec<_> = std::fs::read_dir(store.root().join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "gc.fence")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn many_threads_one_lock_mutual_exclusion() {
    let (_d, store) = store();
    let root = store.root().to_owned();
    let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (root, inside) = (root.clone(), inside.clone());
            std::thread::spawn(move || {
                let s = Store::open(&root).unwrap();
                for _ in 0..20 {
                    let _g = s.lock("k").unwrap();
                    let n = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(n, 0, "two holders of one lock");
                    std::thread::yield_now();
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
