//! Files stage1 made in an app's upper dir only to mount over them, which must not become part
//! of an exported image.
//!
//! stage1 binds the pod's `/etc/hostname` (always), `/etc/hosts` and `/etc/resolv.conf` (when
//! the pod generates them or takes the host's) over the app's files, creating an empty file
//! first where the image has none. That empty file lands in the upper dir while the app only
//! ever sees the mount. Exported, it would be "the image's own" `/etc/hosts` next time, and
//! stage1 keeps an image's own `/etc/hosts`: the new pod would get an empty one. So an empty
//! regular file at one of these paths that no layer of the image provides is left out. (An
//! image that had the file never gets a stub; an app's real change to such a file keeps
//! content or has a lower file under it.)

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// The mount targets stage1 may create in an app's root.
const ETC_TARGETS: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];

/// The stubs in `upper` (relative paths) given the image's layer trees, base first.
pub(super) fn runtime_stubs(upper: &Path, layers: &[PathBuf]) -> Vec<PathBuf> {
    ETC_TARGETS
        .iter()
        .map(PathBuf::from)
        .filter(|rel| {
            let stub = matches!(
                lookup(upper, rel),
                Lookup::Found(md) if md.is_file() && md.len() == 0
            );
            stub && !in_lower(layers, rel)
        })
        .collect()
}

/// What one overlay-style tree says about a path.
enum Lookup {
    /// The entry, not followed.
    Found(Metadata),
    /// A whiteout: deleted here.
    Whiteout,
    /// Not here; `hidden` if an opaque directory on the way hides the layers below.
    Absent { hidden: bool },
    /// A symlink or non-directory on the way: the answer depends on where it leads, which is
    /// not looked at (it may point outside the tree).
    Unknown,
}

/// Looks `rel` up in `root` component by component, following no symlink.
fn lookup(root: &Path, rel: &Path) -> Lookup {
    let mut path = root.to_owned();
    let mut hidden = false;
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let Component::Normal(name) = c else {
            return Lookup::Unknown;
        };
        path.push(name);
        let md = match std::fs::symlink_metadata(&path) {
            Ok(md) => md,
            Err(_) => return Lookup::Absent { hidden },
        };
        if md.file_type().is_char_device() && md.rdev() == 0 {
            return Lookup::Whiteout;
        }
        if i + 1 == comps.len() {
            return Lookup::Found(md);
        }
        if !md.is_dir() {
            return Lookup::Unknown;
        }
        let mut buf = [0u8; 4];
        if let Ok(n) = rustix::fs::lgetxattr(&path, "trusted.overlay.opaque", &mut buf)
            && buf[..n] == *b"y"
        {
            hidden = true;
        }
    }
    Lookup::Unknown
}

/// Whether the merged view of `layers` (base first) has something at `rel`. Unknown counts
/// as present, so a stub is only ever dropped when the image surely lacks the file.
fn in_lower(layers: &[PathBuf], rel: &Path) -> bool {
    for l in layers.iter().rev() {
        match lookup(l, rel) {
            Lookup::Found(_) | Lookup::Unknown => return true,
            Lookup::Whiteout | Lookup::Absent { hidden: true } => return false,
            Lookup::Absent { hidden: false } => {}
        }
    }
    false
}

/// Removes the stubs from a rendered tree (the ACI path flattens the upper dir with the
/// layers). Parents were made real directories by the render, but are checked anyway.
pub(super) fn remove_from(root: &Path, stubs: &[PathBuf]) -> std::io::Result<()> {
    for rel in stubs {
        if let Lookup::Found(md) = lookup(root, rel)
            && md.is_file()
        {
            std::fs::remove_file(root.join(rel))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn empty_mount_targets_the_image_lacks_are_stubs() {
        let t = tempfile::tempdir().unwrap();
        let (base, top, up) = (
            t.path().join("base"),
            t.path().join("top"),
            t.path().join("up"),
        );
        for d in [&base, &top, &up] {
            fs::create_dir_all(d.join("etc")).unwrap();
        }
        // The image has resolv.conf (base) and hostname (base, then deleted in top).
        fs::write(base.join("etc/resolv.conf"), b"nameserver 10.0.0.1\n").unwrap();
        fs::write(base.join("etc/hostname"), b"img\n").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("etc/hostname"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        for f in ETC_TARGETS {
            fs::write(up.join(f), b"").unwrap();
        }
        let layers = [base.clone(), top.clone()];
        let mut stubs = runtime_stubs(&up, &layers);
        stubs.sort();
        assert_eq!(
            stubs,
            [PathBuf::from("etc/hostname"), PathBuf::from("etc/hosts")]
        );
        // A file with content is a real change, not a stub.
        fs::write(up.join("etc/hosts"), b"127.0.0.1 x\n").unwrap();
        assert_eq!(runtime_stubs(&up, &layers), [PathBuf::from("etc/hostname")]);
    }

    #[test]
    fn symlinks_on_the_way_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let (layer, up) = (t.path().join("layer"), t.path().join("up"));
        fs::create_dir_all(&layer).unwrap();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::write(up.join("etc/hosts"), b"").unwrap();
        // /etc is a link in the image: where it leads is not looked at, so no stub.
        std::os::unix::fs::symlink("/nonexistent-etc", layer.join("etc")).unwrap();
        assert!(runtime_stubs(&up, std::slice::from_ref(&layer)).is_empty());
        // An opaque /etc in a layer hides the base's files.
        let (base, top) = (t.path().join("base"), t.path().join("top"));
        fs::create_dir_all(base.join("etc")).unwrap();
        fs::write(base.join("etc/hosts"), b"x").unwrap();
        fs::create_dir_all(top.join("etc")).unwrap();
        rustix::fs::lsetxattr(
            top.join("etc"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        assert_eq!(
            runtime_stubs(&up, &[base, top]),
            [PathBuf::from("etc/hosts")]
        );
    }
}
