//! The one internal image model every format maps onto.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::appc;
use crate::digest::Digest;
use crate::name::sanitize_ac_name;
use crate::oci::ImageConfigDoc;

/// The format an image arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// OCI image spec.
    Oci,
    /// Docker schema2.
    Docker,
    /// appc ACI.
    Appc,
}

impl ImageFormat {
    /// Lowercase name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Oci => "oci",
            ImageFormat::Docker => "docker",
            ImageFormat::Appc => "appc",
        }
    }

    /// Parses [`ImageFormat::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "oci" => Some(ImageFormat::Oci),
            "docker" => Some(ImageFormat::Docker),
            "appc" => Some(ImageFormat::Appc),
            _ => None,
        }
    }
}

/// OS and CPU an image is built for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, … (Go's names, as OCI uses).
    pub architecture: String,
    /// `v8`, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this binary runs on, in OCI's names.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]` as `--platform` takes it.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('/');
        let os = it.next().filter(|x| !x.is_empty())?.to_owned();
        let architecture = it.next().filter(|x| !x.is_empty())?.to_owned();
        let variant = it.next().map(str::to_owned);
        if it.next().is_some() {
            return None;
        }
        Some(Platform {
            os,
            architecture,
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A port the image declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// ACName used by `--port NAME:…` (`80-tcp` for Docker's `80/tcp`).
    pub name: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Port number inside the pod.
    pub port: u16,
    /// Number of consecutive ports.
    pub count: u16,
    /// Passed in by socket activation (appc).
    pub socket_activated: bool,
}

/// A mount point the image declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPointSpec {
    /// ACName of the volume (`volume-data` for Docker's `/data`).
    pub name: String,
    /// Absolute path in the app.
    pub path: String,
    /// Read-only.
    pub read_only: bool,
}

/// What an image says about how to run it, in one shape for every format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Docker/OCI entrypoint; appc `exec`.
    pub entrypoint: Vec<String>,
    /// Docker/OCI default arguments (empty for appc).
    pub cmd: Vec<String>,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// User: a name, a number, or empty for root.
    pub user: String,
    /// Group: a name, a number, or empty for the user's primary group.
    pub group: String,
    /// Extra groups.
    pub supplementary_gids: Vec<u32>,
    /// Working directory (empty: `/`).
    pub working_dir: String,
    /// Declared ports.
    pub ports: Vec<PortSpec>,
    /// Declared mount points.
    pub mount_points: Vec<MountPointSpec>,
    /// Labels (OCI labels; appc labels such as version, os, arch).
    pub labels: BTreeMap<String, String>,
    /// Annotations (OCI manifest annotations; appc annotations).
    pub annotations: BTreeMap<String, String>,
    /// appc isolators, kept verbatim for stage0 to interpret.
    pub isolators: Vec<appc::Isolator>,
    /// Signal that stops the app gracefully.
    pub stop_signal: Option<String>,
}

impl ImageConfig {
    /// The command to run: entrypoint followed by cmd.
    pub fn exec(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// Maps an OCI/Docker config onto the internal model, as docker2aci did for rkt
    /// (`80/tcp` → port `80-tcp`; volume `/data` → mount point `volume-data`).
    pub fn from_oci(doc: &ImageConfigDoc, annotations: &BTreeMap<String, String>) -> Self {
        let c = doc.config.clone().unwrap_or_default();
        let (user, group) = match c.user.as_deref().unwrap_or("") {
            "" => (String::new(), String::new()),
            u => match u.split_once(':') {
                Some((u, g)) => (u.to_owned(), g.to_owned()),
                None => (u.to_owned(), String::new()),
            },
        };
        let env = c
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv, String::new()),
            })
            .collect();
        let mut ports = Vec::new();
        for key in c.exposed_ports.unwrap_or_default().into_keys() {
            let (num, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            if let Ok(port) = num.parse::<u16>() {
                ports.push(PortSpec {
                    name: format!("{port}-{proto}"),
                    protocol: proto.to_owned(),
                    port,
                    count: 1,
                    socket_activated: false,
                });
            }
        }
        let mount_points = c
            .volumes
            .unwrap_or_default()
            .into_keys()
            .filter(|p| p.starts_with('/'))
            .map(|path| MountPointSpec {
                name: format!(
                    "volume-{}",
                    sanitize_ac_name(&path).unwrap_or_else(|| "root".into())
                ),
                path,
                read_only: false,
            })
            .collect();
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env,
            user,
            group,
            supplementary_gids: Vec::new(),
            working_dir: c.working_dir.unwrap_or_default(),
            ports,
            mount_points,
            labels: c.labels.unwrap_or_default(),
            annotations: annotations.clone(),
            isolators: Vec::new(),
            stop_signal: c.stop_signal,
        }
    }

    /// Maps an appc image manifest onto the internal model.
    pub fn from_appc(m: &appc::ImageManifest) -> Self {
        let app = m.app.clone().unwrap_or_default();
        ImageConfig {
            entrypoint: app.exec,
            cmd: Vec::new(),
            env: app
                .environment
                .into_iter()
                .map(|nv| (nv.name, nv.value))
                .collect(),
            user: app.user,
            group: app.group,
            supplementary_gids: app.supplementary_gids,
            working_dir: app.working_directory,
            ports: app
                .ports
                .into_iter()
                .map(|p| PortSpec {
                    name: p.name,
                    protocol: p.protocol,
                    port: p.port,
                    count: p.count,
                    socket_activated: p.socket_activated,
                })
                .collect(),
            mount_points: app
                .mount_points
                .into_iter()
                .map(|mp| MountPointSpec {
                    name: mp.name,
                    path: mp.path,
                    read_only: mp.read_only,
                })
                .collect(),
            labels: m
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect(),
            annotations: m
                .annotations
                .iter()
                .map(|a| (a.name.clone(), a.value.clone()))
                .collect(),
            isolators: app.isolators,
            stop_signal: None,
        }
    }
}

/// One layer of a stored image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the uncompressed tar: the key of the unpacked tree.
    pub diff_id: Digest,
    /// Digest of the blob as distributed (compressed), the key in the blob store.
    pub blob: Digest,
    /// Media type of the blob.
    pub media_type: String,
    /// Size of the blob in bytes.
    pub size: u64,
}

/// Everything the store records about one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Image id: the config digest (OCI/Docker) or the sha512 of the uncompressed ACI (appc).
    pub id: Digest,
    /// Format it arrived in.
    pub format: ImageFormat,
    /// Digest of the manifest blob (OCI/Docker) or of the ACI `manifest` file (appc).
    pub manifest: Digest,
    /// Digest of the config blob (OCI/Docker); for appc, the same as `manifest`.
    pub config_blob: Digest,
    /// Platform.
    pub platform: Platform,
    /// Run configuration.
    pub config: ImageConfig,
    /// Layers, base first.
    pub layers: Vec<LayerRecord>,
}

impl ImageRecord {
    /// Sum of the blob sizes.
    pub fn blob_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_docker_config_like_docker2aci() {
        let doc = ImageConfigDoc::parse(
            br#"{"architecture":"amd64","os":"linux","config":{"User":"1000:50",
            "Env":["PATH=/bin","EMPTY"],"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],
            "ExposedPorts":{"80/tcp":{},"53/udp":{}},"Volumes":{"/var/data":{}},
            "WorkingDir":"/srv"},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let c = ImageConfig::from_oci(&doc, &BTreeMap::new());
        assert_eq!(c.user, "1000");
        assert_eq!(c.group, "50");
        assert_eq!(c.exec(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.env[1], ("EMPTY".into(), String::new()));
        let names: Vec<_> = c.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["53-udp", "80-tcp"]);
        assert_eq!(c.mount_points[0].name, "volume-var-data");
        assert_eq!(c.working_dir, "/srv");
    }

    #[test]
    fn platforms() {
        assert_eq!(Platform::host().os, "linux");
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_none());
        assert!(Platform::parse("linux/amd64/v1/x").is_none());
    }
}
