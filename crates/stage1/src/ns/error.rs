//! Errors of the ns flavor's entrypoints, and how they reach the user: one line on stderr,
//! `rkt: stage1: ` and the cause chain, and exit status 254.

use std::io;
use std::path::PathBuf;

use rkt_cgroups::CgroupError;

use crate::abi::AbiError;
use crate::seccomp::SeccompError;
use crate::sync::{ChildError, SyncError};

/// The exit status of stage1 when stage1 itself failed (rkt's code for its own errors); an
/// app's status is passed through as it is.
pub const EXIT_STAGE1_FAILED: i32 = 254;

/// What went wrong in an entrypoint.
#[derive(Debug, thiserror::Error)]
pub enum Stage1Error {
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
    /// The run request could not be read.
    #[error("cannot read the run request {path}")]
    ReadRequest {
        /// Where it should be.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
    /// The run request is not one this flavor can use.
    #[error("the run request {path} was refused")]
    Request {
        /// The request file.
        path: PathBuf,
        /// Why.
        #[source]
        source: AbiError,
    },
    /// The run request parses but asks for something impossible.
    #[error("the run request is invalid: {0}")]
    Invalid(String),
    /// The lock fd variable is missing or wrong.
    #[error(
        "{var} must name the pod directory's lock descriptor (stage0 passes it; run stage1 \
         through rkt)"
    )]
    LockFd {
        /// The variable.
        var: &'static str,
        /// What was wrong with it.
        #[source]
        source: io::Error,
    },
    /// A cgroup operation failed.
    #[error("could not {what}")]
    Cgroup {
        /// What we were doing.
        what: String,
        /// The cgroup error.
        #[source]
        source: CgroupError,
    },
    /// The seccomp filter could not be built.
    #[error("could not build the seccomp filter of app {app}")]
    Seccomp {
        /// The app.
        app: String,
        /// Why.
        #[source]
        source: SeccompError,
    },
    /// A system call or file operation failed.
    #[error("could not {op}")]
    Sys {
        /// What we were doing, including the path if there is one.
        op: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The synchronisation with a forked process failed.
    #[error("lost track of {what}")]
    Sync {
        /// Which process.
        what: String,
        /// Why.
        #[source]
        source: SyncError,
    },
    /// A forked process reported a setup failure.
    #[error("{what} failed")]
    Child {
        /// Which process.
        what: String,
        /// Its report.
        #[source]
        source: Box<ChildError>,
    },
    /// A pod status file could not be written or read.
    #[error("could not {what}")]
    Pod {
        /// What we were doing.
        what: String,
        /// Why.
        #[source]
        source: rkt_pod::PodError,
    },
    /// A network could not be set up or torn down.
    #[error("could not {what}")]
    Network {
        /// What we were doing.
        what: String,
        /// Why (a plugin's own error included).
        #[source]
        source: Box<rkt_net::NetError>,
    },
    /// An entrypoint met the pod in a state it cannot work on.
    #[error("{0}")]
    State(String),
}

impl Stage1Error {
    /// A failed system call or file operation.
    pub fn sys(op: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Stage1Error::Sys {
            op: op.into(),
            source: source.into(),
        }
    }

    /// A failed cgroup operation.
    pub fn cgroup(what: impl Into<String>, source: CgroupError) -> Self {
        Stage1Error::Cgroup {
            what: what.into(),
            source,
        }
    }
}

/// `rkt: stage1: <error>: <cause>: <cause>…`, the one line a stage1 failure prints.
pub fn error_line(err: &(dyn std::error::Error + 'static)) -> String {
    format!("rkt: stage1: {}", rkt_types::error_text::chain(err))
}

/// Prints [`error_line`] on stderr.
pub fn report(err: &(dyn std::error::Error + 'static)) {
    eprintln!("{}", error_line(err));
}

/// Prints a warning on stderr, in the same form.
pub fn warn(text: &str) {
    eprintln!("rkt: stage1: warning: {text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_carries_the_whole_chain() {
        let e = Stage1Error::Child {
            what: "app web".into(),
            source: Box::new(ChildError::new("exec", "find the executable").path("nosuch")),
        };
        assert_eq!(
            error_line(&e),
            "rkt: stage1: app web failed: exec: could not find the executable nosuch"
        );
        let e = Stage1Error::sys("open /x", io::Error::from_raw_os_error(2));
        assert!(error_line(&e).starts_with("rkt: stage1: could not open /x: No such file"));
    }
}
