//! Blobs by digest: `blobs/<algorithm>/<hex>`, written through `tmp/` and renamed into place.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use rkt_types::digest::Hasher;
use rkt_types::{Algorithm, Digest};

use crate::Store;
use crate::error::{IoContext, StoreError};
use crate::fsutil::{FILE_MODE, freshen, fsync_dir};
use crate::lock::create_tmp;

/// Streams a blob into `tmp/`, hashing as it goes; [`BlobWriter::commit`] verifies it and moves
/// it into place. Dropping a writer without committing removes the temp file, and a writer
/// killed with its process leaves a temp file whose lock is free, which gc removes.
pub struct BlobWriter {
    out: Option<BufWriter<File>>,
    tmp_path: Option<PathBuf>,
    hasher: Option<Hasher>,
    algorithm: Algorithm,
    written: u64,
    blobs_dir: PathBuf,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("tmp_path", &self.tmp_path)
            .field("algorithm", &self.algorithm)
            .field("written", &self.written)
            .finish()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let out = self.out.as_mut().ok_or_else(committed)?;
        let n = out.write(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().ok_or_else(committed)?.flush()
    }
}

fn committed() -> io::Error {
    io::Error::other("blob writer already committed")
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The algorithm this writer hashes with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Verifies the content against `expected` (digest) and `expected_size`, then makes it durable
    /// and moves it to `blobs/<algorithm>/<hex>`. Returns the content's digest.
    ///
    /// On a mismatch nothing is stored and the temp file is removed. If the blob is already in
    /// the store (another writer got there first) the temp file is dropped and the existing
    /// blob's mtime is refreshed, so gc's grace period covers this new use of it.
    pub fn commit(
        mut self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<Digest, StoreError> {
        let tmp_path = self
            .tmp_path
            .clone()
            .expect("uncommitted writer has a path");
        if let Some(exp) = expected
            && exp.algorithm() != self.algorithm
        {
            return Err(StoreError::AlgorithmMismatch {
                writer: self.algorithm.name(),
                expected: exp.clone(),
                expected_algo: exp.algorithm().name(),
            });
        }
        let file = self
            .out
            .take()
            .expect("uncommitted writer has a file")
            .into_inner()
            .map_err(|e| StoreError::io("write", &tmp_path, e.into_error()))?;
        let digest = self.hasher.take().expect("hasher present").finish();
        if let Some(exp) = expected
            && *exp != digest
        {
            return Err(StoreError::DigestMismatch {
                expected: exp.clone(),
                actual: digest,
            });
        }
        if let Some(size) = expected_size
            && size != self.written
        {
            return Err(StoreError::SizeMismatch {
                digest,
                expected: size,
                actual: self.written,
            });
        }
        let dir = self.blobs_dir.join(digest.algorithm().name());
        let dest = dir.join(digest.hex());
        if dest.exists() {
            freshen(&dest);
            return Ok(digest);
        }
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
            .ctx("set permissions on", &tmp_path)?;
        file.sync_all().ctx("fsync", &tmp_path)?;
        std::fs::rename(&tmp_path, &dest).ctx("rename into place", &dest)?;
        self.tmp_path = None;
        fsync_dir(&dir)?;
        Ok(digest)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(p) = self.tmp_path.take() {
            // Still holding the lock (the file is open until after this), so gc cannot race us.
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Store {
    /// Whether the blob is in the store.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Where the blob lives (or would live): `blobs/<algorithm>/<hex>`.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.algorithm().name()).join(d.hex())
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, d: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(d);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::BlobMissing(d.clone())
            } else {
                StoreError::io("open", &path, e)
            }
        })
    }

    /// A writer for a new blob, hashing with SHA-256.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        self.blob_writer_with(Algorithm::Sha256)
    }

    /// A writer for a new blob, hashing with `algorithm` (SHA-512 for appc ACIs).
    pub fn blob_writer_with(&self, algorithm: Algorithm) -> Result<BlobWriter, StoreError> {
        let tmp = create_tmp(&self.tmp_dir(), "blob", false)?;
        Ok(BlobWriter {
            out: Some(BufWriter::with_capacity(256 * 1024, tmp.file)),
            tmp_path: Some(tmp.path),
            hasher: Some(Hasher::new(algorithm)),
            algorithm,
            written: 0,
            blobs_dir: self.blobs_dir(),
        })
    }

    /// Stores `bytes` as a blob, verified against `expected` if given (whose algorithm is then
    /// used; SHA-256 otherwise). Returns its digest.
    pub fn put_blob(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest, StoreError> {
        let algorithm = expected.map_or(Algorithm::Sha256, Digest::algorithm);
        let mut w = self.blob_writer_with(algorithm)?;
        w.write_all(bytes)
            .map_err(|e| StoreError::io("write", &self.tmp_dir(), e))?;
        w.commit(expected, Some(bytes.len() as u64))
    }
}
