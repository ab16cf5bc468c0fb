//! OCI image-spec and Docker schema2 documents: descriptors, manifests, indexes, configs.
//!
//! The two formats have the same shape and differ in media types, so one set of types serves
//! both. Unknown fields are ignored (forward compatibility); missing required fields are errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const MEDIA_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed.
pub const MEDIA_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip.
pub const MEDIA_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd.
pub const MEDIA_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema2 manifest.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const MEDIA_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer (gzip).
pub const MEDIA_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, uncompressed (`docker save` writes these).
pub const MEDIA_DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker foreign layer (not distributable; refused).
pub const MEDIA_DOCKER_FOREIGN_LAYER: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema1 manifests (signed and unsigned); long deprecated and refused.
pub const MEDIA_DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/vnd.docker.distribution.manifest.v1+json",
];
/// OCI annotation naming a manifest inside a layout's index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The `Accept` header value for manifest requests: every manifest kind we can read.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Whether `media_type` is a manifest list or index.
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == MEDIA_OCI_INDEX || media_type == MEDIA_DOCKER_LIST
}

/// Whether `media_type` is a single-image manifest.
pub fn is_manifest_media_type(media_type: &str) -> bool {
    media_type == MEDIA_OCI_MANIFEST || media_type == MEDIA_DOCKER_MANIFEST
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Alternative download locations (foreign layers); never followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform, in an index entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// CPU variant (`v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows).
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

/// An image manifest (OCI or Docker schema2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when the document states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, base first.
    pub layers: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index or manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when the document states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Entries.
    pub manifests: Vec<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Either kind of manifest document, told apart by media type or shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestDoc {
    /// A single image.
    Image(Box<Manifest>),
    /// An index of images.
    Index(Index),
}

/// Why a manifest document was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("malformed {what}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A media type we do not read.
    #[error(
        "unsupported manifest media type {0:?} (supported: OCI manifest and index, Docker schema2 \
         manifest and manifest list)"
    )]
    UnsupportedMediaType(String),
    /// Docker schema1.
    #[error(
        "this image uses the deprecated Docker schema1 manifest format; re-push it with a current \
         client to convert it to schema2 or OCI"
    )]
    Schema1,
    /// schemaVersion other than 2.
    #[error("unsupported manifest schemaVersion {0} (expected 2)")]
    SchemaVersion(u32),
    /// A field the spec requires has an invalid value.
    #[error("invalid manifest: {0}")]
    Invalid(String),
}

/// Largest number of layers or index entries accepted; real images have tens.
pub const MAX_ENTRIES: usize = 1024;

impl ManifestDoc {
    /// Parses a manifest document. `header_type` is the `Content-Type` the registry sent (or
    /// the descriptor's media type), used when the document itself does not say.
    pub fn parse(bytes: &[u8], header_type: Option<&str>) -> Result<Self, ManifestError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            schema_version: Option<u32>,
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
            config: Option<serde_json::Value>,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "manifest",
            source,
        })?;
        let media = probe
            .media_type
            .clone()
            .or_else(|| header_type.map(|h| h.split(';').next().unwrap_or("").trim().to_owned()))
            .filter(|m| !m.is_empty() && m != "application/json");
        if let Some(m) = &media
            && MEDIA_DOCKER_SCHEMA1.contains(&m.as_str())
        {
            return Err(ManifestError::Schema1);
        }
        match probe.schema_version {
            Some(2) => {}
            Some(1) => return Err(ManifestError::Schema1),
            Some(v) => return Err(ManifestError::SchemaVersion(v)),
            None => return Err(ManifestError::Invalid("schemaVersion is missing".into())),
        }
        let is_index = match media.as_deref() {
            Some(m) if is_index_media_type(m) => true,
            Some(m) if is_manifest_media_type(m) => false,
            Some(m) => return Err(ManifestError::UnsupportedMediaType(m.to_owned())),
            None => probe.manifests.is_some() && probe.config.is_none(),
        };
        if is_index {
            let idx: Index =
                serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                    what: "image index",
                    source,
                })?;
            if idx.manifests.len() > MAX_ENTRIES {
                return Err(ManifestError::Invalid("too many index entries".into()));
            }
            Ok(ManifestDoc::Index(idx))
        } else {
            let m: Manifest =
                serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                    what: "image manifest",
                    source,
                })?;
            if m.layers.len() > MAX_ENTRIES {
                return Err(ManifestError::Invalid("too many layers".into()));
            }
            for l in &m.layers {
                if l.media_type == MEDIA_DOCKER_FOREIGN_LAYER
                    || l.media_type.contains("nondistributable")
                {
                    return Err(ManifestError::Invalid(format!(
                        "layer {} is a foreign (non-distributable) layer, which rkt does not \
                         download",
                        l.digest
                    )));
                }
            }
            Ok(ManifestDoc::Image(Box::new(m)))
        }
    }
}

/// The runtime part of an image config (`config` in the JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `user`, `uid`, `user:group`, `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `"80/tcp": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `KEY=VALUE` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Default arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `"/data": {}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Stop signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layers, base first.
    pub diff_ids: Vec<Digest>,
}

/// An image config document (OCI or Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfigDoc {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Creation time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Runtime defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// Layer diff ids.
    pub rootfs: RootFs,
}

impl ImageConfigDoc {
    /// Parses and checks a config blob.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let c: ImageConfigDoc =
            serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
                what: "image config",
                source,
            })?;
        if c.rootfs.kind != "layers" {
            return Err(ManifestError::Invalid(format!(
                "config rootfs.type is {:?}, expected \"layers\"",
                c.rootfs.kind
            )));
        }
        if c.rootfs.diff_ids.len() > MAX_ENTRIES {
            return Err(ManifestError::Invalid("too many diff_ids".into()));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_manifest_and_index() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_DOCKER_MANIFEST}",
            "config":{{"mediaType":"{MEDIA_DOCKER_CONFIG}","digest":"{D}","size":1}},
            "layers":[{{"mediaType":"{MEDIA_DOCKER_LAYER}","digest":"{D}","size":2}}]}}"#
        );
        assert!(matches!(
            ManifestDoc::parse(m.as_bytes(), None).unwrap(),
            ManifestDoc::Image(_)
        ));
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{MEDIA_OCI_MANIFEST}",
            "digest":"{D}","size":3,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        match ManifestDoc::parse(i.as_bytes(), None).unwrap() {
            ManifestDoc::Index(i) => {
                assert_eq!(
                    i.manifests[0].platform.as_ref().unwrap().architecture,
                    "amd64"
                )
            }
            _ => panic!("expected index"),
        }
    }

    #[test]
    fn refuses_schema1_and_garbage() {
        let s1 = br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        assert!(matches!(
            ManifestDoc::parse(s1, None),
            Err(ManifestError::Schema1)
        ));
        assert!(ManifestDoc::parse(b"not json", None).is_err());
        let odd = br#"{"schemaVersion":2,"mediaType":"text/html"}"#;
        assert!(matches!(
            ManifestDoc::parse(odd, None),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn config_requires_layers_rootfs() {
        let c = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{D}"]}}}}"#
        );
        assert_eq!(
            ImageConfigDoc::parse(c.as_bytes())
                .unwrap()
                .rootfs
                .diff_ids
                .len(),
            1
        );
        let bad = br#"{"rootfs":{"type":"other","diff_ids":[]}}"#;
        assert!(ImageConfigDoc::parse(bad).is_err());
    }
}
