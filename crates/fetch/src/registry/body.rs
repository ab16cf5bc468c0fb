//! Reading response bodies without trusting their length: small documents are read into memory
//! up to a cap, blobs are streamed and cut off one byte past their declared size.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::Response;
use rkt_types::Digest;
use url::Url;

use super::RegistryError;
use crate::http::HttpError;

/// Reads all of `resp`, failing with `overflow()` as soon as it passes `limit` bytes (or
/// announces more in `Content-Length`), so a hostile server cannot make us buffer without bound.
pub(crate) async fn read_capped(
    mut resp: Response,
    limit: u64,
    read_timeout: Duration,
    overflow: impl Fn() -> RegistryError,
) -> Result<Vec<u8>, RegistryError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(overflow());
    }
    let url = resp.url().clone();
    let mut buf = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| body_error(e, &url, read_timeout))?
    {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            return Err(overflow());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Reads at most `limit` bytes of an error response for its message; never fails.
pub(crate) async fn read_detail(mut resp: Response, limit: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < limit {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c[..c.len().min(limit - buf.len())]),
            _ => break,
        }
    }
    buf
}

pub(crate) fn body_error(e: reqwest::Error, url: &Url, read_timeout: Duration) -> RegistryError {
    RegistryError::Body {
        url: url.to_string(),
        source: HttpError::from_reqwest(e, url, read_timeout),
    }
}

/// A stream of blob bytes from a registry.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send + 'static>>;

struct State {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    url: Url,
    read_timeout: Duration,
    digest: Digest,
    size: u64,
    got: u64,
    done: bool,
}

/// Streams `resp` as a blob of `size` bytes.
///
/// At most `size + 1` bytes are ever yielded: a longer body yields its first extra byte (so a
/// caller that only counts bytes sees the overflow) followed by [`RegistryError::BlobTooLong`],
/// and the rest is never read. A shorter body ends with [`RegistryError::BlobTruncated`].
pub(crate) fn capped_stream(
    resp: Response,
    digest: Digest,
    size: u64,
    read_timeout: Duration,
) -> BlobStream {
    let state = State {
        url: resp.url().clone(),
        body: Box::pin(resp.bytes_stream()),
        read_timeout,
        digest,
        size,
        got: 0,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        if s.got > s.size {
            s.done = true;
            let err = RegistryError::BlobTooLong {
                digest: s.digest.clone(),
                size: s.size,
            };
            return Some((Err(err), s));
        }
        loop {
            match s.body.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    let room = s.size + 1 - s.got;
                    let chunk = if chunk.len() as u64 > room {
                        chunk.slice(..room as usize)
                    } else {
                        chunk
                    };
                    s.got += chunk.len() as u64;
                    return Some((Ok(chunk), s));
                }
                Some(Err(e)) => {
                    s.done = true;
                    let err = body_error(e, &s.url, s.read_timeout);
                    return Some((Err(err), s));
                }
                None if s.got < s.size => {
                    s.done = true;
                    let err = RegistryError::BlobTruncated {
                        digest: s.digest.clone(),
                        got: s.got,
                        size: s.size,
                    };
                    return Some((Err(err), s));
                }
                None => return None,
            }
        }
    }))
}
