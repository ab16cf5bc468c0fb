//! The status files stage1 and the supervisor write into the pod directory, in the formats of
//! `docs/pods.md` (the `rkt-pod` crate reads them back for `rkt status`, `list` and `enter`).
//!
//! Each file is replaced atomically (temporary file in the same directory, then `rename(2)`),
//! so a reader never sees half of one.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use serde::Serialize;

use crate::ns::error::Stage1Error;

/// `pid`: host pid of the supervisor.
pub const PID: &str = "pid";
/// `cgroup`: the pod cgroup, as `rkt_cgroups::Cgroup` JSON.
pub const CGROUP: &str = "cgroup";
/// `started`: when the apps were started (RFC 3339).
pub const STARTED: &str = "started";
/// `ready`: exists once every app has been started.
pub const READY: &str = "ready";
/// `apps/`: one directory per app.
pub const APPS_DIR: &str = "apps";

static TMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// How an app ended: `apps/<app>/exit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppExit {
    /// Exit status; 128 + the signal number for a signal death, as a shell reports it.
    pub code: i32,
    /// The signal that killed the app, if one did.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer killed it.
    pub oom_killed: bool,
    /// When the supervisor saw it exit (RFC 3339).
    pub finished_at: String,
}

/// An RFC 3339 UTC time, to the second, as the pod files have it.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339(t).to_string()
}

/// Writes `bytes` to `<pod_dir>/<rel>` atomically.
pub fn write_file(pod_dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), Stage1Error> {
    let path = pod_dir.join(rel);
    let dir = path.parent().unwrap_or(pod_dir);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp{}.{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, &path));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Stage1Error::sys(format!("write {}", path.display()), e)
    })
}

/// `pid`.
pub fn write_pid(pod_dir: &Path, pid: i32) -> Result<(), Stage1Error> {
    write_file(pod_dir, PID, pid.to_string().as_bytes())
}

/// `started`.
pub fn write_started(pod_dir: &Path, at: SystemTime) -> Result<(), Stage1Error> {
    write_file(pod_dir, STARTED, format_time(at).as_bytes())
}

/// `ready`.
pub fn mark_ready(pod_dir: &Path) -> Result<(), Stage1Error> {
    write_file(pod_dir, READY, b"")
}

/// `apps/<app>/pid`.
pub fn write_app_pid(pod_dir: &Path, app: &str, pid: i32) -> Result<(), Stage1Error> {
    write_file(
        pod_dir,
        &format!("{APPS_DIR}/{app}/pid"),
        pid.to_string().as_bytes(),
    )
}

/// `apps/<app>/exit`.
pub fn write_app_exit(pod_dir: &Path, app: &str, exit: &AppExit) -> Result<(), Stage1Error> {
    let json =
        serde_json::to_vec(exit).map_err(|e| Stage1Error::sys("encode an exit record", e))?;
    write_file(pod_dir, &format!("{APPS_DIR}/{app}/exit"), &json)
}

/// The host pid recorded in `apps/<app>/pid`, if any.
pub fn read_app_pid(pod_dir: &Path, app: &str) -> Result<Option<i32>, Stage1Error> {
    read_pid(&pod_dir.join(format!("{APPS_DIR}/{app}/pid")))
}

/// The host pid of the supervisor, from `pid`, if any.
pub fn read_supervisor_pid(pod_dir: &Path) -> Result<Option<i32>, Stage1Error> {
    read_pid(&pod_dir.join(PID))
}

fn read_pid(path: &Path) -> Result<Option<i32>, Stage1Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => match s.trim().parse::<i32>() {
            Ok(pid) if pid > 0 => Ok(Some(pid)),
            _ => Err(Stage1Error::State(format!(
                "{} does not hold a pid ({:?})",
                path.display(),
                s.trim()
            ))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Stage1Error::sys(format!("read {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_written_whole_in_the_documented_formats() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("apps/web")).unwrap();
        write_pid(dir.path(), 42).unwrap();
        write_app_pid(dir.path(), "web", 43).unwrap();
        assert_eq!(read_supervisor_pid(dir.path()).unwrap(), Some(42));
        assert_eq!(read_app_pid(dir.path(), "web").unwrap(), Some(43));
        assert_eq!(read_app_pid(dir.path(), "db").unwrap(), None);
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_366_245);
        write_app_exit(
            dir.path(),
            "web",
            &AppExit {
                code: 137,
                signal: Some(9),
                oom_killed: true,
                finished_at: format_time(at),
            },
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("apps/web/exit")).unwrap(),
            r#"{"code":137,"signal":9,"oom_killed":true,"finished_at":"2026-01-02T15:04:05Z"}"#
        );
        mark_ready(dir.path()).unwrap();
        assert!(dir.path().join(READY).exists());
        // No temporary files are left.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }
}
