//! From the command line and the images to the two documents of a pod: the stage1 run request
//! and the appc pod manifest. Pure: the caller has already resolved images and layer trees.

use std::collections::BTreeSet;
use std::path::PathBuf;

use rkt_stage1::abi::{
    ABI_VERSION, AppRequest, Limits, MountRequest, RunRequest, Stdio, VolumeKind,
};
use rkt_stage1::{caps, seccomp};
use rkt_types::appc::{App, Isolator, MountPoint, NameValue, Port};
use rkt_types::name::{sanitize_ac_name, validate_ac_name};
use rkt_types::pod_manifest::{PodApp, PodImage, PodManifest, PodMount, PodVolume};
use rkt_types::{ImageFormat, ImageRecord};

use crate::Stage0Error;
use crate::env::merge;
use crate::quantity::{parse_cpu_millis, parse_memory};
use crate::spec::{AppSpec, PodSpec};

/// One app with its image: what [`build`] works from.
#[derive(Debug, Clone)]
pub struct ResolvedApp {
    /// The command line's settings.
    pub spec: AppSpec,
    /// The image.
    pub image: ImageRecord,
    /// The image's name (first `name:tag`), for display.
    pub image_name: String,
    /// The image's layer trees, base first.
    pub layers: Vec<PathBuf>,
}

/// Builds the run request and the pod manifest of pod `uuid`.
pub fn build(
    uuid: &str,
    pod: &PodSpec,
    apps: &[ResolvedApp],
) -> Result<(RunRequest, PodManifest), Stage0Error> {
    if apps.is_empty() {
        return Err(Stage0Error::Usage("a pod needs at least one image".into()));
    }
    if pod.interactive && apps.len() != 1 {
        return Err(Stage0Error::Usage(format!(
            "--interactive needs exactly one app, but {} were given",
            apps.len()
        )));
    }
    let volume_names: BTreeSet<&str> = pod.volumes.iter().map(|v| v.name.as_str()).collect();
    if volume_names.len() != pod.volumes.len() {
        return Err(Stage0Error::Usage(
            "two --volume flags have the same name".into(),
        ));
    }
    let mut names = BTreeSet::new();
    let mut requests = Vec::new();
    let mut manifest_apps = Vec::new();
    for a in apps {
        let name = match &a.spec.name {
            Some(n) => {
                validate_ac_name(n).map_err(|e| Stage0Error::Usage(format!("--name: {e}")))?;
                n.clone()
            }
            None => default_app_name(&a.spec.image, &a.image_name),
        };
        if !names.insert(name.clone()) {
            return Err(Stage0Error::Usage(format!(
                "two apps are named {name:?}; give one of them another --name"
            )));
        }
        let (req, papp) = build_app(pod, a, &name, &volume_names)?;
        requests.push(req);
        manifest_apps.push(papp);
    }
    let hostname = pod
        .hostname
        .clone()
        .unwrap_or_else(|| format!("rkt-{uuid}"));
    let (hosts, hosts_from_host) = hosts_file(pod, &hostname)?;
    let (resolv_conf, resolv_conf_from_host) = resolv_conf(pod)?;
    let req = RunRequest {
        version: ABI_VERSION,
        uuid: uuid.to_owned(),
        hostname,
        debug: pod.debug,
        net: pod.net.clone(),
        ipc_host: pod.ipc_host,
        hosts,
        resolv_conf,
        hosts_from_host,
        resolv_conf_from_host,
        ignore_network_dns: pod.dns.iter().any(|d| d == "none"),
        interactive: pod.interactive,
        volumes: pod.volumes.clone(),
        apps: requests,
    };
    let mut manifest = PodManifest::new();
    manifest.apps = manifest_apps;
    manifest.volumes = pod.volumes.iter().map(pod_volume).collect();
    manifest.annotations = name_values(&pod.annotations);
    Ok((req, manifest))
}

fn build_app(
    pod: &PodSpec,
    a: &ResolvedApp,
    name: &str,
    volumes: &BTreeSet<&str>,
) -> Result<(AppRequest, PodApp), Stage0Error> {
    let img = &a.image.config;
    let app_err = |e: String| Stage0Error::Usage(format!("app {name}: {e}"));
    // docker's rule (and podman's --entrypoint): a new entrypoint drops the image's default
    // arguments; arguments after `--` replace them.
    let exec: Vec<String> = match (&a.spec.exec, &a.spec.args) {
        (Some(e), args) => std::iter::once(e.clone())
            .chain(args.iter().flatten().cloned())
            .collect(),
        (None, Some(args)) => img.entrypoint.iter().chain(args).cloned().collect(),
        (None, None) => img.exec(),
    };
    if exec.is_empty() {
        return Err(app_err(
            "the image names no command to run; give one with --exec".into(),
        ));
    }
    let mut env_layers: Vec<&[(String, String)]> = Vec::new();
    if let Some(parent) = &pod.inherit_env {
        env_layers.push(parent);
    }
    env_layers.push(&img.env);
    for f in &pod.set_env_files {
        env_layers.push(f);
    }
    env_layers.push(&pod.set_env);
    env_layers.push(&a.spec.environment);
    let ac = [("AC_APP_NAME".to_owned(), name.to_owned())];
    env_layers.push(&ac);
    let env = merge(env_layers);

    let cap_override = caps::CapsOverride::from_flags(
        a.spec.caps_retain.as_deref(),
        a.spec.caps_remove.as_deref(),
    )
    .map_err(|e| app_err(e.to_string()))?;
    let mut caps = caps::resolve(
        &img.isolators,
        cap_override.as_ref(),
        pod.insecure.capabilities,
    )
    .map_err(|e| app_err(e.to_string()))?;
    if pod.insecure.capabilities
        && let Some(held) = pod.held_caps
    {
        // "Every capability" can only be every one rkt holds: root may lack some (in a
        // container, or without CAP_SYS_RESOURCE as on this project's CI), and stage1 refuses
        // to start an app with a capability it cannot give.
        let missing: Vec<String> = caps
            .iter()
            .filter(|c| !held.contains(*c))
            .map(|c| c.to_string())
            .collect();
        if !missing.is_empty() {
            tracing::warn!(
                "--insecure-options=capabilities: rkt does not hold {}, so app {name} runs without",
                missing.join(", ")
            );
            caps = caps.iter().filter(|c| held.contains(*c)).collect();
        }
    }
    let seccomp_cli = a
        .spec
        .seccomp
        .as_deref()
        .map(seccomp::SeccompSpec::parse_cli)
        .transpose()
        .map_err(|e| app_err(e.to_string()))?;
    let seccomp = seccomp::resolve(&img.isolators, seccomp_cli.as_ref(), pod.insecure.seccomp)
        .map_err(|e| app_err(e.to_string()))?;

    let limits = Limits {
        memory: match a.spec.memory {
            Some(m) => Some(m),
            None => isolator_limit(&img.isolators, "resource/memory")
                .map(|v| parse_memory(&v).map_err(|e| app_err(e.to_string())))
                .transpose()?,
        },
        cpu_millis: match a.spec.cpu_millis {
            Some(c) => Some(c),
            None => isolator_limit(&img.isolators, "resource/cpu")
                .map(|v| parse_cpu_millis(&v).map_err(|e| app_err(e.to_string())))
                .transpose()?,
        },
        cpu_shares: a.spec.cpu_shares,
        oom_score_adj: a.spec.oom_score_adj,
    };

    // Mounts: pod-wide --mount, this app's --mount, then image mount points whose name matches
    // a volume (appc's rule). A mount point with no volume keeps the image's content (docker's
    // behaviour, and what rkt users asked for: docker2aci #141).
    let mut mounts: Vec<MountRequest> = Vec::new();
    for m in pod.mounts.iter().chain(&a.spec.mounts) {
        if !volumes.contains(m.volume.as_str()) {
            return Err(app_err(format!(
                "--mount refers to volume {:?}, which no --volume defines",
                m.volume
            )));
        }
        mounts.push(MountRequest {
            volume: m.volume.clone(),
            path: m.target.clone(),
            read_only: false,
        });
    }
    for mp in &img.mount_points {
        if volumes.contains(mp.name.as_str()) && !mounts.iter().any(|m| m.path == mp.path) {
            mounts.push(MountRequest {
                volume: mp.name.clone(),
                path: mp.path.clone(),
                read_only: mp.read_only,
            });
        }
    }
    let readonly_rootfs = a.spec.readonly_rootfs.unwrap_or(false);
    let working_dir = a
        .spec
        .working_dir
        .clone()
        .unwrap_or_else(|| img.working_dir.clone());
    if !working_dir.is_empty() && !working_dir.starts_with('/') {
        return Err(app_err(format!(
            "working directory {working_dir:?} is not absolute"
        )));
    }
    let user = a.spec.user.clone().unwrap_or_else(|| img.user.clone());
    let group = a.spec.group.clone().unwrap_or_else(|| img.group.clone());
    let supplementary_gids = a
        .spec
        .supplementary_gids
        .clone()
        .unwrap_or_else(|| img.supplementary_gids.clone());
    let annotations: Vec<(String, String)> = a
        .spec
        .annotations
        .iter()
        .chain(&a.spec.user_annotations)
        .cloned()
        .collect();
    let req = AppRequest {
        name: name.to_owned(),
        image_id: a.image.id.to_string(),
        image_name: a.image_name.clone(),
        layers: a.layers.clone(),
        exec: exec.clone(),
        env: env.clone(),
        working_dir: working_dir.clone(),
        user: user.clone(),
        group: group.clone(),
        supplementary_gids: supplementary_gids.clone(),
        readonly_rootfs,
        mounts: mounts.clone(),
        caps,
        seccomp,
        masked_paths: !pod.insecure.paths,
        limits,
        stdio: if pod.interactive {
            Stdio::Interactive
        } else {
            Stdio::Log
        },
        annotations: annotations.clone(),
    };
    let mut labels: Vec<NameValue> = img
        .labels
        .iter()
        .filter(|_| a.image.format == ImageFormat::Appc)
        .map(|(k, v)| NameValue {
            name: k.clone(),
            value: v.clone(),
        })
        .collect();
    labels.extend(name_values(&a.spec.user_labels));
    let papp = PodApp {
        name: name.to_owned(),
        image: PodImage {
            name: a.image_name.clone(),
            id: a.image.id.to_string(),
            labels,
        },
        app: Some(App {
            exec,
            user,
            group,
            supplementary_gids,
            working_directory: working_dir,
            environment: env
                .iter()
                .map(|(k, v)| NameValue {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            mount_points: img
                .mount_points
                .iter()
                .map(|m| MountPoint {
                    name: m.name.clone(),
                    path: m.path.clone(),
                    read_only: m.read_only,
                })
                .collect(),
            ports: img
                .ports
                .iter()
                .map(|p| Port {
                    name: p.name.clone(),
                    protocol: p.protocol.clone(),
                    port: p.port,
                    count: p.count,
                    socket_activated: p.socket_activated,
                })
                .collect(),
            isolators: img.isolators.clone(),
            event_handlers: Vec::new(),
        }),
        read_only_root_fs: readonly_rootfs,
        mounts: mounts
            .iter()
            .map(|m| PodMount {
                volume: m.volume.clone(),
                path: m.path.clone(),
            })
            .collect(),
        annotations: name_values(&annotations),
    };
    Ok((req, papp))
}

/// The `limit` of a `resource/*` isolator (`{"limit": "128M"}`).
fn isolator_limit(isolators: &[Isolator], name: &str) -> Option<String> {
    isolators
        .iter()
        .find(|i| i.name == name)
        .and_then(|i| i.value.get("limit"))
        .and_then(|v| v.as_str().map(str::to_owned))
}

/// The app name rkt gives when `--name` is absent: the image's base name.
pub fn default_app_name(typed: &str, image_name: &str) -> String {
    let source = if image_name.is_empty() {
        typed
    } else {
        image_name
    };
    let s = source
        .split("://")
        .last()
        .unwrap_or(source)
        .split('@')
        .next()
        .unwrap_or_default();
    let last = s.rsplit('/').next().unwrap_or(s);
    let base = last.split(':').next().unwrap_or(last);
    let base = base
        .strip_suffix(".aci")
        .or_else(|| base.strip_suffix(".tar"))
        .unwrap_or(base);
    sanitize_ac_name(base).unwrap_or_else(|| "app".into())
}

fn name_values(kv: &[(String, String)]) -> Vec<NameValue> {
    kv.iter()
        .map(|(k, v)| NameValue {
            name: k.clone(),
            value: v.clone(),
        })
        .collect()
}

fn pod_volume(v: &rkt_stage1::abi::Volume) -> PodVolume {
    match &v.kind {
        VolumeKind::Host {
            source,
            read_only,
            recursive,
        } => PodVolume {
            name: v.name.clone(),
            kind: "host".into(),
            source: Some(source.display().to_string()),
            read_only: Some(*read_only),
            recursive: Some(*recursive),
            mode: None,
            uid: None,
            gid: None,
        },
        VolumeKind::Empty { mode, uid, gid } => PodVolume {
            name: v.name.clone(),
            kind: "empty".into(),
            source: None,
            read_only: None,
            recursive: None,
            mode: Some(format!("{mode:04o}")),
            uid: Some(*uid),
            gid: Some(*gid),
        },
    }
}

/// `/etc/hosts`: generated from `--hosts-entry`, the host's with `--hosts-entry=host`, else
/// the image's own (stage1 writes a stub if the image has none).
fn hosts_file(pod: &PodSpec, hostname: &str) -> Result<(Option<String>, bool), Stage0Error> {
    if pod.hosts_entries.is_empty() {
        return Ok((None, false));
    }
    if pod.hosts_entries.iter().any(|e| e == "host") {
        if pod.hosts_entries.len() > 1 {
            return Err(Stage0Error::Usage(
                "--hosts-entry=host cannot be combined with other entries".into(),
            ));
        }
        return Ok((None, true));
    }
    let mut s = format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost\n");
    for e in &pod.hosts_entries {
        for item in e.split(',') {
            let (ip, host) = item.split_once('=').ok_or_else(|| {
                Stage0Error::Usage(format!("--hosts-entry {item:?} is not IP=HOSTNAME"))
            })?;
            if ip.parse::<std::net::IpAddr>().is_err()
                || host.is_empty()
                || host.contains(char::is_whitespace)
            {
                return Err(Stage0Error::Usage(format!(
                    "--hosts-entry {item:?} is not IP=HOSTNAME"
                )));
            }
            s.push_str(&format!("{ip}\t{host}\n"));
        }
    }
    Ok((Some(s), false))
}

/// `/etc/resolv.conf` from `--dns*` (rkt-reference §1.13): `host` binds the host's, `none`
/// keeps the image's own, addresses generate a file.
fn resolv_conf(pod: &PodSpec) -> Result<(Option<String>, bool), Stage0Error> {
    let special = |w: &str| pod.dns.iter().any(|d| d == w);
    if special("host") || special("none") {
        if pod.dns.len() > 1 {
            return Err(Stage0Error::Usage(
                "--dns=host and --dns=none cannot be combined with other servers".into(),
            ));
        }
        return Ok((None, special("host")));
    }
    if pod.dns.is_empty() {
        if !pod.dns_search.is_empty() || !pod.dns_opt.is_empty() || pod.dns_domain.is_some() {
            return Err(Stage0Error::Usage(
                "--dns-search, --dns-opt and --dns-domain need --dns servers".into(),
            ));
        }
        return Ok((None, false));
    }
    let mut s = String::new();
    for d in &pod.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            return Err(Stage0Error::Usage(format!(
                "--dns {d:?} is not an IP address, host or none"
            )));
        }
        s.push_str(&format!("nameserver {d}\n"));
    }
    if let Some(dom) = &pod.dns_domain {
        s.push_str(&format!("domain {dom}\n"));
    }
    if !pod.dns_search.is_empty() {
        s.push_str(&format!("search {}\n", pod.dns_search.join(" ")));
    }
    if !pod.dns_opt.is_empty() {
        s.push_str(&format!("options {}\n", pod.dns_opt.join(" ")));
    }
    Ok((Some(s), false))
}

/// The capabilities stage1 will hold when this process execs it: this process's bounding set
/// (what root gets at `execve`). `None` if `/proc/self/status` cannot be read.
pub fn held_capabilities() -> Option<caps::CapSet> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())?;
    Some(
        caps::CapSet::all()
            .iter()
            .filter(|c| mask & c.bitmask() != 0)
            .collect(),
    )
}

#[cfg(test)]
mod tests;
