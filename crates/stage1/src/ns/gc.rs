//! `rkt-stage1 gc`: removes what stage1 made outside the pod directory — the pod's cgroups
//! (killing anything still in them). Mounts need nothing: they all live in the pod's own
//! mount namespaces and vanished with its processes. Whatever is already gone is fine.

use std::path::Path;

use super::error::Stage1Error;
use super::run;

/// Cleans up after the pod in `pod_dir`.
pub fn gc(pod_dir: &Path) -> Result<(), Stage1Error> {
    let Some(cgroup) = run::recorded_cgroup(pod_dir)? else {
        tracing::debug!("no cgroup record: nothing to remove");
        return Ok(());
    };
    cgroup
        .kill_all()
        .map_err(|e| Stage1Error::cgroup("kill what is left in the pod cgroup", e))?;
    cgroup
        .remove()
        .map_err(|e| Stage1Error::cgroup("remove the pod cgroup", e))
}
