//! Reading a cgroup's memory statistics and OOM kills, and killing everything in it.

use std::thread::sleep;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::cgroup::Cgroup;
use crate::{CgroupError, fsutil};

/// How long [`Cgroup::kill_all`] waits for killed processes to leave the cgroup.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Cgroup {
    /// How many processes of this cgroup and the cgroups below it the kernel OOM-killed
    /// because a memory limit here or below was reached (v2 `memory.events` `oom_kill`; v1
    /// the sum of `memory.oom_control` `oom_kill` over the subtree, since v1 counts a kill only
    /// in the victim's own cgroup). Kills in child cgroups already removed are not counted on
    /// v1. Needs the memory controller, and on v1 a kernel of 4.13 or later.
    pub fn oom_kills(&self) -> Result<u64, CgroupError> {
        let target = self.controller_target("memory")?;
        if target.v2 {
            let path = target.dir.join("memory.events");
            let text = fsutil::read(&path)?;
            return fsutil::keyed_value(&path, &text, "oom_kill")?.ok_or_else(|| missing(&path));
        }
        let mut total = 0;
        for dir in fsutil::subtree_postorder(target.dir)? {
            let path = dir.join("memory.oom_control");
            // A child removed while we walk counts nothing.
            let Some(text) = fsutil::read_opt(&path)? else {
                continue;
            };
            total +=
                fsutil::keyed_value(&path, &text, "oom_kill")?.ok_or_else(|| missing(&path))?;
        }
        Ok(total)
    }

    /// Memory charged to this cgroup and the cgroups below it, in bytes (v1
    /// `memory.usage_in_bytes`, v2 `memory.current`); `None` without a memory controller.
    pub fn memory_usage(&self) -> Result<Option<u64>, CgroupError> {
        let target = match self.controller_target("memory") {
            Ok(t) => t,
            Err(
                CgroupError::ControllerNotMounted { .. }
                | CgroupError::ControllerUnavailable { .. },
            ) => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let path = target.dir.join(if target.v2 {
            "memory.current"
        } else {
            "memory.usage_in_bytes"
        });
        let text = fsutil::read(&path)?;
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| CgroupError::Parse {
                path,
                line: text.trim().to_owned(),
                reason: "not a byte count".into(),
            })
    }

    /// SIGKILLs every process in this cgroup and below, and waits until they are gone from it.
    /// Uses v2 `cgroup.kill` where the kernel has it (5.14+: atomic, catches forks), and
    /// otherwise (and afterwards, for processes only in v1 hierarchies) kills the listed pids
    /// round after round until none are left; a process forking meanwhile is caught in a later
    /// round. Gives up with [`CgroupError::KillTimeout`] after 10 s. Refuses to run from a
    /// process inside the cgroup.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        #[allow(clippy::cast_possible_wrap)] // pids fit in i32 (pid_max ≤ 2^22).
        let me = std::process::id() as i32;
        let pids = self.procs()?;
        if pids.is_empty() {
            return Ok(());
        }
        if pids.contains(&me) {
            return Err(CgroupError::KillSelf {
                path: self.first_path(),
                pid: me,
            });
        }
        for d in self.dirs().iter().filter(|d| d.is_v2()) {
            if d.check()? {
                let file = d.path().join("cgroup.kill");
                match fsutil::write_raw(&file, "1") {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::debug!("cannot write 1 to {}: {e}", file.display()),
                }
            }
        }
        let start = Instant::now();
        let mut delay = Duration::from_millis(1);
        loop {
            let pids = self.procs()?;
            if pids.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= KILL_WAIT {
                return Err(CgroupError::KillTimeout {
                    path: self.first_path(),
                    pids,
                    waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
            }
            for pid in pids {
                let Some(p) = Pid::from_raw(pid) else {
                    continue;
                };
                match rustix::process::kill_process(p, Signal::KILL) {
                    Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                    Err(e) => tracing::debug!("cannot kill process {pid}: {e}"),
                }
            }
            sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    fn first_path(&self) -> std::path::PathBuf {
        self.dirs()
            .first()
            .map(|d| d.path().to_owned())
            .unwrap_or_default()
    }
}

fn missing(path: &std::path::Path) -> CgroupError {
    CgroupError::Parse {
        path: path.to_owned(),
        line: String::new(),
        reason: "no oom_kill counter (the kernel is older than 4.13)".into(),
    }
}
