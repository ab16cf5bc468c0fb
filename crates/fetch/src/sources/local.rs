//! Local sources: OCI layout directories and archives, `docker save` archives, and any of
//! those (or an ACI) given as a plain path whose format is detected.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rkt_image::detect::{LocalFormat, detect};
use rkt_image::docker_archive::DockerArchive;
use rkt_image::layout::{BlobSource, OciArchive, OciLayout, ResolvedImage};
use rkt_image::unpack::LayerLayout;
use rkt_store::ImageName;
use rkt_types::{DockerRef, ImageRecord, ImageSource, PullPolicy};

use super::{LayerSource, commit, ingest_all};
use crate::ingest::LayerJob;
use crate::{FetchError, Fetcher, LocalError};

/// `Some(path)` if `name` is an existing file or directory (rkt's rule: a file in the current
/// directory wins over a stored name).
pub(crate) fn as_local_file(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    p.exists().then(|| p.to_owned())
}

/// Fetches a local source.
pub(crate) async fn fetch_local(f: &Fetcher, src: &ImageSource) -> Result<ImageRecord, FetchError> {
    match src {
        ImageSource::OciLayout { path, reference } => {
            fetch_path_as(f, path, reference.clone(), LocalFormat::OciLayoutDir).await
        }
        ImageSource::OciArchive { path, reference } => {
            fetch_path_as(f, path, reference.clone(), LocalFormat::OciArchive).await
        }
        ImageSource::DockerArchive { path, reference } => {
            fetch_path_as(f, path, reference.clone(), LocalFormat::DockerArchive).await
        }
        ImageSource::Path(p) => fetch_path(f, p, None).await,
        other => unreachable!("not a local source: {other:?}"),
    }
}

/// Fetches a path whose format is detected from its content.
pub(crate) async fn fetch_path(
    f: &Fetcher,
    path: &Path,
    reference: Option<String>,
) -> Result<ImageRecord, FetchError> {
    let p = path.to_owned();
    let format = tokio::task::spawn_blocking(move || detect(&p))
        .await
        .map_err(|e| FetchError::Worker(e.to_string()))?
        .map_err(LocalError::from)?;
    fetch_path_as(f, path, reference, format).await
}

async fn fetch_path_as(
    f: &Fetcher,
    path: &Path,
    reference: Option<String>,
    format: LocalFormat,
) -> Result<ImageRecord, FetchError> {
    if let LocalFormat::Aci(_) = format {
        return super::aci::fetch_file(f, path).await;
    }
    f.require_insecure_image("a local OCI or docker image")?;
    let p = path.to_owned();
    let scratch = f.store.tmp_dir();
    let platform = f.opts.platform.clone();
    let (source, image) = tokio::task::spawn_blocking(
        move || -> Result<(Arc<dyn BlobSource>, ResolvedImage), LocalError> {
            let r = reference.as_deref();
            Ok(match format {
                LocalFormat::OciLayoutDir => {
                    let l = OciLayout::open(&p)?;
                    let img = l.resolve(r, &platform)?;
                    (Arc::new(l), img)
                }
                LocalFormat::OciArchive => {
                    let a = OciArchive::open_with_scratch(&p, &scratch)?;
                    let img = a.resolve(r, &platform)?;
                    (Arc::new(a), img)
                }
                _ => {
                    let a = DockerArchive::open_with_scratch(&p, &scratch)?;
                    let img = a.resolve(r)?;
                    (Arc::new(a), img)
                }
            })
        },
    )
    .await
    .map_err(|e| FetchError::Worker(e.to_string()))??;
    let default_name = default_name(path);
    fetch_resolved(f, source, image, &default_name).await
}

/// Brings a resolved local image into the store.
async fn fetch_resolved(
    f: &Fetcher,
    source: Arc<dyn BlobSource>,
    image: ResolvedImage,
    default_name: &str,
) -> Result<ImageRecord, FetchError> {
    let names: Vec<ImageName> = image
        .names
        .iter()
        .filter_map(|n| name_for(n, default_name))
        .collect();
    let id = image.config_digest().clone();
    if f.opts.pull_policy != PullPolicy::Update
        && let Some(rec) = f.store.image(&id)?
    {
        if !names.is_empty() {
            f.store.insert_image(&rec, &names, None)?;
        }
        return Ok(rec);
    }
    let jobs = image
        .layers
        .iter()
        .enumerate()
        .map(|(i, desc)| {
            let src = source.clone();
            let d = desc.clone();
            let open: super::OpenFn = Box::new(move || {
                let r = src.open_blob(&d).map_err(LocalError::from)?;
                Ok(Box::new(r) as Box<dyn Read + Send>)
            });
            (
                LayerJob {
                    blob: desc.clone(),
                    diff_id: image.diff_id(i).cloned(),
                    layout: LayerLayout::Oci,
                },
                LayerSource::Local(open),
            )
        })
        .collect();
    let ingested = ingest_all(f, jobs).await?;
    let record = ImageRecord {
        id,
        format: image.format,
        manifest: image.manifest_digest.clone(),
        config_blob: image.config_digest().clone(),
        platform: image.platform(),
        config: image.image_config(),
        layers: ingested.layers.iter().map(|l| l.record.clone()).collect(),
    };
    let documents = vec![
        (image.manifest_bytes.clone(), image.manifest_digest.clone()),
        (image.config_bytes.clone(), image.config_digest().clone()),
    ];
    commit(f.store(), ingested, record, documents, names, None).await
}

/// The store name for a name a local source gives: a full reference (`busybox:1.36`,
/// `example.com/app:v1`) is normalised like a registry reference; a bare tag (an OCI layout's
/// `ref.name` is often just `latest`) is recorded under `localhost/<file name>`.
fn name_for(n: &str, default_name: &str) -> Option<ImageName> {
    let looks_like_tag = !n.contains(['/', ':', '@']);
    if looks_like_tag {
        return Some(ImageName::new(default_name, n));
    }
    match DockerRef::parse(n) {
        Ok(r) => Some(ImageName::new(r.name(), r.tag_or_latest())),
        Err(e) => {
            tracing::warn!("not recording the image name {n:?}: {e}");
            None
        }
    }
}

/// `localhost/<sanitised file name>`, for images whose source names no repository.
fn default_name(path: &Path) -> String {
    let stem = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_suffix(".tar").unwrap_or(&stem).to_owned();
    let clean = rkt_types::name::sanitize_ac_name(&stem).unwrap_or_else(|| "image".into());
    format!("localhost/{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_local_sources() {
        assert_eq!(
            name_for("v1", "localhost/x"),
            Some(ImageName::new("localhost/x", "v1"))
        );
        assert_eq!(
            name_for("busybox:1.36", "localhost/x"),
            Some(ImageName::new("docker.io/library/busybox", "1.36"))
        );
        assert_eq!(
            name_for("example.com/a/b", "localhost/x"),
            Some(ImageName::new("example.com/a/b", "latest"))
        );
        assert_eq!(name_for("Bad Name:x", "localhost/x"), None);
        assert_eq!(
            default_name(Path::new("/tmp/My_Image.tar")),
            "localhost/my-image"
        );
    }
}
