//! [`Pods`], the handle on `$dir/pods`: opening it, finding pods by UUID, prefix or name, and
//! listing them with their states.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustix::io::Errno;
use uuid::Uuid;

use crate::error::{IoContext, PodError};
use crate::fsx;
use crate::state::{PodState, StateDir};
use crate::status::{self, files};

/// Name of the directory under `$dir/pods` that holds name reservations.
pub(crate) const NAMES_DIR: &str = "names";

/// The shortest UUID prefix [`Pods::get`] accepts (a name can be shorter).
pub const MIN_UUID_PREFIX: usize = 4;

/// `OVERLAYFS_SUPER_MAGIC` from `linux/magic.h`.
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// A handle on `$dir/pods`. Cheap to clone; every method may run concurrently with any other,
/// in this process or another.
#[derive(Debug, Clone)]
pub struct Pods {
    pub(crate) inner: Arc<Inner>,
}

/// Open fds on the state directories, so that operations do not re-resolve `$dir/pods`.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    dirs: [OwnedFd; 6],
    pub(crate) names: OwnedFd,
}

/// A pod found by [`Pods::get`] or [`Pods::sweepable`]: its UUID, and the state and directory it
/// had when it was looked up. Pods move on their own (a pod exits, another process deletes it),
/// so operations taking a handle look the pod up again by UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHandle {
    pub(crate) uuid: Uuid,
    pub(crate) state: PodState,
    pub(crate) dir: PathBuf,
}

impl PodHandle {
    /// The pod's UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The state the pod was in when looked up.
    pub fn state(&self) -> PodState {
        self.state
    }

    /// The pod directory when looked up (`$dir/pods/<state dir>/<uuid>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// One line of [`Pods::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// The pod's UUID.
    pub uuid: Uuid,
    /// Its state.
    pub state: PodState,
    /// Its directory.
    pub dir: PathBuf,
    /// When it was created (`created`), if that was written.
    pub created: Option<SystemTime>,
    /// When its apps were started (`started`, written by stage1), if they were.
    pub started: Option<SystemTime>,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// The pod directory's ctime: when it moved into its state directory or last had an entry
    /// added or removed. For an exited-garbage pod, the grace period counts from here.
    pub changed: SystemTime,
}

impl Pods {
    /// Opens `$data_dir/pods`, creating it, the state directories and `names/` if missing.
    ///
    /// Refuses a pods directory on overlayfs (apps' overlay upper dirs live in pod directories).
    pub fn open(data_dir: &Path) -> Result<Pods, PodError> {
        if !data_dir.is_dir() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(data_dir)
                .ctx("create data directory", data_dir)?;
        }
        let root = data_dir.join("pods");
        ensure_dir(&root)?;
        let st = rustix::fs::statfs(&root).ctx("statfs", &root)?;
        // f_type is i64 here, but i32 or u32 on other targets.
        #[allow(clippy::useless_conversion)]
        if i64::from(st.f_type) == OVERLAYFS_SUPER_MAGIC {
            return Err(PodError::OnOverlayfs { path: root });
        }
        // Opened first and made only when missing: every `rkt` opens these.
        let open = |name: &str| -> Result<OwnedFd, PodError> {
            let p = root.join(name);
            match fsx::open_dir(&p) {
                Err(PodError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    ensure_dir(&p)?;
                    fsx::open_dir(&p)
                }
                r => r,
            }
        };
        let dirs = [
            open(StateDir::Embryo.name())?,
            open(StateDir::Prepare.name())?,
            open(StateDir::Prepared.name())?,
            open(StateDir::Run.name())?,
            open(StateDir::ExitedGarbage.name())?,
            open(StateDir::Garbage.name())?,
        ];
        let names = open(NAMES_DIR)?;
        Ok(Pods {
            inner: Arc::new(Inner { root, dirs, names }),
        })
    }

    /// The pods directory (`$dir/pods`).
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Finds a pod by its full UUID; `Ok(None)` if it does not exist (in any state).
    pub fn find(&self, uuid: Uuid) -> Result<Option<PodHandle>, PodError> {
        self.inner.find(uuid)
    }

    /// Finds the one pod `query` names: a full UUID (with or without dashes), a pod name, or a
    /// UUID prefix of at least [`MIN_UUID_PREFIX`] characters. A query that is both a name and a
    /// prefix of another pod's UUID is ambiguous.
    pub fn get(&self, query: &str) -> Result<PodHandle, PodError> {
        let q = query.trim().to_ascii_lowercase();
        if let Ok(uuid) = Uuid::parse_str(&q) {
            return self.find(uuid)?.ok_or_else(|| PodError::NotFound {
                query: query.to_owned(),
            });
        }
        let mut found: HashMap<Uuid, PodHandle> = HashMap::new();
        if rkt_types::name::validate_ac_name(&q).is_ok()
            && let Some(h) = crate::names::lookup(&self.inner, &q)?
        {
            found.insert(h.uuid, h);
        }
        let prefix_like = q.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        if prefix_like && q.len() >= MIN_UUID_PREFIX {
            let bare = q.replace('-', "");
            for d in StateDir::ALL {
                for (uuid, _) in self.inner.read_state_dir(d)? {
                    let hyph = uuid.hyphenated().to_string();
                    let hit = hyph.starts_with(&q)
                        || (!q.contains('-') && uuid.simple().to_string().starts_with(&bare));
                    if hit
                        && !found.contains_key(&uuid)
                        && let Some(h) = self.find(uuid)?
                    {
                        found.insert(uuid, h);
                    }
                }
            }
        }
        match found.len() {
            1 => Ok(found.into_values().next().expect("one entry")),
            0 if prefix_like && q.len() < MIN_UUID_PREFIX => Err(PodError::QueryTooShort {
                query: query.to_owned(),
                min: MIN_UUID_PREFIX,
            }),
            0 => Err(PodError::NotFound {
                query: query.to_owned(),
            }),
            _ => {
                let mut matches: Vec<Uuid> = found.into_keys().collect();
                matches.sort();
                Err(PodError::Ambiguous {
                    query: query.to_owned(),
                    matches,
                })
            }
        }
    }

    /// Every pod in every state, sorted by creation time (then UUID).
    ///
    /// Per pod this costs a directory entry, an `open`, a non-blocking shared `flock` probe
    /// (never waiting), an `fstat` and reads of the small `created`, `name` and `started` files,
    /// so a thousand pods list in milliseconds. A pod that moves during the listing is reported
    /// once, in its later state.
    pub fn list(&self) -> Result<Vec<PodInfo>, PodError> {
        let mut by_uuid: HashMap<Uuid, PodInfo> = HashMap::new();
        for d in StateDir::ALL {
            for (uuid, _) in self.inner.read_state_dir(d)? {
                // None: moved on to a later state directory (read later) or deleted.
                if let Some(info) = self.inner.info_at(d, uuid)? {
                    // A later state directory wins: the pod moved there during the scan.
                    by_uuid.insert(uuid, info);
                }
            }
        }
        let mut out: Vec<PodInfo> = by_uuid.into_values().collect();
        out.sort_by_key(|a| (a.created, a.uuid));
        Ok(out)
    }

    /// What [`list`](Self::list) says about one pod, found by its full UUID; `Ok(None)` if it
    /// does not exist. For `rkt status`, which then reads the status files in
    /// [`PodInfo::dir`].
    pub fn info(&self, uuid: Uuid) -> Result<Option<PodInfo>, PodError> {
        for d in StateDir::ALL {
            if let Some(info) = self.inner.info_at(d, uuid)? {
                return Ok(Some(info));
            }
        }
        Ok(None)
    }
}

/// `list` shows a pod whose small files are damaged rather than failing for every pod.
fn warn_none<T>(e: &PodError) -> Option<T> {
    tracing::warn!("{e}");
    None
}

/// Creates `path` with [`fsx::DIR_MODE`] if missing; an existing directory keeps its mode (an
/// administrator may have given it a group).
fn ensure_dir(path: &Path) -> Result<(), PodError> {
    match std::fs::DirBuilder::new().mode(fsx::DIR_MODE).create(path) {
        Ok(()) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(fsx::DIR_MODE))
            .ctx("set permissions on", path),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(PodError::io("create directory", path, e)),
    }
}

impl Inner {
    pub(crate) fn dir_fd(&self, d: StateDir) -> BorrowedFd<'_> {
        self.dirs[d.index()].as_fd()
    }

    pub(crate) fn dir_path(&self, d: StateDir) -> PathBuf {
        self.root.join(d.name())
    }

    pub(crate) fn pod_path(&self, d: StateDir, uuid: Uuid) -> PathBuf {
        self.dir_path(d).join(uuid.hyphenated().to_string())
    }

    pub(crate) fn names_path(&self) -> PathBuf {
        self.root.join(NAMES_DIR)
    }

    /// The pods in one state directory, by UUID and entry name. Entries that are not pod UUIDs
    /// (there should be none) are skipped.
    pub(crate) fn read_state_dir(&self, d: StateDir) -> Result<Vec<(Uuid, String)>, PodError> {
        let path = self.dir_path(d);
        let dir = rustix::fs::Dir::read_from(self.dir_fd(d)).ctx("read directory", &path)?;
        let mut out = Vec::new();
        for entry in dir {
            let entry = entry.ctx("read directory", &path)?;
            let Some(name) = fsx::entry_name(entry.file_name()) else {
                continue;
            };
            if let Ok(uuid) = Uuid::parse_str(name)
                && name == uuid.hyphenated().to_string()
            {
                out.push((uuid, name.to_owned()));
            }
        }
        Ok(out)
    }

    /// A pod's line of `list` if it is in state directory `d`.
    fn info_at(&self, d: StateDir, uuid: Uuid) -> Result<Option<PodInfo>, PodError> {
        let dir = self.pod_path(d, uuid);
        let fd = match fsx::open_dir_at(self.dir_fd(d), uuid.hyphenated().to_string().as_str()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(PodError::io("open", &dir, e)),
        };
        let locked =
            d.lock_matters() && !fsx::try_lock(fd.as_fd(), false).ctx("probe the lock of", &dir)?;
        let st = rustix::fs::fstat(&fd).ctx("stat", &dir)?;
        Ok(Some(PodInfo {
            uuid,
            state: PodState::from_dir(d, locked),
            created: status::read_time_at(fd.as_fd(), &dir, files::CREATED)
                .unwrap_or_else(|e| warn_none(&e)),
            started: status::read_time_at(fd.as_fd(), &dir, files::STARTED)
                .unwrap_or_else(|e| warn_none(&e)),
            name: status::read_text_at(fd.as_fd(), &dir, files::NAME)
                .unwrap_or_else(|e| warn_none(&e)),
            changed: fsx::ctime(&st),
            dir,
        }))
    }

    /// Finds a pod by UUID, probing its lock. Scans the state directories in lifecycle order, so
    /// a pod that moves during the scan is still found (see [`StateDir`]).
    pub(crate) fn find(&self, uuid: Uuid) -> Result<Option<PodHandle>, PodError> {
        let name = uuid.hyphenated().to_string();
        for d in StateDir::ALL {
            let dir = self.pod_path(d, uuid);
            let fd = match fsx::open_dir_at(self.dir_fd(d), &name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(PodError::io("open", &dir, e)),
            };
            let locked = d.lock_matters()
                && !fsx::try_lock(fd.as_fd(), false).ctx("probe the lock of", &dir)?;
            return Ok(Some(PodHandle {
                uuid,
                state: PodState::from_dir(d, locked),
                dir,
            }));
        }
        Ok(None)
    }

    /// Where a pod is now, without probing its lock.
    pub(crate) fn locate(&self, uuid: Uuid) -> Result<Option<StateDir>, PodError> {
        let name = uuid.hyphenated().to_string();
        for d in StateDir::ALL {
            match rustix::fs::statat(self.dir_fd(d), &name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => return Ok(Some(d)),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(PodError::io("stat", &self.pod_path(d, uuid), e)),
            }
        }
        Ok(None)
    }

    /// Renames a pod from one state directory to another, never replacing anything.
    /// `Ok(false)` if it is no longer in `from` (another process moved it first).
    pub(crate) fn rename(
        &self,
        uuid: Uuid,
        from: StateDir,
        to: StateDir,
    ) -> Result<bool, PodError> {
        let name = uuid.hyphenated().to_string();
        match rustix::fs::renameat_with(
            self.dir_fd(from),
            &name,
            self.dir_fd(to),
            &name,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {
                tracing::debug!(%uuid, from = from.name(), to = to.name(), "pod moved");
                Ok(true)
            }
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(PodError::io("rename", &self.pod_path(from, uuid), e)),
        }
    }
}
