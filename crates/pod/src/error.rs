//! The pod crate's error type.
//!
//! Messages say what went wrong and what the user can do; sources are chained with `#[source]`
//! and not repeated in the message, so the CLI prints the chain once.

use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::state::PodState;

/// Everything a pod operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// A filesystem operation failed for a reason not covered below.
    #[error("pods: cannot {action} {path}")]
    Io {
        /// What we were doing ("create", "rename", …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `$dir/pods` is on overlayfs, where a pod's apps could not get their overlay upper dirs.
    #[error(
        "pods: {path} is on overlayfs; overlayfs refuses an upper dir that is itself on overlayfs, \
         so pods could not run from there: put rkt's data dir on a real filesystem (ext4, xfs, \
         btrfs) with --dir"
    )]
    OnOverlayfs {
        /// The pods directory.
        path: PathBuf,
    },
    /// No pod has this UUID, UUID prefix or name.
    #[error("no pod matches {query:?}: `rkt list` shows the pods there are")]
    NotFound {
        /// What the user asked for.
        query: String,
    },
    /// The query is not a pod name and too short to be a UUID prefix.
    #[error(
        "no pod is named {query:?}, and a UUID prefix needs at least {min} characters: give more \
         of the pod's UUID (`rkt list` shows them)"
    )]
    QueryTooShort {
        /// What the user asked for.
        query: String,
        /// The shortest UUID prefix accepted.
        min: usize,
    },
    /// The query matches more than one pod.
    #[error(
        "{query:?} matches {} pods ({}): give more characters of the UUID, or the full UUID",
        matches.len(),
        list_uuids(matches)
    )]
    Ambiguous {
        /// What the user asked for.
        query: String,
        /// The pods it matches.
        matches: Vec<Uuid>,
    },
    /// A pod or app name is not an appc ACName.
    #[error("invalid {what} name")]
    InvalidName {
        /// "pod" or "app".
        what: &'static str,
        /// Why the name was refused.
        #[source]
        source: rkt_types::name::NameError,
    },
    /// Another pod holds the name.
    #[error(
        "pod name {name:?} is taken by pod {holder} ({state}): choose another name, or remove \
         that pod first (`rkt rm {holder}`)"
    )]
    NameTaken {
        /// The name asked for.
        name: String,
        /// The pod that has it.
        holder: Uuid,
        /// That pod's state when we looked.
        state: PodState,
    },
    /// `run_prepared` of a pod that is not (or no longer) prepared.
    #[error("{}", not_prepared(uuid, state))]
    NotPrepared {
        /// The pod.
        uuid: Uuid,
        /// Where it is now, or `None` if it no longer exists.
        state: Option<PodState>,
    },
    /// A lock that should have been free stayed held.
    #[error(
        "pod {uuid} ({state}) is locked by another rkt process: wait for it to finish and retry"
    )]
    Busy {
        /// The pod.
        uuid: Uuid,
        /// Its state when we gave up.
        state: PodState,
    },
    /// Removing a pod met a mount point inside its directory.
    #[error(
        "cannot remove pod {uuid}: {path} is a mount point (a leftover of the pod); unmount it \
         (`umount -l {path}`) and run `rkt gc` or `rkt rm` again"
    )]
    MountPoint {
        /// The pod.
        uuid: Uuid,
        /// The mount point.
        path: PathBuf,
    },
    /// A directory was replaced while the pod holding it was being removed.
    #[error(
        "cannot remove pod {uuid}: {path} was replaced while it was being removed; something \
         other than rkt is writing into the pod directory: stop it and retry"
    )]
    Changed {
        /// The pod.
        uuid: Uuid,
        /// The directory that changed.
        path: PathBuf,
    },
    /// A path given for a file inside a pod directory is not a plain relative path.
    #[error("invalid path {rel:?} inside a pod directory: {reason}")]
    InvalidPath {
        /// The path given.
        rel: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A status file (pid, exit, …) could not be understood.
    #[error("pod status file {path} is damaged; the pod's stage1 may be incompatible or crashed")]
    BadStatusFile {
        /// The file.
        path: PathBuf,
        /// What was wrong with its contents.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn list_uuids(u: &[Uuid]) -> String {
    u.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ")
}

fn not_prepared(uuid: &Uuid, state: &Option<PodState>) -> String {
    match state {
        None => format!("pod {uuid} no longer exists (it was removed or garbage collected)"),
        Some(PodState::Running) => format!(
            "pod {uuid} is already running (another `rkt run-prepared` started it): each prepared \
             pod runs once"
        ),
        Some(s) => format!(
            "pod {uuid} is {s}, not prepared: only a prepared pod can be run with `rkt \
             run-prepared` (prepare a new one with `rkt prepare`)"
        ),
    }
}

impl PodError {
    /// An [`PodError::Io`] for `action` on `path`.
    pub(crate) fn io(action: &'static str, path: &Path, source: impl Into<io::Error>) -> Self {
        PodError::Io {
            action,
            path: path.to_owned(),
            source: source.into(),
        }
    }
}

/// Attaches what we were doing and where to an OS error.
pub(crate) trait IoContext<T> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T, PodError>;
}

impl<T, E: Into<io::Error>> IoContext<T> for Result<T, E> {
    fn ctx(self, action: &'static str, path: &Path) -> Result<T, PodError> {
        self.map_err(|e| PodError::io(action, path, e))
    }
}
