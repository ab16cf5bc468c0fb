//! Handing a pod to stage1: find the flavor's binary and exec it, through a view or copy of it
//! that no process in the pod can write ([`crate::stage1_image`]).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::Stage0Error;
use crate::spec::Stage1Location;
pub use crate::stage1_image::Stage1Image;

/// The ns flavor's binary name.
pub const STAGE1_BINARY: &str = "rkt-stage1";
/// Where an installed rkt keeps its stage1 when it is not next to the `rkt` binary.
pub const STAGE1_INSTALL_DIR: &str = "/usr/lib/rkt/stage1";

/// Finds the stage1 binary: `--stage1-path`, else next to the running `rkt`, else the install
/// directory.
pub fn stage1_binary(loc: &Stage1Location) -> Result<PathBuf, Stage0Error> {
    if let Some(p) = &loc.path {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(Stage0Error::Usage(format!(
                "--stage1-path {} is not a file",
                p.display()
            )))
        };
    }
    let mut tried = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        tried.push(dir.join(STAGE1_BINARY));
    }
    tried.push(Path::new(STAGE1_INSTALL_DIR).join(STAGE1_BINARY));
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        Stage0Error::Usage(format!(
            "no stage1 found (looked for {}); build it with `cargo build --bins` or pass \
             --stage1-path",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// Execs `ENTRYPOINT --pod-dir DIR [--debug] ARGS…` of `stage1` from its protected view or copy.
/// `lock_fd`, if given, is passed as `RKT_LOCK_FD` and must already be inheritable. Returns
/// only on failure.
pub fn exec_stage1(
    stage1: Stage1Image,
    entrypoint: &str,
    pod_dir: &Path,
    debug: bool,
    args: &[String],
    lock_fd: Option<OwnedFd>,
) -> Stage0Error {
    let bin = stage1.path().to_owned();
    let err = |source: std::io::Error| Stage0Error::Stage1 {
        path: bin.display().to_string(),
        source,
    };
    let image = match stage1.finish() {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    let cstr =
        |b: &[u8]| CString::new(b).map_err(|_| err(std::io::Error::other("NUL in argument")));
    let mut argv = vec![
        STAGE1_BINARY.as_bytes().to_vec(),
        entrypoint.as_bytes().to_vec(),
    ];
    argv.push(b"--pod-dir".to_vec());
    argv.push(pod_dir.as_os_str().as_bytes().to_vec());
    if debug {
        argv.push(b"--debug".to_vec());
    }
    argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
    let argv: Result<Vec<CString>, _> = argv.iter().map(|a| cstr(a)).collect();
    let mut envp: Vec<Vec<u8>> = std::env::vars_os()
        .filter(|(k, _)| k != rkt_stage1::abi::LOCK_FD_ENV)
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .collect();
    if let Some(fd) = &lock_fd {
        envp.push(format!("{}={}", rkt_stage1::abi::LOCK_FD_ENV, fd.as_raw_fd()).into_bytes());
    }
    let envp: Result<Vec<CString>, _> = envp.iter().map(|e| cstr(e)).collect();
    let (argv, envp) = match (argv, envp) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    // The lock fd must stay open across exec: stage1 holds the pod's lock with it.
    let _keep = lock_fd;
    match nix::unistd::fexecve(image.as_fd(), &argv, &envp) {
        Ok(never) => match never {},
        Err(e) => err(std::io::Error::from(e)),
    }
}
