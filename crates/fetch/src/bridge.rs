//! Carries an async byte stream into a blocking reader.
//!
//! Decompression and unpacking are synchronous (the `tar` crate, flate2, zstd) and run on a
//! blocking thread; the HTTP body arrives on the async runtime. A bounded channel between them
//! gives back-pressure: the download pauses when unpacking falls behind, so memory stays at a
//! few chunks per layer whatever the layer's size.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// Chunks in flight per layer. HTTP chunks are typically 8–16 KiB, so this is about 1 MiB.
pub(crate) const CHANNEL_DEPTH: usize = 64;

/// The blocking end: a `Read` over chunks sent from the async side.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl ChannelReader {
    /// A connected (sender, reader) pair.
    pub(crate) fn pair() -> (mpsc::Sender<io::Result<Bytes>>, ChannelReader) {
        let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
        (
            tx,
            ChannelReader {
                rx,
                cur: Bytes::new(),
            },
        )
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_across_chunks_and_errors() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, mut rd) = ChannelReader::pair();
        rt.block_on(async {
            tx.send(Ok(Bytes::from_static(b"hello "))).await.unwrap();
            tx.send(Ok(Bytes::from_static(b"world"))).await.unwrap();
        });
        drop(tx);
        let mut s = String::new();
        rd.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello world");

        let (tx, mut rd) = ChannelReader::pair();
        rt.block_on(async {
            tx.send(Err(io::Error::other("boom"))).await.unwrap();
        });
        assert_eq!(rd.read(&mut [0; 4]).unwrap_err().to_string(), "boom");
    }
}
