//! Compression of layers and ACIs: detect it by magic number or media type, and decode it as a
//! stream.
//!
//! Speed: every decoder reads through one [`BufReader`] of [`BUF_SIZE`] bytes, and the `bufread`
//! flavours of the decoders are used so there is no second internal buffer. Larger reads from the
//! source (a socket or a pipe from the downloader) mean fewer syscalls; 256 KiB is past the point
//! where bigger buffers still help the decoders here.

use std::io::{self, BufRead, BufReader, Read};

use rkt_types::oci;

/// Buffer between the compressed source and the decoder.
pub const BUF_SIZE: usize = 256 * 1024;

/// Largest xz dictionary (plus decoder overhead) we agree to allocate, in KiB. `xz -9` needs 64
/// MiB; anything asking for more than 256 MiB is more likely an attempt to exhaust memory than
/// a real ACI.
const XZ_MEM_LIMIT_KB: u32 = 256 * 1024;

/// A compression format we can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Not compressed (a plain tar).
    None,
    /// gzip (RFC 1952), possibly several concatenated members.
    Gzip,
    /// Zstandard, possibly several concatenated frames.
    Zstd,
    /// bzip2, possibly several concatenated streams.
    Bzip2,
    /// xz (LZMA2), possibly several concatenated streams.
    Xz,
}

impl Compression {
    /// Number of leading bytes [`Compression::detect`] wants to see.
    pub const MAGIC_LEN: usize = 6;

    /// Recognises the format from the first bytes of a stream (at least [`Self::MAGIC_LEN`]
    /// bytes when the stream is that long). Anything unrecognised is [`Compression::None`].
    pub fn detect(first_bytes: &[u8]) -> Compression {
        let b = first_bytes;
        if b.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if b.len() >= 4 && b.starts_with(b"BZh") && (b'1'..=b'9').contains(&b[3]) {
            Compression::Bzip2
        } else if b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else {
            Compression::None
        }
    }

    /// The compression a layer media type declares: OCI (`…tar`, `…tar+gzip`, `…tar+zstd`,
    /// including the non-distributable variants) and Docker (`…rootfs.diff.tar.gzip`,
    /// foreign layers). `None` for a media type that is not a layer we know.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            oci::MEDIA_OCI_LAYER => return Some(Compression::None),
            oci::MEDIA_OCI_LAYER_GZIP | oci::MEDIA_DOCKER_LAYER => return Some(Compression::Gzip),
            oci::MEDIA_OCI_LAYER_ZSTD => return Some(Compression::Zstd),
            oci::MEDIA_DOCKER_FOREIGN_LAYER => return Some(Compression::Gzip),
            _ => {}
        }
        let layer = media_type.starts_with("application/vnd.oci.image.layer.")
            || media_type.starts_with("application/vnd.docker.image.rootfs.");
        if !layer {
            return None;
        }
        if media_type.ends_with("+gzip") || media_type.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if media_type.ends_with("+zstd") {
            Some(Compression::Zstd)
        } else if media_type.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// Lower-case name, as `file`/`tar` users know it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }
}

/// A decoding reader for `c` over `r`. The result yields the uncompressed bytes.
///
/// Concatenated gzip members, zstd frames, bzip2 and xz streams are all decoded, since each
/// format allows them and real tools produce them.
pub fn decoder<'a, R: Read + Send + 'a>(
    c: Compression,
    r: R,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    decoder_buffered(c, BufReader::with_capacity(BUF_SIZE, r))
}

/// Like [`decoder`], but detects the compression from the stream's first bytes. Returns the
/// detected format with the reader, which still yields the whole stream.
pub fn auto_decoder<'a, R: Read + Send + 'a>(
    mut r: R,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    // Read the magic ourselves rather than trusting one fill_buf: a pipe or a slow socket may
    // hand over two bytes of a six-byte magic, and deciding on those would misdetect.
    let mut head = [0u8; Compression::MAGIC_LEN];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let c = Compression::detect(&head[..got]);
    let whole = io::Cursor::new(head).take(got as u64).chain(r);
    Ok((
        c,
        decoder_buffered(c, BufReader::with_capacity(BUF_SIZE, whole))?,
    ))
}

fn decoder_buffered<'a, R: BufRead + Send + 'a>(
    c: Compression,
    r: R,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        Compression::Xz => Box::new(lzma_rust2::XzReader::new_mem_limit(
            r,
            true,
            XZ_MEM_LIMIT_KB,
        )),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn payload() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn encode(c: Compression, data: &[u8]) -> Vec<u8> {
        match c {
            Compression::None => data.to_vec(),
            Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(data, 3).unwrap(),
            Compression::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Compression::Xz => {
                let opts = lzma_rust2::XzOptions::with_preset(1);
                let mut e = lzma_rust2::XzWriter::new(Vec::new(), opts).unwrap();
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    /// Hands out one byte per read, like a slow pipe.
    struct Trickle<R>(R);
    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Zstd,
        Compression::Bzip2,
        Compression::Xz,
    ];

    #[test]
    fn round_trips_every_format() {
        let data = payload();
        for c in ALL {
            let enc = encode(c, &data);
            assert_eq!(Compression::detect(&enc), c, "{}", c.name());
            let mut out = Vec::new();
            decoder(c, &enc[..]).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{}", c.name());
            let (found, mut r) = auto_decoder(Trickle(&enc[..])).unwrap();
            assert_eq!(found, c, "auto {}", c.name());
            out.clear();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "auto {}", c.name());
        }
    }

    #[test]
    fn decodes_concatenated_members() {
        for c in [
            Compression::Gzip,
            Compression::Zstd,
            Compression::Bzip2,
            Compression::Xz,
        ] {
            let mut enc = encode(c, b"hello ");
            enc.extend(encode(c, b"world"));
            let mut out = String::new();
            decoder(c, &enc[..])
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(out, "hello world", "{}", c.name());
        }
    }

    #[test]
    fn short_and_plain_streams_are_uncompressed() {
        assert_eq!(Compression::detect(b""), Compression::None);
        assert_eq!(Compression::detect(b"\x1f"), Compression::None);
        assert_eq!(Compression::detect(b"BZh0"), Compression::None);
        assert_eq!(Compression::detect(b"ustar\0"), Compression::None);
        let (c, mut r) = auto_decoder(&b"abc"[..]).unwrap();
        assert_eq!(c, Compression::None);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut enc = encode(Compression::Gzip, &payload());
        let mid = enc.len() / 2;
        enc[mid] ^= 0xff;
        let mut out = Vec::new();
        assert!(
            decoder(Compression::Gzip, &enc[..])
                .unwrap()
                .read_to_end(&mut out)
                .is_err()
        );
    }

    #[test]
    fn media_types() {
        use rkt_types::oci::*;
        let f = Compression::from_media_type;
        assert_eq!(f(MEDIA_OCI_LAYER), Some(Compression::None));
        assert_eq!(f(MEDIA_OCI_LAYER_GZIP), Some(Compression::Gzip));
        assert_eq!(f(MEDIA_OCI_LAYER_ZSTD), Some(Compression::Zstd));
        assert_eq!(f(MEDIA_DOCKER_LAYER), Some(Compression::Gzip));
        assert_eq!(f(MEDIA_DOCKER_FOREIGN_LAYER), Some(Compression::Gzip));
        assert_eq!(
            f("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
        assert_eq!(f(MEDIA_OCI_CONFIG), None);
        assert_eq!(f("application/octet-stream"), None);
    }
}
