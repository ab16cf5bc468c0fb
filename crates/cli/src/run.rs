//! `rkt run`, `rkt prepare` and `rkt run-prepared`.
//!
//! `run` fetches, prepares, then *becomes* the pod: it execs stage1, so whatever started rkt
//! (a shell, systemd, a kubelet) supervises the pod process directly.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use rkt_net::NetSelection;
use rkt_pod::Pods;
use rkt_stage0::exec::{Stage1Image, exec_stage1, stage1_binary};
use rkt_stage0::ports::PortFlag;
use rkt_stage0::prepare::{AppInput, prepare};
use rkt_stage0::spec::{PodSpec, Stage1Location};
use rkt_stage1::abi::{NetMode, REQUEST_FILE, RunRequest};
use rkt_types::pod_manifest::PodManifest;
use rkt_types::{ImageSource, PullPolicy};

use crate::fetch::{FetchFlags, runtime};
use crate::global::GlobalArgs;
use crate::pod_args::{parse_apps, parse_kv};

/// IPC namespace choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ipc {
    /// Private (as auto).
    Auto,
    /// A private IPC namespace.
    Private,
    /// The host's IPC namespace.
    Parent,
}

/// Pod-level flags of `run` and `prepare` (they go before the first image).
#[derive(Debug, Args)]
pub struct PodFlags {
    /// A unique name for the pod, usable instead of its UUID
    #[arg(long)]
    pub name: Option<String>,
    /// The pod's hostname [default: rkt-<uuid>]
    #[arg(long)]
    pub hostname: Option<String>,
    /// Networks: default, default-restricted, none, host, all, or CNI networks from net.d,
    /// comma-separated, each with optional CNI_ARGS (NAME:K=V;K2=V2)
    #[arg(long, default_value = "default", value_name = "NETS", value_parser = parse_net)]
    pub net: NetSelection,
    /// Forward a host port to the pod: NAME:[HOSTIP:]HOSTPORT for a port an image declares, or
    /// PROTO:PODPORT:[HOSTIP:]HOSTPORT (repeatable; needs a contained network)
    #[arg(long, value_parser = parse_port)]
    pub port: Vec<PortFlag>,
    /// IPC namespace
    #[arg(long, default_value = "auto")]
    pub ipc: Ipc,
    /// DNS server for the pod's resolv.conf, or `host`, or `none` (repeatable)
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domain (repeatable)
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// resolv.conf option (repeatable)
    #[arg(long)]
    pub dns_opt: Vec<String>,
    /// DNS domain
    #[arg(long)]
    pub dns_domain: Option<String>,
    /// /etc/hosts entry IP=HOST[,IP=HOST], or `host` (repeatable)
    #[arg(long)]
    pub hosts_entry: Vec<String>,
    /// Pod volume: NAME,kind=host,source=PATH[,readOnly=true] or NAME,kind=empty[,mode=,uid=,gid=]
    #[arg(long, value_parser = parse_volume_flag)]
    pub volume: Vec<rkt_stage1::abi::Volume>,
    /// Mount a volume into every app: volume=NAME,target=PATH
    #[arg(long, value_parser = parse_mount_flag)]
    pub mount: Vec<rkt_stage0::volumes::MountSpec>,
    /// Connect the (single) app to this terminal
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub interactive: bool,
    /// Give every app this process's environment (lowest precedence)
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub inherit_env: bool,
    /// Environment NAME=VALUE for every app (repeatable)
    #[arg(long, value_parser = parse_kv)]
    pub set_env: Vec<(String, String)>,
    /// File of NAME=VALUE lines for every app (repeatable)
    #[arg(long)]
    pub set_env_file: Vec<PathBuf>,
    /// Pod annotation NAME=VALUE (repeatable)
    #[arg(long, value_parser = parse_kv)]
    pub annotation: Vec<(String, String)>,
    /// Write the pod's UUID to this file
    #[arg(long)]
    pub uuid_file_save: Option<PathBuf>,
    /// The stage1 binary to use [default: rkt-stage1 next to rkt, else /usr/lib/rkt/stage1]
    #[arg(long)]
    pub stage1_path: Option<PathBuf>,
    /// Run this appc PodManifest (JSON) instead of images and app flags; its images must be in
    /// the store. Only --net, --interactive, --hostname, --name and --uuid-file-save apply
    #[arg(long, value_name = "FILE")]
    pub pod_manifest: Option<PathBuf>,
}

/// `rkt run` / `rkt prepare` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub pod: PodFlags,
    #[command(flatten)]
    pub fetch: FetchFlags,
    /// Print only the UUID (prepare)
    #[arg(long)]
    pub quiet: bool,
    /// IMAGE [APP FLAGS] [-- ARGS… ---], once per app
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE"
    )]
    pub images: Vec<String>,
}

/// `rkt run-prepared` arguments.
#[derive(Debug, Args)]
pub struct RunPreparedArgs {
    /// The prepared pod's UUID (or unique prefix, or name)
    pub pod: String,
    /// Connect the (single) app to this terminal
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true", value_name = "BOOL",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub interactive: bool,
    /// Override the networks chosen at prepare time (as `run --net`)
    #[arg(long, value_name = "NETS", value_parser = parse_net)]
    pub net: Option<NetSelection>,
    /// Override the hostname chosen at prepare time
    #[arg(long)]
    pub hostname: Option<String>,
    /// The stage1 binary to use
    #[arg(long)]
    pub stage1_path: Option<PathBuf>,
}

fn parse_volume_flag(s: &str) -> Result<rkt_stage1::abi::Volume, String> {
    rkt_stage0::volumes::parse_volume(s).map_err(|e| e.to_string())
}

fn parse_mount_flag(s: &str) -> Result<rkt_stage0::volumes::MountSpec, String> {
    rkt_stage0::volumes::parse_mount(s).map_err(|e| e.to_string())
}

fn parse_net(s: &str) -> Result<NetSelection, String> {
    rkt_net::parse_net_flag(s).map_err(|e| e.to_string())
}

fn parse_port(s: &str) -> Result<PortFlag, String> {
    rkt_stage0::ports::parse_port_flag(s).map_err(|e| e.to_string())
}

/// The request's network mode: `selection` resolved against the configuration's `net.d`
/// directories, with `ports` forwarded.
fn net_mode(
    g: &GlobalArgs,
    config: &rkt_config::Config,
    selection: &NetSelection,
    ports: Vec<rkt_net::PortMapping>,
) -> anyhow::Result<NetMode> {
    let net_d = rkt_stage0::net::net_d_dirs(&[&g.system_config, &g.local_config]);
    Ok(rkt_stage0::net::net_mode(
        selection,
        &net_d,
        &g.data_dir(config),
        ports,
    )?)
}

/// Fetches the images and writes the pod directory; returns the preparing pod.
/// `run` starts sealing stage1 (for the exec) at once, so the copy overlaps the rest.
fn prepare_pod(
    g: &GlobalArgs,
    a: &RunArgs,
    run: bool,
) -> anyhow::Result<(rkt_pod::PreparingPod, RunRequest, Stage1Image)> {
    let manifest = read_pod_manifest(a)?;
    let apps = match manifest {
        Some(_) => Vec::new(),
        None => parse_apps(&a.images)?,
    };
    // Before anything is made: a pod without a stage1 to run it would be left behind.
    let stage1 = stage1_binary(&Stage1Location {
        path: a.pod.stage1_path.clone(),
    })?;
    let stage1 = if run {
        Stage1Image::start(stage1)
    } else {
        Stage1Image::unsealed(stage1)
    };
    let config = g.config()?;
    let store = g.store(&config)?;
    let fetcher = a
        .fetch
        .fetcher(g, &config, store.clone(), PullPolicy::New)?;
    let mut inputs = Vec::with_capacity(apps.len());
    // A runtime (threads, and the network) only if some image is not answered by the store;
    // it lives only while fetching, since stage1 is exec'd from this process.
    let mut rt = None;
    for spec in apps {
        let src = ImageSource::parse(&spec.image)
            .with_context(|| format!("cannot run {:?}", spec.image))?;
        let image = match fetcher
            .fetch_stored(&src)
            .with_context(|| format!("cannot fetch {}", spec.image))?
        {
            Some(image) => image,
            None => {
                let rt = match &mut rt {
                    Some(rt) => rt,
                    None => rt.insert(runtime()?),
                };
                rt.block_on(fetcher.fetch(&src))
                    .with_context(|| format!("cannot fetch {}", spec.image))?
            }
        };
        let image_name = store
            .names(&image.id)?
            .first()
            .map(ToString::to_string)
            .unwrap_or_else(|| image.id.to_string());
        inputs.push(AppInput {
            spec,
            image,
            image_name,
        });
    }
    drop(rt);
    let configs: Vec<&rkt_types::ImageConfig> = inputs.iter().map(|i| &i.image.config).collect();
    let ports = rkt_stage0::ports::resolve_ports(&a.pod.port, &configs)?;
    let net = net_mode(g, &config, &a.pod.net, ports)?;
    let mut set_env_files = Vec::new();
    for f in &a.pod.set_env_file {
        set_env_files.push(rkt_stage0::env::read_env_file(f)?);
    }
    let spec = PodSpec {
        name: a.pod.name.clone(),
        hostname: a.pod.hostname.clone(),
        net,
        ipc_host: a.pod.ipc == Ipc::Parent,
        dns: a.pod.dns.clone(),
        dns_search: a.pod.dns_search.clone(),
        dns_opt: a.pod.dns_opt.clone(),
        dns_domain: a.pod.dns_domain.clone(),
        hosts_entries: a.pod.hosts_entry.clone(),
        volumes: a.pod.volume.clone(),
        mounts: a.pod.mount.clone(),
        interactive: a.pod.interactive,
        insecure: g.insecure_options,
        inherit_env: a
            .pod
            .inherit_env
            .then(|| std::env::vars().collect::<Vec<_>>()),
        set_env_files,
        set_env: a.pod.set_env.clone(),
        debug: g.debug,
        annotations: a.pod.annotation.clone(),
        held_caps: rkt_stage0::build::held_capabilities(),
    };
    let pods = Pods::open(&g.data_dir(&config))?;
    let (pod, req) = match &manifest {
        Some(m) => rkt_stage0::pod_manifest::prepare_from_manifest(&pods, &store, &spec, m)?,
        None => prepare(&pods, &store, &spec, inputs)?,
    };
    if let Some(f) = &a.pod.uuid_file_save
        && let Err(e) = std::fs::write(f, format!("{}\n", pod.uuid()))
    {
        let uuid = pod.uuid();
        if let Err(d) = pod.discard() {
            tracing::warn!("cannot remove the pod {uuid} just prepared: {d}");
        }
        return Err(
            anyhow::Error::new(e).context(format!("cannot write the UUID to {}", f.display()))
        );
    }
    Ok((pod, req, stage1))
}

/// Reads `--pod-manifest`, refusing images and the flags a pod manifest replaces.
fn read_pod_manifest(a: &RunArgs) -> anyhow::Result<Option<PodManifest>> {
    let Some(file) = &a.pod.pod_manifest else {
        return Ok(None);
    };
    if !a.images.is_empty() {
        anyhow::bail!(
            "--pod-manifest runs the apps the manifest lists; give no images after it ({:?})",
            a.images[0]
        );
    }
    let p = &a.pod;
    let set = [
        ("--ipc", p.ipc != Ipc::Auto),
        ("--port", !p.port.is_empty()),
        (
            "--dns*",
            !p.dns.is_empty() || !p.dns_search.is_empty() || !p.dns_opt.is_empty(),
        ),
        ("--dns-domain", p.dns_domain.is_some()),
        ("--hosts-entry", !p.hosts_entry.is_empty()),
        ("--volume", !p.volume.is_empty()),
        ("--mount", !p.mount.is_empty()),
        ("--inherit-env", p.inherit_env),
        ("--set-env", !p.set_env.is_empty()),
        ("--set-env-file", !p.set_env_file.is_empty()),
        ("--annotation", !p.annotation.is_empty()),
        ("--pull-policy", a.fetch.pull_policy.is_some()),
        ("--platform", a.fetch.platform.is_some()),
    ];
    let conflicts: Vec<&str> = set.iter().filter(|(_, on)| *on).map(|(f, _)| *f).collect();
    if !conflicts.is_empty() {
        anyhow::bail!(
            "{} cannot be combined with --pod-manifest: the manifest says it (volumes, mounts, \
             annotations, environment) or it does not apply; only --net, --interactive, \
             --hostname, --name and --uuid-file-save do",
            conflicts.join(", ")
        );
    }
    let bytes = std::fs::read(file)
        .with_context(|| format!("cannot read the pod manifest {}", file.display()))?;
    let m = PodManifest::parse(&bytes)
        .with_context(|| format!("cannot use the pod manifest {}", file.display()))?;
    Ok(Some(m))
}

/// `rkt run`: prepare, then become the pod.
pub fn run(g: &GlobalArgs, a: RunArgs) -> anyhow::Result<ExitCode> {
    let (pod, _req, stage1) = prepare_pod(g, &a, true)?;
    let running = pod.into_running()?;
    let (uuid, dir) = (running.uuid(), running.dir().to_owned());
    let lock = running.lock_fd()?;
    let stage1_path = stage1.path().to_owned();
    let err = exec_stage1(stage1, "run", &dir, g.debug, &[], Some(lock));
    // The pod never ran, and its lock went with the failed exec: take it away again rather
    // than leave an "exited" pod that never started.
    let config = g.config()?;
    let pods = Pods::open(&g.data_dir(&config))?;
    if let Some(h) = pods.find(uuid)?
        && let Err(e) = rkt_stage0::ops::remove(&stage1_path, &pods, &h, g.debug)
    {
        tracing::warn!("cannot remove the pod {uuid} that failed to start: {e}");
    }
    Err(err.into())
}

/// `rkt prepare`: prepare and print the UUID.
pub fn prepare_verb(g: &GlobalArgs, a: RunArgs) -> anyhow::Result<ExitCode> {
    let (pod, _req, _stage1) = prepare_pod(g, &a, false)?;
    let handle = pod.finish_prepared()?;
    println!("{}", handle.uuid());
    Ok(ExitCode::SUCCESS)
}

/// `rkt run-prepared UUID`.
pub fn run_prepared(g: &GlobalArgs, a: RunPreparedArgs) -> anyhow::Result<ExitCode> {
    let config = g.config()?;
    let pods = Pods::open(&g.data_dir(&config))?;
    let handle = pods.get(&a.pod)?;
    // Everything that can refuse is checked while the pod is still prepared: once it moves to
    // run/ it can never be prepared again.
    let stage1 = stage1_binary(&Stage1Location {
        path: a.stage1_path.clone(),
    })?;
    let changed = if a.interactive || a.net.is_some() || a.hostname.is_some() {
        if handle.state() != rkt_pod::PodState::Prepared {
            // run_prepared below says what state it is in.
            None
        } else {
            let path = handle.dir().join(REQUEST_FILE);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let mut req = RunRequest::parse(&bytes)?;
            if a.interactive {
                if req.apps.len() != 1 {
                    anyhow::bail!(
                        "--interactive needs a pod with exactly one app, but pod {} has {}",
                        handle.uuid(),
                        req.apps.len()
                    );
                }
                req.interactive = true;
                req.apps[0].stdio = rkt_stage1::abi::Stdio::Interactive;
            }
            if let Some(n) = &a.net {
                // The ports were resolved against the images at prepare time.
                let ports = match &req.net {
                    NetMode::Contained { ports, .. } => ports.clone(),
                    _ => Vec::new(),
                };
                req.net = net_mode(g, &config, n, ports)?;
            }
            if let Some(h) = &a.hostname {
                req.hostname = h.clone();
            }
            Some(serde_json::to_vec_pretty(&req)?)
        }
    } else {
        None
    };
    let running = pods.run_prepared(handle.uuid())?;
    let dir = running.dir().to_owned();
    if let Some(req) = changed {
        running.write_file(REQUEST_FILE, &req)?;
    }
    let lock = running.lock_fd()?;
    Err(exec_stage1(
        Stage1Image::start(stage1),
        "run",
        &dir,
        g.debug,
        &[],
        Some(lock),
    )
    .into())
}
