//! stage0: everything `rkt` does with pods before and after stage1 runs them.
//!
//! The CLI parses flags into a [`spec::PodSpec`] and [`spec::AppSpec`]s and fetches the images;
//! this crate turns them into a pod directory ([`prepare`]), hands the pod to stage1
//! ([`exec`]), and serves every later verb from the pod directories alone (`list`, `status`,
//! `enter`, `stop`, `rm`, `gc`, `logs`, `export`), so no daemon is ever involved.
#![forbid(unsafe_code)]

pub mod build;
pub mod env;
pub mod exec;
pub mod export;
pub mod net;
pub mod ops;
pub mod pod_manifest;
pub mod ports;
pub mod prepare;
pub mod quantity;
pub mod spec;
pub mod stage1_image;
pub mod stage1_view;
pub mod view;
pub mod volumes;

/// A stage0 failure, phrased for the user.
#[derive(Debug, thiserror::Error)]
pub enum Stage0Error {
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A pod directory operation failed.
    #[error(transparent)]
    Pod(#[from] rkt_pod::PodError),
    /// The image store failed.
    #[error(transparent)]
    Store(#[from] rkt_store::StoreError),
    /// The environment could not be built.
    #[error(transparent)]
    Env(#[from] env::EnvError),
    /// The networks asked for could not be resolved.
    #[error(transparent)]
    Net(#[from] rkt_net::NetError),
    /// The stage1 binary could not be found or started.
    #[error("cannot start stage1 {path}")]
    Stage1 {
        /// The binary.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("cannot {op} {path}")]
    Io {
        /// What was done.
        op: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
