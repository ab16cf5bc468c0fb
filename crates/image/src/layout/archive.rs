//! A tar archive of an OCI image layout (`oci-archive:FILE[:REF]`), read in place.
//!
//! The archive is never extracted: its headers are indexed once and blobs are read by
//! positioned reads into the file, which needs an uncompressed archive. A compressed one is
//! refused by [`OciArchive::open`] with a message saying to decompress it, or decompressed
//! into an unlinked scratch file by [`OciArchive::open_with_scratch`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rkt_types::Platform;
use rkt_types::oci::{Descriptor, Index};

use super::dir::parse_index;
use super::tarindex::TarIndex;
use super::{
    BlobReader, BlobSource, INDEX_FILE, OCI_LAYOUT_FILE, ResolvedImage, SourceError,
    VerifiedReader, blob_path, check_layout_marker, resolve,
};
use crate::compress::Compression;

/// An OCI layout archive with its `index.json` read and checked.
#[derive(Debug)]
pub struct OciArchive {
    tar: TarIndex,
    index: Index,
}

impl OciArchive {
    /// Opens an uncompressed OCI layout archive. A compressed archive is refused with
    /// [`SourceError::Compressed`].
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let tar = TarIndex::open_file(path, format!("OCI archive {}", path.display()))?;
        Self::from_index(tar)
    }

    /// Opens an OCI layout archive, decompressing it first if it is compressed: into a file
    /// in `scratch_dir` that is unlinked at once, so nothing is left behind even if the
    /// process is killed. `scratch_dir` needs room for the whole uncompressed archive.
    pub fn open_with_scratch(path: &Path, scratch_dir: &Path) -> Result<Self, SourceError> {
        let file = seekable_copy(path, scratch_dir)?;
        let tar = TarIndex::scan(file, format!("OCI archive {}", path.display()))?;
        Self::from_index(tar)
    }

    fn from_index(tar: TarIndex) -> Result<Self, SourceError> {
        let location = tar.location().to_owned();
        let Some(marker) = tar.read_small(OCI_LAYOUT_FILE)? else {
            return Err(SourceError::MissingMember {
                location,
                member: OCI_LAYOUT_FILE.into(),
                hint: "it is not an OCI layout archive (for a `docker save` archive use \
                       docker-archive:FILE)",
            });
        };
        check_layout_marker(&marker, &location)?;
        let Some(index) = tar.read_small(INDEX_FILE)? else {
            return Err(SourceError::MissingMember {
                location,
                member: INDEX_FILE.into(),
                hint: "the OCI layout in it is incomplete",
            });
        };
        let index = parse_index(&index, &location)?;
        Ok(OciArchive { tar, index })
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

impl BlobSource for OciArchive {
    fn open_blob(&self, desc: &Descriptor) -> Result<BlobReader, SourceError> {
        open_member_blob(&self.tar, &blob_path(&desc.digest), desc)
    }

    fn describe(&self) -> String {
        self.tar.location().to_owned()
    }
}

/// Opens the archive member `path` as the blob `desc`.
pub(crate) fn open_member_blob(
    tar: &TarIndex,
    path: &str,
    desc: &Descriptor,
) -> Result<BlobReader, SourceError> {
    let Some((offset, size)) = tar.find(path)? else {
        return Err(SourceError::BlobMissing {
            digest: desc.digest.clone(),
            location: tar.location().to_owned(),
        });
    };
    if size != desc.size {
        return Err(SourceError::BlobSize {
            digest: desc.digest.clone(),
            location: tar.location().to_owned(),
            expected: desc.size,
            actual: size,
        });
    }
    let inner: Box<dyn Read + Send> = Box::new(tar.section(offset, size));
    Ok(VerifiedReader::new(inner, desc.digest.clone(), desc.size))
}

/// Opens `path` for random access: the file itself when uncompressed, otherwise a
/// decompressed copy in an unlinked file under `scratch_dir`.
pub(crate) fn seekable_copy(path: &Path, scratch_dir: &Path) -> Result<File, SourceError> {
    let mut f = File::open(path).map_err(|e| SourceError::io(path, e))?;
    let mut magic = [0u8; Compression::MAGIC_LEN];
    let n =
        super::tarindex::read_up_to(&mut f, &mut magic).map_err(|e| SourceError::io(path, e))?;
    let compression = Compression::detect(&magic[..n]);
    if compression == Compression::None {
        return Ok(f);
    }
    let f = File::open(path).map_err(|e| SourceError::io(path, e))?;
    let mut out = scratch_file(scratch_dir).map_err(|e| SourceError::io(scratch_dir, e))?;
    let mut dec = crate::compress::decoder(compression, f).map_err(|e| SourceError::io(path, e))?;
    std::io::copy(&mut dec, &mut out).map_err(|e| SourceError::BadArchive {
        location: path.display().to_string(),
        reason: format!("cannot decompress it: {e}"),
    })?;
    out.seek(SeekFrom::Start(0))
        .map_err(|e| SourceError::io(scratch_dir, e))?;
    Ok(out)
}

/// An anonymous file in `dir`: `O_TMPFILE` where the file system has it, otherwise a named
/// file unlinked right after creation.
fn scratch_file(dir: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    match rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => Ok(File::from(fd)),
        Err(_) => {
            let name = dir.join(format!(
                ".rkt-archive-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&name)?;
            std::fs::remove_file(&name)?;
            Ok(f)
        }
    }
}
