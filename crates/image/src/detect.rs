//! What a local path holds: an OCI layout directory, an OCI layout archive, a `docker save`
//! archive, or an appc ACI (and how the file is compressed).
//!
//! Files are told apart by their compression magic and then by the names of their tar
//! members, never by their file name extension.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::layout::tarindex::{normalize, read_up_to};

/// Most tar members looked at before giving up on recognising a file.
const MAX_SCAN: usize = 100_000;

pub use crate::compress::Compression;

/// The command line tool that decompresses `c` (all of them take `-dk FILE`).
pub(crate) fn tool(c: Compression) -> &'static str {
    match c {
        Compression::None => "cat",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::Bzip2 => "bzip2",
        Compression::Xz => "xz",
    }
}

/// How messages describe `c`.
fn label(c: Compression) -> &'static str {
    match c {
        Compression::None => "uncompressed",
        c => c.name(),
    }
}

/// The kinds of local image source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalFormat {
    /// A directory holding an OCI image layout.
    OciLayoutDir,
    /// A tar of an OCI image layout, possibly compressed ([`crate::layout::OciArchive::open`]
    /// refuses a compressed one; `open_with_scratch` decompresses it).
    OciArchive,
    /// A `docker save` archive (including the OCI-layout-shaped ones docker 25+ writes,
    /// which carry `manifest.json` too), possibly compressed (see
    /// [`crate::docker_archive::DockerArchive::open_with_scratch`]).
    DockerArchive,
    /// An appc ACI, compressed as given.
    Aci(Compression),
}

/// Why a path could not be recognised.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The file system refused.
    #[error("cannot read {}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Not any format we read.
    #[error(
        "{} is not an OCI layout, OCI archive, docker save archive or ACI ({detail}); give an \
         image in one of those formats, or name a registry image with docker:// or oci://",
        .path.display()
    )]
    Unrecognized {
        /// The path.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
}

/// Works out what `path` holds.
pub fn detect(path: &Path) -> Result<LocalFormat, DetectError> {
    let io_err = |source| DetectError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if meta.is_dir() {
        return if path.join(crate::layout::OCI_LAYOUT_FILE).exists() {
            Ok(LocalFormat::OciLayoutDir)
        } else {
            Err(DetectError::Unrecognized {
                path: path.to_owned(),
                detail: "a directory without an oci-layout file".into(),
            })
        };
    }
    if !meta.is_file() {
        return Err(DetectError::Unrecognized {
            path: path.to_owned(),
            detail: "neither a regular file nor a directory".into(),
        });
    }
    let mut f = File::open(path).map_err(io_err)?;
    let mut head = [0u8; Compression::MAGIC_LEN];
    let n = read_up_to(&mut f, &mut head).map_err(io_err)?;
    let compression = Compression::detect(&head[..n]);
    f.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let found = if compression == Compression::None {
        // Seeking skips member data, so even a large archive is scanned quickly.
        scan_members(tar::Archive::new(f).entries_with_seek())
    } else {
        let dec = crate::compress::decoder(compression, f).map_err(io_err)?;
        scan_members(tar::Archive::new(dec).entries())
    };
    let unrecognized = |detail: String| DetectError::Unrecognized {
        path: path.to_owned(),
        detail,
    };
    match found {
        Ok(Kind::Aci) => Ok(LocalFormat::Aci(compression)),
        Ok(Kind::Docker) => Ok(LocalFormat::DockerArchive),
        Ok(Kind::Oci) => Ok(LocalFormat::OciArchive),
        Ok(Kind::Unknown(first)) => Err(unrecognized(match first {
            Some(name) => format!(
                "a {} tar archive starting with {name:?}",
                label(compression)
            ),
            None => format!("an empty or unreadable {} file", label(compression)),
        })),
        Err(_) if compression == Compression::None => Err(unrecognized("not a tar archive".into())),
        Err(e) => Err(unrecognized(format!(
            "{} data that is not a readable tar archive: {e}",
            label(compression)
        ))),
    }
}

enum Kind {
    Aci,
    Docker,
    Oci,
    Unknown(Option<String>),
}

fn scan_members<R: Read>(entries: io::Result<tar::Entries<'_, R>>) -> io::Result<Kind> {
    let mut oci = false;
    let mut first = None;
    for entry in entries?.take(MAX_SCAN) {
        let entry = entry?;
        let raw = entry.path_bytes();
        let Some(path) = std::str::from_utf8(&raw).ok().and_then(normalize) else {
            continue;
        };
        if first.is_none() {
            first = Some(path.clone());
        }
        match path.as_str() {
            "manifest" | "rootfs" => return Ok(Kind::Aci),
            p if p.starts_with("rootfs/") => return Ok(Kind::Aci),
            "manifest.json" | "repositories" => return Ok(Kind::Docker),
            "oci-layout" | "index.json" => oci = true,
            _ => {}
        }
    }
    Ok(if oci { Kind::Oci } else { Kind::Unknown(first) })
}
