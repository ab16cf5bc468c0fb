//! What `rkt list` and `rkt status` show, read from the pod directories alone.

use std::path::Path;
use std::time::SystemTime;

use rkt_pod::status::{self, AppExit};
use rkt_pod::{PodInfo, PodState};
use rkt_stage1::abi::{REQUEST_FILE, RunRequest};
use serde::Serialize;

/// One app of a pod, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct AppView {
    /// App name.
    pub name: String,
    /// Image name it runs.
    pub image_name: String,
    /// Image id.
    pub image_id: String,
    /// How it ended, if it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitView>,
}

/// An app's exit, for output.
#[derive(Debug, Clone, Serialize)]
pub struct ExitView {
    /// Exit code (128+n for a signal).
    pub code: i32,
    /// Signal number, if killed by one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Killed by the OOM killer.
    pub oom_killed: bool,
    /// When it exited.
    #[serde(with = "rfc3339")]
    pub finished_at: SystemTime,
}

impl From<AppExit> for ExitView {
    fn from(e: AppExit) -> Self {
        ExitView {
            code: e.code,
            signal: e.signal,
            oom_killed: e.oom_killed,
            finished_at: e.finished_at,
        }
    }
}

/// A pod, as `rkt list` and `rkt status` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PodView {
    /// UUID.
    pub uuid: String,
    /// Name, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// State as rkt shows it.
    pub state: String,
    /// Created.
    #[serde(with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub created: Option<SystemTime>,
    /// Apps started.
    #[serde(with = "opt_rfc3339", skip_serializing_if = "Option::is_none")]
    pub started: Option<SystemTime>,
    /// Host pid of the pod's PID 1 while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Whether every app has been started.
    pub ready: bool,
    /// Apps.
    pub apps: Vec<AppView>,
    /// Networks, as `name:ip4=ADDR` (from `net-info.json`); kept after the pod exited.
    pub networks: Vec<String>,
    /// The pod directory.
    #[serde(skip)]
    pub dir: std::path::PathBuf,
    /// The state, typed.
    #[serde(skip)]
    pub pod_state: PodState,
}

impl PodView {
    /// Whether the pod is done (its stage1 is gone).
    pub fn exited(&self) -> bool {
        self.pod_state.is_exited()
    }
}

/// Builds the view of one listed pod. Missing files (a pod still being prepared, an exited
/// pod whose apps never started) just leave fields empty.
pub fn view(info: &PodInfo) -> PodView {
    let dir = &info.dir;
    let request = read_request(dir);
    let running = info.state == PodState::Running;
    let apps = request
        .map(|r| {
            r.apps
                .into_iter()
                .map(|a| AppView {
                    exit: status::read_app_exit(dir, &a.name)
                        .ok()
                        .flatten()
                        .map(ExitView::from),
                    name: a.name,
                    image_name: a.image_name,
                    image_id: a.image_id,
                })
                .collect()
        })
        .unwrap_or_default();
    PodView {
        uuid: info.uuid.to_string(),
        name: info.name.clone(),
        state: info.state.to_string(),
        created: info.created,
        started: info.started,
        pid: if running {
            status::read_pid(dir).ok().flatten()
        } else {
            None
        },
        ready: status::is_ready(dir).unwrap_or(false),
        apps,
        networks: crate::net::pod_networks(dir),
        dir: dir.clone(),
        pod_state: info.state,
    }
}

/// The pod's run request, if it has been written.
pub fn read_request(dir: &Path) -> Option<RunRequest> {
    let bytes = std::fs::read(dir.join(REQUEST_FILE)).ok()?;
    RunRequest::parse(&bytes).ok()
}

mod rfc3339 {
    use std::time::SystemTime;

    pub(super) fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_nanos(*t))
    }
}

mod opt_rfc3339 {
    use std::time::SystemTime;

    pub(super) fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&humantime::format_rfc3339_nanos(*t)),
            None => s.serialize_none(),
        }
    }
}
