//! Writing images back out: OCI layout archives (blobs byte-identical, so every digest
//! stays the same), uncompressed ACIs from a rendered root filesystem, and ([`upper`]) an
//! overlayfs upper directory as a new OCI layer.
//!
//! Both writers stream into any `Write`; on error the output is incomplete, so callers write
//! into a temporary file and rename it into place only on success.

mod tree;
pub mod upper;

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rkt_types::Digest;
use rkt_types::appc::ImageManifest;
use rkt_types::oci::{
    ANNOTATION_REF_NAME, Descriptor, DescriptorPlatform, ImageConfigDoc, Index,
    MEDIA_DOCKER_CONFIG, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, ManifestDoc,
    ManifestError,
};

use crate::layout::{
    BlobError, INDEX_FILE, LAYOUT_VERSION, OCI_LAYOUT_FILE, VerifiedReader, blob_path,
};

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The manifest given is not a valid image manifest.
    #[error("the manifest to export is not a valid image manifest")]
    Manifest(#[source] ManifestError),
    /// The config bytes are not the ones the manifest names.
    #[error(
        "the config to export does not match the manifest: the manifest names {expected} ({size} \
         bytes) but the config given is {actual}; the stored image is inconsistent, run `rkt \
         image verify`"
    )]
    ConfigMismatch {
        /// Digest the manifest names.
        expected: Digest,
        /// Its size.
        size: u64,
        /// Digest of the bytes given.
        actual: Digest,
    },
    /// A blob given that the manifest does not list.
    #[error("blob {0} is not a layer of the manifest being exported")]
    UnexpectedBlob(Digest),
    /// A layer of the manifest that was not given.
    #[error("layer {0} of the manifest was not provided; the stored image is incomplete")]
    MissingBlob(Digest),
    /// A blob did not match its descriptor or could not be read.
    #[error("cannot copy blob {digest} into the archive")]
    Blob {
        /// The blob.
        digest: Digest,
        /// Why (a [`BlobError`] inside when it failed verification).
        #[source]
        source: io::Error,
    },
    /// Writing the output failed.
    #[error("cannot write the archive")]
    Write(#[source] io::Error),
    /// A file of the root filesystem could not be archived.
    #[error("cannot archive {}", .path.display())]
    Tree {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A document could not be serialised.
    #[error("cannot serialise {0}")]
    Json(&'static str, #[source] serde_json::Error),
}

impl ExportError {
    /// The verification failure behind a [`ExportError::Blob`], if that was the cause.
    pub fn blob_error(&self) -> Option<&BlobError> {
        match self {
            ExportError::Blob { source, .. } => BlobError::from_io(source),
            _ => None,
        }
    }
}

/// A tar header for a plain file of `size` bytes, owned by root, mode 0644, mtime 0 (so
/// exporting the same image twice gives the same bytes).
fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn dir_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    h
}

/// Writes an OCI image layout archive of one image: `oci-layout`, `index.json` (one entry,
/// annotated with `ref_name` as `org.opencontainers.image.ref.name` when given), and under
/// `blobs/` the config, the manifest and every layer, byte for byte.
///
/// `blobs` must yield each layer of the manifest (repeats are written once); every blob is
/// verified against its descriptor as it is copied, so a damaged store cannot produce an
/// archive whose digests lie. Returns the writer once the archive is complete.
pub fn write_oci_archive<W: Write, R: Read>(
    out: W,
    manifest_bytes: &[u8],
    config_bytes: &[u8],
    blobs: impl IntoIterator<Item = (Descriptor, R)>,
    ref_name: Option<&str>,
) -> Result<W, ExportError> {
    let manifest = match ManifestDoc::parse(manifest_bytes, None).map_err(ExportError::Manifest)? {
        ManifestDoc::Image(m) => m,
        ManifestDoc::Index(_) => {
            return Err(ExportError::Manifest(ManifestError::Invalid(
                "expected an image manifest, got an index".into(),
            )));
        }
    };
    let config_digest = Digest::sha256_of(config_bytes);
    if config_digest != manifest.config.digest || config_bytes.len() as u64 != manifest.config.size
    {
        return Err(ExportError::ConfigMismatch {
            expected: manifest.config.digest.clone(),
            size: manifest.config.size,
            actual: config_digest,
        });
    }
    let media_type = manifest.media_type.clone().unwrap_or_else(|| {
        if manifest.config.media_type == MEDIA_DOCKER_CONFIG {
            MEDIA_DOCKER_MANIFEST.to_owned()
        } else {
            MEDIA_OCI_MANIFEST.to_owned()
        }
    });
    let manifest_digest = Digest::sha256_of(manifest_bytes);
    let mut annotations = BTreeMap::new();
    if let Some(r) = ref_name {
        annotations.insert(ANNOTATION_REF_NAME.to_owned(), r.to_owned());
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_OCI_INDEX.to_owned()),
        manifests: vec![Descriptor {
            media_type,
            digest: manifest_digest.clone(),
            size: manifest_bytes.len() as u64,
            urls: None,
            annotations,
            platform: index_platform(config_bytes),
        }],
        annotations: BTreeMap::new(),
    };
    let index_bytes = serde_json::to_vec(&index).map_err(|e| ExportError::Json("index.json", e))?;
    let marker = format!("{{\"imageLayoutVersion\":\"{LAYOUT_VERSION}\"}}");

    let mut b = tar::Builder::new(out);
    let w = ExportError::Write;
    b.append_data(
        &mut file_header(marker.len() as u64),
        OCI_LAYOUT_FILE,
        marker.as_bytes(),
    )
    .map_err(w)?;
    b.append_data(
        &mut file_header(index_bytes.len() as u64),
        INDEX_FILE,
        &index_bytes[..],
    )
    .map_err(w)?;
    b.append_data(&mut dir_header(), "blobs/", io::empty())
        .map_err(w)?;
    let mut dirs = HashSet::new();
    let mut written = HashSet::new();
    let mut put = |b: &mut tar::Builder<W>, d: &Digest, size: u64, data: &mut dyn Read| {
        let alg = d.algorithm().name();
        if dirs.insert(alg) {
            b.append_data(&mut dir_header(), format!("blobs/{alg}/"), io::empty())
                .map_err(ExportError::Write)?;
        }
        let mut v = VerifiedReader::new(data, d.clone(), size);
        b.append_data(&mut file_header(size), blob_path(d), &mut v)
            .map_err(|source| ExportError::Blob {
                digest: d.clone(),
                source,
            })
    };
    put(
        &mut b,
        &config_digest,
        manifest.config.size,
        &mut &config_bytes[..],
    )?;
    written.insert(config_digest);
    put(
        &mut b,
        &manifest_digest,
        manifest_bytes.len() as u64,
        &mut &manifest_bytes[..],
    )?;
    written.insert(manifest_digest);
    let wanted: HashSet<&Digest> = manifest.layers.iter().map(|l| &l.digest).collect();
    for (desc, mut r) in blobs {
        if !wanted.contains(&desc.digest) {
            return Err(ExportError::UnexpectedBlob(desc.digest));
        }
        let expected = manifest.layers.iter().find(|l| l.digest == desc.digest);
        // The manifest's size is authoritative; a descriptor disagreeing with it is a lie.
        let size = expected.map_or(desc.size, |l| l.size);
        if written.contains(&desc.digest) {
            continue;
        }
        put(&mut b, &desc.digest, size, &mut r)?;
        written.insert(desc.digest);
    }
    if let Some(missing) = manifest
        .layers
        .iter()
        .find(|l| !written.contains(&l.digest))
    {
        return Err(ExportError::MissingBlob(missing.digest.clone()));
    }
    b.into_inner().map_err(ExportError::Write)
}

/// The platform for the index entry, from the config, so tools that pick by platform can.
fn index_platform(config_bytes: &[u8]) -> Option<DescriptorPlatform> {
    let c = ImageConfigDoc::parse(config_bytes).ok()?;
    (!c.os.is_empty() && !c.architecture.is_empty()).then_some(DescriptorPlatform {
        architecture: c.architecture,
        os: c.os,
        variant: c.variant,
        os_version: None,
    })
}

/// Writes an uncompressed ACI: `manifest` (the JSON of `manifest`), then `rootfs/` with the
/// content of `rootfs_dir`.
///
/// The tree is walked through directory file descriptors without following any symlink;
/// modes, owners, mtimes, symlinks, hard links (as tar links to the first path seen), device
/// nodes, FIFOs and extended attributes (as `SCHILY.xattr.*` PAX records) are kept. Sockets
/// are skipped. Returns the writer once the archive is complete.
pub fn write_aci<W: Write>(
    out: W,
    manifest: &ImageManifest,
    rootfs_dir: &Path,
) -> Result<W, ExportError> {
    let bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| ExportError::Json("the ACI manifest", e))?;
    let mut b = tar::Builder::new(out);
    b.append_data(&mut file_header(bytes.len() as u64), "manifest", &bytes[..])
        .map_err(ExportError::Write)?;
    tree::append_tree(&mut b, rootfs_dir, Path::new("rootfs"))?;
    b.into_inner().map_err(ExportError::Write)
}
