//! Pod and app cgroups over the cgroup filesystem, on v1, hybrid and v2 hosts.
//!
//! A pod gets a cgroup **inside the cgroup of the process that started rkt**, so whatever
//! limits that cgroup (`systemd-run -p MemoryMax=1G rkt run …`, a kubelet's pod slice) bounds
//! the pod too; each app gets a cgroup inside the pod's:
//!
//! ```text
//! <caller's cgroup>/            in the hierarchies of POD_CONTROLLERS (v1 memory, cpu,
//!   rkt-<uuid>/                 cpuacct, pids, devices) and the unified one; in v1 it
//!                               holds stage1 and the pod's PID 1 itself; the device list
//!     _supervisor/              cgroup2 only: stage1 (when it must move) and the pod's PID 1
//!     <app>/                    one per app; limits are set here
//! ```
//!
//! ```no_run
//! use rkt_cgroups::{Cgroup, CpuQuota, Hierarchies, Limits};
//! # fn main() -> Result<(), rkt_cgroups::CgroupError> {
//! let h = Hierarchies::discover()?.for_controllers(rkt_cgroups::POD_CONTROLLERS);
//! let pod = Cgroup::create_pod_for_self(&h, "rkt-4b1c0d2e")?.pod;
//! std::fs::write("/var/lib/rkt/pods/run/4b1c0d2e/cgroup", serde_json::to_vec(&pod).unwrap()).unwrap();
//! let app = pod.create_child("web")?;
//! app.set_limits(&Limits { memory_max: Some(256 << 20), cpu_quota: Some(CpuQuota::from_millicores(500)), ..Limits::default() })?;
//! # let app_pid = 0;
//! app.add_process(app_pid)?;
//! // … later, from `rkt gc`, with the record read back:
//! pod.kill_all()?;
//! pod.remove()?;
//! # Ok(()) }
//! ```
//!
//! # Layouts
//! [`Hierarchies::discover`] reads `/proc/self/mountinfo` and `/proc/self/cgroup`: every v1
//! hierarchy (controllers alone or co-mounted like `cpu,cpuacct`, and named ones like
//! `name=systemd`) and the cgroup2 hierarchy, mounted anywhere, also from inside a cgroup
//! namespace (where the caller's cgroup reads `/`) or a container that sees only its own part
//! of a hierarchy. A hierarchy that is not mounted is skipped; a limit that needs its
//! controller is then an error naming it. **Hybrid** hosts (this project's CI: v1 controllers,
//! a controller-less cgroup2 at `/sys/fs/cgroup/unified`) put limits in v1 and track processes
//! in both.
//!
//! # Moving processes cheaply
//! A pid written to `cgroup.procs` takes the kernel's global threadgroup lock, whose first
//! taking after a quiet spell waits for an RCU grace period: ~8 ms, most of a pod's start.
//! Two paths avoid it, and stage1 uses them: a single-threaded process moves itself in the v1
//! hierarchies through `tasks` ([`Cgroup::join_v1`]), and a child is forked straight into the
//! cgroup2 directory ([`Cgroup::open_v2`], `clone3(CLONE_INTO_CGROUP)`).
//!
//! # cgroup v2's no-internal-processes rule
//! On v2 a cgroup can pass controllers to its children only while it holds no processes
//! itself. The caller's cgroup holds the caller, so [`Cgroup::create_pod_with_supervisor`]
//! (and [`Cgroup::create_pod_for_self`], when that helps) moves the caller into
//! `<pod>/_supervisor` first and then enables the controllers top-down
//! (what crun and runc do in nested setups, and what Docker-in-Docker's entrypoint does by
//! hand). If the caller shares its cgroup with other processes, rkt does not move them: the
//! pod runs without controllers and a limit is an error that says so and suggests
//! `systemd-run --scope -p Delegate=yes rkt run …`.
//!
//! # What is not here
//! No systemd/D-Bus manager (there is no systemd on the target hosts; a delegated scope made
//! by the user works as shown above), no freezer, no swap limit.

#![forbid(unsafe_code)]

mod cgroup;
mod device_filter;
mod devices;
mod discover;
mod error;
mod fsutil;
mod limits;
mod parse;
mod stats;
mod v2;

pub use cgroup::{Cgroup, CgroupDir, PodCgroup};
pub use devices::{DEFAULT_DEVICES, DeviceControl, DeviceRule};
pub use discover::{Hierarchies, Hierarchy, HierarchyKind, Layout};
pub use error::CgroupError;
pub use limits::{CpuQuota, Limits, cpu_max_value, cpu_shares_to_weight};

/// Name of the cgroup2 leaf, below the pod's, that holds the supervisor (see
/// [`Cgroup::supervisor`]). The underscore keeps it apart from app names (appc names allow
/// only `[a-z0-9-]`).
pub const SUPERVISOR: &str = "_supervisor";

/// The v1 controllers whose hierarchies get pod cgroups (see
/// [`Hierarchies::for_controllers`]): the ones rkt sets limits with or reads, plus `devices`
/// for the device list. The cgroup2 hierarchy is always used.
pub const POD_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids", "devices"];

/// cgroup2 controllers enabled for children on the way down to rkt's cgroups, where offered:
/// the ones rkt sets limits with or reads. Change with [`Hierarchies::with_v2_controllers`].
pub const DEFAULT_V2_CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];
