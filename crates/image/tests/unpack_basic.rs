//! Ordinary layers: every entry type with its metadata, implicit parents, replacements within a
//! layer, limits, the ACI layout. Runs as root (ownership, trusted xattrs).

mod unpack_support;

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use rkt_image::unpack::{LayerLayout, UnpackError, UnpackOptions};
use tar::EntryType;
use unpack_support::*;

#[test]
fn entry_types_with_metadata() {
    let s = Scene::new();
    let caps = b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let tar = Tar::new()
        .dir("./etc/", 0o755)
        .file_owned("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644, 0, 0)
        .file_owned("usr/bin/su", b"#!su", 0o4755, 0, 0)
        .file_owned("usr/bin/wall", b"#!wall", 0o2755, 0, 5)
        .dir("tmp", 0o1777)
        .file_owned("home/user/notes", b"mine", 0o600, 1000, 2000)
        .symlink("bin", "usr/bin")
        .symlink("etc/abs", "/etc/passwd")
        .hardlink("usr/bin/su2", "usr/bin/su")
        .fifo("run/fifo", 0o620)
        .pax(&[
            ("SCHILY.xattr.user.comment", b"hello"),
            ("SCHILY.xattr.security.capability", caps),
            ("mtime", b"1234567890.5"),
        ])
        .file("usr/bin/ping", b"ping", 0o755)
        .bytes();
    let report = s.unpack_ok(&tar);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.entries, 11);

    assert_eq!(
        fs::read(s.at("etc/passwd")).unwrap(),
        b"root:x:0:0::/root:/bin/sh\n"
    );
    assert_eq!(mode(&s.at("usr/bin/su")), 0o4755);
    assert_eq!(mode(&s.at("usr/bin/wall")), 0o2755);
    assert_eq!(lmeta(&s.at("usr/bin/wall")).gid(), 5);
    assert_eq!(mode(&s.at("tmp")), 0o1777);
    let notes = lmeta(&s.at("home/user/notes"));
    assert_eq!(
        (notes.uid(), notes.gid(), notes.mode() & 0o7777),
        (1000, 2000, 0o600)
    );
    assert_eq!(notes.mtime(), 1_600_000_000);
    assert_eq!(
        fs::read_link(s.at("bin")).unwrap().to_str(),
        Some("usr/bin")
    );
    assert_eq!(
        fs::read_link(s.at("etc/abs")).unwrap().to_str(),
        Some("/etc/passwd")
    );
    let (a, b) = (lmeta(&s.at("usr/bin/su")), lmeta(&s.at("usr/bin/su2")));
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    let fifo = lmeta(&s.at("run/fifo"));
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);
    let ping = s.at("usr/bin/ping");
    assert_eq!(xattr(&ping, "user.comment").as_deref(), Some(&b"hello"[..]));
    assert!(xattr(&ping, "security.capability").is_some());
    assert_eq!(lmeta(&ping).mtime(), 1_234_567_890);
    assert_eq!(lmeta(&ping).mtime_nsec(), 500_000_000);
    // Directory mtimes survive the creation of their children.
    assert_eq!(lmeta(&s.at("etc")).mtime(), 1_600_000_000);
    assert_eq!(lmeta(&s.at("tmp")).mtime(), 1_600_000_000);
}

#[test]
fn implicit_parents_are_root_owned_0755() {
    let s = Scene::new();
    let tar = Tar::new()
        .file_owned("a/b/c/file", b"x", 0o640, 7, 7)
        .bytes();
    s.unpack_ok(&tar);
    for d in ["a", "a/b", "a/b/c"] {
        let m = lmeta(&s.at(d));
        assert!(m.is_dir());
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o755, 0, 0), "{d}");
    }
    assert_eq!(lmeta(&s.at("a/b/c/file")).uid(), 7);
}

#[test]
fn long_names() {
    let s = Scene::new();
    let deep = format!("{}/{}", "d".repeat(120), "f".repeat(200));
    let tar = Tar::new()
        .file(&deep, b"deep", 0o644)
        .pax(&[("path", format!("p/{}", "x".repeat(150)).as_bytes())])
        .file("ignored-short-name", b"pax", 0o644)
        .bytes();
    s.unpack_ok(&tar);
    assert_eq!(fs::read(s.at(&deep)).unwrap(), b"deep");
    assert_eq!(
        fs::read(s.at(&format!("p/{}", "x".repeat(150)))).unwrap(),
        b"pax"
    );
    assert!(!exists(&s.at("ignored-short-name")));
}

#[test]
fn later_entries_replace_earlier_ones() {
    let s = Scene::new();
    let tar = Tar::new()
        .file("f", b"first", 0o644)
        .file("f", b"second", 0o600)
        // A symlink replaced by a file: the file is written at the link's place, not through it.
        .symlink("l", "../outside/sentinel")
        .file("l", b"not through the link", 0o644)
        // A file replaced by a directory, an empty directory by a file.
        .file("g", b"file", 0o644)
        .dir("g", 0o700)
        .dir("h", 0o755)
        .file("h", b"now a file", 0o644)
        // A directory entry over an existing directory updates its metadata only.
        .dir("d", 0o755)
        .file("d/keep", b"kept", 0o644)
        .dir("d", 0o711)
        // A hard link whose name was taken.
        .file("t", b"target", 0o644)
        .file("n", b"old", 0o644)
        .hardlink("n", "t")
        .bytes();
    s.unpack_ok(&tar);
    assert_eq!(fs::read(s.at("f")).unwrap(), b"second");
    assert_eq!(mode(&s.at("f")), 0o600);
    assert!(lmeta(&s.at("l")).is_file());
    assert_eq!(fs::read(s.at("l")).unwrap(), b"not through the link");
    assert!(lmeta(&s.at("g")).is_dir());
    assert_eq!(mode(&s.at("g")), 0o700);
    assert!(lmeta(&s.at("h")).is_file());
    assert_eq!(mode(&s.at("d")), 0o711);
    assert_eq!(fs::read(s.at("d/keep")).unwrap(), b"kept");
    assert_eq!(lmeta(&s.at("n")).ino(), lmeta(&s.at("t")).ino());
}

#[test]
fn non_directory_over_populated_directory_is_refused() {
    let s = Scene::new();
    let tar = Tar::new()
        .dir("d", 0o755)
        .file("d/child", b"x", 0o644)
        .file("d", b"would delete d/child", 0o644)
        .bytes();
    let err = s.unpack(&tar).unwrap_err();
    assert!(
        matches!(err, UnpackError::ReplacesDirectory { ref path, .. } if path == "d"),
        "{err}"
    );
    assert_eq!(fs::read(s.at("d/child")).unwrap(), b"x");
}

#[test]
fn devices_are_skipped_and_reported() {
    let s = Scene::new();
    let tar = Tar::new()
        .device("dev/sda", EntryType::Block, 8, 0)
        .device("dev/mem", EntryType::Char, 1, 1)
        .device("dev/zero-zero", EntryType::Char, 0, 0)
        .bytes();
    let report = s.unpack_ok(&tar);
    for d in ["dev/sda", "dev/mem", "dev/zero-zero"] {
        assert!(!exists(&s.at(d)), "{d} was created");
        assert!(
            report.skipped.iter().any(|l| l.starts_with(d)),
            "{d} not reported"
        );
    }
    // Nothing was made for them, not even their parent.
    assert!(!exists(&s.at("dev")));
}

#[test]
fn without_ownership_everything_is_ours() {
    let s = Scene::new();
    let tar = Tar::new()
        .file_owned("f", b"x", 0o4755, 1000, 1000)
        .symlink("l", "f")
        .bytes();
    let opts = UnpackOptions {
        ownership: false,
        ..Default::default()
    };
    let report = s.unpack_with(&tar, &opts).unwrap();
    let me = rustix::process::geteuid().as_raw();
    assert_eq!(lmeta(&s.at("f")).uid(), me);
    assert_eq!(lmeta(&s.at("l")).uid(), me);
    assert_eq!(mode(&s.at("f")), 0o4755);
    assert_eq!(
        report.tree_hash,
        rkt_image::treehash::hash_tree(&s.dest).unwrap()
    );
}

/// Counts how much of a stream was read.
struct Counting<R>(R, u64);
impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

#[test]
fn reads_the_stream_to_its_end() {
    let s = Scene::new();
    let mut tar = Tar::new().file("f", b"x", 0o644).bytes();
    tar.extend_from_slice(&[0u8; 8192]);
    tar.extend_from_slice(b"trailing bytes some tools leave");
    let mut r = Counting(&tar[..], 0);
    rkt_image::unpack::unpack_layer(&mut r, &s.dest, &UnpackOptions::default()).unwrap();
    assert_eq!(r.1, tar.len() as u64);
}

#[test]
fn limits_name_the_option_to_raise() {
    let s = Scene::new();
    let mut t = Tar::new();
    for i in 0..11 {
        t.file(&format!("f{i}"), b"", 0o644);
    }
    let opts = UnpackOptions {
        max_entries: 10,
        ..Default::default()
    };
    let err = s.unpack_with(&t.bytes(), &opts).unwrap_err();
    assert!(matches!(err, UnpackError::TooManyEntries { limit: 10 }));
    assert!(err.to_string().contains("--max-layer-entries"), "{err}");

    let s = Scene::new();
    let tar = Tar::new()
        .file("a", &[1; 60], 0o644)
        .file("b", &[2; 60], 0o644)
        .bytes();
    let opts = UnpackOptions {
        max_bytes: 100,
        ..Default::default()
    };
    let err = s.unpack_with(&tar, &opts).unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { limit: 100 }));
    assert!(err.to_string().contains("--max-layer-size"), "{err}");
    assert!(!exists(&s.at("b")), "the entry over the limit was written");

    // Data after the end of the archive counts too, so an endless tail cannot stall us.
    let s = Scene::new();
    let tar = Tar::new().file("a", &[1; 10], 0o644).bytes();
    let endless = io::Read::chain(&tar[..], io::repeat(0));
    let opts = UnpackOptions {
        max_bytes: 1 << 20,
        ..Default::default()
    };
    let err = rkt_image::unpack::unpack_layer(endless, &s.dest, &opts).unwrap_err();
    assert!(matches!(err, UnpackError::TooLarge { .. }), "{err}");
}

#[test]
fn refuses_a_non_empty_destination() {
    let s = Scene::new();
    fs::write(s.at("already"), b"here").unwrap();
    let err = s.unpack(&Tar::new().bytes()).unwrap_err();
    assert!(
        matches!(err, UnpackError::DestinationNotEmpty { .. }),
        "{err}"
    );
}

#[test]
fn truncated_archive_is_a_read_error() {
    let s = Scene::new();
    let tar = Tar::new().file("f", &[7; 5000], 0o644).bytes();
    let err = s.unpack(&tar[..2048]).unwrap_err();
    assert!(matches!(err, UnpackError::Read { .. }), "{err}");
}

#[test]
fn aci_layout_uses_rootfs_and_captures_the_manifest() {
    let s = Scene::new();
    let manifest = br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"x"}"#;
    let tar = Tar::new()
        .file("manifest", manifest, 0o644)
        .dir("rootfs", 0o755)
        .file("rootfs/bin/sh", b"sh", 0o755)
        .hardlink("rootfs/bin/ash", "rootfs/bin/sh")
        .file("notes.txt", b"ignored", 0o644)
        .bytes();
    let opts = UnpackOptions {
        layout: LayerLayout::Aci,
        ..Default::default()
    };
    let report = s.unpack_with(&tar, &opts).unwrap();
    assert_eq!(report.aci_manifest.as_deref(), Some(&manifest[..]));
    assert_eq!(fs::read(s.at("bin/sh")).unwrap(), b"sh");
    assert_eq!(lmeta(&s.at("bin/ash")).ino(), lmeta(&s.at("bin/sh")).ino());
    assert!(!exists(&s.at("manifest")) && !exists(&s.at("notes.txt")) && !exists(&s.at("rootfs")));
    assert_eq!(
        report.tree_hash,
        rkt_image::treehash::hash_tree(&s.dest).unwrap()
    );

    // A hard link from rootfs/ to outside it is refused.
    let s = Scene::new();
    let tar = Tar::new()
        .file("manifest", manifest, 0o644)
        .hardlink("rootfs/m", "manifest")
        .bytes();
    let err = s.unpack_with(&tar, &opts).unwrap_err();
    assert!(matches!(err, UnpackError::BadLink { .. }), "{err}");

    // An oversized manifest is refused before it is read.
    let s = Scene::new();
    let big = vec![b' '; rkt_types::MAX_DOCUMENT_BYTES as usize + 1];
    let tar = Tar::new().file("manifest", &big, 0o644).bytes();
    let err = s.unpack_with(&tar, &opts).unwrap_err();
    assert!(matches!(err, UnpackError::ManifestTooLarge { .. }), "{err}");
}
