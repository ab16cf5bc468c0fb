//! Compression and hashing writers shared by the fixture builders.
//!
//! Every encoder is configured without timestamps or file names, so the same input always gives
//! the same bytes (for the same encoder library version), which keeps fixture digests stable.

use std::io::{self, Write};

use rkt_types::digest::{Algorithm, Hasher};
use rkt_types::{Digest, oci};
use serde::{Deserialize, Serialize};

/// How a blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Stored as is.
    None,
    /// gzip at level 6 (what docker and podman use).
    Gzip,
    /// gzip at level 1: for the large fixture, where build time matters more than size.
    GzipFast,
    /// zstd at level 3.
    Zstd,
    /// bzip2 (ACIs only).
    Bzip2,
    /// xz (ACIs only).
    Xz,
}

impl Compression {
    /// The OCI layer media type for this compression.
    ///
    /// # Panics
    /// For bzip2 and xz, which OCI layers cannot use.
    pub fn oci_layer_media_type(self) -> &'static str {
        match self {
            Compression::None => oci::MEDIA_OCI_LAYER,
            Compression::Gzip | Compression::GzipFast => oci::MEDIA_OCI_LAYER_GZIP,
            Compression::Zstd => oci::MEDIA_OCI_LAYER_ZSTD,
            Compression::Bzip2 | Compression::Xz => {
                panic!("{self:?} is not an OCI layer compression")
            }
        }
    }

    /// The usual file-name suffix (`""` for none).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip | Compression::GzipFast => ".gz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
            Compression::Xz => ".xz",
        }
    }

    /// Wraps `out` in an encoder.
    pub fn encoder<W: Write>(self, out: W) -> io::Result<Encoder<W>> {
        Ok(match self {
            Compression::None => Encoder::None(out),
            Compression::Gzip => Encoder::Gzip(gzip(out, 6)),
            Compression::GzipFast => Encoder::Gzip(gzip(out, 1)),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, 3)?),
            Compression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                out,
                bzip2::Compression::new(9),
            )),
            Compression::Xz => Encoder::Xz(Box::new(lzma_rust2::XzWriter::new(
                out,
                lzma_rust2::XzOptions::with_preset(6),
            )?)),
        })
    }
}

fn gzip<W: Write>(out: W, level: u32) -> flate2::write::GzEncoder<W> {
    // mtime 0 and no file name: the header is the same on every run.
    flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(out, flate2::Compression::new(level))
}

/// A running encoder of any [`Compression`].
pub enum Encoder<W: Write> {
    /// Pass-through.
    None(W),
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// bzip2.
    Bzip2(bzip2::write::BzEncoder<W>),
    /// xz.
    Xz(Box<lzma_rust2::XzWriter<W>>),
}

impl<W: Write> Encoder<W> {
    /// Writes the trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
            Encoder::Xz(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::Bzip2(e) => e.write(buf),
            Encoder::Xz(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
            Encoder::Xz(e) => e.flush(),
        }
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// SHA-256 of everything written to `inner`.
    pub fn sha256(inner: W) -> Self {
        Self::new(inner, Algorithm::Sha256)
    }

    /// A hashing writer with the given algorithm.
    pub fn new(inner: W, algorithm: Algorithm) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(algorithm),
            len: 0,
        }
    }

    /// The inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compresses `data` in memory.
pub fn compress(data: &[u8], compression: Compression) -> io::Result<Vec<u8>> {
    let mut e = compression.encoder(Vec::new())?;
    e.write_all(data)?;
    e.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn encoders_are_deterministic_and_round_trip() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::GzipFast,
            Compression::Zstd,
            Compression::Bzip2,
            Compression::Xz,
        ] {
            let a = compress(&data, c).unwrap();
            let b = compress(&data, c).unwrap();
            assert_eq!(a, b, "{c:?} is not deterministic");
            let mut out = Vec::new();
            match c {
                Compression::None => out = a.clone(),
                Compression::Gzip | Compression::GzipFast => {
                    flate2::read::GzDecoder::new(&a[..])
                        .read_to_end(&mut out)
                        .unwrap();
                }
                Compression::Zstd => out = zstd::decode_all(&a[..]).unwrap(),
                Compression::Bzip2 => {
                    bzip2::read::BzDecoder::new(&a[..])
                        .read_to_end(&mut out)
                        .unwrap();
                }
                Compression::Xz => {
                    lzma_rust2::XzReader::new(&a[..], false)
                        .read_to_end(&mut out)
                        .unwrap();
                }
            }
            assert_eq!(out, data, "{c:?} does not round-trip");
        }
    }
}
