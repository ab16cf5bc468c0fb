//! The stage0 → stage1 ABI, version 1.
//!
//! stage0 writes one [`RunRequest`] to `<pod dir>/stage1/request.json` and execs the stage1
//! binary as `rkt-stage1 run --pod-dir DIR [--debug]` with the pod's lock fd in `RKT_LOCK_FD`.
//! Everything a flavor needs is in the request, so argv never grows with features and a
//! flavor written by someone else only has to read this document (`docs/stage1-abi.md`).
//!
//! Compatibility: fields are only ever added, with `#[serde(default)]`; a change that an old
//! flavor would misread bumps [`ABI_VERSION`], and a flavor refuses a version it does not know.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::caps::CapSet;
use crate::seccomp::SeccompPolicy;

/// The version of [`RunRequest`] this crate writes and reads.
pub const ABI_VERSION: u32 = 1;

/// Where stage0 writes the request, relative to the pod directory.
pub const REQUEST_FILE: &str = "stage1/request.json";

/// The environment variable carrying the pod lock fd into `run`.
pub const LOCK_FD_ENV: &str = "RKT_LOCK_FD";

/// Everything stage1 needs to run a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// [`ABI_VERSION`].
    pub version: u32,
    /// The pod's UUID.
    pub uuid: String,
    /// The pod's hostname (the UTS namespace is the pod's).
    pub hostname: String,
    /// Verbose logging on stderr.
    #[serde(default)]
    pub debug: bool,
    /// Network mode.
    pub net: NetMode,
    /// Share the host's IPC namespace instead of a private one.
    #[serde(default)]
    pub ipc_host: bool,
    /// Content of the pod's `/etc/hosts`; `None` keeps each image's own (or a stub if absent).
    #[serde(default)]
    pub hosts: Option<String>,
    /// Content of the pod's `/etc/resolv.conf`; `None` keeps each image's own.
    #[serde(default)]
    pub resolv_conf: Option<String>,
    /// Bind the host's `/etc/hosts` (`--hosts-entry=host`) instead of `hosts`.
    #[serde(default)]
    pub hosts_from_host: bool,
    /// Bind the host's `/etc/resolv.conf` (`--dns=host`) instead of `resolv_conf`.
    #[serde(default)]
    pub resolv_conf_from_host: bool,
    /// Do not generate `/etc/resolv.conf` from the DNS settings CNI networks report
    /// (`--dns=none`); with neither this nor `resolv_conf`, a network's DNS wins over the image's.
    #[serde(default)]
    pub ignore_network_dns: bool,
    /// The single app gets the caller's terminal (`--interactive`).
    #[serde(default)]
    pub interactive: bool,
    /// Pod volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// The apps, in the order they were given.
    pub apps: Vec<AppRequest>,
}

/// The pod's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum NetMode {
    /// The host's network namespace (`--net=host`).
    Host,
    /// A private network namespace with loopback only (`--net=none`).
    None,
    /// A private network namespace joined to CNI networks (`--net=default`, named networks).
    Contained {
        /// The networks, in attach order (`eth0`, `eth1`, …), resolved by stage0.
        networks: Vec<Network>,
        /// Host ports forwarded into the pod (`--port`), exactly as CNI's `portMappings`.
        #[serde(default)]
        ports: Vec<rkt_net::PortMapping>,
        /// Where plugins are looked up, in order (`CNI_PATH`).
        plugin_dirs: Vec<PathBuf>,
    },
}

impl NetMode {
    /// Whether the pod has a network namespace of its own.
    pub fn private(&self) -> bool {
        !matches!(self, NetMode::Host)
    }
}

/// One CNI network a pod joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// The network's name (the configuration's `name`).
    pub name: String,
    /// The CNI configuration, in `.conflist` form (`name`, `cniVersion`, `plugins`), with
    /// everything stage0 resolved (the built-in networks' IPAM `dataDir`, for one).
    pub config: serde_json::Value,
    /// `CNI_ARGS` pairs from `--net=name:K=V;…`, in order.
    #[serde(default)]
    pub args: Vec<(String, String)>,
}

/// A pod volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// ACName the apps' mounts refer to.
    pub name: String,
    /// What backs it.
    pub kind: VolumeKind,
}

/// What backs a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum VolumeKind {
    /// A host path.
    Host {
        /// Absolute host path.
        source: PathBuf,
        /// Mount read-only.
        #[serde(default)]
        read_only: bool,
        /// Bind recursively (`rbind`); default true as rkt.
        #[serde(default = "yes")]
        recursive: bool,
    },
    /// A fresh directory in the pod directory, deleted with the pod.
    Empty {
        /// Mode of the directory.
        #[serde(default = "mode_0755")]
        mode: u32,
        /// Owner.
        #[serde(default)]
        uid: u32,
        /// Group.
        #[serde(default)]
        gid: u32,
    },
}

fn yes() -> bool {
    true
}

fn mode_0755() -> u32 {
    0o755
}

/// One app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRequest {
    /// ACName, unique in the pod.
    pub name: String,
    /// The image id, for `rkt status`/`list`.
    pub image_id: String,
    /// The image name it was run as, for display.
    #[serde(default)]
    pub image_name: String,
    /// Layer trees, base first: the overlayfs lower dirs.
    pub layers: Vec<PathBuf>,
    /// argv; `exec[0]` is resolved in the app's PATH if not absolute.
    pub exec: Vec<String>,
    /// Environment, in order; later entries win.
    pub env: Vec<(String, String)>,
    /// Working directory (absolute; empty means `/`).
    #[serde(default)]
    pub working_dir: String,
    /// User: a number or a name looked up in the image's own `/etc/passwd`; empty = root.
    #[serde(default)]
    pub user: String,
    /// Group: a number or a name looked up in the image's own `/etc/group`; empty = the
    /// user's primary group.
    #[serde(default)]
    pub group: String,
    /// Extra groups.
    #[serde(default)]
    pub supplementary_gids: Vec<u32>,
    /// Mount the rootfs read-only.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Volumes mounted into this app.
    #[serde(default)]
    pub mounts: Vec<MountRequest>,
    /// Capabilities the app keeps (already resolved from image, flags and insecure options).
    pub caps: CapSet,
    /// Seccomp policy; `None` with `--insecure-options=seccomp`.
    #[serde(default)]
    pub seccomp: Option<SeccompPolicy>,
    /// Apply masked and read-only `/proc` and `/sys` paths (off with `--insecure-options=paths`).
    #[serde(default = "yes")]
    pub masked_paths: bool,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Where the app's stdio goes.
    #[serde(default)]
    pub stdio: Stdio,
    /// Annotations, for display.
    #[serde(default)]
    pub annotations: Vec<(String, String)>,
}

/// A volume mounted into an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRequest {
    /// The volume's name.
    pub volume: String,
    /// Absolute path inside the app.
    pub path: String,
    /// Mount read-only even if the volume is writable.
    #[serde(default)]
    pub read_only: bool,
}

/// Resource limits of an app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory limit in bytes.
    #[serde(default)]
    pub memory: Option<u64>,
    /// CPU limit in millicores (`500m` = 500).
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    /// CPU weight, as v1 `cpu.shares`.
    #[serde(default)]
    pub cpu_shares: Option<u64>,
    /// OOM score adjustment.
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
}

/// Where an app's stdin, stdout and stderr go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stdio {
    /// stdin is /dev/null; stdout and stderr go to the pod's log files (`rkt logs`) and,
    /// for a pod run in the foreground, to stage1's own stdout/stderr as well.
    #[default]
    Log,
    /// The caller's terminal (the pod has exactly one app).
    Interactive,
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AbiError {
    /// Not JSON of the expected shape.
    #[error("malformed stage1 request")]
    Json(#[source] serde_json::Error),
    /// A version this stage1 does not know.
    #[error(
        "stage1 request version {0} is not supported by this stage1 (it speaks version \
         {ABI_VERSION}); use a stage1 built with this rkt"
    )]
    Version(u32),
}

impl RunRequest {
    /// Parses and version-checks a request.
    pub fn parse(bytes: &[u8]) -> Result<Self, AbiError> {
        #[derive(Deserialize)]
        struct V {
            version: u32,
        }
        let v: V = serde_json::from_slice(bytes).map_err(AbiError::Json)?;
        if v.version != ABI_VERSION {
            return Err(AbiError::Version(v.version));
        }
        serde_json::from_slice(bytes).map_err(AbiError::Json)
    }
}
