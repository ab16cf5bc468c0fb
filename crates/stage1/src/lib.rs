//! stage1: the isolation of a pod, behind a versioned ABI.
//!
//! - [`abi`]: the versioned request stage0 hands to a flavor (`docs/pods.md`).
//! - [`seccomp`] and [`caps`]: the default security policy of apps and its compilation.
//! - [`ns`]: the default flavor (the `rkt-stage1` binary): namespaces, cgroups, our own
//!   supervisor as the pod's PID 1.
//! - [`sync`]: typed parent/child synchronisation across `fork`.
#![forbid(unsafe_code)]

pub mod abi;
pub mod caps;
pub mod ns;
pub mod seccomp;
pub mod sync;
