//! appc ACIs, from files and from http(s) URLs.
//!
//! An ACI is one "layer": the whole (possibly compressed) file is the blob, its `rootfs/`
//! becomes the tree, and the image id is the sha512 of the uncompressed tar, as rkt had it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use rkt_image::aci::{aci_config, aci_platform, read_aci_manifest};
use rkt_image::unpack::LayerLayout;
use rkt_store::{ImageName, RemoteInfo};
use rkt_types::appc::ImageManifest;
use rkt_types::digest::{Algorithm, Hasher};
use rkt_types::oci::Descriptor;
use rkt_types::{Digest, ImageFormat, ImageRecord, PullPolicy};

use super::{LayerSource, commit, ingest_all};
use crate::http::HttpRequest;
use crate::ingest::LayerJob;
use crate::{FetchError, Fetcher, LocalError};

/// Media type recorded for ACI blobs (appc defines none).
pub(crate) const MEDIA_ACI: &str = "application/vnd.appc.aci";

/// Fetches an ACI file.
pub(crate) async fn fetch_file(f: &Fetcher, path: &Path) -> Result<ImageRecord, FetchError> {
    f.require_insecure_image("an ACI")?;
    fetch_aci(f, path, None).await
}

/// Fetches an ACI over http(s), honouring the pull policy with ETags.
pub(crate) async fn fetch_url(f: &Fetcher, url: &str) -> Result<ImageRecord, FetchError> {
    f.require_insecure_image("an ACI")?;
    let http_err = |reason: String| FetchError::Http {
        url: url.to_owned(),
        reason,
    };
    let current = url::Url::parse(url).map_err(|e| http_err(format!("not a valid URL: {e}")))?;
    f.registry()?.http().check_scheme(&current)?;
    let stored = match f.store.remote(url)? {
        Some(r) => f.store.image(&r.image_id)?.map(|rec| (r, rec)),
        None => None,
    };
    match (f.opts.pull_policy, &stored) {
        (PullPolicy::Never, None) => return Err(FetchError::NotStoredNever(url.to_owned())),
        (PullPolicy::Never | PullPolicy::New, Some((_, rec))) => return Ok(rec.clone()),
        _ => {}
    }
    // The transport sends credentials only to the URL's own origin, never across a redirect,
    // and refuses https → http unless allowed.
    let host = current.host_str().unwrap_or_default().to_owned();
    let mut req = HttpRequest::new(reqwest::Method::GET, current.clone());
    if let Some((_, v)) = f.opts.http_auth.iter().find(|(h, _)| *h == host) {
        req.authorization = Some(reqwest::header::HeaderValue::from_str(v).map_err(|_| {
            http_err(format!(
                "the auth.d credentials for {host} are not a valid header"
            ))
        })?);
    }
    if let Some((r, _)) = &stored
        && let Some(etag) = &r.etag
        && let Ok(v) = reqwest::header::HeaderValue::from_str(etag)
    {
        req.headers.insert(reqwest::header::IF_NONE_MATCH, v);
    }
    let resp = f.registry()?.http().send(&req).await?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED
        && let Some((_, rec)) = stored
    {
        return Ok(rec);
    }
    if !resp.status().is_success() {
        let hint = match resp.status().as_u16() {
            401 | 403 => "; configure credentials for this host in auth.d (rktKind \"auth\")",
            404 => "; check the URL",
            _ => "",
        };
        return Err(http_err(format!(
            "the server answered {}{hint}",
            resp.status()
        )));
    }
    let etag = resp
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let max_age = resp
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_max_age);
    // The body goes to a private temp file first: an ACI's digest is not known in advance,
    // and the pipeline needs it to verify and to key the blob.
    let tmp_dir = f.store.tmp_dir();
    let mut tmp = tempfile::Builder::new()
        .prefix("download-")
        .tempfile_in(&tmp_dir)
        .map_err(|source| FetchError::Io {
            path: tmp_dir.display().to_string(),
            source,
        })?;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| http_err(format!("the download broke off: {e}")))?;
        tmp.write_all(&chunk).map_err(|source| FetchError::Io {
            path: tmp.path().display().to_string(),
            source,
        })?;
    }
    let remote = RemoteInfo {
        key: url.to_owned(),
        etag,
        manifest_digest: None,
        image_id: Digest::sha256_of(b""),
        fetched_at: SystemTime::now(),
        max_age,
    };
    fetch_aci(f, tmp.path(), Some(remote)).await
}

/// Imports the ACI at `path`. `remote` records where it came from.
async fn fetch_aci(
    f: &Fetcher,
    path: &Path,
    remote: Option<RemoteInfo>,
) -> Result<ImageRecord, FetchError> {
    let p = path.to_owned();
    let (digest, size) =
        tokio::task::spawn_blocking(move || -> Result<(Digest, u64), FetchError> {
            let io = |source| FetchError::Io {
                path: p.display().to_string(),
                source,
            };
            // Refuse early (before unpacking anything) what we cannot run: a bad manifest, deps.
            read_aci_manifest(std::fs::File::open(&p).map_err(io)?).map_err(LocalError::from)?;
            let mut h = Hasher::new(Algorithm::Sha256);
            let mut file = std::fs::File::open(&p).map_err(io)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = file.read(&mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                size += n as u64;
            }
            Ok((h.finish(), size))
        })
        .await
        .map_err(|e| FetchError::Worker(e.to_string()))??;

    // The same bytes were imported before: same image.
    let blob_key = format!("aci-blob:{digest}");
    if let Some(r) = f.store.remote(&blob_key)?
        && let Some(rec) = f.store.image(&r.image_id)?
    {
        if let Some(mut remote) = remote {
            remote.image_id = rec.id.clone();
            f.store.put_remote(&remote)?;
        }
        return Ok(rec);
    }

    let job = LayerJob {
        blob: Descriptor {
            media_type: MEDIA_ACI.into(),
            digest: digest.clone(),
            size,
            urls: None,
            annotations: BTreeMap::new(),
            platform: None,
        },
        diff_id: None,
        layout: LayerLayout::Aci,
    };
    let p: PathBuf = path.to_owned();
    let open: super::OpenFn = Box::new(move || {
        let file = std::fs::File::open(&p).map_err(|source| FetchError::Io {
            path: p.display().to_string(),
            source,
        })?;
        Ok(Box::new(file) as Box<dyn Read + Send>)
    });
    let ingested = ingest_all(f, vec![(job, LayerSource::Local(open))]).await?;
    let (manifest_bytes, id) =
        ingested.layers[0]
            .aci
            .clone()
            .ok_or_else(|| FetchError::InvalidImage {
                image: path.display().to_string(),
                reason: "the ACI has no manifest file".into(),
            })?;
    let manifest = ImageManifest::parse(&manifest_bytes).map_err(|source| FetchError::Appc {
        image: path.display().to_string(),
        source,
    })?;
    let manifest_digest = Digest::sha256_of(&manifest_bytes);
    let record = ImageRecord {
        id: id.clone(),
        format: ImageFormat::Appc,
        manifest: manifest_digest.clone(),
        config_blob: manifest_digest.clone(),
        platform: aci_platform(&manifest),
        config: aci_config(&manifest),
        layers: vec![ingested.layers[0].record.clone()],
    };
    let tag = manifest.label("version").unwrap_or("latest");
    let names = if tag.contains(['/', ':']) || tag.chars().any(char::is_whitespace) {
        tracing::warn!("not recording version label {tag:?} as a tag");
        vec![ImageName::new(manifest.name.clone(), "latest")]
    } else {
        vec![ImageName::new(manifest.name.clone(), tag)]
    };
    let blob_remote = RemoteInfo {
        key: blob_key,
        etag: None,
        manifest_digest: None,
        image_id: id,
        fetched_at: SystemTime::now(),
        max_age: None,
    };
    let rec = commit(
        f.store(),
        ingested,
        record,
        vec![(manifest_bytes, manifest_digest)],
        names,
        Some(blob_remote),
    )
    .await?;
    if let Some(mut remote) = remote {
        remote.image_id = rec.id.clone();
        f.store.put_remote(&remote)?;
    }
    Ok(rec)
}

fn parse_max_age(cc: &str) -> Option<Duration> {
    cc.split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.parse().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::parse_max_age;
    use std::time::Duration;

    #[test]
    fn max_age() {
        assert_eq!(
            parse_max_age("public, max-age=60"),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_max_age("no-cache"), None);
    }
}
