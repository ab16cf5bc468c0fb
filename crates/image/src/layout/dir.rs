//! An OCI image layout directory (`oci:DIR[:REF]`).

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rkt_types::oci::{Descriptor, Index, MEDIA_OCI_INDEX, ManifestDoc};
use rkt_types::{MAX_DOCUMENT_BYTES, Platform};
use rustix::fs::OFlags;

use super::{
    BlobReader, BlobSource, INDEX_FILE, OCI_LAYOUT_FILE, ResolvedImage, SourceError,
    VerifiedReader, blob_path, check_layout_marker, resolve,
};

/// An OCI image layout on disk, with its `index.json` read and checked.
#[derive(Debug)]
pub struct OciLayout {
    root: PathBuf,
    index: Index,
}

/// Opens a file of the layout without following a symlink at the last component and without
/// blocking on a FIFO, and insists it is a regular file.
fn open_regular(path: &Path) -> io::Result<(File, u64)> {
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((f, meta.len()))
}

/// Whether `e` is `ELOOP`: `O_NOFOLLOW` met a symlink.
fn is_eloop(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// Reads a small descriptor-less file (`oci-layout`, `index.json`), capped.
fn read_small(path: &Path, what: &str) -> Result<Vec<u8>, SourceError> {
    let (f, len) = match open_regular(path) {
        Ok(x) => x,
        Err(e) if e.kind() == io::ErrorKind::InvalidInput || is_eloop(&e) => {
            return Err(SourceError::NotRegular {
                what: path.display().to_string(),
            });
        }
        Err(e) => return Err(SourceError::io(path, e)),
    };
    if len > MAX_DOCUMENT_BYTES {
        return Err(SourceError::FileTooLarge {
            what: what.to_owned(),
        });
    }
    let mut buf = Vec::new();
    f.take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| SourceError::io(path, e))?;
    if buf.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(SourceError::FileTooLarge {
            what: what.to_owned(),
        });
    }
    Ok(buf)
}

/// Parses a layout's `index.json`.
pub(super) fn parse_index(bytes: &[u8], location: &str) -> Result<Index, SourceError> {
    match ManifestDoc::parse(bytes, Some(MEDIA_OCI_INDEX)) {
        Ok(ManifestDoc::Index(idx)) => Ok(idx),
        Ok(ManifestDoc::Image(_)) => Err(SourceError::Manifest {
            what: format!("index.json of {location}"),
            source: rkt_types::oci::ManifestError::Invalid(
                "index.json holds an image manifest, not an image index".into(),
            ),
        }),
        Err(source) => Err(SourceError::Manifest {
            what: format!("index.json of {location}"),
            source,
        }),
    }
}

impl OciLayout {
    /// Opens the layout at `dir`: checks `oci-layout` (version 1.x) and reads `index.json`.
    pub fn open(dir: &Path) -> Result<Self, SourceError> {
        let marker = dir.join(OCI_LAYOUT_FILE);
        match std::fs::symlink_metadata(&marker) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(match std::fs::metadata(dir) {
                    Ok(m) if m.is_dir() => SourceError::NotLayout(dir.to_owned()),
                    Ok(_) => SourceError::NotLayout(dir.to_owned()),
                    Err(e) => SourceError::io(dir, e),
                });
            }
            Err(e) => return Err(SourceError::io(&marker, e)),
        }
        let location = format!("OCI layout {}", dir.display());
        check_layout_marker(&read_small(&marker, "oci-layout")?, &location)?;
        let index_path = dir.join(INDEX_FILE);
        let index = parse_index(&read_small(&index_path, "index.json")?, &location)?;
        Ok(OciLayout {
            root: dir.to_owned(),
            index,
        })
    }

    /// The layout's directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Chooses the image named `reference` (or the only one) for `platform`, and reads and
    /// verifies its manifest and config.
    pub fn resolve(
        &self,
        reference: Option<&str>,
        platform: &Platform,
    ) -> Result<ResolvedImage, SourceError> {
        resolve::resolve_index(self, &self.index, reference, platform)
    }
}

impl BlobSource for OciLayout {
    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader, SourceError> {
        let path = self.root.join(blob_path(&desc.digest));
        let (f, len) = match open_regular(&path) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SourceError::BlobMissing {
                    digest: desc.digest.clone(),
                    location: self.describe(),
                });
            }
            // ELOOP: the blob is a symlink, which a layout has no business holding.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput || is_eloop(&e) => {
                return Err(SourceError::NotRegular {
                    what: path.display().to_string(),
                });
            }
            Err(e) => return Err(SourceError::io(&path, e)),
        };
        if len != desc.size {
            return Err(SourceError::BlobSize {
                digest: desc.digest.clone(),
                location: self.describe(),
                expected: desc.size,
                actual: len,
            });
        }
        let inner: Box<dyn Read + Send> = Box::new(f);
        Ok(VerifiedReader::new(inner, desc.digest.clone(), desc.size))
    }

    fn describe(&self) -> String {
        format!("OCI layout {}", self.root.display())
    }
}
