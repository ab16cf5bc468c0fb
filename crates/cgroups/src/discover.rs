//! Finding the cgroup hierarchies, their mounts and the caller's cgroup in each.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::{Cgroup, CgroupDir};
use crate::parse::{self, CgroupMount};
use crate::{CgroupError, DEFAULT_V2_CONTROLLERS};

/// How the host arranges its cgroup hierarchies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Only v1 hierarchies (controllers each mounted under `/sys/fs/cgroup/<ctrl>`, possibly
    /// co-mounted, plus named hierarchies such as `name=systemd`).
    V1,
    /// v1 controller hierarchies plus a cgroup2 hierarchy (systemd's `/sys/fs/cgroup/unified`),
    /// which holds few or no controllers but tracks every process.
    Hybrid,
    /// One cgroup2 hierarchy holding the controllers, usually at `/sys/fs/cgroup`.
    V2,
}

/// Which kind of hierarchy a cgroup directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "hierarchy", rename_all = "lowercase")]
pub enum HierarchyKind {
    /// A v1 hierarchy with these controllers (`cpu`, `cpuacct`, …) or name (`name=systemd`).
    V1 {
        /// As in `/proc/<pid>/cgroup`, e.g. `["cpu", "cpuacct"]`.
        controllers: Vec<String>,
    },
    /// The cgroup2 (unified) hierarchy; its controllers are listed per cgroup in
    /// `cgroup.controllers`.
    V2,
}

impl HierarchyKind {
    /// Whether this is a v1 hierarchy with `controller` bound to it.
    pub fn is_v1_with(&self, controller: &str) -> bool {
        matches!(self, HierarchyKind::V1 { controllers } if controllers.iter().any(|c| c == controller))
    }

    /// The name used in messages: `cpu,cpuacct`, `name=systemd`, `unified`.
    pub fn name(&self) -> String {
        match self {
            HierarchyKind::V1 { controllers } => controllers.join(","),
            HierarchyKind::V2 => "unified".into(),
        }
    }
}

/// One mounted hierarchy and the caller's cgroup in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    kind: HierarchyKind,
    mount_point: PathBuf,
    current: PathBuf,
    cgroup_path: String,
}

impl Hierarchy {
    /// v1 (with its controllers) or v2.
    pub fn kind(&self) -> &HierarchyKind {
        &self.kind
    }

    /// Where the hierarchy is mounted (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/unified`).
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The directory of the discovered process's cgroup.
    pub fn current_dir(&self) -> &Path {
        &self.current
    }

    /// The process's cgroup as `/proc/<pid>/cgroup` names it (relative to our cgroup
    /// namespace: `/` inside a container with its own cgroup namespace).
    pub fn cgroup_path(&self) -> &str {
        &self.cgroup_path
    }
}

/// The mounted hierarchies and a process's cgroup in each, discovered once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    layout: Layout,
    hierarchies: Vec<Hierarchy>,
    v2_controllers: Vec<String>,
}

impl Hierarchies {
    /// The hierarchies mounted in our mount namespace and the calling process's cgroup in
    /// each (`/proc/self/mountinfo`, `/proc/self/cgroup`).
    pub fn discover() -> Result<Hierarchies, CgroupError> {
        Self::discover_at(Path::new("/proc/self/cgroup"))
    }

    /// Like [`discover`](Self::discover), with the cgroups of process `pid` (for example an
    /// app's process, to reach its cgroup from outside). Mounts are still ours
    /// (`/proc/self/mountinfo`): the directories are where *we* reach those cgroups.
    pub fn discover_for_pid(pid: i32) -> Result<Hierarchies, CgroupError> {
        Self::discover_at(&PathBuf::from(format!("/proc/{pid}/cgroup")))
    }

    fn discover_at(proc_cgroup: &Path) -> Result<Hierarchies, CgroupError> {
        let mountinfo = Path::new("/proc/self/mountinfo");
        let mounts = crate::fsutil::read(mountinfo)?;
        let cgroups = crate::fsutil::read(proc_cgroup)?;
        let mounts =
            parse::parse_mountinfo(&mounts).map_err(|(line, reason)| CgroupError::Parse {
                path: mountinfo.to_owned(),
                line,
                reason,
            })?;
        let lines =
            parse::parse_proc_cgroup(&cgroups).map_err(|(line, reason)| CgroupError::Parse {
                path: proc_cgroup.to_owned(),
                line,
                reason,
            })?;
        Self::build(&mounts, &lines)
    }

    /// The same from the texts of a mountinfo file and a `/proc/<pid>/cgroup` file, without
    /// touching the filesystem (for tests and for tools that read another namespace's files).
    pub fn from_proc_texts(mountinfo: &str, proc_cgroup: &str) -> Result<Hierarchies, CgroupError> {
        let mounts =
            parse::parse_mountinfo(mountinfo).map_err(|(line, reason)| CgroupError::Parse {
                path: "mountinfo".into(),
                line,
                reason,
            })?;
        let lines =
            parse::parse_proc_cgroup(proc_cgroup).map_err(|(line, reason)| CgroupError::Parse {
                path: "cgroup".into(),
                line,
                reason,
            })?;
        Self::build(&mounts, &lines)
    }

    fn build(
        mounts: &[CgroupMount],
        lines: &[parse::ProcCgroup],
    ) -> Result<Hierarchies, CgroupError> {
        let mut hierarchies = Vec::new();
        for line in lines {
            let candidates: Vec<&CgroupMount> = mounts
                .iter()
                .filter(|m| {
                    if line.v2 {
                        m.v2
                    } else {
                        parse::mount_has(m, &line.controllers)
                    }
                })
                .collect();
            let kind = if line.v2 {
                HierarchyKind::V2
            } else {
                HierarchyKind::V1 {
                    controllers: line.controllers.clone(),
                }
            };
            if candidates.is_empty() {
                tracing::debug!(
                    hierarchy = kind.name(),
                    "cgroup hierarchy not mounted; skipped"
                );
                continue;
            }
            // Several mounts of one hierarchy (bind mounts): the first that shows our cgroup.
            let found = candidates.iter().find_map(|m| {
                parse::dir_under(&m.mount_point, &m.root, &line.path).map(|d| (m, d))
            });
            let Some((mount, current)) = found else {
                return Err(CgroupError::Unreachable {
                    hierarchy: kind.name(),
                    cgroup: line.path.clone(),
                    roots: candidates.iter().map(|m| m.root.clone()).collect(),
                });
            };
            hierarchies.push(Hierarchy {
                kind,
                mount_point: mount.mount_point.clone(),
                current,
                cgroup_path: line.path.clone(),
            });
        }
        let layout = layout_of(&hierarchies).ok_or(CgroupError::NotMounted)?;
        Ok(Hierarchies {
            layout,
            hierarchies,
            v2_controllers: DEFAULT_V2_CONTROLLERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        })
    }

    /// v1, hybrid or v2.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Every mounted hierarchy the process is in, in `/proc/<pid>/cgroup` order.
    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }

    /// The hierarchy that holds `controller`: a v1 hierarchy bound to it, else the cgroup2
    /// hierarchy (whether a given cgroup there has it is per cgroup, see `cgroup.controllers`).
    pub fn hierarchy_of(&self, controller: &str) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| h.kind.is_v1_with(controller))
            .or_else(|| {
                self.hierarchies
                    .iter()
                    .find(|h| h.kind == HierarchyKind::V2)
            })
    }

    /// The discovered process's cgroup, as a [`Cgroup`] spanning every hierarchy. New pod
    /// cgroups are created inside it, so limits set on it (`systemd-run -p MemoryMax=…`)
    /// bound the pods.
    pub fn current(&self) -> Cgroup {
        let dirs = self
            .hierarchies
            .iter()
            .map(|h| CgroupDir::new(h.kind.clone(), h.mount_point.clone(), h.current.clone()))
            .collect();
        Cgroup::from_parts(self.layout, dirs, self.v2_controllers.clone())
    }

    /// The cgroup2 controllers that cgroups created from here enable for their children in
    /// `cgroup.subtree_control`, where the parent offers them; default
    /// [`DEFAULT_V2_CONTROLLERS`].
    pub fn v2_controllers(&self) -> &[String] {
        &self.v2_controllers
    }

    /// Replaces [`v2_controllers`](Self::v2_controllers).
    #[must_use]
    pub fn with_v2_controllers(mut self, controllers: &[&str]) -> Hierarchies {
        self.v2_controllers = controllers.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Only the v1 hierarchies bound to one of `controllers`, and the cgroup2 hierarchy: the
    /// ones a pod's cgroups are made in ([`crate::POD_CONTROLLERS`]). Every cgroup directory
    /// costs a `mkdir` per level and a `rmdir` at gc (a `cpuset` one also copies its parent's
    /// CPUs and memory nodes), so hierarchies whose controllers rkt never sets or reads
    /// (`blkio`, `freezer`, `cpuset`, `name=systemd`, …) are left alone: there a pod's
    /// processes stay in the caller's cgroup, as any child of the caller would. The layout
    /// stays the host's.
    #[must_use]
    pub fn for_controllers(&self, controllers: &[&str]) -> Hierarchies {
        let hierarchies = self
            .hierarchies
            .iter()
            .filter(|h| match &h.kind {
                HierarchyKind::V2 => true,
                HierarchyKind::V1 { controllers: have } => {
                    have.iter().any(|c| controllers.contains(&c.as_str()))
                }
            })
            .cloned()
            .collect();
        Hierarchies {
            layout: self.layout,
            hierarchies,
            v2_controllers: self.v2_controllers.clone(),
        }
    }

    /// Only the cgroup2 hierarchy, as a pure-v2 view (`None` without one). rkt itself uses
    /// every hierarchy; on a hybrid host this view exercises the v2 code paths for real.
    pub fn unified_only(&self) -> Option<Hierarchies> {
        let v2: Vec<Hierarchy> = self
            .hierarchies
            .iter()
            .filter(|h| h.kind == HierarchyKind::V2)
            .cloned()
            .collect();
        (!v2.is_empty()).then(|| Hierarchies {
            layout: Layout::V2,
            hierarchies: v2,
            v2_controllers: self.v2_controllers.clone(),
        })
    }
}

/// v1 controllers and a cgroup2 mount make hybrid; named v1 hierarchies alone
/// (`name=systemd` for old containers on a v2 host) do not make a v1 layout.
fn layout_of(hierarchies: &[Hierarchy]) -> Option<Layout> {
    let v1_controllers = hierarchies.iter().any(|h| match &h.kind {
        HierarchyKind::V1 { controllers } => controllers.iter().any(|c| !c.starts_with("name=")),
        HierarchyKind::V2 => false,
    });
    let v1_any = hierarchies.iter().any(|h| h.kind != HierarchyKind::V2);
    let v2 = hierarchies.iter().any(|h| h.kind == HierarchyKind::V2);
    match (v1_controllers, v2) {
        (true, true) => Some(Layout::Hybrid),
        (true, false) => Some(Layout::V1),
        (false, true) => Some(Layout::V2),
        (false, false) if v1_any => Some(Layout::V1),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_with_comounted_controllers() {
        let cg = "9:name=systemd:/user.slice\n4:memory:/process_api/a\n3:blkio:/\n\
                  2:cpu,cpuacct:/\n0::/user.slice\n";
        let h = Hierarchies::from_proc_texts(HYBRID_MOUNTS, cg).unwrap();
        assert_eq!(h.layout(), Layout::Hybrid);
        // blkio is not mounted: skipped.
        assert_eq!(h.hierarchies().len(), 4);
        let mem = h.hierarchy_of("memory").unwrap();
        assert_eq!(
            mem.current_dir(),
            Path::new("/sys/fs/cgroup/memory/process_api/a")
        );
        assert_eq!(mem.cgroup_path(), "/process_api/a");
        let cpuacct = h.hierarchy_of("cpuacct").unwrap();
        assert_eq!(
            cpuacct.mount_point(),
            Path::new("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(cpuacct.kind().name(), "cpu,cpuacct");
        // Not in v1: the unified hierarchy is where it would be.
        assert_eq!(h.hierarchy_of("io").unwrap().kind(), &HierarchyKind::V2);
        let unified = h.unified_only().unwrap();
        assert_eq!(unified.layout(), Layout::V2);
        assert_eq!(
            unified.hierarchies()[0].current_dir(),
            Path::new("/sys/fs/cgroup/unified/user.slice")
        );
    }

    #[test]
    fn only_the_hierarchies_pods_use() {
        let cg = "9:name=systemd:/user.slice\n4:memory:/process_api/a\n3:blkio:/\n\
                  2:cpu,cpuacct:/\n0::/user.slice\n";
        let mounts = format!(
            "{HYBRID_MOUNTS}36 31 0:33 / /sys/fs/cgroup/blkio rw - cgroup cgroup rw,blkio\n"
        );
        let h = Hierarchies::from_proc_texts(&mounts, cg).unwrap();
        assert_eq!(h.hierarchies().len(), 5);
        let p = h.for_controllers(crate::POD_CONTROLLERS);
        let names: Vec<String> = p.hierarchies().iter().map(|h| h.kind().name()).collect();
        assert_eq!(names, ["memory", "cpu,cpuacct", "unified"]);
        assert_eq!(p.layout(), Layout::Hybrid);
        assert_eq!(p.current().dirs().len(), 3);
    }

    #[test]
    fn pure_v1_and_pure_v2() {
        let v1 = "32 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  33 31 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n";
        let h =
            Hierarchies::from_proc_texts(v1, "2:memory:/a\n1:name=systemd:/a\n0::/a\n").unwrap();
        assert_eq!(h.layout(), Layout::V1);
        assert_eq!(h.hierarchies().len(), 2);
        assert!(h.unified_only().is_none());

        let v2 = "29 25 0:26 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        let h = Hierarchies::from_proc_texts(v2, "0::/system.slice/x.scope\n").unwrap();
        assert_eq!(h.layout(), Layout::V2);
        assert_eq!(
            h.current().dirs()[0].path(),
            Path::new("/sys/fs/cgroup/system.slice/x.scope")
        );
        // A named v1 hierarchy next to a full cgroup2 is still a v2 host.
        let both = format!("{v2}30 25 0:27 / /run/systemd-v1 rw - cgroup cgroup rw,name=systemd\n");
        let h = Hierarchies::from_proc_texts(&both, "1:name=systemd:/\n0::/\n").unwrap();
        assert_eq!(h.layout(), Layout::V2);
    }

    #[test]
    fn cgroup_namespace_and_bind_mounted_parts() {
        // Inside a cgroup namespace everything looks like the root.
        let v2 = "29 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = Hierarchies::from_proc_texts(v2, "0::/\n").unwrap();
        assert_eq!(h.current().dirs()[0].path(), Path::new("/sys/fs/cgroup"));
        // A container that sees only its own cgroup at the mount point (no namespace).
        let v1 = "30 25 0:27 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let h = Hierarchies::from_proc_texts(v1, "5:memory:/docker/abc/sub\n").unwrap();
        assert_eq!(
            h.current().dirs()[0].path(),
            Path::new("/sys/fs/cgroup/memory/sub")
        );
        // Our cgroup outside what is mounted: an error that says so.
        let err = Hierarchies::from_proc_texts(v1, "5:memory:/elsewhere\n").unwrap_err();
        assert!(matches!(err, CgroupError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("/elsewhere"));
    }

    #[test]
    fn nothing_mounted() {
        let err = Hierarchies::from_proc_texts("1 0 8:1 / / rw - ext4 /dev/sda rw\n", "0::/\n")
            .unwrap_err();
        assert!(matches!(err, CgroupError::NotMounted));
    }
}
