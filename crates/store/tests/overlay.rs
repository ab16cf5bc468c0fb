//! A store root on overlayfs is refused with a message saying what to do. Needs root to mount.

use std::path::Path;
use std::process::Command;

use rkt_store::{Store, StoreError};

fn mount(args: &[&str]) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Unmounts on drop, innermost first.
struct Mounts(Vec<std::path::PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
    }
}

#[test]
fn open_on_overlayfs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let mut mounts = Mounts(Vec::new());
    // Upper and work dirs on a tmpfs of our own, so this works wherever the temp dir lives.
    let t = base.join("t");
    std::fs::create_dir(&t).unwrap();
    if let Err(e) = mount(&["-t", "tmpfs", "tmpfs", t.to_str().unwrap()]) {
        println!("SKIPPED: cannot mount a tmpfs (not root?): {e}");
        return;
    }
    mounts.0.push(t.clone());
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(t.join(d)).unwrap();
    }
    let merged = t.join("merged");
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        t.join("lower").display(),
        t.join("upper").display(),
        t.join("work").display()
    );
    if let Err(e) = mount(&[
        "-t",
        "overlay",
        "overlay",
        "-o",
        &opts,
        merged.to_str().unwrap(),
    ]) {
        println!("SKIPPED: cannot mount an overlayfs here: {e}");
        return;
    }
    mounts.0.push(merged.clone());

    let root = merged.join("var/lib/rkt/store");
    let err = Store::open(&root).unwrap_err();
    assert!(matches!(err, StoreError::OnOverlayfs { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("overlayfs") && msg.contains("--dir"), "{msg}");
    // Refused before anything was created.
    assert!(!merged.join("var").exists());

    // An existing directory on the overlay is refused just the same.
    std::fs::create_dir(merged.join("store")).unwrap();
    assert!(matches!(
        Store::open(&merged.join("store")),
        Err(StoreError::OnOverlayfs { .. })
    ));
    // The tmpfs beside it is fine.
    Store::open(Path::new(&t.join("elsewhere/store"))).unwrap();
}
