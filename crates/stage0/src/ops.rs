//! The verbs that act on existing pods through stage1's entrypoints: stop, rm, gc.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rkt_pod::{PodHandle, PodState, Pods};

use crate::Stage0Error;

/// Runs stage1 entrypoint `entrypoint` for the pod in `dir` and waits for it.
///
/// Short-lived entrypoints run as a child process (not exec'd), so one `rkt` can act on many
/// pods; `std::process::Command` spawns without running Rust code in the child.
pub fn run_entrypoint(
    stage1: &Path,
    entrypoint: &str,
    dir: &Path,
    debug: bool,
    args: &[&str],
) -> Result<(), Stage0Error> {
    let mut c = Command::new(stage1);
    c.arg(entrypoint).arg("--pod-dir").arg(dir);
    if debug {
        c.arg("--debug");
    }
    c.args(args);
    let st = c.status().map_err(|source| Stage0Error::Stage1 {
        path: stage1.display().to_string(),
        source,
    })?;
    if st.success() {
        Ok(())
    } else {
        Err(Stage0Error::Usage(format!(
            "stage1 {entrypoint} failed for pod {} ({st})",
            dir.file_name().unwrap_or_default().to_string_lossy()
        )))
    }
}

/// Stops a running pod: SIGTERM to its apps (then SIGKILL after the grace period), or at once
/// with `force`.
pub fn stop(stage1: &Path, pod: &PodHandle, force: bool, debug: bool) -> Result<(), Stage0Error> {
    if pod.state() != PodState::Running {
        return Err(Stage0Error::Usage(format!(
            "pod {} is {}, not running",
            pod.uuid(),
            pod.state()
        )));
    }
    let args: &[&str] = if force { &["--force"] } else { &[] };
    run_entrypoint(stage1, "stop", pod.dir(), debug, args)
}

/// Removes one pod that is not running: stage1's gc entrypoint (cgroups, and later the
/// network), then its directory.
pub fn remove(stage1: &Path, pods: &Pods, pod: &PodHandle, debug: bool) -> Result<(), Stage0Error> {
    if pod.state() == PodState::Running {
        return Err(Stage0Error::Usage(format!(
            "pod {} is running; stop it first (rkt stop {})",
            pod.uuid(),
            pod.uuid()
        )));
    }
    let deleting = pods.lock_for_delete(pod)?.ok_or_else(|| {
        Stage0Error::Usage(format!(
            "pod {} is in use by another rkt process; try again",
            pod.uuid()
        ))
    })?;
    if has_stage1_state(deleting.dir()) {
        run_entrypoint(stage1, "gc", deleting.dir(), debug, &[])?;
    }
    deleting.remove()?;
    Ok(())
}

/// Whether stage1 ever ran for this pod (so its gc entrypoint has something to clean).
fn has_stage1_state(dir: &Path) -> bool {
    dir.join(rkt_pod::status::files::CGROUP).exists()
        || dir.join(rkt_pod::status::files::PID).exists()
}

/// What `rkt gc` did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Pods moved to exited-garbage by the mark phase.
    pub marked: Vec<String>,
    /// Pods removed by the sweep phase.
    pub removed: Vec<String>,
    /// Pods that could not be removed, with why.
    pub failed: Vec<(String, String)>,
}

/// rkt's two-phase gc: mark exited pods (starting their grace period), then sweep those whose
/// grace period is over, failed prepares, and prepared pods older than `expire_prepared`.
pub fn gc(
    stage1: &Path,
    pods: &Pods,
    grace: Duration,
    expire_prepared: Duration,
    mark_only: bool,
    debug: bool,
) -> Result<GcReport, Stage0Error> {
    let mut report = GcReport {
        marked: pods
            .mark_exited()?
            .into_iter()
            .map(|m| m.uuid.to_string())
            .collect(),
        ..GcReport::default()
    };
    if mark_only {
        return Ok(report);
    }
    // Views of stage1 binaries that were replaced or removed since (never the current one's).
    crate::stage1_view::remove_stale();
    for pod in pods.sweepable(grace, expire_prepared)? {
        let uuid = pod.uuid().to_string();
        match remove(stage1, pods, &pod, debug) {
            Ok(()) => report.removed.push(uuid),
            Err(e) => report.failed.push((uuid, e.to_string())),
        }
    }
    Ok(report)
}
