//! cgroup v2 rules: enabling controllers for children, and explaining why a controller is
//! missing.
//!
//! A cgroup's children can use a controller only if the cgroup lists it in
//! `cgroup.subtree_control`, and a non-root cgroup may do so only while it holds no processes
//! itself ("no internal processes"). So controllers are enabled top-down, each cgroup on the
//! way holding only child cgroups; see [`crate::Cgroup::create_pod_with_supervisor`] and
//! [`crate::Cgroup::create_pod_for_self`] for how
//! the process that starts a pod steps out of the way.

use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use crate::{CgroupError, fsutil};

/// The root cgroup has no `cgroup.type` and is exempt from the no-internal-processes rule.
/// (A cgroup namespace's root is not the hierarchy's root and has the file.)
pub(crate) fn is_root(dir: &Path) -> bool {
    !dir.join("cgroup.type").exists()
}

/// Enables, in `dir`'s `cgroup.subtree_control`, each of `wanted` that `dir` offers
/// (`cgroup.controllers`) and has not enabled yet — when the rule allows it: `dir` is the root
/// or holds no processes. Otherwise, or when the kernel refuses one, it stays disabled with a
/// debug log; [`unavailable_reason`] explains it to whoever needs the controller.
pub(crate) fn enable_subtree(dir: &Path, wanted: &[String]) -> Result<(), CgroupError> {
    let offered = fsutil::read_words(&dir.join("cgroup.controllers"))?;
    let enabled = fsutil::read_words(&dir.join("cgroup.subtree_control"))?;
    let missing: Vec<&String> = wanted
        .iter()
        .filter(|c| offered.contains(c) && !enabled.contains(c))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root(dir) {
        let pids = fsutil::read_pids(dir)?;
        if !pids.is_empty() {
            tracing::debug!(
                "not enabling {missing:?} in {}: it holds processes {pids:?}",
                dir.display()
            );
            return Ok(());
        }
    }
    let file = dir.join("cgroup.subtree_control");
    for c in missing {
        let value = format!("+{c}");
        // Right after a process left the cgroup the kernel may still count it for a moment
        // and answer EBUSY (crun retries the same way).
        let mut tries = 0;
        loop {
            match fsutil::write_raw(&file, &value) {
                Ok(()) => break,
                Err(e)
                    if tries < 200
                        && rustix::io::Errno::from_io_error(&e)
                            == Some(rustix::io::Errno::BUSY) =>
                {
                    tries += 1;
                    sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    tracing::debug!("cannot write {value} to {}: {e}", file.display());
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Whether the caller's cgroup `dir` could enable one of `wanted` for its children if process
/// `pid` left it: it is not the root, offers such a controller without passing it down yet, and
/// `pid` is its only process.
pub(crate) fn held_back_only_by(
    dir: &Path,
    wanted: &[String],
    pid: i32,
) -> Result<bool, CgroupError> {
    if is_root(dir) {
        return Ok(false);
    }
    let offered = fsutil::read_words(&dir.join("cgroup.controllers"))?;
    let enabled = fsutil::read_words(&dir.join("cgroup.subtree_control"))?;
    if !wanted
        .iter()
        .any(|c| offered.contains(c) && !enabled.contains(c))
    {
        return Ok(false);
    }
    Ok(fsutil::read_pids(dir)? == [pid])
}

/// Why `controller` is not in `dir`'s `cgroup.controllers`, and what to do: walks up to the
/// nearest ancestor that offers the controller but does not pass it down.
pub(crate) fn unavailable_reason(controller: &str, dir: &Path, mount: &Path) -> String {
    let mut ancestor = dir.parent();
    while let Some(a) = ancestor.filter(|a| a.starts_with(mount)) {
        let offered = fsutil::read_words(&a.join("cgroup.controllers")).unwrap_or_default();
        if offered.iter().any(|c| c == controller) {
            let pids = fsutil::read_pids(a).unwrap_or_default();
            if !pids.is_empty() && !is_root(a) {
                return format!(
                    "{} offers it but cannot enable it for its children (cgroup.subtree_control) \
                     because processes {pids:?} live in it, and cgroup v2 lets only leaf cgroups \
                     hold processes; start rkt in a cgroup of its own, e.g. `systemd-run --scope \
                     -p Delegate=yes rkt run …`",
                    a.display()
                );
            }
            return format!(
                "{} offers it but has not enabled it for its children and rkt could not: enable \
                 it with `echo +{controller} > {}`",
                a.display(),
                a.join("cgroup.subtree_control").display()
            );
        }
        ancestor = a.parent();
    }
    if is_root(mount) {
        format!(
            "the cgroup2 hierarchy at {} does not offer it (the controller is bound to a v1 \
             hierarchy, or the kernel lacks it)",
            mount.display()
        )
    } else {
        format!(
            "the top cgroup visible at {} (a cgroup namespace or a bind mount) was not given it by \
             its parent; run rkt where {controller} is delegated, e.g. `systemd-run --scope -p \
             Delegate=yes rkt run …`",
            mount.display()
        )
    }
}
