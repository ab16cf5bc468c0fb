//! stage1: the isolation of a pod, behind a versioned ABI.
//!
//! - [`seccomp`] and [`caps`]: the default security policy of apps and its compilation.
#![forbid(unsafe_code)]

pub mod caps;
pub mod seccomp;
