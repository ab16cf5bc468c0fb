//! The `ns` flavor: a pod isolated with Linux namespaces, cgroups, capabilities, seccomp and
//! masked paths, supervised by our own small PID 1. `docs/pods.md` has the process tree and
//! the pod directory's files.
//!
//! Entrypoints (the binary `rkt-stage1`, see [`cli`]):
//! - [`run`](run::run): the pod, from stage1 through the supervisor ([`supervisor`]) to each
//!   app's process ([`app`]);
//! - [`enter`](enter::enter): a command inside a running app, confined as the app is;
//! - [`stop`](stop::stop): SIGTERM or SIGKILL to the pod's supervisor;
//! - [`gc`](gc::gc): takes the pod off its networks and removes its cgroups.
//!
//! stage1 and every process it forks are single-threaded from start to `execve` (no tokio,
//! no threads: `rkt_sys::fork` refuses otherwise). Exit status: the pod's (an app's code
//! passed through), or [`EXIT_STAGE1_FAILED`] with one line on stderr when stage1 itself
//! failed.

pub mod app;
pub mod cli;
pub mod confine;
pub mod dev;
pub mod enter;
pub mod error;
pub mod exec;
pub mod fsat;
pub mod gc;
pub mod journal;
pub mod logs;
pub mod masked;
pub mod mount;
pub mod mounts;
pub mod network;
pub mod output;
pub mod placeholders;
pub mod podfiles;
pub mod request;
pub mod rootfs;
pub mod run;
pub mod signals;
pub mod spawn;
pub mod status;
pub mod stop;
pub mod supervisor;
pub mod user;

use std::ffi::OsString;

pub use error::{EXIT_STAGE1_FAILED, Stage1Error};

/// The whole binary: parses `args` (without the program name), runs the entrypoint and
/// returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let command = match cli::parse(args) {
        Ok(c) => c,
        Err(reason) => {
            error::report(&Stage1Error::Usage(reason));
            eprintln!("{}", cli::USAGE);
            return EXIT_STAGE1_FAILED;
        }
    };
    if command.debug() {
        debug_logging();
    }
    let result = match command {
        cli::Command::Run { pod_dir, .. } => run::run(&pod_dir),
        cli::Command::Enter {
            pod_dir,
            app,
            command,
            ..
        } => absolute(&pod_dir).and_then(|d| enter::enter(&d, &app, command)),
        cli::Command::Stop { pod_dir, force, .. } => {
            absolute(&pod_dir).and_then(|d| stop::stop(&d, force).map(|()| 0))
        }
        cli::Command::Gc { pod_dir, .. } => absolute(&pod_dir).and_then(|d| gc::gc(&d).map(|()| 0)),
    };
    result.unwrap_or_else(|e| {
        error::report(&e);
        EXIT_STAGE1_FAILED
    })
}

/// Turns on debug logging to stderr (`--debug`, or `debug` in the run request); once is
/// enough, later calls do nothing.
pub fn debug_logging() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A level, not an EnvFilter: its regex engine would be a third of this binary, whose
        // pages every pod start faults in (and which stage0 copies into a sealed memfd on
        // hosts without the overlayfs view).
        .with_max_level(tracing::Level::DEBUG)
        .without_time()
        .try_init();
}

fn absolute(p: &std::path::Path) -> Result<std::path::PathBuf, Stage1Error> {
    std::path::absolute(p).map_err(|e| Stage1Error::sys(format!("resolve {}", p.display()), e))
}

/// How long a running pod's stage1 and supervisor wait with nothing happening before they
/// give back their startup pages ([`release_startup_pages`]).
pub const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Unmaps this process's clean code mappings (see [`rkt_sys::pages`]): what stage1 and the
/// supervisor ran to start the pod stays in the page cache, not in their resident size, for
/// the rest of the pod's life. Best effort.
pub fn release_startup_pages() {
    match rkt_sys::pages::release_clean_file_pages() {
        Ok(n) => tracing::debug!("gave back {n} clean mappings"),
        Err(e) => tracing::debug!("cannot give back the startup pages: {e}"),
    }
}

/// `d` as a `poll(2)` timeout (saturated: no wait of stage1's comes near `i64::MAX` seconds).
pub fn poll_timeout(d: std::time::Duration) -> rustix::time::Timespec {
    rustix::time::Timespec::try_from(d).unwrap_or(rustix::time::Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    })
}
