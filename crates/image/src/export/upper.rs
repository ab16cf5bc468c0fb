//! An app's changes to its root filesystem — the upper directory of its overlayfs mount — as
//! one OCI layer, so `rkt export` can append it to the layers the app's image already has.
//!
//! The upper dir uses overlayfs's own format (the one [`crate::unpack`] produces for lower
//! layers): a deleted path is a 0:0 character device, a directory that replaced a lower one
//! carries `trusted.overlay.opaque=y`. The layer uses the OCI format: `.wh.NAME` and
//! `.wh..wh..opq` files. Everything else is kept as it is: modes, owners, mtimes, symlinks
//! (never followed), hard links within the upper dir, device nodes, FIFOs and extended
//! attributes other than overlayfs's bookkeeping and `security.selinux` (as PAX
//! `SCHILY.xattr.*` records, so `user.*` and `security.capability` survive a round trip).
//! The upper dir's root entry is not archived: the image's root keeps its metadata.

use std::io::Write;
use std::path::{Path, PathBuf};

use rkt_types::Digest;
use rkt_types::digest::Algorithm;

use super::{ExportError, tree};
use crate::hashio::HashingWriter;

/// The digests of a layer written by [`write_upper_layer_gzip`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerDigests {
    /// sha256 of the uncompressed tar (what an image config lists in `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// sha256 of the compressed blob (what a manifest lists).
    pub digest: Digest,
    /// Size of the compressed blob.
    pub size: u64,
}

/// Writes the overlayfs upper dir `upper` as an uncompressed OCI layer tar into `out`.
///
/// The walk goes through directory file descriptors, opening every entry with `O_NOFOLLOW`
/// relative to its parent, so nothing outside `upper` is ever read (`upper` itself must be a
/// real directory). A file named `.wh.*` (which an OCI layer would read as a deletion) and an
/// upper dir that relies on overlayfs redirects or metacopy are refused. The paths in `skip`
/// (relative to `upper`, such as mount targets the runtime made) are left out with everything
/// below them.
pub fn write_upper_layer<W: Write>(
    out: W,
    upper: &Path,
    skip: &[PathBuf],
) -> Result<W, ExportError> {
    let mut b = tar::Builder::new(out);
    tree::append_upper(&mut b, upper, skip)?;
    b.into_inner().map_err(ExportError::Write)
}

/// [`write_upper_layer`], gzip-compressed (media type
/// [`rkt_types::oci::MEDIA_OCI_LAYER_GZIP`] or [`rkt_types::oci::MEDIA_DOCKER_LAYER`]),
/// hashing both forms on the way.
pub fn write_upper_layer_gzip<W: Write>(
    out: W,
    upper: &Path,
    skip: &[PathBuf],
) -> Result<(W, LayerDigests), ExportError> {
    let outer = HashingWriter::new(out, Algorithm::Sha256);
    let gz = flate2::write::GzEncoder::new(outer, flate2::Compression::default());
    let inner = HashingWriter::new(gz, Algorithm::Sha256);
    let inner = write_upper_layer(inner, upper, skip)?;
    let (diff_id, _, gz) = inner.into_parts();
    let outer = gz.finish().map_err(ExportError::Write)?;
    let (digest, size, mut out) = outer.into_parts();
    out.flush().map_err(ExportError::Write)?;
    Ok((
        out,
        LayerDigests {
            diff_id,
            digest,
            size,
        },
    ))
}
