//! The appc PodManifest: what `rkt cat-manifest` prints and `--pod-manifest` reads.

use serde::{Deserialize, Serialize};

use crate::appc::{App, NameValue};
use crate::name::{NameError, validate_ac_name};

/// The image an app of a pod runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodImage {
    /// Image name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Image id (`sha256:…` or `sha512-…`). appc requires it; `--pod-manifest` also takes an
    /// image by `name` alone (empty id) and fills the id in.
    #[serde(default)]
    pub id: String,
    /// Labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<NameValue>,
}

/// A volume mount of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMount {
    /// The volume's name.
    pub volume: String,
    /// Absolute path in the app.
    pub path: String,
}

/// An app of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodApp {
    /// ACName, unique in the pod.
    pub name: String,
    /// The image.
    pub image: PodImage,
    /// The app as run (image defaults with the command line's overrides applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<App>,
    /// Read-only rootfs.
    #[serde(
        default,
        rename = "readOnlyRootFS",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub read_only_root_fs: bool,
    /// Volume mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<PodMount>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<NameValue>,
}

/// A pod volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodVolume {
    /// ACName.
    pub name: String,
    /// `host` or `empty`.
    pub kind: String,
    /// Host path (`host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Recursive bind (`host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<bool>,
    /// Mode, octal string (`empty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Owner (`empty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group (`empty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// An appc PodManifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodManifest {
    /// Always `PodManifest`.
    pub ac_kind: String,
    /// Spec version.
    pub ac_version: String,
    /// Apps.
    #[serde(default)]
    pub apps: Vec<PodApp>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<PodVolume>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<NameValue>,
}

/// Why a pod manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum PodManifestError {
    /// Not JSON of the expected shape.
    #[error("malformed pod manifest")]
    Json(#[source] serde_json::Error),
    /// Wrong `acKind`.
    #[error("pod manifest has acKind {0:?}, expected \"PodManifest\"")]
    Kind(String),
    /// An invalid name.
    #[error("invalid pod manifest")]
    Name(#[source] NameError),
    /// Something else.
    #[error("invalid pod manifest: {0}")]
    Invalid(String),
}

impl PodManifest {
    /// An empty manifest of the version rkt writes.
    pub fn new() -> Self {
        PodManifest {
            ac_kind: "PodManifest".into(),
            ac_version: crate::appc::AC_VERSION.into(),
            apps: Vec::new(),
            volumes: Vec::new(),
            annotations: Vec::new(),
        }
    }

    /// Parses and validates a pod manifest (`--pod-manifest`).
    pub fn parse(bytes: &[u8]) -> Result<Self, PodManifestError> {
        let m: PodManifest = serde_json::from_slice(bytes).map_err(PodManifestError::Json)?;
        if m.ac_kind != "PodManifest" {
            return Err(PodManifestError::Kind(m.ac_kind));
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &m.apps {
            validate_ac_name(&a.name).map_err(PodManifestError::Name)?;
            if !seen.insert(a.name.as_str()) {
                return Err(PodManifestError::Invalid(format!(
                    "two apps are named {:?}",
                    a.name
                )));
            }
            for mnt in &a.mounts {
                if !mnt.path.starts_with('/') {
                    return Err(PodManifestError::Invalid(format!(
                        "app {}: mount path {:?} is not absolute",
                        a.name, mnt.path
                    )));
                }
            }
        }
        for v in &m.volumes {
            validate_ac_name(&v.name).map_err(PodManifestError::Name)?;
            match v.kind.as_str() {
                "host" if v.source.as_deref().is_some_and(|s| s.starts_with('/')) => {}
                "host" => {
                    return Err(PodManifestError::Invalid(format!(
                        "volume {}: a host volume needs an absolute source",
                        v.name
                    )));
                }
                "empty" => {}
                k => {
                    return Err(PodManifestError::Invalid(format!(
                        "volume {}: kind {k:?} is not host or empty",
                        v.name
                    )));
                }
            }
        }
        Ok(m)
    }
}

impl Default for PodManifest {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let mut m = PodManifest::new();
        m.apps.push(PodApp {
            name: "web".into(),
            image: PodImage {
                name: "example.com/web".into(),
                id: "sha256:00".into(),
                labels: vec![],
            },
            app: None,
            read_only_root_fs: true,
            mounts: vec![],
            annotations: vec![],
        });
        let s = serde_json::to_vec(&m).unwrap();
        assert!(String::from_utf8_lossy(&s).contains("readOnlyRootFS"));
        assert_eq!(PodManifest::parse(&s).unwrap(), m);
        let dup = br#"{"acKind":"PodManifest","acVersion":"0.8.11","apps":[
            {"name":"a","image":{"id":"x"}},{"name":"a","image":{"id":"y"}}]}"#;
        assert!(PodManifest::parse(dup).is_err());
        let vol = br#"{"acKind":"PodManifest","acVersion":"0.8.11","volumes":[
            {"name":"v","kind":"host","source":"rel"}]}"#;
        assert!(PodManifest::parse(vol).is_err());
    }
}
