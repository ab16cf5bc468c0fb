//! gc: unreferenced content, grace periods, tmp debris, killed processes, the keep set.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{add_layer, make_image, name, store, tmp_entries, write_files};
use rkt_store::{LayerInfo, Store};
use rkt_types::Digest;

const NOW: Duration = Duration::ZERO;

fn none() -> HashSet<Digest> {
    HashSet::new()
}

#[test]
fn removes_unreferenced_and_keeps_referenced() {
    let (_d, store) = store();
    let shared = add_layer(&store, "shared");
    let only_a = add_layer(&store, "only-a");
    let orphan = add_layer(&store, "orphan");
    let stray_blob = store.put_blob(b"stray", None).unwrap();
    let a = make_image(&store, None, vec![shared.clone(), only_a.clone()]);
    let b = make_image(&store, None, vec![shared.clone()]);
    store.insert_image(&a, &[name("a:latest")], None).unwrap();
    store.insert_image(&b, &[name("b:latest")], None).unwrap();

    let report = store.gc(NOW, &none()).unwrap();
    let mut blobs = report.blobs.clone();
    blobs.sort();
    let mut want = vec![orphan.blob.clone(), stray_blob.clone()];
    want.sort();
    assert_eq!(blobs, want);
    assert_eq!(report.layers, std::slice::from_ref(&orphan.diff_id));
    assert!(report.freed_bytes > 0);
    assert!(store.layer_tree(&orphan.diff_id).is_none());
    assert!(!store.has_blob(&stray_blob));
    for d in [
        &a.manifest,
        &a.config_blob,
        &b.manifest,
        &shared.blob,
        &only_a.blob,
    ] {
        assert!(store.has_blob(d), "{d}");
    }
    assert!(store.layer_tree(&shared.diff_id).is_some());
    assert!(store.layer_tree(&only_a.diff_id).is_some());
    assert!(tmp_entries(&store).is_empty(), "{:?}", tmp_entries(&store));

    // Removing an image frees its own trees and blobs at the next gc (rkt #2890), but not
    // what another image still uses.
    store.remove_image(&a.id).unwrap();
    let report = store.gc(NOW, &none()).unwrap();
    assert_eq!(report.layers, std::slice::from_ref(&only_a.diff_id));
    assert!(report.blobs.contains(&a.manifest));
    assert!(report.blobs.contains(&only_a.blob));
    assert!(store.layer_tree(&only_a.diff_id).is_none());
    assert!(store.layer_tree(&shared.diff_id).is_some());
    assert!(store.has_blob(&shared.blob));
    assert_eq!(store.resolve("b").unwrap(), b);

    // Nothing left to do.
    let report = store.gc(NOW, &none()).unwrap();
    assert!(report.blobs.is_empty() && report.layers.is_empty());
}

#[test]
fn honours_the_grace_period() {
    let (_d, store) = store();
    let orphan = add_layer(&store, "fresh");
    let report = store.gc(Duration::from_secs(3600), &none()).unwrap();
    assert!(
        report.blobs.is_empty() && report.layers.is_empty(),
        "{report:?}"
    );
    assert!(store.layer_tree(&orphan.diff_id).is_some());
    assert!(store.has_blob(&orphan.blob));
    std::thread::sleep(Duration::from_millis(1100));
    let report = store.gc(Duration::from_secs(1), &none()).unwrap();
    assert_eq!(report.layers, std::slice::from_ref(&orphan.diff_id));
    assert_eq!(report.blobs, std::slice::from_ref(&orphan.blob));
}

#[test]
fn reuse_restarts_the_grace_period() {
    let (_d, store) = store();
    let data = b"reused blob";
    let d = store.put_blob(data, None).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    // A later fetch finds it already there.
    store.put_blob(data, Some(&d)).unwrap();
    let report = store.gc(Duration::from_secs(1), &none()).unwrap();
    assert!(report.blobs.is_empty(), "{report:?}");
    assert!(store.has_blob(&d));
}

#[test]
fn keep_set_protects_trees_in_use() {
    let (_d, store) = store();
    let used_by_pod = add_layer(&store, "pod");
    let keep: HashSet<Digest> = [used_by_pod.diff_id.clone()].into();
    let report = store.gc(NOW, &keep).unwrap();
    assert!(report.layers.is_empty());
    assert_eq!(report.blobs, std::slice::from_ref(&used_by_pod.blob));
    assert!(store.layer_tree(&used_by_pod.diff_id).is_some());
}

#[test]
fn cleans_tmp_debris_but_not_live_writers() {
    let (_d, store) = store();
    // Live writers, held by this process.
    let mut w = store.blob_writer().unwrap();
    w.write_all(b"in flight").unwrap();
    let tx = store.new_layer().unwrap();
    write_files(tx.tree_dir(), &[("f", "in flight")]);
    // Debris: entries nobody holds a lock on, as a killed process leaves them.
    let tmp = store.root().join("tmp");
    std::fs::write(tmp.join("blob-deadbeef"), b"half a blob").unwrap();
    write_files(&tmp.join("layer-deadbeef/tree"), &[("x/y", "half a tree")]);
    std::os::unix::fs::symlink("/etc", tmp.join("odd-symlink")).unwrap();

    let report = store.gc(NOW, &none()).unwrap();
    assert_eq!(report.tmp_entries, 3, "{report:?}");
    assert_eq!(report.tmp_in_use, 2, "{report:?}");
    assert!(report.freed_bytes >= 22);
    let line = report.to_string();
    assert!(
        line.starts_with("removed 0 blobs, 0 layer trees, 3 temp leftovers; freed")
            && line.ends_with("(2 in use by running fetches)"),
        "{line}"
    );
    assert_eq!(tmp_entries(&store).len(), 2);
    // The symlink was removed, not followed.
    assert!(std::path::Path::new("/etc/passwd").exists());

    // The live writers still work.
    let d = w.commit(None, None).unwrap();
    assert!(store.has_blob(&d));
    let diff_id = Digest::sha256_of(b"live");
    store
        .commit_layer(
            tx,
            &LayerInfo {
                diff_id: diff_id.clone(),
                tree_hash: Digest::sha256_of(b"t"),
                entries: 1,
                bytes: 9,
            },
        )
        .unwrap();
    assert!(store.layer_tree(&diff_id).is_some());
    assert!(tmp_entries(&store).is_empty());
}

#[test]
fn removes_stale_lock_files_only() {
    let (_d, store) = store();
    let locks = store.root().join("locks");
    // As a killed process leaves it: the file exists, nobody holds it.
    std::fs::write(locks.join("layer_sha256_x.0123456789abcdef.lock"), b"").unwrap();
    let held = store.lock("held").unwrap();
    let report = store.gc(NOW, &none()).unwrap();
    assert_eq!(report.lock_files, 1);
    let left: Vec<_> = std::fs::read_dir(&locks)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}"); // the held key and the gc fence
    assert!(store.try_lock("held").unwrap().is_none());
    drop(held);
    assert!(store.try_lock("held").unwrap().is_some());
}

#[test]
fn gc_waits_for_fetches_holding_the_fence() {
    let (_d, store) = store();
    let orphan = add_layer(&store, "reused");
    let fence = store.gc_fence().unwrap();
    let root = store.root().to_owned();
    let gc = std::thread::spawn(move || {
        let s = Store::open(&root).unwrap();
        s.gc(NOW, &HashSet::new()).unwrap()
    });
    // While the "fetch" holds the fence, it can index an image over content gc would take.
    std::thread::sleep(Duration::from_millis(300));
    assert!(store.layer_tree(&orphan.diff_id).is_some());
    let rec = make_image(&store, None, vec![orphan.clone()]);
    store.insert_image(&rec, &[name("r:latest")], None).unwrap();
    drop(fence);
    let report = gc.join().unwrap();
    assert!(report.layers.is_empty(), "{report:?}");
    assert!(store.layer_tree(&orphan.diff_id).is_some());
}

/// Whether some process waits in `flock` on the file with inode `ino` (a `->` line of
/// `/proc/locks`, whose fifth field is `MAJOR:MINOR:INODE`).
fn someone_waits_on(ino: u64) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap();
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"->")
            && f.get(6).and_then(|d| d.rsplit(':').next()) == Some(&*ino.to_string())
    })
}

#[test]
fn scratch_files_of_a_fetch_holding_the_fence_survive_gc() {
    use std::os::unix::fs::MetadataExt;
    let (_d, store) = store();
    let fence = store.gc_fence().unwrap();
    // What a fetch does with an archive or a download: an unlocked scratch file under tmp/.
    let scratch = store.tmp_dir().join("download-scratch");
    std::fs::write(&scratch, b"half a download").unwrap();
    let fence_ino = std::fs::metadata(store.root().join("locks/gc.fence"))
        .unwrap()
        .ino();
    let root = store.root().to_owned();
    let gc = std::thread::spawn(move || {
        let s = Store::open(&root).unwrap();
        s.gc(NOW, &HashSet::new()).unwrap()
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !someone_waits_on(fence_ino) {
        assert!(
            std::time::Instant::now() < deadline,
            "gc never waited for the fence"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        scratch.exists(),
        "gc removed a running fetch's scratch file"
    );
    std::fs::remove_file(&scratch).unwrap();
    drop(fence);
    let report = gc.join().unwrap();
    assert_eq!(report.tmp_entries, 0, "{report:?}");
}

/// Runs in a child process that gets killed (see `survives_kill_9_mid_write`): starts writing a
/// blob and unpacking a layer in the store named by `RKT_STORE_TEST_ROOT`, says READY and waits
/// to be killed.
#[test]
#[ignore = "helper run as a child process by another test"]
fn child_write_then_hang() {
    let root = std::env::var("RKT_STORE_TEST_ROOT").expect("run by the parent test");
    let store = Store::open(std::path::Path::new(&root)).unwrap();
    let mut w = store.blob_writer().unwrap();
    w.write_all(&[7u8; 100_000]).unwrap();
    w.flush().unwrap();
    let tx = store.new_layer().unwrap();
    write_files(
        tx.tree_dir(),
        &[("usr/bin/half", "written before the crash")],
    );
    let _lock = store.lock("layer:being-fetched").unwrap();
    let _fence = store.gc_fence().unwrap();
    println!("READY");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(600));
    drop((w, tx));
}

#[test]
fn survives_kill_9_mid_write() {
    let (_d, store) = store();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_write_then_hang",
            "--ignored",
            "--nocapture",
        ])
        .env("RKT_STORE_TEST_ROOT", store.root())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("READY") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited early");
    }
    // While it lives, its key lock is held (and gc would wait for its fence).
    assert!(store.try_lock("layer:being-fetched").unwrap().is_none());
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    assert_eq!(tmp_entries(&store).len(), 2);
    // The next operations succeed: the key is free, a new write works, gc cleans up.
    assert!(store.try_lock("layer:being-fetched").unwrap().is_some());
    let d = store.put_blob(&[7u8; 100_000], None).unwrap();
    let report = store.gc(NOW, &HashSet::new()).unwrap();
    assert_eq!(report.tmp_entries, 2, "{report:?}");
    assert!(tmp_entries(&store).is_empty());
    // The blob written after the crash is unreferenced, so it goes too; the store is clean.
    assert_eq!(report.blobs, [d]);
    let reopened = Store::open(store.root()).unwrap();
    assert!(reopened.list_images().unwrap().is_empty());
}
