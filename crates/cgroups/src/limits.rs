//! Resource limits: what is written to which file on v1 and v2 (pure functions), and
//! [`Cgroup::set_limits`] that writes it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cgroup::Cgroup;
use crate::{CgroupError, fsutil, v2};

/// Limits for a pod's or an app's cgroup; `None` leaves a setting as the kernel has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory in bytes (v1 `memory.limit_in_bytes`, v2 `memory.max`); past it the kernel
    /// reclaims, then OOM-kills inside the cgroup. Swap is not limited.
    pub memory_max: Option<u64>,
    /// CPU bandwidth (v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`, v2 `cpu.max`).
    pub cpu_quota: Option<CpuQuota>,
    /// Relative CPU weight in v1 shares, 2..=262144, default 1024 (v1 `cpu.shares`; v2
    /// `cpu.weight` via [`cpu_shares_to_weight`]).
    pub cpu_shares: Option<u64>,
    /// Maximum number of tasks (`pids.max`).
    pub pids_max: Option<u64>,
}

/// CPU bandwidth: at most `quota_us` of CPU time per `period_us` of wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuQuota {
    /// CPU time per period, in µs; at least 1000.
    pub quota_us: u64,
    /// The period, in µs, 1000..=1000000.
    pub period_us: u64,
}

impl CpuQuota {
    /// The kernel's default period, 100 ms.
    pub const DEFAULT_PERIOD_US: u64 = 100_000;

    /// rkt's `--cpu=<n>m`: `millis` thousandths of a CPU over the default period.
    pub fn from_millicores(millis: u64) -> CpuQuota {
        CpuQuota {
            quota_us: millis.saturating_mul(Self::DEFAULT_PERIOD_US) / 1000,
            period_us: Self::DEFAULT_PERIOD_US,
        }
    }
}

/// v1 `cpu.shares` (2..=262144, default 1024) to v2 `cpu.weight` (1..=10000, default 100),
/// with crun's quadratic fit through the minimum, default and maximum (crun 1.23, "cgroup:
/// improve conversion from shares to weight"), so 1024 shares become the default weight 100
/// rather than the 39 of the older linear formula. 0 means unset and stays 0.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            #[allow(clippy::cast_precision_loss)] // shares < 2^18 is exact in an f64.
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 1..=10000
            let weight = 10f64.powf(exponent).ceil() as u64;
            weight
        }
    }
}

/// The `cpu.max` value: `<quota> <period>`, or `max <period>` for no quota.
pub fn cpu_max_value(quota: Option<CpuQuota>) -> String {
    match quota {
        Some(q) => format!("{} {}", q.quota_us, q.period_us),
        None => format!("max {}", CpuQuota::DEFAULT_PERIOD_US),
    }
}

/// The controllers limits can be set on, in the order they are written.
pub(crate) const LIMIT_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// The files to write for `controller`'s part of `l`, in order, on a v1 or v2 hierarchy.
pub(crate) fn limit_files(l: &Limits, controller: &str, v2: bool) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match controller {
        "memory" => {
            if let Some(m) = l.memory_max {
                out.push((
                    if v2 {
                        "memory.max"
                    } else {
                        "memory.limit_in_bytes"
                    },
                    m.to_string(),
                ));
            }
        }
        "cpu" => {
            if let Some(s) = l.cpu_shares {
                if v2 {
                    out.push(("cpu.weight", cpu_shares_to_weight(s).to_string()));
                } else {
                    out.push(("cpu.shares", s.to_string()));
                }
            }
            if let Some(q) = l.cpu_quota {
                if v2 {
                    out.push(("cpu.max", cpu_max_value(Some(q))));
                } else {
                    out.push(("cpu.cfs_period_us", q.period_us.to_string()));
                    out.push(("cpu.cfs_quota_us", q.quota_us.to_string()));
                }
            }
        }
        "pids" => {
            if let Some(p) = l.pids_max {
                out.push(("pids.max", p.to_string()));
            }
        }
        _ => {}
    }
    out
}

impl Limits {
    /// Checks every value against the range the kernel accepts, so nothing is half-applied.
    pub fn validate(&self) -> Result<(), CgroupError> {
        let bad = |limit, reason: String| Err(CgroupError::InvalidLimit { limit, reason });
        if self.memory_max == Some(0) {
            return bad("memory", "0 bytes; give at least a few MiB".into());
        }
        if let Some(q) = self.cpu_quota {
            if !(1000..=1_000_000).contains(&q.period_us) {
                return bad(
                    "cpu",
                    format!("period {} µs is outside 1000..=1000000", q.period_us),
                );
            }
            if q.quota_us < 1000 {
                return bad(
                    "cpu",
                    format!(
                        "quota {} µs is below 1000 µs (1% of a CPU at the default period)",
                        q.quota_us
                    ),
                );
            }
        }
        if let Some(s) = self.cpu_shares
            && !(2..=262_144).contains(&s)
        {
            return bad("cpu-shares", format!("{s} is outside 2..=262144"));
        }
        if self.pids_max == Some(0) {
            return bad(
                "pids",
                "0 tasks would leave no room for the app itself".into(),
            );
        }
        Ok(())
    }
}

/// Where a controller's files are for a cgroup.
pub(crate) struct Target<'a> {
    pub dir: &'a Path,
    pub v2: bool,
}

impl Cgroup {
    /// Where `controller` lives for this cgroup: its v1 hierarchy, or the cgroup2 directory if
    /// the controller is in its `cgroup.controllers`; otherwise an error that says why.
    pub(crate) fn controller_target(&self, controller: &str) -> Result<Target<'_>, CgroupError> {
        if let Some(d) = self.dirs().iter().find(|d| d.kind().is_v1_with(controller)) {
            return Ok(Target {
                dir: d.path(),
                v2: false,
            });
        }
        let Some(d) = self.dirs().iter().find(|d| d.is_v2()) else {
            return Err(CgroupError::ControllerNotMounted {
                controller: controller.into(),
            });
        };
        d.check()?;
        let offered = fsutil::read_words(&d.path().join("cgroup.controllers"))?;
        if offered.iter().any(|c| c == controller) {
            return Ok(Target {
                dir: d.path(),
                v2: true,
            });
        }
        Err(CgroupError::ControllerUnavailable {
            controller: controller.into(),
            path: d.path().to_owned(),
            reason: v2::unavailable_reason(controller, d.path(), d.mount()),
        })
    }

    /// `Ok` if limits and statistics of `controller` (`memory`, `cpu`, `pids`, …) can be
    /// used on this cgroup; otherwise the error that [`set_limits`](Self::set_limits) would
    /// give, saying why and what to do. stage1 calls it before starting apps.
    pub fn check_controller(&self, controller: &str) -> Result<(), CgroupError> {
        self.controller_target(controller).map(|_| ())
    }

    /// Applies `l`. All values are validated and every needed controller located first, so
    /// an error leaves the cgroup untouched (except when the kernel itself refuses a value).
    pub fn set_limits(&self, l: &Limits) -> Result<(), CgroupError> {
        l.validate()?;
        let mut plan = Vec::new();
        for controller in LIMIT_CONTROLLERS {
            // Only the presence of a limit matters for locating; v1 and v2 need the same ones.
            if limit_files(l, controller, false).is_empty() {
                continue;
            }
            let target = self.controller_target(controller)?;
            target_check(&target)?;
            plan.push((controller, target));
        }
        for (controller, target) in plan {
            let files = limit_files(l, controller, target.v2);
            if controller == "cpu" && !target.v2 {
                write_v1_cpu(target.dir, &files)?;
                continue;
            }
            for (file, value) in files {
                fsutil::write(&target.dir.join(file), &value)?;
            }
        }
        Ok(())
    }
}

fn target_check(t: &Target<'_>) -> Result<(), CgroupError> {
    if !fsutil::check_cgroupfs(t.dir, t.v2)? {
        return Err(CgroupError::Write {
            path: t.dir.to_owned(),
            value: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "the cgroup does not exist"),
        });
    }
    Ok(())
}

/// v1 checks quota/period against the parent's ratio on each write, so a new period with the
/// old quota can be refused (EINVAL) where the final pair is fine: then write the quota first
/// (crun does the same).
fn write_v1_cpu(dir: &Path, files: &[(&'static str, String)]) -> Result<(), CgroupError> {
    let get = |name| {
        files
            .iter()
            .find(|(f, _)| *f == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(shares) = get("cpu.shares") {
        fsutil::write(&dir.join("cpu.shares"), shares)?;
    }
    if let (Some(period), Some(quota)) = (get("cpu.cfs_period_us"), get("cpu.cfs_quota_us")) {
        let (pf, qf) = (dir.join("cpu.cfs_period_us"), dir.join("cpu.cfs_quota_us"));
        if fsutil::write(&pf, period).is_err() {
            fsutil::write(&qf, quota)?;
            fsutil::write(&pf, period)?;
        } else {
            fsutil::write(&qf, quota)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_conversion_matches_crun() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(1), 1);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(3), 2);
        assert_eq!(cpu_shares_to_weight(512), 59);
        assert_eq!(cpu_shares_to_weight(1024), 100);
        assert_eq!(cpu_shares_to_weight(2048), 174);
        assert_eq!(cpu_shares_to_weight(262_143), 10_000);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        assert_eq!(cpu_shares_to_weight(u64::MAX), 10_000);
        let mut last = 0;
        for s in (2..=262_144).step_by(97) {
            let w = cpu_shares_to_weight(s);
            assert!((1..=10_000).contains(&w) && w >= last, "{s} -> {w}");
            last = w;
        }
    }

    #[test]
    fn cpu_max_and_millicores() {
        assert_eq!(cpu_max_value(None), "max 100000");
        assert_eq!(
            cpu_max_value(Some(CpuQuota {
                quota_us: 50_000,
                period_us: 100_000
            })),
            "50000 100000"
        );
        assert_eq!(
            CpuQuota::from_millicores(500),
            CpuQuota {
                quota_us: 50_000,
                period_us: 100_000
            }
        );
        assert_eq!(CpuQuota::from_millicores(2000).quota_us, 200_000);
    }

    #[test]
    fn files_per_version() {
        let l = Limits {
            memory_max: Some(32 << 20),
            cpu_quota: Some(CpuQuota {
                quota_us: 20_000,
                period_us: 50_000,
            }),
            cpu_shares: Some(512),
            pids_max: Some(64),
        };
        assert_eq!(
            limit_files(&l, "memory", false),
            [("memory.limit_in_bytes", "33554432".into())]
        );
        assert_eq!(
            limit_files(&l, "memory", true),
            [("memory.max", "33554432".into())]
        );
        assert_eq!(
            limit_files(&l, "cpu", false),
            [
                ("cpu.shares", "512".into()),
                ("cpu.cfs_period_us", "50000".into()),
                ("cpu.cfs_quota_us", "20000".into())
            ]
        );
        assert_eq!(
            limit_files(&l, "cpu", true),
            [
                ("cpu.weight", "59".into()),
                ("cpu.max", "20000 50000".into())
            ]
        );
        assert_eq!(limit_files(&l, "pids", true), [("pids.max", "64".into())]);
        assert!(limit_files(&Limits::default(), "cpu", true).is_empty());
    }

    #[test]
    fn validation() {
        Limits::default().validate().unwrap();
        let bad = [
            Limits {
                memory_max: Some(0),
                ..Limits::default()
            },
            Limits {
                cpu_quota: Some(CpuQuota {
                    quota_us: 999,
                    period_us: 100_000,
                }),
                ..Limits::default()
            },
            Limits {
                cpu_quota: Some(CpuQuota {
                    quota_us: 5000,
                    period_us: 999,
                }),
                ..Limits::default()
            },
            Limits {
                cpu_shares: Some(1),
                ..Limits::default()
            },
            Limits {
                cpu_shares: Some(262_145),
                ..Limits::default()
            },
            Limits {
                pids_max: Some(0),
                ..Limits::default()
            },
        ];
        for l in bad {
            assert!(
                matches!(l.validate(), Err(CgroupError::InvalidLimit { .. })),
                "{l:?}"
            );
        }
    }
}
