//! Readers and writers that hash and bound what flows through them.
//!
//! The fetch pipeline for one layer is
//! ```text
//! network ─► HashingReader(blob digest, limit = descriptor size) ─► TeeReader(→ blob file)
//!         ─► compress::decoder ─► HashingReader(diff id) ─► unpack::unpack_layer
//! ```
//! Pass the tee by `&mut` into the decoder, so that once the unpacker is done the caller can
//! drain what the decoder left unread (trailing bytes still count towards the blob digest) and
//! then take the parts back with [`TeeReader::into_inner`].

use std::io::{self, Read, Write};

use rkt_types::digest::{Algorithm, Digest, Hasher};

/// Hashes and counts every byte read through it; optionally refuses to read past `limit`.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
    limit: Option<u64>,
}

impl<R: Read> HashingReader<R> {
    /// Hashes with `algorithm`, with no limit.
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
            limit: None,
        }
    }

    /// Hashes with `algorithm`; reading more than `limit` bytes is an error (the blob is
    /// longer than its descriptor says), and nothing past the limit is handed on.
    pub fn with_limit(inner: R, algorithm: Algorithm, limit: u64) -> Self {
        HashingReader {
            limit: Some(limit),
            ..Self::new(inner, algorithm)
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest and length of everything read. Call it after reading to EOF, or the digest
    /// covers only a prefix.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }

    /// The digest, the length and the inner reader.
    pub fn into_parts(self) -> (Digest, u64, R) {
        (self.hasher.finish(), self.count, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = match self.limit {
            None => buf.len(),
            Some(limit) if self.count < limit => buf
                .len()
                .min(usize::try_from(limit - self.count).unwrap_or(usize::MAX)),
            Some(limit) => {
                // At the limit: the stream must end here. Probe one byte to tell a blob of
                // exactly the right length from a longer one.
                let mut probe = [0u8; 1];
                return match self.inner.read(&mut probe)? {
                    0 => Ok(0),
                    _ => Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("blob is longer than its descriptor says ({limit} bytes)"),
                    )),
                };
            }
        };
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Hashes and counts every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Hashes with `algorithm`.
    pub fn new(inner: W, algorithm: Algorithm) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
        }
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest and length of everything written.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }

    /// The digest, the length and the inner writer (not flushed).
    pub fn into_parts(self) -> (Digest, u64, W) {
        (self.hasher.finish(), self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what the inner writer accepted, so a short write is hashed once.
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies everything read from `R` into `W` (e.g. the downloaded blob into its file while the
/// decoder consumes it). A write error is a read error, so the pipeline stops at once.
pub struct TeeReader<R, W> {
    inner: R,
    sink: W,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    /// Tees `inner` into `sink`.
    pub fn new(inner: R, sink: W) -> Self {
        TeeReader { inner, sink }
    }

    /// Reads `self` to EOF, so the sink and any hashing underneath see the whole stream.
    /// Returns the number of bytes that were still unread.
    pub fn drain(&mut self) -> io::Result<u64> {
        io::copy(self, &mut io::sink())
    }

    /// The reader and the sink (not flushed).
    pub fn into_inner(self) -> (R, W) {
        (self.inner, self.sink)
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compress::{self, Compression};

    #[test]
    fn hashes_and_counts() {
        let data = b"hello world".repeat(1000);
        let mut r = HashingReader::new(&data[..], Algorithm::Sha256);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.finish(), (Digest::sha256_of(&data), data.len() as u64));

        let mut w = HashingWriter::new(Vec::new(), Algorithm::Sha256);
        w.write_all(&data).unwrap();
        let (d, n, inner) = w.into_parts();
        assert_eq!((d, n), (Digest::sha256_of(&data), data.len() as u64));
        assert_eq!(inner, data);
    }

    #[test]
    fn limit_allows_exact_length_and_refuses_more() {
        let data = [7u8; 100];
        let mut r = HashingReader::with_limit(&data[..], Algorithm::Sha256, 100);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(r.finish().1, 100);

        let mut r = HashingReader::with_limit(&data[..], Algorithm::Sha256, 99);
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string()
                .contains("longer than its descriptor says (99 bytes)")
        );
        assert_eq!(r.count(), 99, "nothing past the limit is handed on");
    }

    #[test]
    fn pipeline_hashes_blob_and_diff_id() {
        let tar = b"pretend this is a tar".repeat(500);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        };
        let net = HashingReader::with_limit(&gz[..], Algorithm::Sha256, gz.len() as u64);
        let mut tee = TeeReader::new(net, Vec::new());
        let (c, dec) = compress::auto_decoder(&mut tee).unwrap();
        assert_eq!(c, Compression::Gzip);
        let mut diff = HashingReader::new(dec, Algorithm::Sha256);
        io::copy(&mut diff, &mut io::sink()).unwrap();
        let (diff_id, tar_len) = diff.finish();
        tee.drain().unwrap();
        let (net, blob) = tee.into_inner();
        let (blob_digest, blob_len) = net.finish();
        assert_eq!(diff_id, Digest::sha256_of(&tar));
        assert_eq!(tar_len, tar.len() as u64);
        assert_eq!(blob, gz);
        assert_eq!(
            (blob_digest, blob_len),
            (Digest::sha256_of(&gz), gz.len() as u64)
        );
    }
}
