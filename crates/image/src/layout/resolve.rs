//! From an index (a layout's `index.json`) and a name to one verified image: manifest,
//! config and layer descriptors.

use rkt_types::image::ImageConfig;
use rkt_types::oci::{
    ANNOTATION_REF_NAME, Descriptor, ImageConfigDoc, Index, MEDIA_DOCKER_CONFIG,
    MEDIA_DOCKER_LAYER, MEDIA_DOCKER_LAYER_TAR, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER, MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_ZSTD, Manifest, ManifestDoc,
    is_index_media_type,
};
use rkt_types::{Digest, ImageFormat, Platform};

use super::{BlobSource, SourceError};
use crate::platform::select_manifest;

/// Annotation containerd and docker put on layout index entries: the full image name.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// How deep indexes may nest before we give up (real images use one level).
const MAX_NESTING: usize = 4;

/// One image of a local source, chosen and checked, ready to fetch.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// OCI or Docker, from the manifest's media type.
    pub format: ImageFormat,
    /// The manifest exactly as stored (for docker archives, synthesized; see
    /// [`crate::docker_archive`]).
    pub manifest_bytes: Vec<u8>,
    /// Digest of `manifest_bytes`.
    pub manifest_digest: Digest,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The config exactly as stored; its digest is `manifest.config.digest`, the image id.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfigDoc,
    /// Layer descriptors, base first; each has a supported media type, and there are as many
    /// as `config.rootfs.diff_ids`.
    pub layers: Vec<Descriptor>,
    /// Names the source gives the image (layout `ref.name` / containerd name annotations,
    /// docker `RepoTags`), for recording; may be empty.
    pub names: Vec<String>,
}

impl ResolvedImage {
    /// The image id: the config digest.
    pub fn config_digest(&self) -> &Digest {
        &self.manifest.config.digest
    }

    /// The platform the config states.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.config.os.clone(),
            architecture: self.config.architecture.clone(),
            variant: self.config.variant.clone(),
        }
    }

    /// The run configuration in rkt's internal model.
    pub fn image_config(&self) -> ImageConfig {
        ImageConfig::from_oci(&self.config, &self.manifest.annotations)
    }

    /// The `diff_id` (uncompressed digest) the config records for layer `i`.
    pub fn diff_id(&self, i: usize) -> Option<&Digest> {
        self.config.rootfs.diff_ids.get(i)
    }
}

/// The names an index entry carries.
fn entry_names(d: &Descriptor) -> Vec<String> {
    [ANNOTATION_REF_NAME, ANNOTATION_CONTAINERD_NAME]
        .iter()
        .filter_map(|k| d.annotations.get(*k).cloned())
        .collect()
}

fn entry_label(d: &Descriptor) -> String {
    d.annotations
        .get(ANNOTATION_REF_NAME)
        .or_else(|| d.annotations.get(ANNOTATION_CONTAINERD_NAME))
        .cloned()
        .unwrap_or_else(|| d.digest.to_string())
}

/// Chooses an image from a layout's top-level index and resolves it.
///
/// `reference` matches an entry's `org.opencontainers.image.ref.name`, its
/// `io.containerd.image.name`, or its digest. Without a reference, the index must hold one
/// image (or entries for several platforms of one image).
pub(crate) fn resolve_index(
    src: &dyn BlobSource,
    index: &Index,
    reference: Option<&str>,
    want: &Platform,
) -> Result<ResolvedImage, SourceError> {
    let location = src.describe();
    let entries: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| !crate::platform::is_attestation(d))
        .collect();
    if entries.is_empty() {
        return Err(SourceError::Empty(location));
    }
    let candidates: Vec<&Descriptor> = match reference {
        Some(r) => {
            let hits: Vec<&Descriptor> = entries
                .iter()
                .copied()
                .filter(|d| d.digest.to_string() == r || entry_names(d).iter().any(|n| n == r))
                .collect();
            if hits.is_empty() {
                return Err(SourceError::NoSuchImage {
                    location,
                    wanted: r.to_owned(),
                    available: entries.iter().map(|d| entry_label(d)).collect(),
                });
            }
            hits
        }
        None => entries,
    };
    let chosen: &Descriptor = match candidates.as_slice() {
        [one] => one,
        many if many.iter().all(|d| d.platform.is_some()) => {
            // One image, one entry per platform, written flat into index.json.
            let sub = Index {
                schema_version: 2,
                media_type: None,
                manifests: many.iter().map(|d| (*d).clone()).collect(),
                annotations: Default::default(),
            };
            let picked = select_manifest(&sub, want).map_err(|source| SourceError::Platform {
                location: location.clone(),
                source,
            })?;
            many.iter()
                .copied()
                .find(|d| d.digest == picked.digest)
                .unwrap_or(many[0])
        }
        many => {
            let mut available: Vec<String> = many.iter().map(|d| entry_label(d)).collect();
            available.dedup();
            return Err(SourceError::Ambiguous {
                location,
                available,
            });
        }
    };
    let names = entry_names(chosen);
    let (manifest_bytes, manifest_digest, manifest) = resolve_descriptor(src, chosen, want)?;
    finish(src, manifest_bytes, manifest_digest, manifest, names)
}

/// Follows `desc` through nested indexes (choosing by platform) to one manifest.
fn resolve_descriptor(
    src: &dyn BlobSource,
    desc: &Descriptor,
    want: &Platform,
) -> Result<(Vec<u8>, Digest, Manifest), SourceError> {
    let location = src.describe();
    let mut desc = desc.clone();
    for _ in 0..MAX_NESTING {
        let bytes = src.read_document(&desc)?;
        let header = (!desc.media_type.is_empty()).then_some(desc.media_type.as_str());
        let doc = ManifestDoc::parse(&bytes, header).map_err(|source| SourceError::Manifest {
            what: format!(
                "{} {} in {location}",
                if is_index_media_type(&desc.media_type) {
                    "image index"
                } else {
                    "manifest"
                },
                desc.digest
            ),
            source,
        })?;
        match doc {
            ManifestDoc::Image(m) => return Ok((bytes, desc.digest, *m)),
            ManifestDoc::Index(idx) => {
                desc = select_manifest(&idx, want)
                    .map_err(|source| SourceError::Platform {
                        location: location.clone(),
                        source,
                    })?
                    .clone();
            }
        }
    }
    Err(SourceError::NestingTooDeep(location))
}

/// Layer media types the unpacker reads.
pub(crate) const SUPPORTED_LAYERS: [&str; 5] = [
    MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_LAYER_ZSTD,
    MEDIA_DOCKER_LAYER,
    MEDIA_DOCKER_LAYER_TAR,
];

/// Reads and checks the config of `manifest` and completes a [`ResolvedImage`].
pub(crate) fn finish(
    src: &dyn BlobSource,
    manifest_bytes: Vec<u8>,
    manifest_digest: Digest,
    manifest: Manifest,
    names: Vec<String>,
) -> Result<ResolvedImage, SourceError> {
    let cfg = &manifest.config;
    if cfg.media_type != MEDIA_OCI_CONFIG && cfg.media_type != MEDIA_DOCKER_CONFIG {
        return Err(SourceError::NotAnImage {
            digest: manifest_digest,
            media_type: cfg.media_type.clone(),
        });
    }
    for l in &manifest.layers {
        if !SUPPORTED_LAYERS.contains(&l.media_type.as_str()) {
            return Err(SourceError::UnsupportedLayer {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
            });
        }
    }
    let config_bytes = src.read_document(cfg)?;
    let config = ImageConfigDoc::parse(&config_bytes).map_err(|source| SourceError::Manifest {
        what: format!("image config {} in {}", cfg.digest, src.describe()),
        source,
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(SourceError::LayerCount {
            digest: manifest_digest,
            layers: manifest.layers.len(),
            diff_ids: config.rootfs.diff_ids.len(),
        });
    }
    let format = match manifest.media_type.as_deref() {
        Some(MEDIA_DOCKER_MANIFEST) => ImageFormat::Docker,
        None if cfg.media_type == MEDIA_DOCKER_CONFIG => ImageFormat::Docker,
        _ => ImageFormat::Oci,
    };
    Ok(ResolvedImage {
        format,
        manifest_bytes,
        manifest_digest,
        layers: manifest.layers.clone(),
        manifest,
        config_bytes,
        config,
        names,
    })
}
