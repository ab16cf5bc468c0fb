//! `docker save` archives (`docker-archive:FILE[:NAME:TAG]`), read in place.
//!
//! Both shapes docker writes are read through `manifest.json`
//! (`[{"Config": …, "RepoTags": […], "Layers": […]}]`): the legacy one (`<id>/layer.tar`,
//! uncompressed, duplicates stored as symlinks) and the OCI-layout-shaped one of docker 25+
//! (`blobs/sha256/<hex>`, where `manifest.json` still points at the blobs).
//!
//! There is no manifest blob, so one is synthesized: a Docker schema2 manifest whose config
//! descriptor is the digest of the config file and whose layer descriptors are the digest and
//! size of each layer file as stored, with the media type of its compression. Layers stored
//! under `blobs/sha256/<hex>` take their digest from the name (and are verified while they
//! stream); others are hashed once here. The config's `rootfs.diff_ids` are left for the
//! unpacker to check, except for uncompressed layers, whose digest is their diff id and is
//! checked here.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Mutex;

use rkt_types::digest::Hasher;
use rkt_types::oci::{
    Descriptor, MAX_ENTRIES, MEDIA_DOCKER_CONFIG, MEDIA_DOCKER_LAYER, MEDIA_DOCKER_LAYER_TAR,
    MEDIA_DOCKER_MANIFEST, MEDIA_OCI_LAYER_ZSTD, Manifest,
};
use rkt_types::{Algorithm, Digest, DockerRef};
use serde::Deserialize;

use crate::compress::Compression;
use crate::layout::tarindex::{TarIndex, normalize, read_up_to};
use crate::layout::{
    BlobError, BlobReader, BlobSource, ResolvedImage, SourceError, VerifiedReader,
};

/// The index file of a `docker save` archive.
pub const MANIFEST_JSON: &str = "manifest.json";

/// One image listed in `manifest.json`, with its paths checked to stay inside the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerArchiveImage {
    /// Path of the config file inside the archive.
    pub config: String,
    /// `RepoTags` (`busybox:latest`); may be empty for untagged images.
    pub repo_tags: Vec<String>,
    /// Paths of the layer files, base first.
    pub layers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

/// A `docker save` archive with its `manifest.json` read and checked.
#[derive(Debug)]
pub struct DockerArchive {
    tar: TarIndex,
    images: Vec<DockerArchiveImage>,
    /// Blob digest → member `(offset, size)`, filled as images are resolved.
    blobs: Mutex<HashMap<Digest, (u64, u64)>>,
}

impl DockerArchive {
    /// Opens an uncompressed `docker save` archive. A compressed one is refused with
    /// [`SourceError::Compressed`].
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        Self::from_index(TarIndex::open_file(path, location(path))?)
    }

    /// Opens a `docker save` archive, decompressing it first (`docker save | gzip`) into an
    /// unlinked file in `scratch_dir` if it is compressed.
    pub fn open_with_scratch(path: &Path, scratch_dir: &Path) -> Result<Self, SourceError> {
        let file = crate::layout::seekable_copy(path, scratch_dir)?;
        Self::from_index(TarIndex::scan(file, location(path))?)
    }

    fn from_index(tar: TarIndex) -> Result<Self, SourceError> {
        let loc = tar.location().to_owned();
        let Some(bytes) = tar.read_small(MANIFEST_JSON)? else {
            return Err(SourceError::MissingMember {
                location: loc,
                member: MANIFEST_JSON.into(),
                hint: "it is not a docker save archive (for an OCI layout archive use \
                       oci-archive:FILE)",
            });
        };
        let raw: Vec<RawEntry> =
            serde_json::from_slice(&bytes).map_err(|source| SourceError::Json {
                what: format!("manifest.json of {loc}"),
                source,
            })?;
        if raw.is_empty() {
            return Err(SourceError::Empty(loc));
        }
        let too_many = |what: &str| SourceError::BadArchive {
            location: loc.clone(),
            reason: format!("manifest.json lists more than {MAX_ENTRIES} {what}"),
        };
        if raw.len() > MAX_ENTRIES {
            return Err(too_many("images"));
        }
        let checked = |p: &str| {
            normalize(p)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| SourceError::EscapingPath {
                    location: format!("manifest.json of {loc}"),
                    path: p.to_owned(),
                })
        };
        let mut images = Vec::with_capacity(raw.len());
        for e in raw {
            if e.layers.len() > MAX_ENTRIES {
                return Err(too_many("layers for one image"));
            }
            images.push(DockerArchiveImage {
                config: checked(&e.config)?,
                repo_tags: e.repo_tags.unwrap_or_default(),
                layers: e
                    .layers
                    .iter()
                    .map(|l| checked(l))
                    .collect::<Result<_, _>>()?,
            });
        }
        Ok(DockerArchive {
            tar,
            images,
            blobs: Mutex::new(HashMap::new()),
        })
    }

    /// The images `manifest.json` lists.
    pub fn images(&self) -> &[DockerArchiveImage] {
        &self.images
    }

    /// Chooses the image tagged `name` (`NAME:TAG`; `busybox` means `busybox:latest`, and
    /// Docker Hub short and long forms are equal), or the only image, and builds its
    /// manifest. Docker archives hold one platform per image, so there is nothing to choose
    /// by platform; compare [`ResolvedImage::platform`] with the host.
    pub fn resolve(&self, name: Option<&str>) -> Result<ResolvedImage, SourceError> {
        let image = self.select(name)?;
        let config_desc = self.describe_config(&image.config)?;
        let mut layers = Vec::with_capacity(image.layers.len());
        for path in &image.layers {
            layers.push(self.describe_layer(path)?);
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_DOCKER_MANIFEST.to_owned()),
            config: config_desc,
            layers,
            annotations: Default::default(),
        };
        let bytes = serde_json::to_vec(&manifest).map_err(|source| SourceError::Json {
            what: "synthesized manifest".into(),
            source,
        })?;
        let digest = Digest::sha256_of(&bytes);
        let resolved =
            crate::layout::finish_resolve(self, bytes, digest, manifest, image.repo_tags.clone())?;
        self.check_uncompressed_diff_ids(&resolved)?;
        Ok(resolved)
    }

    fn select(&self, name: Option<&str>) -> Result<&DockerArchiveImage, SourceError> {
        let labels = || {
            self.images
                .iter()
                .map(|i| match i.repo_tags.as_slice() {
                    [] => format!("(untagged {})", i.config),
                    tags => tags.join(" "),
                })
                .collect::<Vec<_>>()
        };
        match name {
            None => match self.images.as_slice() {
                [one] => Ok(one),
                _ => Err(SourceError::Ambiguous {
                    location: self.describe(),
                    available: labels(),
                }),
            },
            Some(n) => self
                .images
                .iter()
                .find(|i| i.repo_tags.iter().any(|t| same_tag(t, n)))
                .ok_or_else(|| SourceError::NoSuchImage {
                    location: self.describe(),
                    wanted: n.to_owned(),
                    available: labels(),
                }),
        }
    }

    /// Finds a member, registering it under its digest for [`BlobSource::open_blob`].
    fn member(&self, path: &str) -> Result<(u64, u64), SourceError> {
        self.tar
            .find(path)?
            .ok_or_else(|| SourceError::MissingMember {
                location: self.describe(),
                member: path.to_owned(),
                hint: "manifest.json refers to a file the archive does not hold; the archive is \
                   incomplete or corrupt",
            })
    }

    fn register(&self, digest: &Digest, at: (u64, u64)) {
        self.blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest.clone(), at);
    }

    fn describe_config(&self, path: &str) -> Result<Descriptor, SourceError> {
        let (offset, size) = self.member(path)?;
        let bytes = self.tar.read_small(path)?.unwrap_or_default();
        debug_assert_eq!(bytes.len() as u64, size);
        let digest = Digest::sha256_of(&bytes);
        self.register(&digest, (offset, size));
        Ok(plain_descriptor(MEDIA_DOCKER_CONFIG, digest, size))
    }

    fn describe_layer(&self, path: &str) -> Result<Descriptor, SourceError> {
        let (offset, size) = self.member(path)?;
        let mut head = [0u8; Compression::MAGIC_LEN];
        let n = read_up_to(&mut self.tar.section(offset, size), &mut head)
            .map_err(|e| self.read_err(path, e))?;
        let media_type = match Compression::detect(&head[..n]) {
            Compression::None => MEDIA_DOCKER_LAYER_TAR,
            Compression::Gzip => MEDIA_DOCKER_LAYER,
            Compression::Zstd => MEDIA_OCI_LAYER_ZSTD,
            other => {
                return Err(SourceError::UnsupportedLayer {
                    digest: self.hash_member(path, offset, size)?,
                    media_type: format!("{} layer file {path}", other.name()),
                });
            }
        };
        let digest = match named_digest(path) {
            Some(d) => d,
            None => self.hash_member(path, offset, size)?,
        };
        self.register(&digest, (offset, size));
        Ok(plain_descriptor(media_type, digest, size))
    }

    fn hash_member(&self, path: &str, offset: u64, size: u64) -> Result<Digest, SourceError> {
        let mut h = Hasher::new(Algorithm::Sha256);
        let mut r = self.tar.section(offset, size);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.read_err(path, e)),
            };
            h.update(&buf[..n]);
        }
        Ok(h.finish())
    }

    fn read_err(&self, path: &str, e: io::Error) -> SourceError {
        SourceError::BadArchive {
            location: self.describe(),
            reason: format!("cannot read {path}: {e}"),
        }
    }

    /// An uncompressed layer's digest is its diff id; a mismatch is caught before any work.
    fn check_uncompressed_diff_ids(&self, r: &ResolvedImage) -> Result<(), SourceError> {
        for (i, l) in r.layers.iter().enumerate() {
            if l.media_type == MEDIA_DOCKER_LAYER_TAR
                && let Some(diff_id) = r.diff_id(i)
                && *diff_id != l.digest
            {
                return Err(SourceError::Verify {
                    digest: l.digest.clone(),
                    location: self.describe(),
                    source: BlobError::DigestMismatch {
                        expected: diff_id.clone(),
                        actual: l.digest.clone(),
                    },
                });
            }
        }
        Ok(())
    }
}

impl BlobSource for DockerArchive {
    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader, SourceError> {
        let at = self
            .blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&desc.digest)
            .copied();
        let Some((offset, size)) = at else {
            return Err(SourceError::BlobMissing {
                digest: desc.digest.clone(),
                location: self.describe(),
            });
        };
        if size != desc.size {
            return Err(SourceError::BlobSize {
                digest: desc.digest.clone(),
                location: self.describe(),
                expected: desc.size,
                actual: size,
            });
        }
        let inner: Box<dyn Read + Send> = Box::new(self.tar.section(offset, size));
        Ok(VerifiedReader::new(inner, desc.digest.clone(), size))
    }

    fn describe(&self) -> String {
        self.tar.location().to_owned()
    }
}

fn location(path: &Path) -> String {
    format!("docker archive {}", path.display())
}

fn plain_descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size,
        urls: None,
        annotations: Default::default(),
        platform: None,
    }
}

/// The digest a content-addressed member path (`blobs/sha256/<hex>`) claims.
fn named_digest(path: &str) -> Option<Digest> {
    let hex = path.strip_prefix("blobs/sha256/")?;
    Digest::new(Algorithm::Sha256, hex).ok()
}

/// Whether RepoTag `tag` names the image the user asked for as `want`.
fn same_tag(tag: &str, want: &str) -> bool {
    if tag == want {
        return true;
    }
    match (DockerRef::parse(tag), DockerRef::parse(want)) {
        (Ok(a), Ok(b)) => {
            a.digest.is_none()
                && b.digest.is_none()
                && a.name() == b.name()
                && a.tag_or_latest() == b.tag_or_latest()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_compare_like_docker() {
        assert!(same_tag("busybox:latest", "busybox"));
        assert!(same_tag(
            "busybox:latest",
            "docker.io/library/busybox:latest"
        ));
        assert!(!same_tag("busybox:1.36", "busybox"));
        assert!(same_tag("127.0.0.1:5000/x/y:v1", "127.0.0.1:5000/x/y:v1"));
        assert!(!same_tag("busybox:latest", "alpine:latest"));
    }

    #[test]
    fn content_addressed_names() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(named_digest(&format!("blobs/sha256/{}", d.hex())), Some(d));
        assert_eq!(named_digest("abc/layer.tar"), None);
    }
}
