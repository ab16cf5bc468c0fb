//! An app's `/dev`: a small tmpfs with the devices every program expects and nothing that
//! reaches the host's hardware (appc's OS-SPEC and the OCI runtime spec list the same set).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::mount::MountAttrFlags;

use super::fsat::{self, Kind};
use super::mount::{self, NOSUID_NODEV_NOEXEC, Opt};
use crate::sync::ChildError;

/// Character devices: name, major, minor (all mode 0666, as on any Linux host).
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Symbolic links: name, target.
const LINKS: &[(&str, &str)] = &[
    ("ptmx", "pts/ptmx"),
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

/// Mounts and fills `/dev` in the rootfs open at `root`.
pub fn populate(root: BorrowedFd<'_>) -> Result<(), ChildError> {
    let target = fsat::ensure(root, Path::new("/dev"), Kind::Dir)?;
    mount::new_fs(
        "dev",
        "/dev",
        "tmpfs",
        &[Opt::Str("mode", "755"), Opt::Str("size", "65536k")],
        MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NOEXEC
            | MountAttrFlags::MOUNT_ATTR_STRICTATIME,
        target.as_fd(),
    )?;
    let dev = fsat::open(root, Path::new("/dev"), OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| ChildError::new("dev", "open the new").path("/dev").io(&e))?;
    for (name, major, minor) in DEVICES {
        rustix::fs::mknodat(
            &dev,
            *name,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(*major, *minor),
        )
        .map_err(|e| {
            ChildError::new("dev", "create the device")
                .path(dev_path(name))
                .errno(e)
        })?;
    }
    let pts = subdir(&dev, "pts", 0o755)?;
    mount::new_fs(
        "dev",
        "/dev/pts",
        "devpts",
        &[
            Opt::Flag("newinstance"),
            Opt::Str("ptmxmode", "0666"),
            Opt::Str("mode", "0620"),
            Opt::Str("gid", "5"),
        ],
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        pts.as_fd(),
    )?;
    let shm = subdir(&dev, "shm", 0o1777)?;
    mount::new_fs(
        "dev",
        "/dev/shm",
        "tmpfs",
        &[Opt::Str("mode", "1777"), Opt::Str("size", "65536k")],
        NOSUID_NODEV_NOEXEC,
        shm.as_fd(),
    )?;
    let mqueue = subdir(&dev, "mqueue", 0o1777)?;
    mount::new_fs(
        "dev",
        "/dev/mqueue",
        "mqueue",
        &[],
        NOSUID_NODEV_NOEXEC,
        mqueue.as_fd(),
    )?;
    for (name, to) in LINKS {
        rustix::fs::symlinkat(*to, &dev, *name).map_err(|e| {
            ChildError::new("dev", "create the link")
                .path(dev_path(name))
                .errno(e)
        })?;
    }
    Ok(())
}

fn dev_path(name: &str) -> String {
    format!("/dev/{name}")
}

/// Makes `/dev/<name>` in the fresh tmpfs (nothing of the image is there to resolve).
fn subdir(dev: &OwnedFd, name: &str, mode: u32) -> Result<OwnedFd, ChildError> {
    let err = |op: &str| ChildError::new("dev", op.to_owned()).path(dev_path(name));
    rustix::fs::mkdirat(dev, name, Mode::from_raw_mode(mode))
        .map_err(|e| err("create").errno(e))?;
    rustix::fs::openat(
        dev,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("open").errno(e))
}
