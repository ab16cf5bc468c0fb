//! What the command line asks for, per pod and per app, before it meets the images.

use std::path::PathBuf;

use rkt_stage1::abi::{NetMode, Volume};
use rkt_stage1::caps::CapSet;
use rkt_types::InsecureOptions;

use crate::volumes::MountSpec;

/// Pod-level settings (`rkt run` flags before the first image).
#[derive(Debug, Clone)]
pub struct PodSpec {
    /// A unique human name for the pod.
    pub name: Option<String>,
    /// Hostname; default `rkt-<uuid>`.
    pub hostname: Option<String>,
    /// Network.
    pub net: NetMode,
    /// Share the host's IPC namespace.
    pub ipc_host: bool,
    /// `--dns`: nameservers, or `host`, or `none`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-opt`.
    pub dns_opt: Vec<String>,
    /// `--dns-domain`.
    pub dns_domain: Option<String>,
    /// `--hosts-entry IP=HOST[,HOST…]` or `host`.
    pub hosts_entries: Vec<String>,
    /// `--volume`.
    pub volumes: Vec<Volume>,
    /// `--mount` given before any image: applies to every app.
    pub mounts: Vec<MountSpec>,
    /// `--interactive`.
    pub interactive: bool,
    /// `--insecure-options`.
    pub insecure: InsecureOptions,
    /// `--inherit-env`: the caller's environment.
    pub inherit_env: Option<Vec<(String, String)>>,
    /// `--set-env-file` contents, in order.
    pub set_env_files: Vec<Vec<(String, String)>>,
    /// `--set-env`, in order.
    pub set_env: Vec<(String, String)>,
    /// `--debug`, passed on to stage1.
    pub debug: bool,
    /// Pod annotations (`--annotation` before any image).
    pub annotations: Vec<(String, String)>,
    /// The capabilities stage1 will hold (see [`crate::build::held_capabilities`]), the most
    /// `--insecure-options=capabilities` can grant; `None`: no limit known.
    pub held_caps: Option<CapSet>,
}

impl Default for PodSpec {
    fn default() -> Self {
        PodSpec {
            name: None,
            hostname: None,
            net: NetMode::Host,
            ipc_host: false,
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_opt: Vec::new(),
            dns_domain: None,
            hosts_entries: Vec::new(),
            volumes: Vec::new(),
            mounts: Vec::new(),
            interactive: false,
            insecure: InsecureOptions::default(),
            inherit_env: None,
            set_env_files: Vec::new(),
            set_env: Vec::new(),
            debug: false,
            annotations: Vec::new(),
            held_caps: None,
        }
    }
}

/// Per-app settings (the flags after an image).
#[derive(Debug, Clone, Default)]
pub struct AppSpec {
    /// The image as the user typed it.
    pub image: String,
    /// `--name`.
    pub name: Option<String>,
    /// `--exec`: replaces the image's entrypoint (and its default arguments).
    pub exec: Option<String>,
    /// Arguments after `--`: replace the image's default arguments.
    pub args: Option<Vec<String>>,
    /// `--working-dir`.
    pub working_dir: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `--group`.
    pub group: Option<String>,
    /// `--supplementary-gids`.
    pub supplementary_gids: Option<Vec<u32>>,
    /// `--environment`, in order.
    pub environment: Vec<(String, String)>,
    /// `--readonly-rootfs`.
    pub readonly_rootfs: Option<bool>,
    /// `--mount` after this image.
    pub mounts: Vec<MountSpec>,
    /// `--memory` in bytes.
    pub memory: Option<u64>,
    /// `--cpu` in millicores.
    pub cpu_millis: Option<u64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--caps-retain`.
    pub caps_retain: Option<String>,
    /// `--caps-remove`.
    pub caps_remove: Option<String>,
    /// `--seccomp`.
    pub seccomp: Option<String>,
    /// `--annotation`.
    pub annotations: Vec<(String, String)>,
    /// `--user-annotation`.
    pub user_annotations: Vec<(String, String)>,
    /// `--user-label`.
    pub user_labels: Vec<(String, String)>,
}

/// Where the stage1 binary is looked for, first match wins.
#[derive(Debug, Clone, Default)]
pub struct Stage1Location {
    /// `--stage1-path`.
    pub path: Option<PathBuf>,
}
