//! `rkt image extract` and `rkt image render` of the large image, whose layers white out files
//! and a directory across layers and make a directory opaque: the flattened rootfs must look
//! like an overlayfs mount of the layers.

mod e2e_local_support;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use e2e_local_support::*;
use rkt_tests::fixtures::large::LARGE_MARKER;
use rkt_tests::fixtures::{LargeFixtures, busybox};
use rkt_tests::rkt::Rkt;
use rkt_types::Digest;

fn inside(rootfs: &Path, abs: &str) -> std::path::PathBuf {
    rootfs.join(abs.trim_start_matches('/'))
}

/// Every character or block device below `dir` (whiteouts must not leak into a rootfs).
fn devices(dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            devices(&e.path(), out);
        } else if t.is_char_device() || t.is_block_device() {
            out.push(e.path().display().to_string());
        }
    }
}

fn check_rootfs(rootfs: &Path, l: &LargeFixtures) {
    for p in &l.removed {
        assert!(
            fs::symlink_metadata(inside(rootfs, p)).is_err(),
            "{p} was deleted by an upper layer but is in {}",
            rootfs.display()
        );
    }
    for o in &l.opaque {
        let dir = inside(rootfs, &o.path);
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut want = o.entries.clone();
        want.sort();
        assert_eq!(names, want, "opaque {} shows only its own layer", o.path);
        assert!(!o.hidden.is_empty(), "fixture premise");
    }
    for (p, digest) in &l.present {
        let data = fs::read(inside(rootfs, p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(&Digest::sha256_of(&data), digest, "{p}");
    }
    for (link, target) in &l.hardlinks {
        let a = fs::metadata(inside(rootfs, link)).unwrap();
        let b = fs::metadata(inside(rootfs, target)).unwrap();
        assert_eq!(a.ino(), b.ino(), "{link} is a hard link to {target}");
    }
    for (link, target) in &l.symlinks {
        let got = fs::read_link(inside(rootfs, link)).unwrap();
        assert_eq!(got.to_string_lossy(), target.as_str(), "{link}");
    }
    let marker = fs::read_to_string(inside(rootfs, LARGE_MARKER)).unwrap();
    assert_eq!(marker, l.marker.0);
    let mut devs = Vec::new();
    devices(rootfs, &mut devs);
    assert!(
        devs.is_empty(),
        "whiteouts or devices in the rootfs: {devs:?}"
    );
}

#[test]
fn render_applies_whiteouts_and_opaque_dirs_across_layers() {
    let l = fx().large();
    let rkt = Rkt::new();
    let id = fetch1(&rkt, oci(&l.large));
    assert_eq!(id, l.large.image.image_id().to_string());
    let dest = rkt.dir().join("rootfs");
    rkt.ok(&[
        "image",
        "render",
        "--rootfs-only",
        id.as_str(),
        &dest.to_string_lossy(),
    ]);
    assert!(
        !dest.join("manifest").exists(),
        "--rootfs-only writes no manifest"
    );
    check_rootfs(&dest, l);
    // Nothing left beside the target (the result is renamed into place).
    assert_eq!(entries(&rkt.dir()), [dest.clone(), rkt.store()]);
}

/// The same rules on the small image (it has a whiteout too), where copying is cheap.
#[test]
fn extract_writes_manifest_and_rootfs_and_overwrites_only_when_asked() {
    let fx = fx();
    let rkt = Rkt::new();
    let id = fetch1(&rkt, oci(&fx.busybox));
    let dest = rkt.dir().join("out");
    let d = dest.to_string_lossy().into_owned();

    rkt.ok(&["image", "extract", id.as_str(), &d]);
    assert_eq!(entries(&dest), [dest.join("manifest"), dest.join("rootfs")]);
    let manifest = fs::read(dest.join("manifest")).unwrap();
    assert_eq!(
        Digest::sha256_of(&manifest),
        fx.busybox.image.manifest.digest
    );
    let rootfs = dest.join("rootfs");
    assert_eq!(
        fs::read_to_string(inside(&rootfs, busybox::TOP_MARKER)).unwrap(),
        busybox::TOP_MARKER_CONTENT
    );
    assert!(fs::symlink_metadata(inside(&rootfs, busybox::REMOVED_BY_TOP)).is_err());
    assert!(inside(&rootfs, "bin/busybox").is_file());

    for verb in ["extract", "render"] {
        let out = fail(&rkt, &["image", verb, "--rootfs-only", id.as_str(), &d]);
        assert!(out.stderr.contains("--overwrite"), "{out}");
        assert!(
            dest.join("manifest").exists() && rootfs.is_dir(),
            "untouched"
        );
    }
    rkt.ok(&[
        "image",
        "extract",
        "--rootfs-only",
        "--overwrite",
        id.as_str(),
        &d,
    ]);
    assert!(!dest.join("manifest").exists());
    assert!(inside(&dest, busybox::TOP_MARKER).is_file());

    // An empty directory needs no --overwrite.
    let empty = rkt.dir().join("empty");
    fs::create_dir(&empty).unwrap();
    rkt.ok(&["image", "render", id.as_str(), &empty.to_string_lossy()]);
    assert!(inside(&empty.join("rootfs"), busybox::TOP_MARKER).is_file());
    assert_eq!(
        entries(&rkt.dir()),
        [empty.clone(), dest.clone(), rkt.store()],
        "no temp directories left"
    );

    // `.` is the directory itself: replaced as a whole, the result not lost with it.
    let cwd = rkt.dir().join("cwd");
    fs::create_dir(&cwd).unwrap();
    fs::write(cwd.join("junk"), b"old").unwrap();
    let out = rkt
        .command(&["image", "extract", "--overwrite", id.as_str(), "."])
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(entries(&cwd), [cwd.join("manifest"), cwd.join("rootfs")]);

    // Never over the store it reads from.
    for target in [rkt.dir(), rkt.store(), rkt.store().join("layers")] {
        let t = target.to_string_lossy().into_owned();
        let out = fail(&rkt, &["image", "extract", "--overwrite", id.as_str(), &t]);
        assert!(out.stderr.contains("store"), "{out}");
    }
    let v = rkt.ok(&["image", "verify", id.as_str()]);
    assert!(v.stdout.contains("OK"), "{v}");
}
