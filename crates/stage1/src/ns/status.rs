//! The status files stage1 and the supervisor write into the pod directory, in the formats of
//! `docs/pods.md`: through `rkt_pod::status`, whose readers stage0 uses (`rkt status`, `list`,
//! `enter`), plus the `cgroup` record, which only stage1 reads back.
//!
//! Each file is replaced atomically (temporary file in the same directory, then `rename(2)`),
//! so a reader never sees half of one.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use rkt_pod::PodError;
pub use rkt_pod::status::AppExit;
use rkt_pod::status::files;

use crate::ns::error::Stage1Error;

/// `cgroup`: the pod cgroup, as `rkt_cgroups::Cgroup` JSON.
pub const CGROUP: &str = files::CGROUP;

static TMP_COUNTER: AtomicU32 = AtomicU32::new(0);

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

fn pod(what: &str) -> impl FnOnce(PodError) -> Stage1Error + '_ {
    move |source| Stage1Error::Pod {
        what: what.to_owned(),
        source,
    }
}

/// `pid`: the supervisor's host pid.
pub fn write_pid(pod_dir: &Path, pid: i32) -> Result<(), Stage1Error> {
    rkt_pod::status::write_pid(pod_dir, pid).map_err(pod("record the supervisor's pid"))
}

/// `started`.
pub fn write_started(pod_dir: &Path, at: SystemTime) -> Result<(), Stage1Error> {
    rkt_pod::status::write_started(pod_dir, at).map_err(pod("record the start time"))
}

/// `ready`.
pub fn mark_ready(pod_dir: &Path) -> Result<(), Stage1Error> {
    rkt_pod::status::mark_ready(pod_dir).map_err(pod("mark the pod ready"))
}

/// `apps/<app>/pid`.
pub fn write_app_pid(pod_dir: &Path, app: &str, pid: i32) -> Result<(), Stage1Error> {
    rkt_pod::status::write_app_pid(pod_dir, app, pid).map_err(pod("record an app's pid"))
}

/// `apps/<app>/exit`.
pub fn write_app_exit(pod_dir: &Path, app: &str, exit: &AppExit) -> Result<(), Stage1Error> {
    rkt_pod::status::write_app_exit(pod_dir, app, exit).map_err(pod("record an app's exit"))
}

/// The host pid recorded in `apps/<app>/pid`, if any.
pub fn read_app_pid(pod_dir: &Path, app: &str) -> Result<Option<i32>, Stage1Error> {
    rkt_pod::status::read_app_pid(pod_dir, app).map_err(pod("read an app's pid"))
}

/// Whether `apps/<app>/exit` says the app has exited.
pub fn app_exited(pod_dir: &Path, app: &str) -> Result<bool, Stage1Error> {
    rkt_pod::status::read_app_exit(pod_dir, app)
        .map(|e| e.is_some())
        .map_err(pod("read an app's exit"))
}

/// The host pid of the supervisor, from `pid`, if any.
pub fn read_supervisor_pid(pod_dir: &Path) -> Result<Option<i32>, Stage1Error> {
    rkt_pod::status::read_pid(pod_dir).map_err(pod("read the supervisor's pid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_through_rkt_pod() {
        let dir = tempfile::tempdir().unwrap();
        write_pid(dir.path(), 42).unwrap();
        write_app_pid(dir.path(), "web", 43).unwrap();
        assert_eq!(read_supervisor_pid(dir.path()).unwrap(), Some(42));
        assert_eq!(read_app_pid(dir.path(), "web").unwrap(), Some(43));
        assert_eq!(read_app_pid(dir.path(), "db").unwrap(), None);
        assert!(!app_exited(dir.path(), "web").unwrap());
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_767_366_245);
        let exit = AppExit {
            code: 137,
            signal: Some(9),
            oom_killed: true,
            finished_at: at,
        };
        write_app_exit(dir.path(), "web", &exit).unwrap();
        assert!(app_exited(dir.path(), "web").unwrap());
        assert_eq!(
            rkt_pod::status::read_app_exit(dir.path(), "web").unwrap(),
            Some(exit)
        );
        write_file(dir.path(), CGROUP, b"{}").unwrap();
        assert_eq!(std::fs::read(dir.path().join(CGROUP)).unwrap(), b"{}");
        mark_ready(dir.path()).unwrap();
        assert!(rkt_pod::status::is_ready(dir.path()).unwrap());
    }
}
