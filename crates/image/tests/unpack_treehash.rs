//! The tree hash recorded at unpack time equals a later walk of the tree, and the walk notices
//! any change that matters (and ignores the ones that do not). Every other `unpack_*` test
//! checks the first half for its own trees through `Scene::unpack_ok`.

mod unpack_support;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use rkt_image::treehash::hash_tree;
use rustix::fs::{XattrFlags, lsetxattr, utimensat};
use unpack_support::*;

/// A layer with every feature the hash covers.
fn rich_layer() -> Vec<u8> {
    Tar::new()
        .dir("etc", 0o755)
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
        .file("etc/passwd", b"root:x:0:0::/root:/bin/ash\n", 0o644) // overwritten
        .file_owned("bin/busybox", b"\x7fELF", 0o4755, 0, 0)
        .hardlink("bin/sh", "bin/busybox")
        .hardlink("bin/ls", "bin/busybox")
        .symlink("usr/bin/env", "/bin/busybox")
        .fifo("run/initctl", 0o600)
        .file("var/cache/.wh.stale", b"", 0o644)
        .file("opt/.wh..wh..opq", b"", 0o644)
        .file_owned("home/u/.profile", b"export A=1\n", 0o640, 1000, 1000)
        .pax(&[("SCHILY.xattr.user.tag", b"v1")])
        .file("tagged", b"t", 0o644)
        .file("replaced", b"file", 0o644)
        .symlink("replaced", "etc")
        .bytes()
}

#[test]
fn recorded_hash_matches_the_walk() {
    let s = Scene::new();
    let report = s.unpack_ok(&rich_layer());
    // And the same layer unpacked again hashes the same (no timestamps, no inode numbers).
    let s2 = Scene::new();
    assert_eq!(s2.unpack_ok(&rich_layer()).tree_hash, report.tree_hash);
}

#[test]
fn the_walk_notices_changes() {
    let s = Scene::new();
    let base = s.unpack_ok(&rich_layer()).tree_hash;
    let h = || hash_tree(&s.dest).unwrap();

    // Timestamps are not covered.
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 2,
            tv_nsec: 0,
        },
    };
    utimensat(
        rustix::fs::CWD,
        s.at("etc/passwd"),
        &ts,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    assert_eq!(h(), base, "mtime must not matter");

    // One byte of content, same size.
    let p = s.at("etc/passwd");
    let orig = fs::read(&p).unwrap();
    let mut changed = orig.clone();
    changed[0] = b'R';
    fs::write(&p, &changed).unwrap();
    assert_ne!(h(), base, "content");
    fs::write(&p, &orig).unwrap();
    assert_eq!(h(), base);

    // Mode.
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    assert_ne!(h(), base, "mode");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(h(), base);

    // Owner.
    std::os::unix::fs::lchown(&p, Some(1), None).unwrap();
    assert_ne!(h(), base, "owner");
    std::os::unix::fs::lchown(&p, Some(0), None).unwrap();
    assert_eq!(h(), base);

    // An xattr, and a planted overlay xattr.
    lsetxattr(&p, "user.new", b"1", XattrFlags::empty()).unwrap();
    assert_ne!(h(), base, "user xattr");
    rustix::fs::lremovexattr(&p, "user.new").unwrap();
    assert_eq!(h(), base);
    lsetxattr(
        s.at("etc"),
        "trusted.overlay.opaque",
        b"y",
        XattrFlags::empty(),
    )
    .unwrap();
    assert_ne!(h(), base, "overlay xattr");
    rustix::fs::lremovexattr(s.at("etc"), "trusted.overlay.opaque").unwrap();
    assert_eq!(h(), base);

    // A symlink target.
    let l = s.at("usr/bin/env");
    fs::remove_file(&l).unwrap();
    symlink("/bin/sh", &l).unwrap();
    assert_ne!(h(), base, "symlink target");
    fs::remove_file(&l).unwrap();
    symlink("/bin/busybox", &l).unwrap();
    assert_eq!(h(), base);

    // A hard link broken into a copy with the same content and metadata.
    let sh = s.at("bin/sh");
    fs::remove_file(&sh).unwrap();
    fs::copy(s.at("bin/busybox"), &sh).unwrap();
    fs::set_permissions(&sh, fs::Permissions::from_mode(0o4755)).unwrap();
    assert_ne!(h(), base, "hard link broken");
    fs::remove_file(&sh).unwrap();
    fs::hard_link(s.at("bin/busybox"), &sh).unwrap();
    assert_eq!(h(), base);

    // An extra file, and a whiteout removed.
    fs::write(s.at("extra"), b"").unwrap();
    assert_ne!(h(), base, "extra file");
    fs::remove_file(s.at("extra")).unwrap();
    fs::remove_file(s.at("var/cache/stale")).unwrap();
    assert_ne!(h(), base, "whiteout removed");
}
