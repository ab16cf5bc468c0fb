//! OCI whiteouts become overlayfs whiteouts; whiteout tricks are refused or dropped as
//! documented in `rkt_image::unpack`.

mod unpack_support;

use std::fs;
use std::os::unix::fs::MetadataExt;

use rkt_image::unpack::UnpackError;
use tar::EntryType;
use unpack_support::*;

const OPAQUE: &str = "trusted.overlay.opaque";

#[test]
fn whiteouts_become_char_devices() {
    let s = Scene::new();
    let tar = Tar::new()
        .file(".wh.gone", b"", 0o644)
        .dir("etc", 0o755)
        .file("etc/.wh.shadow", b"", 0o644)
        // The parent of a whiteout is created when the layer does not list it.
        .file("var/lib/.wh.old", b"", 0o644)
        .bytes();
    s.unpack_ok(&tar);
    for p in ["gone", "etc/shadow", "var/lib/old"] {
        assert!(is_whiteout(&s.at(p)), "{p}");
        assert_eq!(mode(&s.at(p)), 0, "{p}");
        assert_eq!(lmeta(&s.at(p)).uid(), 0);
    }
    assert!(!exists(&s.at(".wh.gone")));
    assert!(lmeta(&s.at("var/lib")).is_dir());
}

#[test]
fn whiteout_removes_what_the_layer_put_there() {
    let s = Scene::new();
    let tar = Tar::new()
        .file("f", b"x", 0o644)
        .file(".wh.f", b"", 0o644)
        .dir("d", 0o755)
        .file("d/x", b"", 0o644)
        .dir("d/y", 0o755)
        .file("d/y/z", b"", 0o644)
        .hardlink("keep", "d/x")
        .file(".wh.d", b"", 0o644)
        .symlink("l", "d")
        .file(".wh.l", b"", 0o644)
        .bytes();
    s.unpack_ok(&tar);
    for p in ["f", "d", "l"] {
        assert!(is_whiteout(&s.at(p)), "{p}");
    }
    // The other name of a removed file survives.
    assert!(lmeta(&s.at("keep")).is_file());
    assert_eq!(lmeta(&s.at("keep")).nlink(), 1);
}

#[test]
fn opaque_markers_set_the_overlay_xattr() {
    let s = Scene::new();
    let tar = Tar::new()
        .dir("etc", 0o755)
        .file("etc/.wh..wh..opq", b"", 0o644)
        .file("etc/new", b"", 0o644)
        // Marker before its directory's entry: the directory is created, and the later
        // directory entry keeps the marker.
        .file("usr/.wh..wh..opq", b"", 0o644)
        .dir("usr", 0o700)
        .bytes();
    s.unpack_ok(&tar);
    assert_eq!(xattr(&s.at("etc"), OPAQUE).as_deref(), Some(&b"y"[..]));
    assert_eq!(xattr(&s.at("usr"), OPAQUE).as_deref(), Some(&b"y"[..]));
    assert_eq!(mode(&s.at("usr")), 0o700);
    assert!(!exists(&s.at("etc/.wh..wh..opq")));
}

#[test]
fn opaque_marker_at_the_root_is_dropped() {
    let s = Scene::new();
    let report = s.unpack_ok(&Tar::new().file(".wh..wh..opq", b"", 0o644).bytes());
    assert_eq!(xattr(&s.dest, OPAQUE), None);
    assert!(
        report
            .skipped
            .iter()
            .any(|l| l.contains("opaque marker at the layer root"))
    );
    // Also when the root is reached through a symlink.
    let s = Scene::new();
    let tar = Tar::new()
        .symlink("r", "/")
        .file("r/.wh..wh..opq", b"", 0o644)
        .bytes();
    s.unpack_ok(&tar);
    assert_eq!(xattr(&s.dest, OPAQUE), None);
}

#[test]
fn whiteout_tricks_are_refused() {
    for name in [
        ".wh.",
        "a/.wh.",
        ".wh..",
        "a/.wh...",
        ".wh.x/y",
        "a/.wh.b/c/d",
    ] {
        let s = Scene::new();
        let tar = Tar::new()
            .raw(name.as_bytes(), EntryType::Regular, b"", |_| {})
            .bytes();
        let err = s.unpack(&tar).unwrap_err();
        assert!(
            matches!(&err, UnpackError::WhiteoutTrick { entry, .. } if entry == name),
            "{name}: {err}"
        );
    }
    // A whiteout cannot reach above the root either.
    let s = Scene::new();
    let tar = Tar::new()
        .raw(b"../outside/.wh.sentinel", EntryType::Regular, b"", |_| {})
        .bytes();
    assert!(matches!(
        s.unpack(&tar).unwrap_err(),
        UnpackError::BadName { .. }
    ));
}

#[test]
fn whiteout_through_a_symlinked_parent_stays_inside() {
    let s = Scene::new();
    let abs = s.outside.display().to_string();
    let tar = Tar::new()
        .symlink("l", &abs)
        .file("l/.wh.sentinel", b"", 0o644)
        .bytes();
    s.unpack_ok(&tar);
    assert!(is_whiteout(&s.at(&format!("{}/sentinel", s.outside_rel()))));
}

#[test]
fn image_supplied_overlay_xattrs_are_dropped() {
    let s = Scene::new();
    let tar = Tar::new()
        .pax(&[
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            (
                "SCHILY.xattr.security.selinux",
                b"system_u:object_r:etc_t:s0",
            ),
            ("SCHILY.xattr.user.kept", b"1"),
        ])
        .dir("fake-opaque", 0o755)
        .pax(&[("SCHILY.xattr.user.on-a-link", b"1")])
        .symlink("link", "fake-opaque")
        .bytes();
    let report = s.unpack_ok(&tar);
    let d = s.at("fake-opaque");
    assert_eq!(xattr(&d, OPAQUE), None);
    assert_eq!(xattr(&d, "trusted.overlay.redirect"), None);
    assert_eq!(xattr(&d, "user.kept").as_deref(), Some(&b"1"[..]));
    for x in [
        "trusted.overlay.opaque",
        "trusted.overlay.redirect",
        "security.selinux",
        "user.on-a-link",
    ] {
        assert!(
            report.skipped.iter().any(|l| l.contains(x)),
            "{x} not reported: {:?}",
            report.skipped
        );
    }
}

#[test]
fn aufs_metadata_is_dropped() {
    let s = Scene::new();
    let tar = Tar::new()
        .dir(".wh..wh.plnk", 0o700)
        .file(".wh..wh.plnk/1234.5678", b"hidden", 0o644)
        .file(".wh..wh.aufs", b"", 0o644)
        .file("real", b"", 0o644)
        .bytes();
    let report = s.unpack_ok(&tar);
    let names: Vec<_> = fs::read_dir(&s.dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["real"]);
    assert_eq!(report.skipped.len(), 3);
}
