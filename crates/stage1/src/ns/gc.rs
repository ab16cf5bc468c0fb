//! `rkt-stage1 gc`: removes what stage1 made outside the pod directory for a pod that no longer
//! runs: its networks (CNI DEL, the network namespace's bind mount), which stage1 normally took
//! down itself when the pod ended, and its cgroups (killing anything still in them). Other
//! mounts need nothing: they all live in the pod's own mount namespaces and vanished with its
//! processes. Whatever is already gone is fine.

use std::path::{Path, PathBuf};

use crate::abi::{NetMode, REQUEST_FILE, RunRequest};

use super::error::Stage1Error;
use super::{network, run};

/// Cleans up after the pod in `pod_dir`.
pub fn gc(pod_dir: &Path) -> Result<(), Stage1Error> {
    // Both are tried, whichever fails; the first failure is returned.
    let networks = networks(pod_dir);
    let cgroups = cgroups(pod_dir);
    networks.and(cgroups)
}

fn networks(pod_dir: &Path) -> Result<(), Stage1Error> {
    // The request names the plugin directories ADD used; a pod whose request is unreadable
    // gets rkt's default plugin path.
    let req = std::fs::read(pod_dir.join(REQUEST_FILE))
        .ok()
        .and_then(|b| RunRequest::parse(&b).ok());
    let plugin_dirs: Vec<PathBuf> = match req.as_ref().map(|r| &r.net) {
        Some(NetMode::Contained { plugin_dirs, .. }) => plugin_dirs.clone(),
        _ => Vec::new(),
    };
    let uuid = match &req {
        Some(r) => r.uuid.clone(),
        None => pod_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    network::teardown(pod_dir, &uuid, &plugin_dirs)
}

fn cgroups(pod_dir: &Path) -> Result<(), Stage1Error> {
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
