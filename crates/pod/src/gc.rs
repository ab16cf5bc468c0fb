//! Garbage collection bookkeeping: marking exited and abandoned pods, choosing what to sweep,
//! and removing a pod ([`DeletingPod`]). Running stage1's `gc` entrypoint (networks, cgroups)
//! between locking and removing is stage0's job.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;
use uuid::Uuid;

use crate::error::{IoContext, PodError};
use crate::fsx;
use crate::names;
use crate::pods::{Inner, PodHandle, Pods};
use crate::remove;
use crate::state::{PodState, StateDir};
use crate::status::{self, files};

/// An unlocked embryo younger than this may be a `create` between `mkdir` and `flock`; older
/// ones were abandoned by a process that died there.
pub const EMBRYO_GRACE: Duration = Duration::from_secs(60);

/// A pod [`Pods::mark_exited`] moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marked {
    /// The pod.
    pub uuid: Uuid,
    /// Its state before: exited, aborted prepare or embryo.
    pub from: PodState,
    /// Its state now: exited garbage or garbage.
    pub to: PodState,
}

/// A pod locked exclusively for removal, in `exited-garbage/` or `garbage/`. Between
/// [`Pods::lock_for_delete`] and [`remove`](Self::remove), stage0 runs stage1's `gc` for an
/// exited pod. Dropping it without removing releases the lock and leaves the pod for the next gc.
#[derive(Debug)]
pub struct DeletingPod {
    inner: Arc<Inner>,
    uuid: Uuid,
    fd: OwnedFd,
    at: StateDir,
    dir: PathBuf,
}

impl Pods {
    /// The mark phase of gc: every pod in `run/` whose lock nobody holds has exited and moves
    /// to `exited-garbage/` (the rename sets the directory's ctime, which starts the grace
    /// period); every unlocked pod in `prepare/`, and every unlocked embryo older than
    /// [`EMBRYO_GRACE`], moves to `garbage/`. Locks are probed shared and never waited for, so a
    /// running pod is never moved. Name reservations whose pod is gone (their owner was killed
    /// halfway through creating or removing it) are removed too.
    pub fn mark_exited(&self) -> Result<Vec<Marked>, PodError> {
        let inner = &self.inner;
        let mut out = Vec::new();
        for (from, to) in [
            (StateDir::Run, StateDir::ExitedGarbage),
            (StateDir::Prepare, StateDir::Garbage),
            (StateDir::Embryo, StateDir::Garbage),
        ] {
            for (uuid, name) in inner.read_state_dir(from)? {
                let path = inner.pod_path(from, uuid);
                let fd = match fsx::open_dir_at(inner.dir_fd(from), &name) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(PodError::io("open", &path, e)),
                };
                if from == StateDir::Embryo {
                    let st = rustix::fs::fstat(&fd).ctx("stat", &path)?;
                    if fsx::age(fsx::ctime(&st)) < EMBRYO_GRACE {
                        continue;
                    }
                }
                // Held shared across the rename: nobody can lock it meanwhile, and pods enter
                // run/ and prepare/ already locked, so a free lock there stays free.
                if !fsx::try_lock(fd.as_fd(), false).ctx("probe the lock of", &path)? {
                    continue;
                }
                if inner.rename(uuid, from, to)? {
                    out.push(Marked {
                        uuid,
                        from: PodState::from_dir(from, false),
                        to: PodState::from_dir(to, false),
                    });
                }
            }
        }
        let stale = names::sweep_stale(inner)?;
        if stale > 0 {
            tracing::info!("removed {stale} stale pod name reservations");
        }
        Ok(out)
    }

    /// The pods the sweep phase of gc should remove: exited-garbage pods marked at least
    /// `grace` ago (by directory ctime), every garbage pod, and prepared pods older than
    /// `expire_prepared`, which are moved to `garbage/` first (unless they are starting just
    /// then). Remove each with [`lock_for_delete`](Self::lock_for_delete).
    pub fn sweepable(
        &self,
        grace: Duration,
        expire_prepared: Duration,
    ) -> Result<Vec<PodHandle>, PodError> {
        let inner = &self.inner;
        let mut out = Vec::new();
        for (uuid, name) in inner.read_state_dir(StateDir::Prepared)? {
            let path = inner.pod_path(StateDir::Prepared, uuid);
            let fd = match fsx::open_dir_at(inner.dir_fd(StateDir::Prepared), &name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(PodError::io("open", &path, e)),
            };
            let st = rustix::fs::fstat(&fd).ctx("stat", &path)?;
            if fsx::age(fsx::ctime(&st)) < expire_prepared {
                continue;
            }
            // Exclusive, so that a racing run_prepared either wins first or finds it gone.
            if !fsx::try_lock(fd.as_fd(), true).ctx("lock", &path)? {
                continue;
            }
            if inner.rename(uuid, StateDir::Prepared, StateDir::Garbage)? {
                tracing::info!(%uuid, "prepared pod expired");
            }
        }
        for (uuid, name) in inner.read_state_dir(StateDir::ExitedGarbage)? {
            let path = inner.pod_path(StateDir::ExitedGarbage, uuid);
            let st = match rustix::fs::statat(
                inner.dir_fd(StateDir::ExitedGarbage),
                &name,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(PodError::io("stat", &path, e)),
            };
            if fsx::age(fsx::ctime(&st)) >= grace {
                out.push(PodHandle {
                    uuid,
                    state: PodState::ExitedGarbage,
                    dir: path,
                });
            }
        }
        for (uuid, _) in inner.read_state_dir(StateDir::Garbage)? {
            out.push(PodHandle {
                uuid,
                state: PodState::Garbage,
                dir: inner.pod_path(StateDir::Garbage, uuid),
            });
        }
        Ok(out)
    }

    /// Locks a pod exclusively for removal, wherever it is now, or `Ok(None)` if a process
    /// holds its lock (it is preparing, running or being deleted) or it no longer exists.
    ///
    /// A pod not yet in a garbage state is moved there first, so that a crash during removal
    /// leaves something gc finishes: an exited pod (in `run/`) goes to `exited-garbage/`
    /// (stage1's `gc` must still run for it), anything else (prepared, aborted prepare,
    /// embryo) to `garbage/`.
    pub fn lock_for_delete(&self, pod: &PodHandle) -> Result<Option<DeletingPod>, PodError> {
        let inner = &self.inner;
        let uuid = pod.uuid;
        let name = uuid.hyphenated().to_string();
        // Each round that fails because the pod moved sees it in a later state; there are
        // only a few.
        for _ in 0..StateDir::ALL.len() + 1 {
            let Some(at) = inner.locate(uuid)? else {
                return Ok(None);
            };
            let path = inner.pod_path(at, uuid);
            let fd = match fsx::open_dir_at(inner.dir_fd(at), &name) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(PodError::io("open", &path, e)),
            };
            let here = || fsx::still_at(fd.as_fd(), inner.dir_fd(at), &name);
            if !fsx::lock_patiently(fd.as_fd(), || here().unwrap_or(false)).ctx("lock", &path)? {
                if here().ctx("stat", &path)? {
                    return Ok(None);
                }
                continue;
            }
            if !here().ctx("stat", &path)? {
                continue;
            }
            let to = match at {
                StateDir::Run | StateDir::ExitedGarbage => StateDir::ExitedGarbage,
                _ => StateDir::Garbage,
            };
            if at != to && !inner.rename(uuid, at, to)? {
                continue;
            }
            return Ok(Some(DeletingPod::new(inner.clone(), uuid, fd, to)));
        }
        Ok(None)
    }
}

impl DeletingPod {
    pub(crate) fn new(inner: Arc<Inner>, uuid: Uuid, fd: OwnedFd, at: StateDir) -> DeletingPod {
        let dir = inner.pod_path(at, uuid);
        DeletingPod {
            inner,
            uuid,
            fd,
            at,
            dir,
        }
    }

    /// The pod's UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The pod directory (`$dir/pods/exited-garbage/<uuid>` or `$dir/pods/garbage/<uuid>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// [`PodState::ExitedDeleting`] for a pod that ran (stage1's `gc` should clean up after
    /// it before [`remove`](Self::remove)), else [`PodState::Deleting`].
    pub fn state(&self) -> PodState {
        PodState::from_dir(self.at, true)
    }

    /// Removes the pod directory and everything in it, never following a symlink out of it nor
    /// entering another mount ([`PodError::MountPoint`]), then releases the pod's name. On
    /// error the pod stays, unlocked, in its garbage state for the next gc.
    pub fn remove(self) -> Result<(), PodError> {
        let name =
            status::read_text_at(self.fd.as_fd(), &self.dir, files::NAME).unwrap_or_else(|e| {
                tracing::warn!("{e}");
                None
            });
        remove::remove_contents(self.fd.as_fd(), &self.dir, self.uuid)?;
        match rustix::fs::unlinkat(
            self.inner.dir_fd(self.at),
            self.uuid.hyphenated().to_string().as_str(),
            rustix::fs::AtFlags::REMOVEDIR,
        ) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::BUSY) => {
                return Err(PodError::MountPoint {
                    uuid: self.uuid,
                    path: self.dir.clone(),
                });
            }
            Err(e) => return Err(PodError::io("remove", &self.dir, e)),
        }
        if let Some(n) = name {
            names::release(&self.inner, &n, self.uuid)?;
        }
        tracing::debug!(uuid = %self.uuid, "pod removed");
        Ok(())
    }
}
