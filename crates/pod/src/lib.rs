//! Pod directories under `$dir/pods` and their state machine, with no daemon.
//!
//! A pod's state is the directory it sits in plus whether its lock — an `flock(2)` on an fd of
//! the pod directory itself — is held. Every transition is one `rename(2)`, and every process
//! that owns a state holds the lock, so a crash (even `kill -9`) releases it and the pod's
//! state reads correctly afterwards with nothing to clean up. Any number of `rkt` processes use
//! one `$dir/pods` at once.
//!
//! ```text
//! $dir/pods/
//!   embryo/<uuid>/           just made by create, locked within microseconds
//!   prepare/<uuid>/          locked: preparing          unlocked: aborted prepare
//!   prepared/<uuid>/         prepared (run-prepared locks it for an instant)
//!   run/<uuid>/              locked: running            unlocked: exited
//!   exited-garbage/<uuid>/   locked: exited deleting    unlocked: exited garbage
//!   garbage/<uuid>/          locked: deleting           unlocked: garbage
//!   names/<name>             the UUID of the pod that has <name>; names/.lock
//! ```
//!
//! Transitions (each a rename, made while holding the lock unless noted):
//!
//! | from | to | by |
//! |---|---|---|
//! | `embryo` | `prepare` | [`Pods::create`] (the lock is taken in `embryo/` and kept) |
//! | `prepare` | `prepared` | [`PreparingPod::finish_prepared`] (then unlocks) |
//! | `prepare` | `run` | [`PreparingPod::into_running`] (the lock goes on to stage1) |
//! | `prepared` | `run` | [`Pods::run_prepared`] (exactly one of several racers wins) |
//! | `run` (unlocked) | `exited-garbage` | [`Pods::mark_exited`] (shared lock) |
//! | `prepare` (unlocked), old `embryo` | `garbage` | [`Pods::mark_exited`] (shared lock) |
//! | old `prepared` | `garbage` | [`Pods::sweepable`] (`--expire-prepared`) |
//! | any unlocked | `exited-garbage` / `garbage` | [`Pods::lock_for_delete`] |
//! | `exited-garbage`, `garbage` | (removed) | [`DeletingPod::remove`] |
//!
//! Pods only ever move forward through `embryo, prepare, prepared, run, exited-garbage,
//! garbage`, so a scan of the state directories in that order sees every pod that exists
//! throughout the scan, however it moves meanwhile ([`Pods::list`] reports it once, in its
//! later state). A lock taken on a directory that moved before the lock was won is detected
//! (the rename or an inode check finds it gone) and the operation looks again.
//!
//! Probing a lock ([`Pods::list`], [`Pods::get`], [`Pods::mark_exited`]) takes it shared and
//! non-blocking for an instant. An exclusive taker that should find the lock free
//! ([`Pods::run_prepared`], [`Pods::lock_for_delete`]) retries for up to 150 ms so that such a
//! probe is not mistaken for a holder.
//!
//! # Names
//! A pod may have a unique name (an appc ACName). `names/<name>` holds the owner's UUID; it is
//! created atomically (`link(2)` of a finished temp file) only once the pod directory exists, and
//! removed only after the pod directory is gone, so a reservation whose pod is in no state
//! directory is stale (its owner crashed in between) and a later `create` takes it over. A name
//! stays taken in every state until the pod is removed.
//!
//! # Files
//! [`status::files`] names the files in a pod directory. [`Pods::create`] writes `created` and
//! `name`; stage0 writes the rest of the prepare-time files with
//! [`PreparingPod::write_file`]; stage1 and the supervisor record progress with the writers in
//! [`status`], and stage0 reads them back with its readers.
//!
//! # Using it
//! ```no_run
//! use rkt_pod::{Pods, PodError};
//! # fn exec_stage1(_: std::os::fd::OwnedFd, _: &std::path::Path) -> Result<(), PodError> { Ok(()) }
//! # fn stage1_gc(_: &std::path::Path) {}
//! fn run(data_dir: &std::path::Path) -> Result<(), PodError> {
//!     let pods = Pods::open(data_dir)?;
//!     let pod = pods.create(Some("web"))?;               // locked, in prepare/
//!     pod.write_file("pod", br#"{"acKind":"PodManifest"}"#)?;
//!     let running = pod.into_running()?;                  // run/, still locked
//!     let dir = running.dir().to_owned();
//!     exec_stage1(running.lock_fd()?, &dir)               // stage1 keeps the lock
//! }
//!
//! fn gc(pods: &Pods) -> Result<(), PodError> {
//!     pods.mark_exited()?;
//!     let grace = std::time::Duration::from_secs(30 * 60);
//!     let expire = std::time::Duration::from_secs(24 * 3600);
//!     for pod in pods.sweepable(grace, expire)? {
//!         if let Some(doomed) = pods.lock_for_delete(&pod)? {
//!             stage1_gc(doomed.dir());                   // networks, cgroups
//!             doomed.remove()?;
//!         }
//!     }
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]

mod error;
mod fsx;
mod gc;
mod lifecycle;
mod names;
mod pods;
mod remove;
mod state;
pub mod status;

pub use error::PodError;
pub use gc::{DeletingPod, EMBRYO_GRACE, Marked};
pub use lifecycle::{PreparingPod, RunningPod};
pub use pods::{MIN_UUID_PREFIX, PodHandle, PodInfo, Pods};
pub use state::PodState;
pub use status::AppExit;
pub use uuid::Uuid;
