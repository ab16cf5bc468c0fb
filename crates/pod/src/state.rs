//! Pod states and the state directories that hold them.

use std::fmt;

/// A pod's state as `rkt list` shows it: the directory the pod sits in plus whether its lock is
/// held (see the table in the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PodState {
    /// `embryo/`: just created, not yet preparing.
    Embryo,
    /// `prepare/`, locked: a `rkt prepare` or `rkt run` is writing the pod.
    Preparing,
    /// `prepare/`, unlocked: the process preparing it died or gave up.
    AbortedPrepare,
    /// `prepared/`: ready for `rkt run-prepared`.
    Prepared,
    /// `run/`, locked: stage1 holds the lock for the pod's life.
    Running,
    /// `run/`, unlocked: the pod has exited and gc has not marked it yet.
    Exited,
    /// `exited-garbage/`, unlocked: exited and marked; swept after the grace period.
    ExitedGarbage,
    /// `exited-garbage/`, locked: being removed.
    ExitedDeleting,
    /// `garbage/`, unlocked: a failed or expired prepare, or a pod on its way out.
    Garbage,
    /// `garbage/`, locked: being removed.
    Deleting,
}

impl PodState {
    /// The name `rkt list` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            PodState::Embryo => "embryo",
            PodState::Preparing => "preparing",
            PodState::AbortedPrepare => "aborted prepare",
            PodState::Prepared => "prepared",
            PodState::Running => "running",
            PodState::Exited => "exited",
            PodState::ExitedGarbage => "exited garbage",
            PodState::ExitedDeleting => "exited deleting",
            PodState::Garbage => "garbage",
            PodState::Deleting => "deleting",
        }
    }

    /// Whether the pod ran and has finished (its apps' exit files are final).
    pub fn is_exited(self) -> bool {
        matches!(
            self,
            PodState::Exited | PodState::ExitedGarbage | PodState::ExitedDeleting
        )
    }

    /// Whether some process holds the pod's lock in this state (so it must be left alone).
    pub fn is_locked(self) -> bool {
        matches!(
            self,
            PodState::Preparing | PodState::Running | PodState::ExitedDeleting | PodState::Deleting
        )
    }

    pub(crate) fn from_dir(dir: StateDir, locked: bool) -> PodState {
        match (dir, locked) {
            (StateDir::Embryo, _) => PodState::Embryo,
            (StateDir::Prepare, true) => PodState::Preparing,
            (StateDir::Prepare, false) => PodState::AbortedPrepare,
            // Held only for an instant by run_prepared or a deleter; still prepared.
            (StateDir::Prepared, _) => PodState::Prepared,
            (StateDir::Run, true) => PodState::Running,
            (StateDir::Run, false) => PodState::Exited,
            (StateDir::ExitedGarbage, true) => PodState::ExitedDeleting,
            (StateDir::ExitedGarbage, false) => PodState::ExitedGarbage,
            (StateDir::Garbage, true) => PodState::Deleting,
            (StateDir::Garbage, false) => PodState::Garbage,
        }
    }
}

impl fmt::Display for PodState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A directory under `$dir/pods` that holds pods in one phase.
///
/// The order of [`StateDir::ALL`] is the lifecycle order: every transition moves a pod to a
/// later directory, never an earlier one. Scanning the directories in this order therefore sees
/// every pod that exists for the whole scan at least once, however it moves meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum StateDir {
    Embryo,
    Prepare,
    Prepared,
    Run,
    ExitedGarbage,
    Garbage,
}

impl StateDir {
    pub(crate) const ALL: [StateDir; 6] = [
        StateDir::Embryo,
        StateDir::Prepare,
        StateDir::Prepared,
        StateDir::Run,
        StateDir::ExitedGarbage,
        StateDir::Garbage,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            StateDir::Embryo => "embryo",
            StateDir::Prepare => "prepare",
            StateDir::Prepared => "prepared",
            StateDir::Run => "run",
            StateDir::ExitedGarbage => "exited-garbage",
            StateDir::Garbage => "garbage",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Whether a held lock changes the state (so `list` must probe it).
    pub(crate) fn lock_matters(self) -> bool {
        !matches!(self, StateDir::Embryo | StateDir::Prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_rkts() {
        assert_eq!(PodState::AbortedPrepare.to_string(), "aborted prepare");
        assert_eq!(PodState::ExitedGarbage.to_string(), "exited garbage");
        assert_eq!(PodState::from_dir(StateDir::Run, true), PodState::Running);
        assert_eq!(PodState::from_dir(StateDir::Run, false), PodState::Exited);
        assert_eq!(
            PodState::from_dir(StateDir::Garbage, true),
            PodState::Deleting
        );
        for (i, d) in StateDir::ALL.iter().enumerate() {
            assert_eq!(d.index(), i);
        }
    }
}
