//! The appc image manifest (the `manifest` file of an ACI).

use serde::{Deserialize, Serialize};

use crate::name::{NameError, validate_ac_identifier, validate_ac_name};

/// The appc spec version rkt writes.
pub const AC_VERSION: &str = "0.8.11";

/// A `{name, value}` pair, as appc writes labels, annotations and environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A mount point an app declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    /// ACName of the volume to mount here.
    pub name: String,
    /// Absolute path inside the app.
    pub path: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// A port an app declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// ACName.
    pub name: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Port number.
    pub port: u16,
    /// Number of consecutive ports.
    #[serde(default = "one")]
    pub count: u16,
    /// Passed in by socket activation.
    #[serde(default)]
    pub socket_activated: bool,
}

fn one() -> u16 {
    1
}

/// An isolator: a name plus a free-form value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolator {
    /// e.g. `resource/memory`.
    pub name: String,
    /// Format depends on the isolator.
    #[serde(default)]
    pub value: serde_json::Value,
}

/// A pre-start or post-stop hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventHandler {
    /// `pre-start` or `post-stop`.
    pub name: String,
    /// Command.
    pub exec: Vec<String>,
}

/// The `app` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// Command and arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
    /// User (name, number or path).
    #[serde(default)]
    pub user: String,
    /// Group.
    #[serde(default)]
    pub group: String,
    /// Extra groups.
    #[serde(
        default,
        rename = "supplementaryGIDs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub supplementary_gids: Vec<u32>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_directory: String,
    /// Environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environment: Vec<NameValue>,
    /// Mount points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<MountPoint>,
    /// Ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Isolators.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolators: Vec<Isolator>,
    /// Hooks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_handlers: Vec<EventHandler>,
}

/// A dependency on another image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    /// Image name.
    pub image_name: String,
    /// Image id, if pinned.
    #[serde(default, rename = "imageID", skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<NameValue>,
    /// Size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// An appc ImageManifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always `ImageManifest`.
    pub ac_kind: String,
    /// Spec version.
    pub ac_version: String,
    /// ACIdentifier.
    pub name: String,
    /// version, os, arch, ….
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<NameValue>,
    /// What to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
    /// Images layered underneath.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// Files kept from dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path_whitelist: Vec<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<NameValue>,
}

/// Why an ACI manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppcError {
    /// Not JSON of the expected shape.
    #[error("malformed ACI manifest")]
    Json(#[source] serde_json::Error),
    /// Wrong `acKind`.
    #[error("ACI manifest has acKind {0:?}, expected \"ImageManifest\"")]
    Kind(String),
    /// A name is invalid.
    #[error("invalid ACI manifest")]
    Name(#[source] NameError),
    /// Something else is invalid.
    #[error("invalid ACI manifest: {0}")]
    Invalid(String),
}

impl ImageManifest {
    /// Parses and validates an ACI `manifest` file.
    pub fn parse(bytes: &[u8]) -> Result<Self, AppcError> {
        let m: ImageManifest = serde_json::from_slice(bytes).map_err(AppcError::Json)?;
        if m.ac_kind != "ImageManifest" {
            return Err(AppcError::Kind(m.ac_kind));
        }
        validate_ac_identifier(&m.name).map_err(AppcError::Name)?;
        if let Some(app) = &m.app {
            for mp in &app.mount_points {
                validate_ac_name(&mp.name).map_err(AppcError::Name)?;
                if !mp.path.starts_with('/') {
                    return Err(AppcError::Invalid(format!(
                        "mount point {} has a relative path {:?}",
                        mp.name, mp.path
                    )));
                }
            }
            for p in &app.ports {
                validate_ac_name(&p.name).map_err(AppcError::Name)?;
                if p.protocol != "tcp" && p.protocol != "udp" {
                    return Err(AppcError::Invalid(format!(
                        "port {} has protocol {:?}, expected tcp or udp",
                        p.name, p.protocol
                    )));
                }
            }
            if !app.working_directory.is_empty() && !app.working_directory.starts_with('/') {
                return Err(AppcError::Invalid(
                    "workingDirectory must be an absolute path".into(),
                ));
            }
        }
        Ok(m)
    }

    /// The value of label `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_and_full() {
        let m = ImageManifest::parse(
            br#"{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/busybox",
            "labels":[{"name":"version","value":"1.0"},{"name":"os","value":"linux"}],
            "app":{"exec":["/bin/sh"],"user":"0","group":"0",
            "mountPoints":[{"name":"data","path":"/data"}],
            "ports":[{"name":"http","protocol":"tcp","port":80}]}}"#,
        )
        .unwrap();
        assert_eq!(m.label("version"), Some("1.0"));
        assert_eq!(m.app.unwrap().ports[0].count, 1);
    }

    #[test]
    fn refuses_invalid() {
        assert!(
            ImageManifest::parse(br#"{"acKind":"PodManifest","acVersion":"0","name":"a"}"#)
                .is_err()
        );
        assert!(
            ImageManifest::parse(br#"{"acKind":"ImageManifest","acVersion":"0","name":"A B"}"#)
                .is_err()
        );
        assert!(ImageManifest::parse(
            br#"{"acKind":"ImageManifest","acVersion":"0","name":"a","app":{"exec":[],"user":"0","group":"0","mountPoints":[{"name":"x","path":"rel"}]}}"#
        )
        .is_err());
    }
}
