//! [`Cgroup`]: one logical cgroup, a directory in each hierarchy; creating, joining, listing
//! and removing it.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::discover::{Hierarchies, HierarchyKind, Layout};
use crate::{CgroupError, DEFAULT_V2_CONTROLLERS, SUPERVISOR, fsutil, v2};

/// How long [`Cgroup::remove`] retries a cgroup that is empty but still busy (its last
/// processes are being torn down).
const REMOVE_WAIT: Duration = Duration::from_secs(2);

/// One cgroup directory: which hierarchy, where that hierarchy is mounted, and the directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupDir {
    #[serde(flatten)]
    kind: HierarchyKind,
    mount: PathBuf,
    path: PathBuf,
    /// Made by this process with `mkdir` in a parent that was checked: it needs no
    /// [`check`](Self::check) of its own. A record read back never is.
    #[serde(skip)]
    made_here: bool,
}

/// Equal when they name the same directory, however they were come by.
impl PartialEq for CgroupDir {
    fn eq(&self, other: &Self) -> bool {
        (&self.kind, &self.mount, &self.path) == (&other.kind, &other.mount, &other.path)
    }
}

impl Eq for CgroupDir {}

impl std::hash::Hash for CgroupDir {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.kind, &self.mount, &self.path).hash(state);
    }
}

impl CgroupDir {
    pub(crate) fn new(kind: HierarchyKind, mount: PathBuf, path: PathBuf) -> CgroupDir {
        CgroupDir {
            kind,
            mount,
            path,
            made_here: false,
        }
    }

    /// v1 (with its controllers) or v2.
    pub fn kind(&self) -> &HierarchyKind {
        &self.kind
    }

    /// The hierarchy's mount point.
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn is_v2(&self) -> bool {
        self.kind == HierarchyKind::V2
    }

    /// Whether the directory exists, after making sure it is on a cgroup filesystem. A
    /// directory this process made is taken as it is: a `statfs` of each of a pod's
    /// directories before each write was a tenth of stage1's time, to guard against a
    /// damaged record that a fresh directory cannot be (an operation on one that went away
    /// since fails on its own).
    pub(crate) fn check(&self) -> Result<bool, CgroupError> {
        if self.made_here {
            return Ok(true);
        }
        fsutil::check_cgroupfs(&self.path, self.is_v2())
    }
}

/// One logical cgroup: a directory in every hierarchy it spans (each v1 hierarchy and the
/// unified one). Serializable, so stage1 records a pod's cgroup in the pod directory and gc,
/// enter and stats reopen it later; a deserialized record is checked for well-formed paths,
/// and every operation checks that the directories are on a cgroup filesystem before it
/// writes, kills or removes anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCgroup")]
pub struct Cgroup {
    layout: Layout,
    dirs: Vec<CgroupDir>,
    v2_controllers: Vec<String>,
}

/// The serialized form, before validation.
#[derive(Deserialize)]
struct RawCgroup {
    layout: Layout,
    dirs: Vec<CgroupDir>,
    #[serde(default = "default_v2_controllers")]
    v2_controllers: Vec<String>,
}

fn default_v2_controllers() -> Vec<String> {
    DEFAULT_V2_CONTROLLERS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

impl TryFrom<RawCgroup> for Cgroup {
    type Error = CgroupError;

    fn try_from(raw: RawCgroup) -> Result<Cgroup, CgroupError> {
        let normal = |p: &Path| {
            p.is_absolute()
                && p.components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        };
        if raw.dirs.is_empty() {
            return Err(CgroupError::InvalidRecord("no directories".into()));
        }
        for d in &raw.dirs {
            if !normal(&d.mount) || !normal(&d.path) || !d.path.starts_with(&d.mount) {
                return Err(CgroupError::InvalidRecord(format!(
                    "{} is not a plain absolute path under the mount point {}",
                    d.path.display(),
                    d.mount.display()
                )));
            }
            if matches!(&d.kind, HierarchyKind::V1 { controllers } if controllers.is_empty()) {
                return Err(CgroupError::InvalidRecord(format!(
                    "{}: a v1 hierarchy without controllers",
                    d.path.display()
                )));
            }
        }
        Ok(Cgroup {
            layout: raw.layout,
            dirs: raw.dirs,
            v2_controllers: raw.v2_controllers,
        })
    }
}

/// What [`Cgroup::create_pod_with_supervisor`] made: the pod's cgroup and where the supervisor
/// is in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// `<caller's cgroup>/<name>`: record this one; apps go in its children.
    pub pod: Cgroup,
    /// The supervisor's cgroup ([`Cgroup::supervisor`]), holding the process that was given.
    pub supervisor: Cgroup,
}

impl Cgroup {
    pub(crate) fn from_parts(
        layout: Layout,
        dirs: Vec<CgroupDir>,
        v2_controllers: Vec<String>,
    ) -> Cgroup {
        Cgroup {
            layout,
            dirs,
            v2_controllers,
        }
    }

    /// Creates `<caller's cgroup>/<name>` in every hierarchy of `h`, so limits on the
    /// caller's cgroup bound the pod. No process is moved; on cgroup v2 the pod gets the
    /// controllers only if the caller's cgroup can enable them for its children (it is the
    /// root, or already does). A pod that runs its own supervisor uses
    /// [`create_pod_with_supervisor`](Self::create_pod_with_supervisor).
    pub fn create_pod(h: &Hierarchies, name: &str) -> Result<Cgroup, CgroupError> {
        h.current().create_child(name)
    }

    /// Creates the pod cgroup as [`create_pod`](Self::create_pod) does, plus the leaf
    /// `<pod>/`[`SUPERVISOR`], and moves process `pid` (stage1 passes its own pid; it must be
    /// in `h`'s discovered cgroup) into that leaf in every hierarchy.
    ///
    /// This is what makes limits work on cgroup v2, where a cgroup with controllers enabled for
    /// its children may hold no processes: once `pid` has left the caller's cgroup, that cgroup
    /// is empty if `pid` was its only process (as under `systemd-run --scope -p Delegate=yes`),
    /// so the controllers of [`Hierarchies::v2_controllers`] are enabled in its
    /// `cgroup.subtree_control`, then in the pod's. If other processes share the caller's
    /// cgroup the pod is still made, without those controllers, and [`set_limits`] or
    /// [`check_controller`] say why. On failure `pid` is moved back and the pod removed.
    ///
    /// [`set_limits`]: Self::set_limits
    /// [`check_controller`]: Self::check_controller
    pub fn create_pod_with_supervisor(
        h: &Hierarchies,
        name: &str,
        pid: i32,
    ) -> Result<PodCgroup, CgroupError> {
        let parent = h.current();
        let pod = parent.create_child(name)?;
        let mut moved = false;
        let result = (|| {
            let supervisor = pod.create_supervisor()?;
            moved = true;
            supervisor.add_process(pid)?;
            for (p, d) in parent.dirs.iter().zip(&pod.dirs).filter(|(p, _)| p.is_v2()) {
                v2::enable_subtree(&p.path, &parent.v2_controllers)?;
                v2::enable_subtree(&d.path, &parent.v2_controllers)?;
            }
            Ok(supervisor)
        })();
        match result {
            Ok(supervisor) => Ok(PodCgroup { pod, supervisor }),
            Err(e) => {
                let back = if moved {
                    parent.add_process(pid)
                } else {
                    Ok(())
                };
                abandon(&pod, back);
                Err(e)
            }
        }
    }

    /// Creates the pod cgroup and its [`SUPERVISOR`] leaf for the calling process, which must
    /// be single-threaded (stage1), with the outcome of
    /// [`create_pod_with_supervisor`](Self::create_pod_with_supervisor) but without its
    /// migration cost. The process joins the leaf in every v1 hierarchy by its thread
    /// ([`join_v1`](Self::join_v1), microseconds). In the cgroup2 hierarchy a move waits for an
    /// RCU grace period, so the process moves there only when that is what lets the
    /// controllers be enabled: the caller's cgroup is not the root, offers one of
    /// [`Hierarchies::v2_controllers`] it does not pass down yet, and holds no other process.
    /// Otherwise it stays in the caller's cgroup2 cgroup (which could not pass controllers down
    /// either way), and the supervisor is forked into the leaf instead (`clone3` with
    /// `CLONE_INTO_CGROUP` on [`open_v2`](Self::open_v2) of `supervisor`). On failure the
    /// process is moved back and the pod removed.
    pub fn create_pod_for_self(h: &Hierarchies, name: &str) -> Result<PodCgroup, CgroupError> {
        let parent = h.current();
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let pod = parent.create_child(name)?;
        let (mut moved_v1, mut moved_v2) = (false, false);
        let result = (|| {
            let supervisor = pod.create_supervisor()?;
            moved_v1 = true;
            supervisor.join_v1()?;
            let v2_dirs = parent.dirs.iter().zip(&pod.dirs).zip(&supervisor.dirs);
            for ((p, d), s) in v2_dirs.filter(|((p, _), _)| p.is_v2()) {
                if !v2::held_back_only_by(&p.path, &parent.v2_controllers, me)? {
                    continue;
                }
                moved_v2 = true;
                add_to_dir(s, me)?;
                v2::enable_subtree(&p.path, &parent.v2_controllers)?;
                v2::enable_subtree(&d.path, &parent.v2_controllers)?;
            }
            Ok(supervisor)
        })();
        match result {
            Ok(supervisor) => Ok(PodCgroup { pod, supervisor }),
            Err(e) => {
                let back = if moved_v1 { parent.join_v1() } else { Ok(()) }.and_then(|()| {
                    if moved_v2 {
                        parent.add_process_v2(me)
                    } else {
                        Ok(())
                    }
                });
                abandon(&pod, back);
                Err(e)
            }
        }
    }

    /// Where a pod's supervisor (and stage1) is in this pod cgroup: the pod cgroup itself in
    /// the v1 hierarchies, which allow processes beside child cgroups, and the leaf
    /// `<pod>/`[`SUPERVISOR`] in the cgroup2 one, where a cgroup that passes controllers to
    /// its children may hold no processes. (A v1 leaf as well would cost five more `mkdir`s
    /// and a second device list per pod.) Nothing is created.
    pub fn supervisor(&self) -> Result<Cgroup, CgroupError> {
        let leaf = self.child(SUPERVISOR)?;
        let dirs = self
            .dirs
            .iter()
            .zip(leaf.dirs)
            .map(|(pod, leaf)| if pod.is_v2() { leaf } else { pod.clone() })
            .collect();
        Ok(Cgroup {
            layout: self.layout,
            dirs,
            v2_controllers: self.v2_controllers.clone(),
        })
    }

    /// Creates the cgroup2 leaf of [`supervisor`](Self::supervisor) (if this pod spans the
    /// cgroup2 hierarchy) and returns the supervisor's cgroup.
    fn create_supervisor(&self) -> Result<Cgroup, CgroupError> {
        let mut supervisor = self.supervisor()?;
        for (parent, dir) in self.dirs.iter().zip(&mut supervisor.dirs) {
            if dir.is_v2() {
                create_dir(parent, dir, &self.v2_controllers)?;
                dir.made_here = true;
            }
        }
        Ok(supervisor)
    }

    /// The child `name` of this cgroup, without creating it (to reopen an app's cgroup).
    pub fn child(&self, name: &str) -> Result<Cgroup, CgroupError> {
        validate_name(name)?;
        let dirs = self
            .dirs
            .iter()
            .map(|d| CgroupDir {
                path: d.path.join(name),
                made_here: false,
                ..d.clone()
            })
            .collect();
        Ok(Cgroup {
            layout: self.layout,
            dirs,
            v2_controllers: self.v2_controllers.clone(),
        })
    }

    /// The child `name`, not created yet but taken as made here: for a copy handed to a
    /// process that uses it only once [`create_child`](Self::create_child) of the same name has
    /// succeeded in this one (stage1 makes its apps' cgroups while the supervisor, forked with
    /// these copies, waits for its release). That process then skips the `statfs` a merely
    /// named cgroup gets before each operation, as a cgroup made by itself does.
    pub fn child_made_before_use(&self, name: &str) -> Result<Cgroup, CgroupError> {
        let mut child = self.child(name)?;
        for d in &mut child.dirs {
            d.made_here = true;
        }
        Ok(child)
    }

    /// Creates the child `name` (an app's cgroup) in every hierarchy. It must not exist yet.
    /// On v1, `cpuset` children get their parent's CPUs and memory nodes (the kernel refuses
    /// processes in an empty cpuset). On v2 this cgroup first enables its available
    /// [`Hierarchies::v2_controllers`] for its children, if it holds no processes.
    pub fn create_child(&self, name: &str) -> Result<Cgroup, CgroupError> {
        let mut child = self.child(name)?;
        for (i, (parent, dir)) in self.dirs.iter().zip(&child.dirs).enumerate() {
            if let Err(e) = create_dir(parent, dir, &self.v2_controllers) {
                for made in child.dirs[..i].iter().rev() {
                    if let Err(rm) = fs::remove_dir(&made.path) {
                        tracing::warn!(
                            "cannot remove {} after a failed create: {rm}",
                            made.path.display()
                        );
                    }
                }
                return Err(e);
            }
        }
        for d in &mut child.dirs {
            d.made_here = true;
        }
        Ok(child)
    }

    /// v1, hybrid or v2, as discovered when the cgroup was made.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The cgroup's directory in each hierarchy.
    pub fn dirs(&self) -> &[CgroupDir] {
        &self.dirs
    }

    /// Whether the cgroup's directory exists in any hierarchy.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.path.is_dir())
    }

    /// Moves process `pid` (all its threads) into this cgroup in every hierarchy.
    ///
    /// Writing a pid to `cgroup.procs` takes the kernel's global threadgroup lock, whose first
    /// taking after a quiet spell waits for an RCU grace period (~8 ms on a 2-core machine);
    /// a single-threaded process moving itself avoids it with [`join_v1`](Self::join_v1), and
    /// a child forked into the cgroup2 directory ([`open_v2`](Self::open_v2)) needs no move.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            add_to_dir(d, pid)?;
        }
        Ok(())
    }

    /// Moves process `pid` into this cgroup in the cgroup2 hierarchy only (what
    /// `clone3(CLONE_INTO_CGROUP)` would have done, for a kernel without it). Nothing if the
    /// cgroup spans no cgroup2 hierarchy.
    pub fn add_process_v2(&self, pid: i32) -> Result<(), CgroupError> {
        for d in self.dirs.iter().filter(|d| d.is_v2()) {
            add_to_dir(d, pid)?;
        }
        Ok(())
    }

    /// Moves the calling thread into this cgroup in every v1 hierarchy by writing `0` to each
    /// hierarchy's `tasks` file. For a single-threaded process, which this checks
    /// ([`CgroupError::Threaded`] otherwise), that moves the whole process, and children it
    /// forks afterwards are born here. Unlike [`add_process`](Self::add_process) it takes no
    /// global lock (the kernel skips the threadgroup lock for a thread moving itself), so it
    /// costs microseconds, not a grace period. cgroup2 has no such path (`cgroup.threads`
    /// moves threads only inside a threaded subtree); there, fork into the cgroup with
    /// [`open_v2`](Self::open_v2).
    pub fn join_v1(&self) -> Result<(), CgroupError> {
        let mut v1 = self.dirs.iter().filter(|d| !d.is_v2()).peekable();
        let Some(first) = v1.peek() else {
            return Ok(());
        };
        let threads = fsutil::thread_count()?;
        if threads != 1 {
            return Err(CgroupError::Threaded {
                path: first.path.clone(),
                threads,
            });
        }
        for d in v1 {
            d.check()?;
            fsutil::write(&d.path.join("tasks"), "0")?;
        }
        Ok(())
    }

    /// This cgroup's cgroup2 directory, opened (`O_PATH`) for `clone3(2)` with
    /// `CLONE_INTO_CGROUP`, so a child is born in it; `None` if the cgroup spans no cgroup2
    /// hierarchy.
    pub fn open_v2(&self) -> Result<Option<OwnedFd>, CgroupError> {
        let Some(d) = self.dirs.iter().find(|d| d.is_v2()) else {
            return Ok(None);
        };
        d.check()?;
        rustix::fs::open(
            &d.path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(Some)
        .map_err(|e| CgroupError::Read {
            path: d.path.clone(),
            source: e.into(),
        })
    }

    /// The processes in this cgroup and every cgroup below it, in any hierarchy (sorted,
    /// without duplicates). A cgroup that does not exist holds none.
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let mut pids = Vec::new();
        for d in &self.dirs {
            if !d.check()? {
                continue;
            }
            for sub in fsutil::subtree_postorder(&d.path)? {
                pids.extend(fsutil::read_pids(&sub)?);
            }
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Removes this cgroup and every cgroup below it, in every hierarchy. A directory that is
    /// already gone is fine. A cgroup that still holds processes is an error
    /// ([`CgroupError::Busy`]) right away; an empty one that the kernel still calls busy (its
    /// last processes are being torn down) is retried for a moment. Every hierarchy is tried
    /// even if one fails; the first error is returned.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for d in &self.dirs {
            if let Err(e) = remove_tree(d) {
                tracing::debug!("cgroup removal: {e}");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// After a failed pod setup: says if moving the process back (`back`) failed, and removes the
/// half-made pod cgroup. The setup's own error is what the caller returns.
fn abandon(pod: &Cgroup, back: Result<(), CgroupError>) {
    if let Err(back) = back {
        tracing::warn!("cannot move back after a failed pod cgroup setup: {back}");
    }
    if let Err(rm) = pod.remove() {
        tracing::warn!("cannot remove the half-made pod cgroup: {rm}");
    }
}

/// Writes `pid` to `d`'s `cgroup.procs`, with the errors a caller can act on.
fn add_to_dir(d: &CgroupDir, pid: i32) -> Result<(), CgroupError> {
    let value = pid.to_string();
    d.check()?;
    let file = d.path.join("cgroup.procs");
    fsutil::write_raw(&file, &value).map_err(|source| {
        match rustix::io::Errno::from_io_error(&source) {
            Some(rustix::io::Errno::SRCH) => CgroupError::NoSuchProcess {
                pid,
                path: d.path.clone(),
            },
            Some(rustix::io::Errno::BUSY) if d.is_v2() => CgroupError::NotALeaf {
                pid,
                path: d.path.clone(),
            },
            _ => CgroupError::Write {
                path: file.clone(),
                value: value.clone(),
                source,
            },
        }
    })
}

fn create_dir(
    parent: &CgroupDir,
    dir: &CgroupDir,
    v2_controllers: &[String],
) -> Result<(), CgroupError> {
    if !parent.check()? {
        return Err(CgroupError::Create {
            path: dir.path.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "the parent cgroup does not exist"),
        });
    }
    if parent.is_v2() {
        v2::enable_subtree(&parent.path, v2_controllers)?;
    }
    match fs::create_dir(&dir.path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(CgroupError::AlreadyExists {
                path: dir.path.clone(),
            });
        }
        Err(source) => {
            return Err(CgroupError::Create {
                path: dir.path.clone(),
                source,
            });
        }
    }
    if parent.kind.is_v1_with("cpuset")
        && let Err(e) = init_cpuset(&parent.path, &dir.path)
    {
        let _ = fs::remove_dir(&dir.path);
        return Err(e);
    }
    Ok(())
}

/// A new v1 cpuset cgroup starts with no CPUs and no memory nodes (unless the parent has
/// `cgroup.clone_children`), and the kernel refuses to add a process to it: copy the parent's.
fn init_cpuset(parent: &Path, child: &Path) -> Result<(), CgroupError> {
    for name in ["cpus", "mems"] {
        // Mounted with `noprefix` the files lack the `cpuset.` prefix.
        let prefixed = format!("cpuset.{name}");
        let file = if parent.join(&prefixed).exists() {
            prefixed
        } else {
            name.to_owned()
        };
        if !fsutil::read(&child.join(&file))?.trim().is_empty() {
            continue;
        }
        let value = fsutil::read(&parent.join(&file))?;
        fsutil::write(&child.join(&file), value.trim())?;
    }
    Ok(())
}

fn remove_tree(d: &CgroupDir) -> Result<(), CgroupError> {
    if !d.check()? {
        return Ok(());
    }
    for sub in fsutil::subtree_postorder(&d.path)? {
        remove_one(&sub)?;
    }
    Ok(())
}

fn remove_one(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + REMOVE_WAIT;
    loop {
        let err = match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => e,
        };
        if rustix::io::Errno::from_io_error(&err) != Some(rustix::io::Errno::BUSY) {
            return Err(CgroupError::Remove {
                path: dir.to_owned(),
                source: err,
            });
        }
        let pids = fsutil::read_pids(dir)?;
        if !pids.is_empty() {
            return Err(CgroupError::Busy {
                path: dir.to_owned(),
                pids,
            });
        }
        if Instant::now() >= deadline {
            return Err(CgroupError::Remove {
                path: dir.to_owned(),
                source: err,
            });
        }
        sleep(Duration::from_millis(10));
    }
}

/// A name must be one directory name that `/proc/<pid>/cgroup` can show on one line.
fn validate_name(name: &str) -> Result<(), CgroupError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > 255 {
        Some("longer than 255 bytes")
    } else if name == "." || name == ".." {
        Some("not a directory name")
    } else if !name.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        Some("only printable ASCII without '/' or spaces is allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CgroupError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Cgroup {
        let mounts = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        Hierarchies::from_proc_texts(mounts, "2:cpu,cpuacct:/a\n0::/a\n")
            .unwrap()
            .current()
    }

    #[test]
    fn names() {
        for bad in ["", ".", "..", "a/b", "a b", "a\nb", &"x".repeat(256)] {
            assert!(
                matches!(validate_name(bad), Err(CgroupError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        for good in ["rkt-0a1b", SUPERVISOR, "app.scope", "x@1:2"] {
            validate_name(good).unwrap();
        }
    }

    #[test]
    fn child_paths() {
        let c = sample().child("pod").unwrap().child("app").unwrap();
        let paths: Vec<&Path> = c.dirs().iter().map(CgroupDir::path).collect();
        assert_eq!(
            paths,
            [
                Path::new("/sys/fs/cgroup/cpu,cpuacct/a/pod/app"),
                Path::new("/sys/fs/cgroup/unified/a/pod/app")
            ]
        );
    }

    #[test]
    fn the_supervisor_is_in_the_pod_cgroup_in_v1_and_in_a_leaf_in_cgroup2() {
        let s = sample().child("pod").unwrap().supervisor().unwrap();
        let paths: Vec<&Path> = s.dirs().iter().map(CgroupDir::path).collect();
        assert_eq!(
            paths,
            [
                Path::new("/sys/fs/cgroup/cpu,cpuacct/a/pod"),
                Path::new("/sys/fs/cgroup/unified/a/pod/_supervisor")
            ]
        );
    }

    #[test]
    fn record_round_trip_and_validation() {
        let c = sample().child("pod").unwrap();
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            json.contains(r#""hierarchy":"v1","controllers":["cpu","cpuacct"]"#),
            "{json}"
        );
        assert!(json.contains(r#""layout":"hybrid""#), "{json}");
        let back: Cgroup = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);

        let evil = json.replace(
            "/sys/fs/cgroup/unified/a/pod",
            "/sys/fs/cgroup/unified/../../../etc",
        );
        assert!(serde_json::from_str::<Cgroup>(&evil).is_err());
        let outside = json.replace("/sys/fs/cgroup/unified/a/pod", "/etc");
        assert!(serde_json::from_str::<Cgroup>(&outside).is_err());
        let empty = r#"{"layout":"v2","dirs":[]}"#;
        assert!(serde_json::from_str::<Cgroup>(empty).is_err());
        // Older records without v2_controllers get the default.
        let old = r#"{"layout":"v2","dirs":[{"hierarchy":"v2","mount":"/sys/fs/cgroup","path":"/sys/fs/cgroup/p"}]}"#;
        let c: Cgroup = serde_json::from_str(old).unwrap();
        assert_eq!(c.v2_controllers, DEFAULT_V2_CONTROLLERS);
    }

    #[test]
    fn only_directories_made_here_skip_the_check() {
        let mut c = sample().child("pod").unwrap();
        for d in &mut c.dirs {
            d.made_here = true;
        }
        // What is read back, or merely named, is checked again.
        let back: Cgroup = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(back.dirs.iter().all(|d| !d.made_here));
        assert!(c.child("app").unwrap().dirs.iter().all(|d| !d.made_here));
        // A child made by this process before the copy's holder uses it is taken as made.
        let promised = c.child_made_before_use("app").unwrap();
        assert_eq!(promised, c.child("app").unwrap());
        assert!(promised.dirs.iter().all(|d| d.made_here));
    }

    #[test]
    fn a_record_pointing_off_cgroupfs_is_refused() {
        let old = r#"{"layout":"v2","dirs":[{"hierarchy":"v2","mount":"/","path":"/tmp"}]}"#;
        let c: Cgroup = serde_json::from_str(old).unwrap();
        assert!(matches!(c.procs(), Err(CgroupError::NotCgroupFs { .. })));
        assert!(matches!(c.remove(), Err(CgroupError::NotCgroupFs { .. })));
        assert!(matches!(
            c.add_process(1),
            Err(CgroupError::NotCgroupFs { .. })
        ));
        assert!(Path::new("/tmp").is_dir());
    }
}
