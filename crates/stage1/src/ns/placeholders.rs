//! The placeholder layer: a tiny directory tree under `/run/rkt` that goes *under* every app's
//! image layers, holding an entry for each path stage1 always mounts something on (`/proc`,
//! `/sys`, `/dev`, `/etc/hostname`, `/etc/hosts`, and `/etc/resolv.conf` when the pod makes
//! one).
//!
//! Without it, an image that lacks one of those paths gets it created in the app's overlayfs
//! upper dir on every start: a copy-up of `/etc` and an empty file per mount point, inodes
//! allocated on the host's data filesystem (on a journal-less ext4 after many deletions, a
//! quarter of a millisecond each). As the lowest layer it is transparent: every image layer
//! wins over it, so it only fills a path the image does not have (or has whited out, or
//! hides behind an opaque or non-directory parent, where stage1 falls back to creating the
//! mount point as before), and what it fills is always mounted over. Its files have mode 000
//! and no content, which is how [`is_placeholder`] tells them from an image's own file (for
//! `/etc/hosts`, where the image's own is kept).
//!
//! It is made once per host (the first pod start after boot), complete before it is renamed
//! into place, and never changed: concurrent starts either see it whole or make their own copy
//! and lose the rename.

use std::os::fd::BorrowedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the placeholder layers live (tmpfs on every systemd host, cleared at boot).
pub const PLACEHOLDER_DIR: &str = "/run/rkt/placeholders";

/// Directories an app's root always gets something mounted on.
const DIRS: [&str; 4] = ["proc", "sys", "dev", "etc"];

/// The layer for a pod whose apps get `/etc/resolv.conf` mounted (`with_resolv_conf`) or not;
/// made if missing. The name carries a version: a later rkt that changes the content uses
/// another one, and never sees a layer made by this one.
pub fn layer(with_resolv_conf: bool) -> std::io::Result<PathBuf> {
    let files: &[&str] = if with_resolv_conf {
        &["etc/hostname", "etc/hosts", "etc/resolv.conf"]
    } else {
        &["etc/hostname", "etc/hosts"]
    };
    let name = if with_resolv_conf { "v1-resolv" } else { "v1" };
    let base = Path::new(PLACEHOLDER_DIR);
    let dir = base.join(name);
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(base)?;
    let tmp = base.join(format!(".{name}.{}", std::process::id()));
    // Left over from a start of ours that died half-way (pids are reused).
    let _ = std::fs::remove_dir_all(&tmp);
    let made = populate(&tmp, files).and_then(|()| std::fs::rename(&tmp, &dir));
    match made {
        Ok(()) => Ok(dir),
        // Another start renamed its copy first.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn populate(root: &Path, files: &[&str]) -> std::io::Result<()> {
    // Modes set explicitly: the umask must not decide what the apps see.
    let mkdir = |p: &Path| {
        std::fs::DirBuilder::new().mode(0o755).create(p)?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
    };
    mkdir(root)?;
    for d in DIRS {
        mkdir(&root.join(d))?;
    }
    for f in files {
        let path = root.join(f);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000))?;
    }
    Ok(())
}

/// Whether `fd` (opened in an app's root) is one of the layer's files rather than the image's
/// own: an empty regular file with mode 000, which no image ships at those paths.
pub fn is_placeholder(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
            && st.st_mode & 0o7777 == 0
            && st.st_size == 0
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn the_layer_has_every_mount_point_and_its_files_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("v1");
        populate(&layer, &["etc/hostname", "etc/hosts"]).unwrap();
        for d in DIRS {
            let m = std::fs::metadata(layer.join(d)).unwrap();
            assert!(m.is_dir() && m.mode() & 0o7777 == 0o755, "{d}");
        }
        let hosts = std::fs::File::open(layer.join("etc/hosts")).unwrap();
        assert!(is_placeholder(std::os::fd::AsFd::as_fd(&hosts)));
        assert!(!layer.join("etc/resolv.conf").exists());
        // An image's own empty /etc/hosts is not a placeholder.
        let own = dir.path().join("hosts");
        std::fs::write(&own, "").unwrap();
        let own = std::fs::File::open(&own).unwrap();
        assert!(!is_placeholder(std::os::fd::AsFd::as_fd(&own)));
    }
}
