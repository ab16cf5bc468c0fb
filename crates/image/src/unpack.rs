//! Unpacking one layer tar, as root, into its own overlay-style tree. The input is untrusted.
//!
//! # Output
//! The tree is an overlayfs lower directory: an OCI whiteout `.wh.NAME` becomes a character
//! device 0:0 named `NAME` (replacing whatever this layer had put there), and `.wh..wh..opq`
//! becomes `trusted.overlay.opaque=y` on the containing directory (created if absent).
//!
//! # Safety rules
//! - Entry names are normalised (leading `/` and `./` dropped, `..` folded); a `..` that would
//!   climb above the root is an error.
//! - Paths are resolved inside the tree: this module keeps a model of every entry it has
//!   created ([`tree`]) and resolves symlinks in parent paths against it with
//!   `RESOLVE_IN_ROOT` semantics (so `a -> /` then `a/etc/passwd` lands at `etc/passwd` in the
//!   tree). The kernel then opens the resulting canonical parent with `openat2(RESOLVE_IN_ROOT
//!   | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS)`, so even a model bug cannot leave the root.
//!   The final component is never followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `O_EXCL`).
//! - Symlinks are created as given; nothing here follows them outside the root.
//! - Hard links must name a non-directory this layer already created inside the tree.
//! - Device nodes are not created (except the whiteouts made here); they are listed in
//!   [`UnpackReport::skipped`]. FIFOs are created.
//! - An entry replaces a non-directory at its path. A directory entry over an existing
//!   directory updates its metadata. A non-directory over a directory replaces it only if it
//!   is empty (GNU tar's default); over a non-empty one it is an error, never a silent
//!   deletion.
//! - PAX xattrs (`SCHILY.xattr.*`): `user.*` and `security.capability` are applied to files
//!   and directories; everything else — `trusted.overlay.*` in particular, which would let an
//!   image forge whiteouts — is dropped and listed in `skipped`.
//!
//! # Whiteout tricks
//! | entry | outcome |
//! |---|---|
//! | `.wh.` (empty name), `.wh..`, `.wh...` | error [`UnpackError::WhiteoutTrick`] |
//! | a path below a `.wh.NAME` component | error [`UnpackError::WhiteoutTrick`] |
//! | `.wh..wh..opq` at the layer root | dropped, in `skipped` (overlayfs ignores opaque on a layer root) |
//! | other `.wh..wh.*` (AUFS metadata) and anything below it | dropped, in `skipped` |
//! | `SCHILY.xattr.trusted.overlay.*` | dropped, in `skipped` |
//!
//! # Limits
//! Exceeding [`UnpackOptions::max_entries`] or [`UnpackOptions::max_bytes`] (the sum of entry
//! data sizes, plus anything after the end of the archive) stops the unpack with an error; so
//! do entry headers larger than 1 MiB (long names, PAX records), which the `tar` crate would
//! otherwise buffer in full.
//!
//! # Speed
//! File data is copied through one reused 1 MiB buffer and hashed on the way (the tree hash
//! needs each file's sha256, and hashing here avoids reading the tree again). Parent
//! directories come from a small fd cache rather than one `openat2` per entry, and directory
//! modes and mtimes are applied once at the end, deepest first. Per regular file the syscalls
//! are `openat`, `write`s, `fchown`, `fchmod`, `futimens`, `close` — what GNU tar does.

mod apply;
mod create;
pub(crate) mod fsops;
mod meter;
mod names;
mod place;
mod tree;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rkt_types::Digest;

use self::apply::Unpacker;
use self::meter::Meter;

/// How a layer is laid out and how much of it we accept.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Most bytes of entry data (the sum of entry sizes) the layer may have. The CLI option
    /// that sets it is `--max-layer-size`.
    pub max_bytes: u64,
    /// Most entries the layer may have. The CLI option that sets it is `--max-layer-entries`.
    pub max_entries: u64,
    /// Where the filesystem lives inside the tar.
    pub layout: LayerLayout,
    /// Apply the uid/gid of entries (needs root). When false, everything is owned by the
    /// calling user.
    pub ownership: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            max_bytes: 64 << 30,
            max_entries: 2_000_000,
            layout: LayerLayout::Oci,
            ownership: true,
        }
    }
}

/// Where the filesystem lives inside a layer tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerLayout {
    /// OCI/Docker layer: the whole tar is the filesystem.
    #[default]
    Oci,
    /// appc ACI: the filesystem is under `rootfs/`, the top-level `manifest` is returned in
    /// [`UnpackReport::aci_manifest`], other top-level entries are ignored.
    Aci,
}

/// What an unpack did.
#[derive(Debug, Clone)]
pub struct UnpackReport {
    /// Tar entries read (headers, not counting long-name and PAX records).
    pub entries: u64,
    /// Bytes of entry data read (what [`UnpackOptions::max_bytes`] limits).
    pub bytes: u64,
    /// The tree hash of the result; equals [`crate::treehash::hash_tree`] of the tree.
    pub tree_hash: Digest,
    /// The ACI manifest, for [`LayerLayout::Aci`] when the archive has one.
    pub aci_manifest: Option<Vec<u8>>,
    /// Entries and attributes that were neutralised rather than unpacked, one line each (at
    /// most 1000, then a count), for a warning.
    pub skipped: Vec<String>,
}

/// Why a layer could not be unpacked. The partly written tree must be discarded.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The destination could not be opened or inspected.
    #[error("cannot use {path} as the destination of an unpack")]
    Destination {
        /// The destination.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The destination has entries in it already.
    #[error("the unpack destination {path} is not empty")]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// The stream failed or is not a well-formed tar (truncated, bad checksum, bad
    /// compression underneath).
    #[error("cannot read the layer archive after {entries} entries")]
    Read {
        /// Entries read before the failure.
        entries: u64,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An entry's headers (GNU long names, PAX records) are larger than any real one.
    #[error(
        "layer entry {index}: its headers (long name or PAX records) are larger than 1 MiB; \
         the layer is malformed or hostile"
    )]
    HeadersTooLarge {
        /// 1-based position of the entry in the archive.
        index: u64,
    },
    /// A header field could not be parsed.
    #[error("layer entry {entry:?} has a malformed header field")]
    BadHeader {
        /// The entry name.
        entry: String,
        /// What the tar parser said.
        #[source]
        source: io::Error,
    },
    /// The entry's name is unusable.
    #[error("layer entry {entry:?}: {reason}")]
    BadName {
        /// The entry name as found in the archive.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A whiteout that would remove something it must not (see the module documentation).
    #[error("layer entry {entry:?} is a whiteout trick ({reason}); refusing the layer")]
    WhiteoutTrick {
        /// The entry name.
        entry: String,
        /// Which trick.
        reason: &'static str,
    },
    /// A hard link whose target is not an earlier non-directory of this layer.
    #[error("layer entry {entry:?}: hard link target {target:?} {reason}")]
    BadLink {
        /// The entry name.
        entry: String,
        /// The link target as found in the archive.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The entry's parent path cannot be resolved to a directory inside the tree.
    #[error("layer entry {entry:?}: {reason}")]
    Resolve {
        /// The entry name.
        entry: String,
        /// What is in the way.
        reason: String,
    },
    /// A non-directory entry over a non-empty directory of this layer.
    #[error(
        "layer entry {entry:?} would replace the non-empty directory {path:?} that this layer \
         created; refusing rather than deleting its contents"
    )]
    ReplacesDirectory {
        /// The entry name.
        entry: String,
        /// The directory (canonical path in the tree).
        path: String,
    },
    /// More entries than [`UnpackOptions::max_entries`].
    #[error(
        "the layer has more than {limit} entries; if the image is trusted, raise the limit \
         with --max-layer-entries"
    )]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// More data than [`UnpackOptions::max_bytes`].
    #[error(
        "the layer expands to more than {limit} bytes; if the image is trusted, raise the \
         limit with --max-layer-size"
    )]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The ACI manifest is larger than [`rkt_types::MAX_DOCUMENT_BYTES`].
    #[error("the ACI manifest is larger than {limit} bytes")]
    ManifestTooLarge {
        /// The limit.
        limit: u64,
    },
    /// A filesystem operation failed.
    #[error("layer entry {entry:?}: cannot {op} {path:?} in the tree")]
    Fs {
        /// The entry name (or the tree path when finishing directories).
        entry: String,
        /// What was being done.
        op: &'static str,
        /// The canonical path inside the tree.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Unpacks the (uncompressed) layer tar `tar` into the existing empty directory `dest`.
///
/// Reads `tar` to its end, past the end-of-archive marker, so a caller hashing the stream sees
/// all of it. On error the tree in `dest` is partial and must be discarded.
pub fn unpack_layer<R: Read>(
    tar: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let mut u = Unpacker::new(dest, opts)?;
    let (meter, state) = Meter::new(tar);
    let mut archive = tar::Archive::new(meter);
    let read_err = |entries: u64| move |source| UnpackError::Read { entries, source };
    {
        let mut entries = archive.entries().map_err(read_err(0))?;
        loop {
            state.begin_headers();
            let next = entries.next();
            state.end_headers();
            let mut entry = match next {
                None => break,
                Some(Ok(e)) => e,
                Some(Err(_)) if state.tripped() => {
                    return Err(UnpackError::HeadersTooLarge {
                        index: u.entries() + 1,
                    });
                }
                Some(Err(e)) => return Err(read_err(u.entries())(e)),
            };
            u.entry(&mut entry)?;
            // Whatever the entry's data the unpacker did not want is read here, so that the
            // next header read (bounded by the meter) only covers padding and headers.
            io::copy(&mut entry, &mut io::sink()).map_err(read_err(u.entries()))?;
        }
    }
    // Trailing blocks (tar pads to 10 KiB records) and anything else up to EOF: the caller's
    // diff-id hash covers the whole stream. Bounded like entry data, plus room for padding.
    let mut rest = archive.into_inner();
    let allowance = opts.max_bytes.saturating_sub(u.bytes()) + (1 << 20);
    let trailing = io::copy(&mut (&mut rest).take(allowance + 1), &mut io::sink())
        .map_err(read_err(u.entries()))?;
    if trailing > allowance {
        return Err(UnpackError::TooLarge {
            limit: opts.max_bytes,
        });
    }
    tracing::debug!(
        entries = u.entries(),
        stream_bytes = state.total(),
        "layer archive read"
    );
    u.finish()
}
