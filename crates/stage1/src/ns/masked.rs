//! Masked and read-only paths of `/proc` and `/sys` (rkt-reference §1.14, plus the ones
//! docker and the OCI runtimes add since), off only with `--insecure-options=paths`.
//!
//! `/sys` is mounted read-only as a whole (see [`super::mounts`]), so rkt's read-only list of
//! `/sys/{block,bus,class,dev,devices,kernel}` needs no mounts of its own here.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::mount::MountAttrFlags;

use super::fsat;
use super::mount::{self, NOSUID_NODEV_NOEXEC, Opt, Source};
use crate::sync::ChildError;

/// Bound read-only over themselves: kernel tunables and triggers that reach the whole host.
pub const READ_ONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Made inaccessible: `/dev/null` over a file, an empty read-only tmpfs over a directory.
/// Kernel memory and symbols, other processes' keys, timers and scheduler internals that leak
/// host activity, firmware tables, and the RAPL energy counters (CVE-2020-8694).
pub const INACCESSIBLE: &[&str] = &[
    "/proc/acpi",
    "/proc/config.gz",
    "/proc/kallsyms",
    "/proc/kcore",
    "/proc/keys",
    "/proc/kmem",
    "/proc/latency_stats",
    "/proc/mem",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
    "/sys/fs",
    "/sys/hypervisor",
    "/sys/module",
    "/sys/power",
];

/// Applies both lists in the rootfs open at `root` (after `/proc` and `/sys` are mounted).
/// Paths this kernel does not have are skipped. Every masked directory gets the same empty
/// tmpfs (one filesystem bound several times, not one per directory: each one more is a
/// superblock to set up and, when the app exits, to tear down).
pub fn apply(root: BorrowedFd<'_>) -> Result<(), ChildError> {
    for path in READ_ONLY {
        let Some(fd) = fsat::open_path(root, Path::new(path))? else {
            continue;
        };
        mount::bind(
            "masked",
            path,
            Source::Fd(fd.as_fd()),
            true,
            true,
            fd.as_fd(),
        )?;
    }
    let mut empty: Option<OwnedFd> = None;
    for path in INACCESSIBLE {
        let Some(fd) = fsat::open_path(root, Path::new(path))? else {
            continue;
        };
        let dir = fsat::is_dir(fd.as_fd())
            .map_err(|e| ChildError::new("masked", "stat").path(path).io(&e))?;
        if dir {
            match &empty {
                Some(tmpfs) => mount::bind(
                    "masked",
                    path,
                    Source::Fd(tmpfs.as_fd()),
                    false,
                    true,
                    fd.as_fd(),
                )?,
                None => {
                    empty = Some(mount::new_fs(
                        "masked",
                        path,
                        "tmpfs",
                        &[Opt::Str("mode", "0"), Opt::Str("size", "4k")],
                        NOSUID_NODEV_NOEXEC | MountAttrFlags::MOUNT_ATTR_RDONLY,
                        fd.as_fd(),
                    )?);
                }
            }
        } else {
            mount::bind(
                "masked",
                path,
                Source::Host(Path::new("/dev/null")),
                false,
                true,
                fd.as_fd(),
            )?;
        }
    }
    Ok(())
}
