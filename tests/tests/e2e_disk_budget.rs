//! A fetch never fills the store's disk: with the default (large) `--max-layer-size`, an image
//! that expands beyond the free space is refused by the fetch's disk budget, and nothing of it
//! stays behind.

use std::process::Command;

use rkt_tests::Fixtures;
use rkt_tests::fixtures::AdversarialKind;
use rkt_tests::rkt::Rkt;

/// A small tmpfs mounted over the sandbox's data directory, unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> SmallDisk {
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "rkt-test",
                &dir.to_string_lossy(),
            ])
            .status()
            .expect("mount(8) runs");
        assert!(st.success(), "cannot mount a tmpfs on {}", dir.display());
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_image_larger_than_the_free_space_is_refused_before_the_disk_fills() {
    let fx = Fixtures::get();
    let bomb = fx.adversarial(AdversarialKind::ZipBomb);
    let rkt = Rkt::new();
    let _disk = SmallDisk::mount(&rkt.dir(), "128m");
    let src = format!("oci:{}:{}", bomb.image.path.display(), bomb.image.tag);
    let out = rkt.run(&["--insecure-options=image", "fetch", &src]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("free space"), "{out}");
    assert!(out.stderr.contains("--dir"), "{out}");
    // Nothing of it is left: no image, no tree, no temp files; the disk is empty again.
    assert!(rkt.image_list().is_empty());
    let layers = rkt.store().join("layers/sha256");
    assert_eq!(
        std::fs::read_dir(&layers).map(|d| d.count()).unwrap_or(0),
        0
    );
    assert_eq!(
        std::fs::read_dir(rkt.store().join("tmp")).unwrap().count(),
        0
    );
    let st = rustix::fs::statvfs(rkt.dir()).unwrap();
    assert!(
        st.f_bfree * st.f_frsize > 100 << 20,
        "space was not given back"
    );

    // A normal image fits and is fetched on the same small disk.
    let bb = &fx.busybox;
    let ok = rkt.run(&[
        "--insecure-options=image",
        "fetch",
        &format!("oci:{}:{}", bb.path.display(), bb.tag),
    ]);
    assert!(ok.success(), "{ok}");
}
