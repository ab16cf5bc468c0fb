//! Everything mounted into an app's root before `pivot_root`, in order: `/proc`, `/sys`,
//! `/dev` ([`super::dev`]), volumes, the pod's `/etc` files, the masked paths
//! ([`super::masked`]) and finally the read-only root.
//!
//! `/sys` is always a new sysfs mounted read-only, also when the pod shares the host's network
//! namespace: root in the initial user namespace may mount one there, it shows the same tree
//! as the host's, and unlike a bind of the host's `/sys` it carries none of the host's
//! submounts (cgroup, bpf, debugfs, securityfs), which would otherwise need hiding.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::mount::MountAttrFlags;

use super::fsat::{self, Kind};
use super::mount::{self, NOSUID_NODEV_NOEXEC, Source};
use super::podfiles::{EtcSource, PodPaths};
use crate::abi::{AppRequest, Volume, VolumeKind};
use crate::sync::ChildError;

/// What [`mount_all`] needs besides the app.
pub struct MountPlan<'a> {
    /// The app.
    pub app: &'a AppRequest,
    /// The pod directory.
    pub paths: &'a PodPaths,
    /// The pod's `/etc` files.
    pub etc: &'a super::podfiles::EtcFiles,
    /// The pod's volumes.
    pub volumes: &'a [Volume],
}

/// Mounts everything into the rootfs open at `root`.
pub fn mount_all(root: BorrowedFd<'_>, plan: &MountPlan<'_>) -> Result<(), ChildError> {
    let proc = fsat::ensure(root, Path::new("/proc"), Kind::Dir)?;
    mount::new_fs(
        "mounts",
        "/proc",
        "proc",
        &[],
        NOSUID_NODEV_NOEXEC,
        proc.as_fd(),
    )?;
    let sys = fsat::ensure(root, Path::new("/sys"), Kind::Dir)?;
    mount::new_fs(
        "mounts",
        "/sys",
        "sysfs",
        &[],
        NOSUID_NODEV_NOEXEC | MountAttrFlags::MOUNT_ATTR_RDONLY,
        sys.as_fd(),
    )?;
    super::dev::populate(root)?;
    volumes(root, plan)?;
    etc_files(root, plan)?;
    let wd = if plan.app.working_dir.is_empty() {
        "/"
    } else {
        plan.app.working_dir.as_str()
    };
    fsat::ensure(root, Path::new(wd), Kind::Dir)?;
    if plan.app.masked_paths {
        super::masked::apply(root)?;
    }
    if plan.app.readonly_rootfs {
        mount::make_read_only("mounts", "the root filesystem", root)?;
    }
    Ok(())
}

fn volumes(root: BorrowedFd<'_>, plan: &MountPlan<'_>) -> Result<(), ChildError> {
    for m in &plan.app.mounts {
        let Some(vol) = plan.volumes.iter().find(|v| v.name == m.volume) else {
            return Err(ChildError::new("volumes", "find the volume")
                .path(&m.path)
                .message(format!("no volume {:?} in the pod", m.volume)));
        };
        let (source, recursive, read_only) = match &vol.kind {
            VolumeKind::Host {
                source,
                read_only,
                recursive,
            } => (source.clone(), *recursive, *read_only || m.read_only),
            VolumeKind::Empty { .. } => (plan.paths.volume(&vol.name), false, m.read_only),
        };
        let meta = std::fs::metadata(&source).map_err(|e| {
            ChildError::new("volumes", format!("use volume {:?} from", vol.name))
                .path(&source)
                .io(&e)
        })?;
        let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
        let target = fsat::ensure(root, Path::new(&m.path), kind)?;
        mount::bind(
            "volumes",
            &m.path,
            Source::Host(&source),
            recursive,
            read_only,
            target.as_fd(),
        )?;
    }
    Ok(())
}

fn etc_files(root: BorrowedFd<'_>, plan: &MountPlan<'_>) -> Result<(), ChildError> {
    bind_file(root, "/etc/hostname", &plan.etc.hostname, false)?;
    for (target, source) in [
        ("/etc/hosts", &plan.etc.hosts),
        ("/etc/resolv.conf", &plan.etc.resolv_conf),
    ] {
        match source {
            EtcSource::Pod(file) => bind_file(root, target, file, false)?,
            EtcSource::Host(file) => bind_file(root, target, file, true)?,
            EtcSource::ImageOr(file) => {
                let own = fsat::open_path(root, Path::new(target))?;
                if own.is_none_or(|fd| super::placeholders::is_placeholder(fd.as_fd())) {
                    // An image whose file is a dangling link keeps its link: rkt's fallback
                    // is for images without the file, not a reason to fail the app.
                    if let Err(e) = bind_file(root, target, file, false) {
                        super::error::warn(&format!("app {}: {e}", plan.app.name));
                    }
                }
            }
            EtcSource::Image => {}
        }
    }
    Ok(())
}

fn bind_file(
    root: BorrowedFd<'_>,
    target: &str,
    source: &Path,
    read_only: bool,
) -> Result<(), ChildError> {
    let fd = fsat::ensure(root, Path::new(target), Kind::File)?;
    mount::bind(
        "mounts",
        target,
        Source::Host(source),
        false,
        read_only,
        fd.as_fd(),
    )
}
