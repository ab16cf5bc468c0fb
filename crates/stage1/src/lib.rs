//! stage1: the isolation of a pod, behind a versioned ABI.
//!
//! - [`abi`]: the versioned request stage0 hands to a flavor (`docs/pods.md`).
//! - [`seccomp`] and [`caps`]: the default security policy of apps and its compilation.
#![forbid(unsafe_code)]

pub mod abi;
pub mod caps;
pub mod seccomp;
