//! Creating pods and moving them towards running: [`Pods::create`], [`PreparingPod`],
//! [`Pods::run_prepared`] and [`RunningPod`].

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustix::fs::Mode;
use rustix::io::{Errno, FdFlags};
use uuid::Uuid;

use crate::error::{IoContext, PodError};
use crate::fsx;
use crate::gc::DeletingPod;
use crate::names;
use crate::pods::{Inner, PodHandle, Pods};
use crate::state::{PodState, StateDir};
use crate::status::files;

/// How often `create` starts over with a fresh UUID when gc takes its embryo (practically
/// never: gc leaves embryos younger than a minute alone).
const CREATE_ATTEMPTS: usize = 16;

/// A pod being prepared: `prepare/<uuid>`, locked by this process. Dropping it without
/// [`finish_prepared`](Self::finish_prepared) or [`into_running`](Self::into_running) releases
/// the lock and leaves an "aborted prepare" pod for gc; [`discard`](Self::discard) removes it
/// at once instead.
#[derive(Debug)]
pub struct PreparingPod {
    inner: Arc<Inner>,
    uuid: Uuid,
    fd: OwnedFd,
    dir: PathBuf,
    name: Option<String>,
    /// Files written so far, made durable by `finish_prepared`.
    written: Mutex<Vec<String>>,
}

/// A pod in `run/<uuid>` whose lock this process holds. Hand the lock to stage1 with
/// [`lock_fd`](Self::lock_fd); dropping it releases the lock, and the pod reads as exited.
#[derive(Debug)]
pub struct RunningPod {
    uuid: Uuid,
    fd: OwnedFd,
    dir: PathBuf,
}

impl Pods {
    /// Creates a pod with a fresh UUID (v4) and returns it locked, in `prepare/`.
    ///
    /// The directory is made in `embryo/`, locked, and renamed to `prepare/<uuid>`; `created`
    /// is written. With a name (an ACName), the name is then reserved; a name held by another
    /// pod (in any state until that pod is removed) is [`PodError::NameTaken`], naming the
    /// holder, and nothing is left behind.
    pub fn create(&self, name: Option<&str>) -> Result<PreparingPod, PodError> {
        if let Some(n) = name {
            names::validate(n)?;
        }
        let created = SystemTime::now();
        let (uuid, fd) = self.new_embryo_into_prepare()?;
        let mut pod = PreparingPod {
            inner: self.inner.clone(),
            uuid,
            fd,
            dir: self.inner.pod_path(StateDir::Prepare, uuid),
            name: None,
            written: Mutex::new(Vec::new()),
        };
        let setup = pod
            .write_file(files::CREATED, fsx::format_time(created).as_bytes())
            .and_then(|()| match name {
                None => Ok(()),
                Some(n) => names::reserve(&self.inner, n, uuid)
                    .and_then(|()| pod.write_file(files::NAME, n.as_bytes())),
            });
        match setup {
            Ok(()) => {
                pod.name = name.map(str::to_owned);
                tracing::debug!(%uuid, name, "pod created");
                Ok(pod)
            }
            Err(e) => {
                if let Err(e2) = pod.discard() {
                    tracing::warn!("cannot remove the pod just created: {e2}");
                }
                // In case the name was reserved but not yet recorded in the pod.
                if let Some(n) = name
                    && !matches!(e, PodError::NameTaken { .. })
                    && let Err(e2) = names::release(&self.inner, n, uuid)
                {
                    tracing::warn!("cannot release pod name {n:?}: {e2}");
                }
                Err(e)
            }
        }
    }

    fn new_embryo_into_prepare(&self) -> Result<(Uuid, OwnedFd), PodError> {
        let embryos = self.inner.dir_fd(StateDir::Embryo);
        for _ in 0..CREATE_ATTEMPTS {
            let uuid = Uuid::new_v4();
            let name = uuid.hyphenated().to_string();
            let path = self.inner.pod_path(StateDir::Embryo, uuid);
            match rustix::fs::mkdirat(embryos, &name, Mode::from_raw_mode(fsx::DIR_MODE)) {
                Ok(()) => {}
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(PodError::io("create pod directory", &path, e)),
            }
            // Between mkdir and flock a gc may take the embryo (only if it looks abandoned);
            // then we leave it to gc and start over.
            let fd = match fsx::open_dir_at(embryos, &name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(PodError::io("open", &path, e)),
            };
            if !fsx::try_lock(fd.as_fd(), true).ctx("lock", &path)? {
                continue;
            }
            // Not left to the umask.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(fsx::DIR_MODE))
                .ctx("set permissions on", &path)?;
            if self
                .inner
                .rename(uuid, StateDir::Embryo, StateDir::Prepare)?
            {
                return Ok((uuid, fd));
            }
        }
        Err(PodError::io(
            "create a pod directory in",
            &self.inner.dir_path(StateDir::Embryo),
            std::io::Error::other("a concurrent gc kept taking the new directory"),
        ))
    }

    /// Starts a prepared pod: locks `prepared/<uuid>` and renames it to `run/<uuid>`, keeping
    /// the lock. When several processes race for one pod exactly one wins; the others get
    /// [`PodError::NotPrepared`] saying where the pod is now.
    pub fn run_prepared(&self, uuid: Uuid) -> Result<RunningPod, PodError> {
        let inner = &self.inner;
        let prepared = inner.dir_fd(StateDir::Prepared);
        let name = uuid.hyphenated().to_string();
        let path = inner.pod_path(StateDir::Prepared, uuid);
        let not_prepared = || -> Result<PodError, PodError> {
            Ok(PodError::NotPrepared {
                uuid,
                state: inner.find(uuid)?.map(|h| h.state),
            })
        };
        let fd = match fsx::open_dir_at(prepared, &name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Err(not_prepared()?),
            Err(e) => return Err(PodError::io("open", &path, e)),
        };
        let still_prepared = || fsx::still_at(fd.as_fd(), prepared, &name).unwrap_or(false);
        if !fsx::lock_patiently(fd.as_fd(), still_prepared).ctx("lock", &path)? {
            return Err(if still_prepared() {
                PodError::Busy {
                    uuid,
                    state: PodState::Prepared,
                }
            } else {
                not_prepared()?
            });
        }
        // The lock may be won on a directory another process already moved on (it won, ran
        // and exited): then the rename finds nothing to move.
        if !inner.rename(uuid, StateDir::Prepared, StateDir::Run)? {
            return Err(not_prepared()?);
        }
        Ok(RunningPod {
            uuid,
            fd,
            dir: inner.pod_path(StateDir::Run, uuid),
        })
    }
}

impl PreparingPod {
    /// The pod's UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The pod directory (`$dir/pods/prepare/<uuid>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pod's name, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Writes `bytes` to `rel` (a relative path such as `stage1/request.json`) inside the pod
    /// directory, atomically (temp file, then rename), creating missing parent directories
    /// and following no symlink. Files written here are fsynced by
    /// [`finish_prepared`](Self::finish_prepared); a pod that goes straight to running skips
    /// that cost, since a crash ends it anyway.
    pub fn write_file(&self, rel: &str, bytes: &[u8]) -> Result<(), PodError> {
        fsx::write_atomic_at(self.fd.as_fd(), &self.dir, rel, bytes, false)?;
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(rel.to_owned());
        Ok(())
    }

    /// Makes the pod prepared: fsyncs what [`write_file`](Self::write_file) wrote, renames
    /// `prepare/<uuid>` to `prepared/<uuid>` durably, and releases the lock.
    pub fn finish_prepared(self) -> Result<PodHandle, PodError> {
        let written = std::mem::take(&mut *self.written.lock().unwrap_or_else(|p| p.into_inner()));
        for rel in &written {
            fsx::fsync_at(self.fd.as_fd(), &self.dir, rel)?;
        }
        fsx::fsync_fd(self.fd.as_fd(), &self.dir)?;
        self.move_to(StateDir::Prepared)?;
        fsx::fsync_fd(
            self.inner.dir_fd(StateDir::Prepared),
            &self.inner.dir_path(StateDir::Prepared),
        )?;
        Ok(PodHandle {
            uuid: self.uuid,
            state: PodState::Prepared,
            dir: self.inner.pod_path(StateDir::Prepared, self.uuid),
        })
    }

    /// Makes the pod running: renames `prepare/<uuid>` to `run/<uuid>`, keeping the lock.
    pub fn into_running(self) -> Result<RunningPod, PodError> {
        self.move_to(StateDir::Run)?;
        Ok(RunningPod {
            uuid: self.uuid,
            dir: self.inner.pod_path(StateDir::Run, self.uuid),
            fd: self.fd,
        })
    }

    /// Gives the pod up and removes it now (releasing its name), instead of leaving an
    /// aborted prepare for gc.
    pub fn discard(self) -> Result<(), PodError> {
        self.move_to(StateDir::Garbage)?;
        DeletingPod::new(self.inner.clone(), self.uuid, self.fd, StateDir::Garbage).remove()
    }

    fn move_to(&self, to: StateDir) -> Result<(), PodError> {
        // Nobody else moves a locked pod in prepare/.
        if self.inner.rename(self.uuid, StateDir::Prepare, to)? {
            Ok(())
        } else {
            Err(PodError::io(
                "move",
                &self.dir,
                std::io::Error::other("the pod directory vanished while this process held it"),
            ))
        }
    }
}

impl RunningPod {
    /// The pod's UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The pod directory (`$dir/pods/run/<uuid>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a file inside the pod directory, as [`PreparingPod::write_file`] does (without
    /// fsync).
    pub fn write_file(&self, rel: &str, bytes: &[u8]) -> Result<(), PodError> {
        fsx::write_atomic_at(self.fd.as_fd(), &self.dir, rel, bytes, false).map(drop)
    }

    /// Hands over the locked directory fd, with `FD_CLOEXEC` cleared so that it survives
    /// `exec` into stage1, which keeps it open (as `RKT_LOCK_FD`) for the pod's life: the pod
    /// is running exactly as long as some process holds this fd.
    ///
    /// Every process spawned while the fd is open inherits it and keeps the pod "running"; so
    /// call this in a single-threaded process right before the `exec` (stage0 does, after
    /// dropping its runtime), or close the fd in children that should not have it.
    pub fn lock_fd(self) -> Result<OwnedFd, PodError> {
        rustix::io::fcntl_setfd(&self.fd, FdFlags::empty())
            .ctx("make the lock fd inheritable for", &self.dir)?;
        Ok(self.fd)
    }
}
