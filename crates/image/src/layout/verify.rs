//! A reader that checks a blob against its descriptor while it streams.

use std::io::{self, Read};

use rkt_types::Digest;
use rkt_types::digest::Hasher;

/// How a blob failed its descriptor.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    /// More bytes than the descriptor's size.
    #[error(
        "blob {digest} is longer than the {size} bytes its descriptor states; the source is \
         corrupt or was tampered with"
    )]
    TooLong {
        /// Expected digest.
        digest: Digest,
        /// Size the descriptor states.
        size: u64,
    },
    /// Fewer bytes than the descriptor's size.
    #[error(
        "blob {digest} ended after {got} of the {size} bytes its descriptor states; the source is \
         truncated"
    )]
    TooShort {
        /// Expected digest.
        digest: Digest,
        /// Size the descriptor states.
        size: u64,
        /// Bytes actually read.
        got: u64,
    },
    /// The content hashes to something else.
    #[error(
        "blob content does not match its digest: expected {expected}, got {actual}; the source is \
         corrupt or was tampered with"
    )]
    DigestMismatch {
        /// Digest the descriptor states.
        expected: Digest,
        /// Digest of what was read.
        actual: Digest,
    },
}

impl BlobError {
    /// The verification failure carried by an I/O error from a [`VerifiedReader`], if any.
    pub fn from_io(e: &io::Error) -> Option<&BlobError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<BlobError>())
    }
}

/// Streams a blob and verifies its size and digest.
///
/// The bytes that complete the blob are handed out only after the whole blob has verified:
/// when the read that reaches the stated size also shows that the stream ends there and the
/// digest matches. A stream longer than its descriptor is cut off with an error at the first
/// excess byte. Failures surface as `io::Error`s of kind `InvalidData` wrapping a
/// [`BlobError`] (see [`BlobError::from_io`]).
///
/// A consumer may stop before the end (a tar reader stops at the end-of-archive marker, a
/// gzip decoder at the end of its stream); call [`VerifiedReader::finish`] afterwards so the
/// rest is read and checked too.
pub struct VerifiedReader<R> {
    inner: R,
    digest: Digest,
    size: u64,
    read: u64,
    hasher: Option<Hasher>,
    failed: Option<BlobError>,
}

impl<R> std::fmt::Debug for VerifiedReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedReader")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl<R: Read> VerifiedReader<R> {
    /// Wraps `inner`, which should yield exactly `size` bytes hashing to `digest`.
    pub fn new(inner: R, digest: Digest, size: u64) -> Self {
        let hasher = Hasher::new(digest.algorithm());
        VerifiedReader {
            inner,
            digest,
            size,
            read: 0,
            hasher: Some(hasher),
            failed: None,
        }
    }

    /// The digest being verified.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The size being verified.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads whatever the consumer left unread and reports whether the blob verified.
    pub fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink())?;
        if self.hasher.is_some() {
            // Only reachable if `read` was never called past the end; copy above does that.
            return Err(self.fail(BlobError::TooShort {
                digest: self.digest.clone(),
                size: self.size,
                got: self.read,
            }));
        }
        Ok(())
    }

    fn fail(&mut self, e: BlobError) -> io::Error {
        self.failed = Some(e.clone());
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    /// Reads one byte past the stated size: there must be none.
    fn at_end(&mut self) -> io::Result<bool> {
        let mut probe = [0u8; 1];
        loop {
            match self.inner.read(&mut probe) {
                Ok(0) => return Ok(true),
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Called once `size` bytes have been read: checks the end and the digest.
    fn complete(&mut self) -> io::Result<()> {
        if !self.at_end()? {
            return Err(self.fail(BlobError::TooLong {
                digest: self.digest.clone(),
                size: self.size,
            }));
        }
        let actual = self.hasher.take().map(Hasher::finish);
        match actual {
            Some(actual) if actual != self.digest => Err(self.fail(BlobError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            })),
            _ => Ok(()),
        }
    }
}

impl<R: Read> Read for VerifiedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(io::Error::new(io::ErrorKind::InvalidData, e.clone()));
        }
        if self.hasher.is_none() || buf.is_empty() {
            return Ok(0);
        }
        let remaining = self.size - self.read;
        if remaining == 0 {
            self.complete()?;
            return Ok(0);
        }
        let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(self.fail(BlobError::TooShort {
                digest: self.digest.clone(),
                size: self.size,
                got: self.read,
            }));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.read += n as u64;
        if self.read == self.size {
            // Hold back the final bytes until the whole blob has verified.
            self.complete()?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn passes_good_blobs() {
        let data = b"hello world".to_vec();
        let mut r = VerifiedReader::new(&data[..], Digest::sha256_of(&data), data.len() as u64);
        assert_eq!(read_all(&mut r).unwrap(), data);
        r.finish().unwrap();
        let mut r = VerifiedReader::new(&b""[..], Digest::sha256_of(b""), 0);
        assert!(read_all(&mut r).unwrap().is_empty());
    }

    #[test]
    fn refuses_excess_short_and_wrong() {
        let data = b"hello world";
        let d = Digest::sha256_of(data);
        let mut r = VerifiedReader::new(&b"hello world!"[..], d.clone(), 11);
        let e = read_all(&mut r).unwrap_err();
        assert!(
            matches!(BlobError::from_io(&e), Some(BlobError::TooLong { .. })),
            "{e}"
        );
        let mut r = VerifiedReader::new(&b"hello"[..], d.clone(), 11);
        let e = read_all(&mut r).unwrap_err();
        assert!(matches!(
            BlobError::from_io(&e),
            Some(BlobError::TooShort { got: 5, .. })
        ));
        let mut r = VerifiedReader::new(&b"hello WORLD"[..], d.clone(), 11);
        let e = read_all(&mut r).unwrap_err();
        assert!(matches!(
            BlobError::from_io(&e),
            Some(BlobError::DigestMismatch { .. })
        ));
        // The failure sticks: a retry does not report success.
        assert!(read_all(&mut r).is_err());
    }

    #[test]
    fn finish_checks_what_the_consumer_left() {
        let d = Digest::sha256_of(b"hello world");
        let mut r = VerifiedReader::new(&b"hello wOrld"[..], d, 11);
        let mut first = [0u8; 5];
        r.read_exact(&mut first).unwrap();
        let e = r.finish().unwrap_err();
        assert!(matches!(
            BlobError::from_io(&e),
            Some(BlobError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn last_bytes_are_withheld_on_mismatch() {
        let d = Digest::sha256_of(b"abc");
        let mut r = VerifiedReader::new(&b"abd"[..], d, 3);
        let mut buf = [0u8; 16];
        assert!(r.read(&mut buf).is_err());
    }
}
