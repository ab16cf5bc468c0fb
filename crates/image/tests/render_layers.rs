//! Rendering layer trees made by `unpack_layer` into one root filesystem.

mod unpack_support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rkt_image::render::{RenderError, RenderOptions, render};
use rkt_image::treehash::hash_tree;
use rkt_image::unpack::{UnpackOptions, unpack_layer};
use unpack_support::*;

/// Unpacks each tar into `tmp/layerN` and returns the tree paths.
fn layers(tmp: &Path, tars: &[Vec<u8>]) -> Vec<PathBuf> {
    tars.iter()
        .enumerate()
        .map(|(i, tar)| {
            let dir = tmp.join(format!("layer{i}"));
            fs::create_dir(&dir).unwrap();
            unpack_layer(&tar[..], &dir, &UnpackOptions::default()).unwrap();
            dir
        })
        .collect()
}

fn render_into(tmp: &Path, trees: &[PathBuf]) -> PathBuf {
    let out = tmp.join("out");
    fs::create_dir(&out).unwrap();
    let refs: Vec<&Path> = trees.iter().map(PathBuf::as_path).collect();
    render(&refs, &out, &RenderOptions::default()).unwrap();
    out
}

/// Every path below `dir`, for checking that no whiteout device survived.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if lmeta(&p).is_dir() {
            walk(&p, out);
        }
    }
}

#[test]
fn layers_flatten_like_overlayfs() {
    let tmp = tempfile::tempdir().unwrap();
    let base = Tar::new()
        .dir("etc", 0o755)
        .file("etc/passwd", b"v1", 0o644)
        .file_owned("etc/group", b"g", 0o640, 0, 42)
        .file_owned("bin/busybox", b"busybox-1", 0o4755, 0, 0)
        .hardlink("bin/sh", "bin/busybox")
        .file("usr/lib/libc.so", b"libc", 0o755)
        .symlink("lib", "usr/lib")
        .file("var/log/old.log", b"old", 0o644)
        .file("opt/keep/a", b"a", 0o644)
        .file("home/u/.profile", b"p", 0o644)
        .bytes();
    let middle = Tar::new()
        .file("etc/passwd", b"v2", 0o600)
        .file("var/log/.wh.old.log", b"", 0o644)
        .file("opt/.wh..wh..opq", b"", 0o644)
        .file("opt/new", b"n", 0o644)
        // A directory over the lower layer's symlink hides it rather than merging through it.
        .file("lib/extra.so", b"x", 0o755)
        .pax(&[("SCHILY.xattr.user.origin", b"middle")])
        .file("tagged", b"t", 0o644)
        .bytes();
    let top = Tar::new()
        .file(".wh.home", b"", 0o644)
        .file("bin/sh", b"real-sh", 0o755)
        .file("x/one", b"linked", 0o644)
        .hardlink("x/two", "x/one")
        .fifo("run/pipe", 0o600)
        .dir("srv", 0o750)
        .file("srv/data", b"d", 0o644)
        .bytes();
    let trees = layers(tmp.path(), &[base, middle, top]);
    let out = render_into(tmp.path(), &trees);
    let at = |p: &str| out.join(p);

    assert_eq!(fs::read(at("etc/passwd")).unwrap(), b"v2");
    assert_eq!(mode(&at("etc/passwd")), 0o600);
    assert_eq!(fs::read(at("etc/group")).unwrap(), b"g");
    assert_eq!(lmeta(&at("etc/group")).gid(), 42);
    assert!(!exists(&at("var/log/old.log")));
    assert!(lmeta(&at("var/log")).is_dir());
    assert!(!exists(&at("opt/keep")));
    assert_eq!(fs::read(at("opt/new")).unwrap(), b"n");
    assert_eq!(xattr(&at("opt"), "trusted.overlay.opaque"), None);
    assert!(lmeta(&at("lib")).is_dir());
    assert!(!exists(&at("lib/libc.so")));
    assert_eq!(fs::read(at("usr/lib/libc.so")).unwrap(), b"libc");
    assert!(!exists(&at("home")));
    assert_eq!(fs::read(at("bin/sh")).unwrap(), b"real-sh");
    assert_eq!(fs::read(at("bin/busybox")).unwrap(), b"busybox-1");
    assert_eq!(mode(&at("bin/busybox")), 0o4755);
    assert_eq!(lmeta(&at("bin/busybox")).nlink(), 1);
    assert_eq!(lmeta(&at("x/one")).ino(), lmeta(&at("x/two")).ino());
    assert!(lmeta(&at("run/pipe")).file_type().is_fifo());
    assert_eq!(
        xattr(&at("tagged"), "user.origin").as_deref(),
        Some(&b"middle"[..])
    );
    assert_eq!(lmeta(&at("etc/group")).mtime(), 1_600_000_000);
    // Directory mtimes survive the copying of their children.
    assert_eq!(lmeta(&at("srv")).mtime(), 1_600_000_000);
    assert_eq!(mode(&at("srv")), 0o750);

    let mut all = Vec::new();
    walk(&out, &mut all);
    for p in all {
        assert!(
            !lmeta(&p).file_type().is_char_device(),
            "{} survived",
            p.display()
        );
    }
}

#[test]
fn one_layer_renders_to_an_identical_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let tar = Tar::new()
        .dir("./", 0o755)
        .file_owned("a/b", b"content", 0o2750, 7, 8)
        .hardlink("a/c", "a/b")
        .symlink("a/l", "../nowhere")
        .dir("t", 0o1777)
        .fifo("f", 0o644)
        .pax(&[("SCHILY.xattr.user.k", b"v")])
        .dir("x", 0o700)
        .bytes();
    let trees = layers(tmp.path(), &[tar]);
    let out = render_into(tmp.path(), &trees);
    assert_eq!(hash_tree(&out).unwrap(), hash_tree(&trees[0]).unwrap());
}

#[test]
fn lower_symlinks_are_not_followed() {
    let s = Scene::new();
    let l1 = Tar::new()
        .symlink("a", &s.outside.display().to_string())
        .symlink("b", "../outside")
        .bytes();
    let l2 = Tar::new()
        .file("a/sentinel", b"pwned", 0o644)
        .file("b/.wh.sentinel", b"", 0o644)
        .bytes();
    let trees = layers(s.tmp.path(), &[l1, l2]);
    // Render into `dest`, next to `outside`.
    let refs: Vec<&Path> = trees.iter().map(PathBuf::as_path).collect();
    render(&refs, &s.dest, &RenderOptions::default()).unwrap();
    for t in &trees {
        fs::remove_dir_all(t).unwrap();
    }
    s.assert_contained();
    assert_eq!(fs::read(s.at("a/sentinel")).unwrap(), b"pwned");
    assert!(lmeta(&s.at("b")).is_dir());
}

#[test]
fn refuses_a_non_empty_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("x"), b"").unwrap();
    let err = render(&[], &out, &RenderOptions::default()).unwrap_err();
    assert!(
        matches!(err, RenderError::DestinationNotEmpty { .. }),
        "{err}"
    );
}

/// Unmounts on drop, so a failing assertion does not leave a mount behind.
struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn render_matches_an_overlayfs_mount_of_the_same_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let base = Tar::new()
        .file_owned("etc/passwd", b"v1", 0o644, 0, 0)
        .file("etc/hosts", b"h", 0o644)
        .symlink("lib", "usr/lib")
        .file("usr/lib/a.so", b"a", 0o755)
        .file("opt/old/x", b"x", 0o644)
        .file("gone/deep/file", b"", 0o644)
        .file("bin/busybox", b"bb", 0o755)
        .hardlink("bin/sh", "bin/busybox")
        .bytes();
    let top = Tar::new()
        .dir("./", 0o755)
        .file_owned("etc/passwd", b"v2", 0o600, 0, 3)
        .file("etc/.wh.hosts", b"", 0o644)
        .file("lib/b.so", b"b", 0o755)
        .file("opt/.wh..wh..opq", b"", 0o644)
        .file("opt/new", b"n", 0o644)
        .file(".wh.gone", b"", 0o644)
        .pax(&[("SCHILY.xattr.user.layer", b"top")])
        .file("bin/busybox", b"bb2", 0o755)
        .bytes();
    let trees = layers(tmp.path(), &[base, top]);
    let out = render_into(tmp.path(), &trees);

    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    // lowerdir lists the top layer first.
    let lower = format!("lowerdir={}:{}", trees[1].display(), trees[0].display());
    let status = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &lower])
        .arg(&mnt)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "mount -t overlay failed (needs root and overlayfs)"
    );
    let _guard = Mounted(mnt.clone());
    assert_eq!(hash_tree(&out).unwrap(), hash_tree(&mnt).unwrap());
    // And the render really differs from the base alone.
    assert_ne!(hash_tree(&out).unwrap(), hash_tree(&trees[0]).unwrap());
}
