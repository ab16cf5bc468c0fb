//! The index: insert, resolve, list, touch, remove, remotes, schema versions.

mod common;

use std::time::{Duration, SystemTime};

use common::{add_layer, id_with_prefix, make_image, name, store};
use rkt_store::{RemoteInfo, Store, StoreError};
use rkt_types::Digest;

#[test]
fn insert_and_resolve_by_id_prefix_and_name() {
    let (_d, store) = store();
    let base = add_layer(&store, "base");
    let rec = make_image(&store, None, vec![base]);
    store
        .insert_image(&rec, &[name("docker.io/library/busybox:latest")], None)
        .unwrap();
    let id = rec.id.to_string();
    let hex = rec.id.hex();
    for q in [
        id.clone(),
        rec.id.dashed(),
        hex[..12].to_owned(),
        hex[..4].to_owned(),
        hex[..8].to_uppercase(),
        format!("sha256:{}", &hex[..6]),
        format!("sha256-{}", &hex[..6]),
        "busybox".into(),
        "busybox:latest".into(),
        "library/busybox".into(),
        "docker.io/library/busybox".into(),
        "docker.io/library/busybox:latest".into(),
        "docker://busybox".into(),
        format!("busybox@{}", rec.manifest),
    ] {
        assert_eq!(store.resolve(&q).unwrap(), rec, "query {q}");
    }
    assert_eq!(store.image(&rec.id).unwrap(), Some(rec.clone()));

    // Too short to be a prefix; a tag that does not exist; another repository.
    for q in [&hex[..3], "busybox:1.36", "alpine", "sha512-abcd"] {
        let err = store.resolve(q).unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{q}: {err:?}");
    }
    let msg = store.resolve("alpine").unwrap_err().to_string();
    assert!(
        msg.contains("rkt fetch") && msg.contains("docker://alpine"),
        "{msg}"
    );
    let msg = store.resolve(&hex[..3]).unwrap_err().to_string();
    assert!(msg.contains("at least 4 hex digits"), "{msg}");
}

#[test]
fn appc_style_and_registry_names() {
    let (_d, store) = store();
    let a = make_image(&store, Some(id_with_prefix("aa", 1)), vec![]);
    let b = make_image(&store, Some(id_with_prefix("bb", 2)), vec![]);
    store
        .insert_image(&a, &[name("coreos.com/etcd:v2.0.0")], None)
        .unwrap();
    store
        .insert_image(&b, &[name("127.0.0.1:5000/team/app:v1")], None)
        .unwrap();
    assert_eq!(store.resolve("coreos.com/etcd:v2.0.0").unwrap().id, a.id);
    assert_eq!(
        store.resolve("127.0.0.1:5000/team/app:v1").unwrap().id,
        b.id
    );
    // Without a tag and without a `latest`, the one image known under the name is meant
    // (how rkt found appc images, which are tagged with their version)...
    assert_eq!(store.resolve("127.0.0.1:5000/team/app").unwrap().id, b.id);
    assert_eq!(store.resolve("coreos.com/etcd").unwrap().id, a.id);
    // ...and with several, the user has to say which.
    let c = make_image(&store, Some(id_with_prefix("cc", 3)), vec![]);
    store
        .insert_image(&c, &[name("coreos.com/etcd:v3.0.0")], None)
        .unwrap();
    let err = store.resolve("coreos.com/etcd").unwrap_err().to_string();
    assert!(
        err.contains("coreos.com/etcd:v2.0.0") && err.contains("coreos.com/etcd:v3.0.0"),
        "{err}"
    );
    assert!(store.resolve("coreos.com/etcd:v9").is_err());
}

#[test]
fn ambiguous_prefix_lists_candidates() {
    let (_d, store) = store();
    let a = make_image(&store, Some(id_with_prefix("abcd1", 1)), vec![]);
    let b = make_image(&store, Some(id_with_prefix("abcd2", 2)), vec![]);
    store.insert_image(&a, &[], None).unwrap();
    store.insert_image(&b, &[], None).unwrap();
    let err = store.resolve("abcd").unwrap_err();
    match &err {
        StoreError::Ambiguous { candidates, .. } => {
            assert_eq!(candidates, &[a.id.to_string(), b.id.to_string()]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&a.id.to_string()) && msg.contains("more digits"),
        "{msg}"
    );
    assert_eq!(store.resolve("abcd1").unwrap().id, a.id);
    assert_eq!(store.resolve("sha256:abcd2").unwrap().id, b.id);
}

#[test]
fn a_name_wins_over_an_id_prefix() {
    let (_d, store) = store();
    let a = make_image(&store, Some(id_with_prefix("cafe", 1)), vec![]);
    let b = make_image(&store, Some(id_with_prefix("beef", 2)), vec![]);
    store.insert_image(&a, &[], None).unwrap();
    store
        .insert_image(&b, &[name("cafe:latest")], None)
        .unwrap();
    assert_eq!(store.resolve("cafe").unwrap().id, b.id);
    assert_eq!(store.resolve("sha256:cafe").unwrap().id, a.id);
}

#[test]
fn tags_move_to_the_newest_image() {
    let (_d, store) = store();
    let old = make_image(&store, Some(id_with_prefix("01", 1)), vec![]);
    let new = make_image(&store, Some(id_with_prefix("02", 2)), vec![]);
    let bb = "docker.io/library/busybox";
    store
        .insert_image(
            &old,
            &[name(&format!("{bb}:latest")), name(&format!("{bb}:1.36"))],
            None,
        )
        .unwrap();
    store
        .insert_image(&new, &[name(&format!("{bb}:latest"))], None)
        .unwrap();
    assert_eq!(store.resolve("busybox").unwrap().id, new.id);
    assert_eq!(store.resolve("busybox:1.36").unwrap().id, old.id);
    let list = store.list_images().unwrap();
    let names_of = |id: &Digest| {
        list.iter()
            .find(|e| &e.id == id)
            .unwrap()
            .names
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(names_of(&old.id), [format!("{bb}:1.36")]);
    assert_eq!(names_of(&new.id), [format!("{bb}:latest")]);
    // Moving the last tag away leaves a nameless image that is still listed and resolvable.
    store
        .insert_image(&new, &[name(&format!("{bb}:1.36"))], None)
        .unwrap();
    assert!(
        store
            .list_images()
            .unwrap()
            .iter()
            .find(|e| e.id == old.id)
            .unwrap()
            .names
            .is_empty()
    );
    assert_eq!(store.resolve(&old.id.to_string()).unwrap().id, old.id);
}

#[test]
fn insert_refuses_incomplete_images() {
    let (_d, store) = store();
    let layer = add_layer(&store, "l");
    let mut rec = make_image(&store, None, vec![layer.clone()]);
    let mut missing_tree = layer.clone();
    missing_tree.diff_id = Digest::sha256_of(b"never unpacked");
    rec.layers.push(missing_tree);
    let err = store
        .insert_image(&rec, &[name("x:latest")], None)
        .unwrap_err();
    assert!(matches!(err, StoreError::IncompleteImage { .. }), "{err:?}");
    assert!(err.to_string().contains("never") || err.to_string().contains("layer tree"));
    rec.layers.pop();
    rec.config_blob = Digest::sha256_of(b"config never stored");
    let err = store
        .insert_image(&rec, &[name("x:latest")], None)
        .unwrap_err();
    assert!(err.to_string().contains("blob"), "{err}");
    assert!(store.list_images().unwrap().is_empty());
    assert!(store.resolve("x").is_err());
}

#[test]
fn invalid_names_are_refused() {
    let (_d, store) = store();
    let rec = make_image(&store, None, vec![]);
    for bad in [("", "latest"), ("a", ""), ("a b", "latest"), ("a", "x/y")] {
        let err = store
            .insert_image(&rec, &[rkt_store::ImageName::new(bad.0, bad.1)], None)
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidName(_)), "{bad:?}");
    }
}

#[test]
fn list_sizes_touch_and_remove() {
    let (_d, store) = store();
    let base = add_layer(&store, "base");
    let app = add_layer(&store, "app");
    let a = make_image(&store, None, vec![base.clone()]);
    let b = make_image(&store, None, vec![base.clone(), app.clone()]);
    store.insert_image(&a, &[name("a:latest")], None).unwrap();
    store.insert_image(&b, &[name("b:latest")], None).unwrap();

    let blob_len = |d: &Digest| std::fs::metadata(store.blob_path(d)).unwrap().len();
    let tree_len = |d: &Digest| store.layer_info(d).unwrap().unwrap().bytes;
    let list = store.list_images().unwrap();
    assert_eq!(list.len(), 2);
    let ea = list.iter().find(|e| e.id == a.id).unwrap();
    let eb = list.iter().find(|e| e.id == b.id).unwrap();
    let shared = blob_len(&base.blob) + tree_len(&base.diff_id);
    assert_eq!(
        ea.size,
        blob_len(&a.manifest) + blob_len(&a.config_blob) + shared
    );
    assert_eq!(ea.shared_size, shared);
    assert_eq!(
        eb.size,
        blob_len(&b.manifest)
            + blob_len(&b.config_blob)
            + shared
            + blob_len(&app.blob)
            + tree_len(&app.diff_id)
    );
    assert_eq!(eb.shared_size, shared);
    assert_eq!(ea.platform, rkt_types::Platform::host());
    assert_eq!(ea.format, rkt_types::ImageFormat::Oci);
    assert!(ea.import_time <= eb.import_time);

    let before = ea.last_used;
    std::thread::sleep(Duration::from_millis(5));
    store.touch(&a.id).unwrap();
    let after = store
        .list_images()
        .unwrap()
        .into_iter()
        .find(|e| e.id == a.id)
        .unwrap()
        .last_used;
    assert!(after > before);

    store.remove_image(&a.id).unwrap();
    assert_eq!(store.image(&a.id).unwrap(), None);
    assert!(store.resolve("a").is_err());
    let list = store.list_images().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].shared_size, 0);
    let err = store.remove_image(&a.id).unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }));
    // The image's use mark goes with it; one a racing pod left behind goes at the next gc.
    let mark = store
        .root()
        .join("used")
        .join(format!("sha256-{}", a.id.hex()));
    assert!(!mark.exists());
    store.touch(&a.id).unwrap();
    assert!(mark.exists());
    store
        .gc(Duration::ZERO, &std::collections::HashSet::new())
        .unwrap();
    assert!(!mark.exists());
    let b_mark = store
        .root()
        .join("used")
        .join(format!("sha256-{}", b.id.hex()));
    store.touch(&b.id).unwrap();
    store
        .gc(Duration::ZERO, &std::collections::HashSet::new())
        .unwrap();
    assert!(b_mark.exists(), "the mark of an indexed image stays");
}

#[test]
fn remotes_round_trip_and_go_with_their_image() {
    let (_d, store) = store();
    let rec = make_image(&store, None, vec![]);
    let key = "docker://127.0.0.1:5000/app:latest";
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    let remote = RemoteInfo {
        key: key.into(),
        etag: Some("\"abc\"".into()),
        manifest_digest: Some(rec.manifest.clone()),
        image_id: Digest::sha256_of(b"ignored: insert_image uses the record's id"),
        fetched_at: at,
        max_age: Some(Duration::from_secs(300)),
    };
    assert_eq!(store.remote(key).unwrap(), None);
    store
        .insert_image(&rec, &[name("127.0.0.1:5000/app:latest")], Some(&remote))
        .unwrap();
    let got = store.remote(key).unwrap().unwrap();
    assert_eq!(got.image_id, rec.id);
    assert_eq!(got.fetched_at, at);
    assert_eq!(got.etag.as_deref(), Some("\"abc\""));
    assert_eq!(got.max_age, Some(Duration::from_secs(300)));

    // A 304 refresh.
    let mut refreshed = got.clone();
    refreshed.fetched_at = at + Duration::from_secs(60);
    refreshed.max_age = None;
    store.put_remote(&refreshed).unwrap();
    assert_eq!(store.remote(key).unwrap().unwrap(), refreshed);

    // A remote for an image that is not indexed is refused.
    let mut stray = refreshed.clone();
    stray.image_id = Digest::sha256_of(b"no such image");
    assert!(matches!(
        store.put_remote(&stray),
        Err(StoreError::NotFound { .. })
    ));

    store.remove_image(&rec.id).unwrap();
    assert_eq!(store.remote(key).unwrap(), None);
}

#[test]
fn reinsert_keeps_import_time_and_other_names() {
    let (_d, store) = store();
    let rec = make_image(&store, None, vec![]);
    store.insert_image(&rec, &[name("x:1")], None).unwrap();
    let first = store.list_images().unwrap()[0].import_time;
    std::thread::sleep(Duration::from_millis(5));
    store.insert_image(&rec, &[name("x:2")], None).unwrap();
    let e = &store.list_images().unwrap()[0];
    assert_eq!(e.import_time, first);
    let names: Vec<_> = e.names.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["x:1", "x:2"]);
}

#[test]
fn index_survives_reopen_and_refuses_newer_schema() {
    let (_d, store) = store();
    let rec = make_image(&store, None, vec![]);
    store.insert_image(&rec, &[name("x:latest")], None).unwrap();
    let root = store.root().to_owned();
    drop(store);
    let store = Store::open(&root).unwrap();
    assert_eq!(store.resolve("x").unwrap(), rec);
    drop(store);

    let conn = rusqlite::Connection::open(root.join("index.db")).unwrap();
    conn.execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    drop(conn);
    let err = Store::open(&root).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade rkt"), "{err}");
}

#[test]
fn layout_and_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let (_d, store) = store();
    for d in ["", "blobs", "blobs/sha256", "layers/sha256", "locks", "tmp"] {
        let md = std::fs::metadata(store.root().join(d)).unwrap();
        assert!(md.is_dir());
        assert_eq!(md.permissions().mode() & 0o777, 0o755, "{d}");
    }
    let md = std::fs::metadata(store.root().join("index.db")).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o644);
    let d = store.put_blob(b"x", None).unwrap();
    let md = std::fs::metadata(store.blob_path(&d)).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o644);
    // A second open of an existing store is fine.
    Store::open(store.root()).unwrap();
}

/// Runs as an unprivileged child (see `unprivileged_users_can_read_the_index`).
#[test]
#[ignore = "helper run as a child process by another test"]
fn child_read_index() {
    let root = std::env::var("RKT_STORE_TEST_ROOT").expect("run by the parent test");
    let store = Store::open(std::path::Path::new(&root)).unwrap();
    let rec = store.resolve("x").unwrap();
    let list = store.list_images().unwrap();
    println!("READ {} {}", rec.id, list.len());
    // Writing is refused with a message that says why.
    let err = store.remove_image(&rec.id).unwrap_err();
    println!("WRITE {err}");
}

#[test]
fn unprivileged_users_can_read_the_index() {
    use std::os::unix::fs::PermissionsExt;
    let (d, store) = store();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let rec = make_image(&store, None, vec![add_layer(&store, "l")]);
    store.insert_image(&rec, &[name("x:latest")], None).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "child_read_index", "--ignored", "--nocapture"])
        .env("RKT_STORE_TEST_ROOT", store.root())
        .output();
    let out = match out {
        Ok(o)
            if !String::from_utf8_lossy(&o.stderr).contains("Permission denied (os error 13)") =>
        {
            o
        }
        other => {
            println!("SKIPPED: cannot run the test binary as nobody: {other:?}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains(&format!("READ {} 1", rec.id)), "{stdout}");
    assert!(stdout.contains("WRITE store"), "{stdout}");
    assert!(stdout.contains("run rkt as root"), "{stdout}");
    // Still intact for root.
    assert_eq!(store.resolve("x").unwrap(), rec);
}

/// A pod start records its image's use without writing the index (a commit would take its
/// write lock and fsync), and between transactions the index is one file: no WAL or
/// shared-memory index for each new process to map and reset, no journal left behind.
#[test]
fn touch_leaves_the_index_alone_and_the_index_is_one_file_between_transactions() {
    let (d, store) = store();
    let a = make_image(&store, None, vec![]);
    store.insert_image(&a, &[name("a:1")], None).unwrap();
    let root = d.path().join("store");
    let siblings = || {
        let mut v: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("index.db"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(siblings(), ["index.db"]);
    let index = root.join("index.db");
    let stamp = || {
        let m = std::fs::metadata(&index).unwrap();
        (m.modified().unwrap(), m.len())
    };
    let before = store.list_images().unwrap()[0].last_used;
    let written = stamp();
    std::thread::sleep(Duration::from_millis(5));
    for _ in 0..10 {
        store.touch(&a.id).unwrap();
    }
    assert_eq!(stamp(), written);
    assert!(store.list_images().unwrap()[0].last_used > before);
    drop(store);
    assert_eq!(siblings(), ["index.db"]);
}

/// An index an earlier rkt left in WAL mode is switched back to a rollback journal, with the
/// WAL's content folded in.
#[test]
fn an_index_in_wal_mode_is_switched_to_a_rollback_journal_keeping_its_content() {
    let (d, store) = store();
    let a = make_image(&store, None, vec![]);
    store.insert_image(&a, &[name("a:1")], None).unwrap();
    drop(store);
    let root = d.path().join("store");
    {
        let conn = rusqlite::Connection::open(root.join("index.db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // A write that stays in the WAL: no checkpoint on close.
        conn.execute_batch("PRAGMA wal_autocheckpoint=0; CREATE TABLE left_in_wal (x INTEGER);")
            .unwrap();
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
    }
    assert!(std::fs::metadata(root.join("index.db-wal")).unwrap().len() > 0);
    let store = Store::open(&root).unwrap();
    assert_eq!(store.resolve("a:1").unwrap(), a);
    drop(store);
    assert!(!root.join("index.db-wal").exists());
    let conn = rusqlite::Connection::open(root.join("index.db")).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let kept: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'left_in_wal'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1);
}
