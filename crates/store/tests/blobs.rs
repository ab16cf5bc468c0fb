//! Blobs: verification, atomic commit, concurrent writers (threads and processes).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

use common::{store, tmp_entries};
use rkt_store::{Store, StoreError};
use rkt_types::{Algorithm, Digest};

fn count_blobs(store: &Store) -> usize {
    ["sha256", "sha512"]
        .iter()
        .map(|a| {
            std::fs::read_dir(store.root().join("blobs").join(a))
                .unwrap()
                .count()
        })
        .sum()
}

#[test]
fn commit_stores_and_reads_back() {
    let (_d, store) = store();
    let data = b"hello blob";
    let expected = Digest::sha256_of(data);
    assert!(!store.has_blob(&expected));
    let mut w = store.blob_writer().unwrap();
    w.write_all(&data[..5]).unwrap();
    w.write_all(&data[5..]).unwrap();
    assert_eq!(w.written(), data.len() as u64);
    let d = w.commit(Some(&expected), Some(data.len() as u64)).unwrap();
    assert_eq!(d, expected);
    assert!(store.has_blob(&d));
    assert_eq!(
        store.blob_path(&d),
        store.root().join("blobs/sha256").join(d.hex())
    );
    let mut back = Vec::new();
    store.open_blob(&d).unwrap().read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    assert!(tmp_entries(&store).is_empty());
    // Committing the same content again is fine and stores it once.
    assert_eq!(store.put_blob(data, Some(&expected)).unwrap(), expected);
    assert_eq!(count_blobs(&store), 1);
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn digest_mismatch_stores_nothing() {
    let (_d, store) = store();
    let wrong = Digest::sha256_of(b"something else");
    let err = store.put_blob(b"payload", Some(&wrong)).unwrap_err();
    match &err {
        StoreError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, &wrong);
            assert_eq!(actual, &Digest::sha256_of(b"payload"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("nothing was stored"));
    assert_eq!(count_blobs(&store), 0);
    assert!(tmp_entries(&store).is_empty());
    assert!(!store.has_blob(&Digest::sha256_of(b"payload")));
}

#[test]
fn size_mismatch_stores_nothing() {
    let (_d, store) = store();
    let data = b"twelve bytes";
    let mut w = store.blob_writer().unwrap();
    w.write_all(data).unwrap();
    let err = w
        .commit(Some(&Digest::sha256_of(data)), Some(11))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SizeMismatch {
                expected: 11,
                actual: 12,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(count_blobs(&store), 0);
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn dropped_writer_leaves_nothing() {
    let (_d, store) = store();
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"partial").unwrap();
    assert_eq!(tmp_entries(&store).len(), 1);
    drop(w);
    assert!(tmp_entries(&store).is_empty());
    assert_eq!(count_blobs(&store), 0);
}

#[test]
fn sha512_blobs() {
    let (_d, store) = store();
    let data = b"an appc image";
    let mut w = store.blob_writer_with(Algorithm::Sha512).unwrap();
    w.write_all(data).unwrap();
    let d = w.commit(None, None).unwrap();
    assert_eq!(d.algorithm(), Algorithm::Sha512);
    assert!(
        store
            .blob_path(&d)
            .starts_with(store.root().join("blobs/sha512"))
    );
    assert!(store.has_blob(&d));
    // put_blob picks the expected digest's algorithm.
    assert_eq!(store.put_blob(data, Some(&d)).unwrap(), d);
    // A sha256 writer cannot be checked against a sha512 digest.
    let mut w = store.blob_writer().unwrap();
    w.write_all(data).unwrap();
    let err = w.commit(Some(&d), None).unwrap_err();
    assert!(
        matches!(err, StoreError::AlgorithmMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn missing_blob_error_says_what_to_do() {
    let (_d, store) = store();
    let err = store.open_blob(&Digest::sha256_of(b"nope")).unwrap_err();
    assert!(matches!(err, StoreError::BlobMissing(_)));
    assert!(err.to_string().contains("rkt fetch"));
}

fn big_payload() -> Vec<u8> {
    (0..4 << 20).map(|i: u32| (i % 251) as u8).collect()
}

#[test]
fn concurrent_writers_in_threads_store_once() {
    let (_d, store) = store();
    let store = Arc::new(store);
    let data = Arc::new(big_payload());
    let expected = Digest::sha256_of(&data);
    let n = 6;
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (store, data, expected, barrier) = (
                store.clone(),
                data.clone(),
                expected.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                // Half share the Store, half open their own, as separate processes would.
                let own;
                let s: &Store = if i % 2 == 0 {
                    &store
                } else {
                    own = Store::open(store.root()).unwrap();
                    &own
                };
                let mut w = s.blob_writer().unwrap();
                barrier.wait();
                for chunk in data.chunks(64 * 1024) {
                    w.write_all(chunk).unwrap();
                }
                w.commit(Some(&expected), Some(data.len() as u64)).unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
    assert_eq!(count_blobs(&store), 1);
    assert!(tmp_entries(&store).is_empty());
    assert_eq!(
        std::fs::read(store.blob_path(&expected)).unwrap(),
        data.as_slice()
    );
}

/// Runs in a child process (see `concurrent_writers_in_processes_store_once`): writes the big
/// payload as a blob into the store named by `RKT_STORE_TEST_ROOT`.
#[test]
#[ignore = "helper run as a child process by another test"]
fn child_write_blob() {
    let root = std::env::var("RKT_STORE_TEST_ROOT").expect("run by the parent test");
    let store = Store::open(std::path::Path::new(&root)).unwrap();
    let data = big_payload();
    let mut w = store.blob_writer().unwrap();
    for chunk in data.chunks(32 * 1024) {
        w.write_all(chunk).unwrap();
    }
    let d = w
        .commit(Some(&Digest::sha256_of(&data)), Some(data.len() as u64))
        .unwrap();
    println!("COMMITTED {d}");
}

#[test]
fn concurrent_writers_in_processes_store_once() {
    let (_d, store) = store();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "child_write_blob", "--ignored", "--nocapture"])
                .env("RKT_STORE_TEST_ROOT", store.root())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let expected = Digest::sha256_of(&big_payload());
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "child failed: {out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("COMMITTED {expected}")),
            "child output: {stdout}"
        );
    }
    assert_eq!(count_blobs(&store), 1);
    assert!(tmp_entries(&store).is_empty());
    assert_eq!(
        std::fs::read(store.blob_path(&expected)).unwrap(),
        big_payload()
    );
}
