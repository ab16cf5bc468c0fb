//! Status files inside a pod directory: their names (in [`files`]), typed readers for stage0
//! (`rkt status`, `list`, `enter`, `stop`) and the matching writers for stage1 and the pod
//! supervisor.
//!
//! Every writer replaces its file atomically (temp file in the same directory, then `rename(2)`),
//! so a reader never sees half a file. Writers do not fsync: readers need the atomicity, not
//! durability across a power loss, which ends the pod anyway; a pod's start is a hot path.
//! The writers use plain synchronous syscalls and allocate only a few small strings, so they
//! suit the single-threaded supervisor.
//!
//! Readers return `Ok(None)` for a file that does not exist (yet), read at most
//! [`MAX_STATUS_BYTES`], follow no symlink inside the pod directory, and report unparsable
//! contents as [`PodError::BadStatusFile`].

use std::os::fd::AsFd;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::PodError;
use crate::fsx;

/// Names of the files in a pod directory, relative to it. The table in `docs/pods.md` says who
/// writes each one.
pub mod files {
    /// The appc PodManifest (JSON), as `rkt cat-manifest` prints it. Written by stage0.
    pub const POD_MANIFEST: &str = "pod";
    /// Directory of stage1's own files.
    pub const STAGE1_DIR: &str = "stage1";
    /// The versioned stage1 run request. Written by stage0.
    pub const STAGE1_REQUEST: &str = "stage1/request.json";
    /// Flavor name and path/digest of the stage1 binary. Written by stage0.
    pub const STAGE1_FLAVOR: &str = "stage1/flavor";
    /// Creation time (RFC 3339). Written by [`crate::Pods::create`].
    pub const CREATED: &str = "created";
    /// The pod's name, if it has one. Written by [`crate::Pods::create`].
    pub const NAME: &str = "name";
    /// Host pid of the pod supervisor (the pod's PID 1). Written by stage1.
    pub const PID: &str = "pid";
    /// The pod cgroup (path per hierarchy). Written by stage1.
    pub const CGROUP: &str = "cgroup";
    /// When the supervisor started the apps (RFC 3339). Written by stage1.
    pub const STARTED: &str = "started";
    /// Exists once every app has been started. Written by the supervisor.
    pub const READY: &str = "ready";
    /// The pod's network namespace (a bind mount of an nsfs file), while its networks are up.
    /// Made by stage1, removed by stage1 when the pod ends or by its `gc`.
    pub const NETNS: &str = "netns";
    /// Directory of the CNI result cache, one `<network>.json` per network joined (what DEL
    /// needs). Written by stage1.
    pub const NET_CACHE_DIR: &str = "net";
    /// The pod's place on each network (JSON list of `rkt_net::Attachment`), for `rkt list`
    /// and `rkt status`; kept after the networks are torn down. Written by stage1.
    pub const NET_INFO: &str = "net-info.json";
    /// Directory holding one directory per app (`apps/<app>/`).
    pub const APPS_DIR: &str = "apps";
    /// In `apps/<app>/`: host pid of the app's process. Written by the supervisor.
    pub const APP_PID: &str = "pid";
    /// In `apps/<app>/`: the app's exit ([`super::AppExit`], JSON). Written by the supervisor.
    pub const APP_EXIT: &str = "exit";
    /// In `apps/<app>/`: the overlayfs upper dir of the app's rootfs.
    pub const APP_UPPER: &str = "upper";
    /// In `apps/<app>/`: the overlayfs work dir.
    pub const APP_WORK: &str = "work";
    /// In `apps/<app>/`: the app's log directory.
    pub const APP_LOGS_DIR: &str = "logs";
    /// In `apps/<app>/logs/`: the log being written (CRI format); rotated to `.1`, `.2`, ….
    pub const APP_LOG_CURRENT: &str = "current.log";
}

/// The most any status file may hold; anything longer is damaged.
pub const MAX_STATUS_BYTES: u64 = 64 << 10;

/// How an app ended, as the supervisor records it in `apps/<app>/exit`:
/// `{"code": 0, "signal": null, "oom_killed": false, "finished_at": "2026-…Z"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppExit {
    /// Exit status (for a signal death, 128 + the signal number, as a shell reports it).
    pub code: i32,
    /// The signal that killed the app, if one did.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer killed it.
    pub oom_killed: bool,
    /// When the supervisor saw it exit.
    #[serde(with = "rfc3339")]
    pub finished_at: SystemTime,
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::fsx::format_time(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        crate::fsx::parse_time(&s).map_err(serde::de::Error::custom)
    }
}

/// `apps/<app>/<file>`, refusing an app name that is not an ACName (so it cannot leave the pod
/// directory).
pub fn app_file(app: &str, file: &str) -> Result<String, PodError> {
    rkt_types::name::validate_ac_name(app).map_err(|source| PodError::InvalidName {
        what: "app",
        source,
    })?;
    Ok(format!("{}/{app}/{file}", files::APPS_DIR))
}

fn bad(path: &Path, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> PodError {
    PodError::BadStatusFile {
        path: path.to_owned(),
        source: source.into(),
    }
}

/// Reads `rel` as trimmed UTF-8 text, through an already open pod directory fd.
pub(crate) fn read_text_at(
    pod: std::os::fd::BorrowedFd<'_>,
    pod_dir: &Path,
    rel: &str,
) -> Result<Option<String>, PodError> {
    let Some(bytes) = fsx::read_small_at(pod, pod_dir, rel, MAX_STATUS_BYTES)? else {
        return Ok(None);
    };
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) => Err(bad(&pod_dir.join(rel), e)),
    }
}

pub(crate) fn read_time_at(
    pod: std::os::fd::BorrowedFd<'_>,
    pod_dir: &Path,
    rel: &str,
) -> Result<Option<SystemTime>, PodError> {
    match read_text_at(pod, pod_dir, rel)? {
        None => Ok(None),
        Some(s) => fsx::parse_time(&s)
            .map(Some)
            .map_err(|e| bad(&pod_dir.join(rel), e)),
    }
}

fn read_text(pod_dir: &Path, rel: &str) -> Result<Option<String>, PodError> {
    let fd = fsx::open_dir(pod_dir)?;
    read_text_at(fd.as_fd(), pod_dir, rel)
}

fn read_pid_file(pod_dir: &Path, rel: &str) -> Result<Option<i32>, PodError> {
    match read_text(pod_dir, rel)? {
        None => Ok(None),
        Some(s) => match s.parse::<i32>() {
            Ok(pid) if pid > 0 => Ok(Some(pid)),
            Ok(pid) => Err(bad(&pod_dir.join(rel), format!("{pid} is not a pid"))),
            Err(e) => Err(bad(&pod_dir.join(rel), e)),
        },
    }
}

fn write(pod_dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), PodError> {
    let fd = fsx::open_dir(pod_dir)?;
    fsx::write_atomic_at(fd.as_fd(), pod_dir, rel, bytes, false).map(drop)
}

/// The pod's creation time (`created`).
pub fn read_created(pod_dir: &Path) -> Result<Option<SystemTime>, PodError> {
    let fd = fsx::open_dir(pod_dir)?;
    read_time_at(fd.as_fd(), pod_dir, files::CREATED)
}

/// The pod's name (`name`), if it has one.
pub fn read_name(pod_dir: &Path) -> Result<Option<String>, PodError> {
    read_text(pod_dir, files::NAME)
}

/// Host pid of the pod supervisor (`pid`).
pub fn read_pid(pod_dir: &Path) -> Result<Option<i32>, PodError> {
    read_pid_file(pod_dir, files::PID)
}

/// Records the host pid of the pod supervisor (`pid`). For stage1.
pub fn write_pid(pod_dir: &Path, pid: i32) -> Result<(), PodError> {
    write(pod_dir, files::PID, pid.to_string().as_bytes())
}

/// When the supervisor started the apps (`started`).
pub fn read_started(pod_dir: &Path) -> Result<Option<SystemTime>, PodError> {
    let fd = fsx::open_dir(pod_dir)?;
    read_time_at(fd.as_fd(), pod_dir, files::STARTED)
}

/// Records when the apps were started (`started`). For stage1.
pub fn write_started(pod_dir: &Path, at: SystemTime) -> Result<(), PodError> {
    write(pod_dir, files::STARTED, fsx::format_time(at).as_bytes())
}

/// Whether every app has been started (`ready` exists).
pub fn is_ready(pod_dir: &Path) -> Result<bool, PodError> {
    let fd = fsx::open_dir(pod_dir)?;
    match rustix::fs::statat(&fd, files::READY, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(PodError::io("stat", &pod_dir.join(files::READY), e)),
    }
}

/// Marks the pod ready (creates `ready`). For the supervisor, once every app is started.
pub fn mark_ready(pod_dir: &Path) -> Result<(), PodError> {
    write(pod_dir, files::READY, b"")
}

/// Host pid of an app's process (`apps/<app>/pid`).
pub fn read_app_pid(pod_dir: &Path, app: &str) -> Result<Option<i32>, PodError> {
    read_pid_file(pod_dir, &app_file(app, files::APP_PID)?)
}

/// Records the host pid of an app's process (`apps/<app>/pid`, creating `apps/<app>/` if
/// needed). For the supervisor.
pub fn write_app_pid(pod_dir: &Path, app: &str, pid: i32) -> Result<(), PodError> {
    write(
        pod_dir,
        &app_file(app, files::APP_PID)?,
        pid.to_string().as_bytes(),
    )
}

/// How an app ended (`apps/<app>/exit`); `None` while it runs or if it never started.
pub fn read_app_exit(pod_dir: &Path, app: &str) -> Result<Option<AppExit>, PodError> {
    let rel = app_file(app, files::APP_EXIT)?;
    let fd = fsx::open_dir(pod_dir)?;
    match fsx::read_small_at(fd.as_fd(), pod_dir, &rel, MAX_STATUS_BYTES)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| bad(&pod_dir.join(&rel), e)),
    }
}

/// Records how an app ended (`apps/<app>/exit`). For the supervisor.
pub fn write_app_exit(pod_dir: &Path, app: &str, exit: &AppExit) -> Result<(), PodError> {
    let rel = app_file(app, files::APP_EXIT)?;
    let json = serde_json::to_vec(exit).expect("AppExit always serializes");
    write(pod_dir, &rel, &json)
}
