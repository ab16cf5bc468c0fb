//! appc ACIs: a tar (plain, gzip, bzip2, xz or zstd) holding a `manifest` (JSON
//! ImageManifest) and a `rootfs/` directory.
//!
//! The fetcher streams an ACI once: decompress → [`AciIdReader`] (the image id is the sha512
//! of the *uncompressed* tar; the sha256 is the layer's diff id) → the unpacker in
//! `LayerLayout::Aci` mode (which strips `rootfs/` and captures `manifest`). Before that,
//! [`read_aci_manifest`] peeks at the manifest (normally the first member) to learn the name,
//! labels and dependencies.

use std::io::{self, Read};

use rkt_types::appc::{AppcError, ImageManifest};
use rkt_types::digest::Hasher;
use rkt_types::{Algorithm, Digest, ImageConfig, MAX_DOCUMENT_BYTES, Platform};

use crate::compress::{Compression, auto_decoder};
use crate::layout::tarindex::normalize;

/// Why an ACI was refused.
#[derive(Debug, thiserror::Error)]
pub enum AciError {
    /// Reading or decompressing failed, or the content is not a tar archive.
    #[error(
        "cannot read the ACI ({compression} data): it is truncated, corrupt or not a tar archive"
    )]
    Read {
        /// Compression found.
        compression: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// No `manifest` member.
    #[error("the archive has no manifest file at its top level, so it is not an ACI")]
    NoManifest,
    /// `manifest` is not a regular file or is too large.
    #[error(
        "the ACI's manifest is not a regular file of at most {MAX_DOCUMENT_BYTES} bytes; \
         refusing it"
    )]
    BadManifestEntry,
    /// The manifest was refused.
    #[error("the ACI's manifest is invalid")]
    Manifest(#[source] AppcError),
    /// Dependencies need appc discovery, which does not exist yet.
    #[error(
        "ACI {image} depends on image {dependency}, and rkt cannot fetch ACI dependencies yet; \
         use a flattened ACI without dependencies (for example one written by `rkt image \
         export`)"
    )]
    Dependency {
        /// The image.
        image: String,
        /// The first dependency (name and, if pinned, id).
        dependency: String,
    },
}

/// Reads the manifest of the ACI streamed by `r` (compressed or not), stopping at the
/// `manifest` member. Returns the parsed manifest and its exact bytes (their sha256 is the
/// record's manifest digest).
///
/// ACIs with dependencies are refused with [`AciError::Dependency`] until appc discovery
/// exists to fetch them.
pub fn read_aci_manifest<R: Read + Send>(r: R) -> Result<(ImageManifest, Vec<u8>), AciError> {
    let (compression, dec) = auto_decoder(r).map_err(|source| AciError::Read {
        compression: "unknown",
        source,
    })?;
    let read_err = |source| AciError::Read {
        compression: compression.name(),
        source,
    };
    let mut ar = tar::Archive::new(dec);
    for entry in ar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes();
        let is_manifest = std::str::from_utf8(&raw)
            .ok()
            .and_then(normalize)
            .is_some_and(|p| p == "manifest");
        if !is_manifest {
            continue;
        }
        if !entry.header().entry_type().is_file() || entry.size() > MAX_DOCUMENT_BYTES {
            return Err(AciError::BadManifestEntry);
        }
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        (&mut entry)
            .take(MAX_DOCUMENT_BYTES)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        let manifest = ImageManifest::parse(&bytes).map_err(AciError::Manifest)?;
        check_dependencies(&manifest)?;
        return Ok((manifest, bytes));
    }
    Err(AciError::NoManifest)
}

/// Refuses a manifest with dependencies, naming the first.
pub fn check_dependencies(m: &ImageManifest) -> Result<(), AciError> {
    match m.dependencies.first() {
        None => Ok(()),
        Some(d) => Err(AciError::Dependency {
            image: m.name.clone(),
            dependency: match &d.image_id {
                Some(id) => format!("{} ({id})", d.image_name),
                None => d.image_name.clone(),
            },
        }),
    }
}

/// The run configuration of an ACI in rkt's internal model.
pub fn aci_config(m: &ImageManifest) -> ImageConfig {
    ImageConfig::from_appc(m)
}

/// The platform an ACI's `os` and `arch` labels state, in OCI's names (`aarch64` → `arm64`,
/// `armv7l` → `arm/v7`). A missing label means the image does not restrict it, so the host's
/// value is used.
pub fn aci_platform(m: &ImageManifest) -> Platform {
    let host = Platform::host();
    let os = m.label("os").map_or(host.os, str::to_owned);
    let (architecture, variant) = match m.label("arch") {
        None => (host.architecture, None),
        Some("i386") => ("386".to_owned(), None),
        Some("aarch64") => ("arm64".to_owned(), None),
        Some("armv6l") => ("arm".to_owned(), Some("v6".to_owned())),
        Some("armv7l" | "armv7b") => ("arm".to_owned(), Some("v7".to_owned())),
        Some(a) => (a.to_owned(), None),
    };
    Platform {
        os,
        architecture,
        variant,
    }
}

/// The appc `arch` label for an OCI platform (the inverse of [`aci_platform`]), for export.
pub fn appc_arch(p: &Platform) -> String {
    match (p.architecture.as_str(), p.variant.as_deref()) {
        ("386", _) => "i386".to_owned(),
        ("arm64", _) => "aarch64".to_owned(),
        ("arm", Some("v6")) => "armv6l".to_owned(),
        ("arm", _) => "armv7l".to_owned(),
        (a, _) => a.to_owned(),
    }
}

/// Digests of an uncompressed ACI, computed as it streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AciDigests {
    /// sha512 of the uncompressed tar: the appc image id.
    pub image_id: Digest,
    /// sha256 of the uncompressed tar: the id of its one layer tree.
    pub diff_id: Digest,
    /// Uncompressed size.
    pub size: u64,
}

/// Passes an uncompressed ACI stream through unchanged while hashing it for
/// [`AciDigests`]. Put it between the decompressor and the unpacker; call
/// [`AciIdReader::finish`] afterwards, which also reads whatever the unpacker left (tar
/// padding), since the id covers every byte.
pub struct AciIdReader<R> {
    inner: R,
    sha512: Hasher,
    sha256: Hasher,
    size: u64,
}

impl<R> std::fmt::Debug for AciIdReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AciIdReader")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl<R: Read> AciIdReader<R> {
    /// Wraps the uncompressed stream `inner`.
    pub fn new(inner: R) -> Self {
        AciIdReader {
            inner,
            sha512: Hasher::new(Algorithm::Sha512),
            sha256: Hasher::new(Algorithm::Sha256),
            size: 0,
        }
    }

    /// Reads the rest of the stream and returns the digests of all of it.
    pub fn finish(mut self) -> io::Result<AciDigests> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(AciDigests {
            image_id: self.sha512.finish(),
            diff_id: self.sha256.finish(),
            size: self.size,
        })
    }
}

impl<R: Read> Read for AciIdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha512.update(&buf[..n]);
        self.sha256.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Decompresses a whole ACI (any supported compression) and returns its digests and
/// compression; for callers that do not unpack at the same time (verify, export checks).
pub fn aci_digests<R: Read + Send>(r: R) -> io::Result<(Compression, AciDigests)> {
    let (c, dec) = auto_decoder(r)?;
    Ok((c, AciIdReader::new(dec).finish()?))
}
