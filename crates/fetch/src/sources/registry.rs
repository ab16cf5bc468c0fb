//! Images from distribution v2 registries (`docker://`, `oci://`).

use rkt_image::platform::select_manifest;
use rkt_image::unpack::LayerLayout;
use rkt_store::{ImageName, RemoteInfo};
use rkt_types::oci::{ImageConfigDoc, MEDIA_DOCKER_MANIFEST, ManifestDoc};
use rkt_types::{DockerRef, ImageConfig, ImageFormat, ImageRecord, Platform, PullPolicy};

use super::{LayerSource, commit, ingest_all};
use crate::ingest::LayerJob;
use crate::{FetchError, Fetcher, LocalError};

/// Fetches `r` as the pull policy says.
pub(crate) async fn fetch(f: &Fetcher, r: &DockerRef) -> Result<ImageRecord, FetchError> {
    f.require_insecure_image("a registry image (docker:// or oci://)")?;
    let key = remote_key(r, &f.opts.platform);
    let names = names_for(r);
    let stored = stored_image(f, &key, r)?;
    match (f.opts.pull_policy, stored) {
        (PullPolicy::Never, Some(rec)) | (PullPolicy::New, Some(rec)) => return Ok(rec),
        (PullPolicy::Never, None) => return Err(FetchError::NotStoredNever(r.to_string())),
        _ => {}
    }

    let reference = r.manifest_reference();
    // Update: a HEAD tells whether the remote changed; if not, nothing is downloaded.
    if f.opts.pull_policy == PullPolicy::Update
        && let Some(remote) = f.store.remote(&key)?
        && let Some(rec) = f.store.image(&remote.image_id)?
    {
        let current = f.registry()?.manifest_digest(r, &reference).await?;
        if Some(&current) == remote.manifest_digest.as_ref() {
            tracing::debug!("{r} is unchanged ({current})");
            return Ok(rec);
        }
    }

    let top = f.registry()?.manifest(r, &reference).await?;
    let doc = ManifestDoc::parse(&top.bytes, Some(&top.media_type)).map_err(|source| {
        FetchError::Manifest {
            image: r.to_string(),
            source,
        }
    })?;
    let (manifest_bytes, manifest_digest, manifest, media_type) = match doc {
        ManifestDoc::Image(m) => (top.bytes.clone(), top.digest.clone(), *m, top.media_type),
        ManifestDoc::Index(idx) => {
            let entry = select_manifest(&idx, &f.opts.platform).map_err(LocalError::from)?;
            let sub = f.registry()?.manifest(r, &entry.digest.to_string()).await?;
            match ManifestDoc::parse(&sub.bytes, Some(&sub.media_type)).map_err(|source| {
                FetchError::Manifest {
                    image: r.to_string(),
                    source,
                }
            })? {
                ManifestDoc::Image(m) => (sub.bytes, sub.digest, *m, sub.media_type),
                ManifestDoc::Index(_) => {
                    return Err(FetchError::InvalidImage {
                        image: r.to_string(),
                        reason: "an index entry points at another index".into(),
                    });
                }
            }
        }
    };
    let config_bytes = f.registry()?.blob_bytes(r, &manifest.config).await?;
    let config = ImageConfigDoc::parse(&config_bytes).map_err(|source| FetchError::Manifest {
        image: r.to_string(),
        source,
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(FetchError::InvalidImage {
            image: r.to_string(),
            reason: format!(
                "the manifest lists {} layers but the config lists {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    let jobs = manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .map(|(blob, diff_id)| {
            (
                LayerJob {
                    blob: blob.clone(),
                    diff_id: Some(diff_id.clone()),
                    layout: LayerLayout::Oci,
                },
                LayerSource::Registry(r.clone()),
            )
        })
        .collect();
    let ingested = ingest_all(f, jobs).await?;
    let is_docker = manifest.media_type.as_deref().unwrap_or(&media_type) == MEDIA_DOCKER_MANIFEST;
    let record = ImageRecord {
        id: manifest.config.digest.clone(),
        format: if is_docker {
            ImageFormat::Docker
        } else {
            ImageFormat::Oci
        },
        manifest: manifest_digest.clone(),
        config_blob: manifest.config.digest.clone(),
        platform: Platform {
            os: config.os.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
        },
        config: ImageConfig::from_oci(&config, &manifest.annotations),
        layers: ingested.layers.iter().map(|l| l.record.clone()).collect(),
    };
    let remote = RemoteInfo {
        key,
        etag: None,
        manifest_digest: Some(top.digest),
        image_id: record.id.clone(),
        fetched_at: std::time::SystemTime::now(),
        max_age: None,
    };
    let documents = vec![
        (manifest_bytes, manifest_digest),
        (config_bytes, manifest.config.digest.clone()),
    ];
    commit(f.store(), ingested, record, documents, names, Some(remote)).await
}

/// The names a registry image is recorded under: `registry/repository:tag`.
fn names_for(r: &DockerRef) -> Vec<ImageName> {
    if r.digest.is_some() && r.tag.is_none() {
        return Vec::new();
    }
    vec![ImageName::new(r.name(), r.tag_or_latest())]
}

/// The `remotes` key of a reference fetched for a platform. The platform is part of it
/// because one tag of a multi-platform index resolves to a different image per platform: a
/// `--platform linux/arm64` fetch must not be answered with the image stored for the host.
pub(crate) fn remote_key(r: &DockerRef, platform: &Platform) -> String {
    format!("docker://{r} for {platform}")
}

/// The stored image this reference last resolved to for the wanted platform, if any.
pub(crate) fn stored_image(
    f: &Fetcher,
    key: &str,
    r: &DockerRef,
) -> Result<Option<ImageRecord>, FetchError> {
    if let Some(remote) = f.store.remote(key)?
        && let Some(rec) = f.store.image(&remote.image_id)?
    {
        return Ok(Some(rec));
    }
    if r.digest.is_none() {
        let query = format!("{}:{}", r.name(), r.tag_or_latest());
        match f.store.resolve(&query) {
            // The tag may name another platform's image of the same index.
            Ok(rec) if same_platform(&rec.platform, &f.opts.platform) => return Ok(Some(rec)),
            Ok(_) | Err(rkt_store::StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Whether a stored image's platform is the one asked for (os and architecture; a variant
/// is compared only when both name one).
fn same_platform(have: &Platform, want: &Platform) -> bool {
    have.os == want.os
        && have.architecture == want.architecture
        && match (&have.variant, &want.variant) {
            (Some(h), Some(w)) => h == w,
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_and_keys() {
        let p = |s| Platform::parse(s).unwrap();
        assert!(same_platform(&p("linux/arm64"), &p("linux/arm64/v8")));
        assert!(same_platform(&p("linux/arm/v7"), &p("linux/arm")));
        assert!(!same_platform(&p("linux/arm/v6"), &p("linux/arm/v7")));
        assert!(!same_platform(&p("linux/amd64"), &p("linux/arm64")));
        let r = DockerRef::parse("127.0.0.1:5000/busybox:latest").unwrap();
        assert_ne!(
            remote_key(&r, &p("linux/amd64")),
            remote_key(&r, &p("linux/arm64"))
        );
    }
}
