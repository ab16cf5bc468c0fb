//! Turning each kind of source into layer streams, and committing the result.

pub(crate) mod aci;
pub(crate) mod local;
pub(crate) mod registry;

use std::io::Read;
use std::sync::Arc;

use futures_util::StreamExt;
use rkt_store::{ImageName, RemoteInfo, Store};
use rkt_types::{Digest, DockerRef, ImageRecord, LayerRecord};
use tokio::task::JoinSet;

use crate::bridge::ChannelReader;
use crate::budget::DiskBudget;
use crate::ingest::{Ingested, LayerJob, ingest};
use crate::progress::Progress;
use crate::{FetchError, Fetcher};

/// Opens a layer's bytes on a blocking thread.
pub(crate) type OpenFn = Box<dyn FnOnce() -> Result<Box<dyn Read + Send>, FetchError> + Send>;

/// Where a layer's bytes come from.
pub(crate) enum LayerSource {
    /// A registry blob.
    Registry(DockerRef),
    /// A local reader (a file, or a region of an archive).
    Local(OpenFn),
}

/// Ingests every layer that the store lacks, in parallel, holding the layers' locks (taken in
/// sorted order, so concurrent fetches of overlapping images cannot deadlock) until the caller
/// commits. Returns one entry per job, in job order.
pub(crate) async fn ingest_all(
    f: &Fetcher,
    jobs: Vec<(LayerJob, LayerSource)>,
) -> Result<IngestedImage, FetchError> {
    let store = f.store.clone();
    let mut keys: Vec<String> = jobs.iter().map(|(j, _)| lock_key(j)).collect();
    keys.sort();
    keys.dedup();
    let locks = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || -> Result<_, FetchError> {
            let mut held = Vec::new();
            for k in keys {
                match store.try_lock(&k)? {
                    Some(g) => held.push(g),
                    None => {
                        tracing::info!("waiting for another rkt process that is fetching {k}");
                        held.push(store.lock(&k)?);
                    }
                }
            }
            Ok(held)
        })
        .await
        .map_err(|e| FetchError::Worker(e.to_string()))??
    };

    let budget = DiskBudget::for_dir(&store.tmp_dir()).map_err(|source| FetchError::Io {
        path: store.tmp_dir().display().to_string(),
        source,
    })?;
    let progress = Progress::new(f.opts.progress);
    let mut set = JoinSet::new();
    let mut results: Vec<Option<Ingested>> = Vec::with_capacity(jobs.len());
    for (i, (job, source)) in jobs.into_iter().enumerate() {
        results.push(None);
        if let Some(diff_id) = &job.diff_id
            && store.layer_tree(diff_id).is_some()
            && store.has_blob(&job.blob.digest)
        {
            results[i] = Some(Ingested {
                record: LayerRecord {
                    diff_id: diff_id.clone(),
                    blob: job.blob.digest.clone(),
                    media_type: job.blob.media_type.clone(),
                    size: job.blob.size,
                },
                tree: None,
                blob: None,
                aci: None,
                skipped: Vec::new(),
            });
            continue;
        }
        let limits = f.opts.unpack.clone();
        let budget = budget.clone();
        let bar = progress.layer(&job.blob.digest, job.blob.size);
        let store = store.clone();
        // A blob we already have (the tree was lost, or this is a re-unpack) is read from disk.
        let source = if store.has_blob(&job.blob.digest) {
            let path = store.blob_path(&job.blob.digest);
            LayerSource::Local(Box::new(move || {
                let file = std::fs::File::open(&path).map_err(|source| FetchError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                Ok(Box::new(file) as Box<dyn Read + Send>)
            }))
        } else {
            source
        };
        match source {
            LayerSource::Local(open) => {
                set.spawn_blocking(move || {
                    let r = open()?;
                    let r = bar.wrap_read(r);
                    let out = ingest(&store, &job, r, &limits, &budget);
                    bar.finish();
                    out.map(|o| (i, o))
                });
            }
            LayerSource::Registry(r) => {
                let client = f.registry()?.clone();
                let (tx, reader) = ChannelReader::pair();
                let desc = job.blob.clone();
                let bar2 = bar.clone();
                // The download runs on the runtime and stops early if the reader went away.
                tokio::spawn(async move {
                    let mut stream = match client.blob_stream(&r, &desc).await {
                        Ok(s) => Box::pin(s),
                        Err(e) => {
                            let _ = tx.send(Err(std::io::Error::other(e))).await;
                            return;
                        }
                    };
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(std::io::Error::other);
                        if let Ok(c) = &chunk {
                            bar2.inc(c.len() as u64);
                        }
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                });
                set.spawn_blocking(move || {
                    let out = ingest(&store, &job, reader, &limits, &budget);
                    bar.finish();
                    out.map(|o| (i, o))
                });
            }
        }
    }
    while let Some(res) = set.join_next().await {
        let (i, ing) = res.map_err(|e| FetchError::Worker(e.to_string()))??;
        for s in &ing.skipped {
            tracing::warn!("layer {}: {s}", ing.record.blob);
        }
        results[i] = Some(ing);
    }
    progress.clear();
    Ok(IngestedImage {
        layers: results
            .into_iter()
            .map(|r| r.expect("every job ran"))
            .collect(),
        _locks: locks,
    })
}

/// Ingested layers plus the locks that keep other fetches off them until commit.
pub(crate) struct IngestedImage {
    pub layers: Vec<Ingested>,
    _locks: Vec<rkt_store::LockGuard>,
}

fn lock_key(job: &LayerJob) -> String {
    match &job.diff_id {
        Some(d) => format!("layer-{}", d.dashed()),
        None => format!("blob-{}", job.blob.digest.dashed()),
    }
}

/// Makes an ingested image visible: layer blobs and documents stored, one `syncfs`, trees
/// renamed into place, and the index row written last.
pub(crate) async fn commit(
    store: &Arc<Store>,
    mut image: IngestedImage,
    record: ImageRecord,
    documents: Vec<(Vec<u8>, Digest)>,
    names: Vec<ImageName>,
    remote: Option<RemoteInfo>,
) -> Result<ImageRecord, FetchError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || -> Result<ImageRecord, FetchError> {
        for l in &mut image.layers {
            if let Some(w) = l.blob.take() {
                w.commit(Some(&l.record.blob), Some(l.record.size))?;
            }
        }
        for (bytes, digest) in &documents {
            if !store.has_blob(digest) {
                store.put_blob(bytes, Some(digest))?;
            }
        }
        let trees: Vec<_> = image
            .layers
            .iter_mut()
            .filter_map(|l| l.tree.take())
            .collect();
        if !trees.is_empty() {
            store.sync()?;
        }
        for (tx, info) in trees {
            store.commit_layer(tx, &info)?;
        }
        store.insert_image(&record, &names, remote.as_ref())?;
        drop(image);
        Ok(record)
    })
    .await
    .map_err(|e| FetchError::Worker(e.to_string()))?
}
