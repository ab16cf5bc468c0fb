//! The blocking core of the pipeline: one layer stream in, one verified blob and one unpacked
//! (not yet committed) tree out.
//!
//! The bytes are read exactly once: they are hashed as they arrive (the blob digest), written
//! to the blob file, decompressed, hashed again (the diff id) and unpacked, all in one pass.

use std::io::{self, Read};

use rkt_image::compress::{self, Compression};
use rkt_image::hashio::{HashingReader, TeeReader};
use rkt_image::unpack::{LayerLayout, UnpackOptions, unpack_layer};
use rkt_store::{BlobWriter, LayerInfo, LayerTx, Store};
use rkt_types::digest::{Algorithm, Hasher};
use rkt_types::oci::Descriptor;
use rkt_types::{Digest, LayerRecord};

use crate::FetchError;
use crate::budget::DiskBudget;

/// One layer to bring into the store.
#[derive(Debug, Clone)]
pub(crate) struct LayerJob {
    /// The blob as distributed.
    pub blob: Descriptor,
    /// The expected diff id (from the image config); `None` for ACIs, where it is computed.
    pub diff_id: Option<Digest>,
    /// How entries map onto the tree.
    pub layout: LayerLayout,
}

/// What ingesting produced.
pub(crate) struct Ingested {
    /// The layer as the image records it.
    pub record: LayerRecord,
    /// The unpacked tree waiting for commit; `None` if the store already had it.
    pub tree: Option<(LayerTx, LayerInfo)>,
    /// The verified blob waiting for commit (in `tmp/`); `None` if the store already had it.
    /// Blobs are committed with the image, not here, so that a fetch failing on another
    /// layer leaves no blob behind.
    pub blob: Option<BlobWriter>,
    /// For ACIs: the `manifest` file and the sha512 of the uncompressed ACI (the image id).
    pub aci: Option<(Vec<u8>, Digest)>,
    /// Entries the unpacker neutralised (device nodes, dropped xattrs), for a warning.
    pub skipped: Vec<String>,
}

/// Reads a whole layer stream: writes the blob (unless present) and unpacks the tree (unless
/// present) into `tmp/`, checking the blob digest, blob size and diff id on the way. Nothing
/// is committed here; [`crate::sources::commit`] does that once every layer is in.
pub(crate) fn ingest(
    store: &Store,
    job: &LayerJob,
    src: impl Read + Send,
    limits: &UnpackOptions,
    budget: &DiskBudget,
) -> Result<Ingested, FetchError> {
    let want_blob = !store.has_blob(&job.blob.digest);
    let known_tree = job.diff_id.as_ref().and_then(|d| store.layer_tree(d));
    let want_tree = known_tree.is_none();
    let layer = job.blob.digest.clone();
    let io_err = |source| FetchError::LayerIo {
        layer: layer.clone(),
        source,
    };

    let mut blob_writer = if want_blob {
        Some(store.blob_writer()?)
    } else {
        None
    };
    let mut raw = HashingReader::with_limit(budget.reader(src), Algorithm::Sha256, job.blob.size);
    let mut tx = if want_tree {
        Some(store.new_layer()?)
    } else {
        None
    };
    let opts = UnpackOptions {
        layout: job.layout,
        ..limits.clone()
    };
    let report;
    let (diff_id, sha512) = {
        let mut sink = io::sink();
        let blob_out: &mut (dyn io::Write + Send) = match blob_writer.as_mut() {
            Some(w) => w,
            None => &mut sink,
        };
        let tee = TeeReader::new(&mut raw, blob_out);
        let dec = match Compression::from_media_type(&job.blob.media_type) {
            Some(c) => compress::decoder(c, tee),
            None => compress::auto_decoder(tee).map(|(_, d)| d),
        }
        .map_err(io_err)?;
        // ACI ids are the sha512 of the uncompressed ACI, so hash that too.
        let mut sha512 = (job.layout == LayerLayout::Aci).then(|| Hasher::new(Algorithm::Sha512));
        let dec = Sha512Tap {
            inner: dec,
            hasher: sha512.as_mut(),
        };
        let mut plain = HashingReader::new(budget.reader(dec), Algorithm::Sha256);
        report =
            match tx.as_ref() {
                Some(tx) => Some(unpack_layer(&mut plain, tx.tree_dir(), &opts).map_err(
                    |source| FetchError::Unpack {
                        layer: layer.clone(),
                        source,
                    },
                )?),
                None => {
                    io::copy(&mut plain, &mut io::sink()).map_err(io_err)?;
                    None
                }
            };
        let (diff_id, _) = plain.finish();
        (diff_id, sha512.map(Hasher::finish))
    };
    // Whatever follows the compressed stream still belongs to the blob.
    {
        let mut sink = io::sink();
        let blob_out: &mut (dyn io::Write + Send) = match blob_writer.as_mut() {
            Some(w) => w,
            None => &mut sink,
        };
        io::copy(&mut TeeReader::new(&mut raw, blob_out), &mut io::sink()).map_err(io_err)?;
    }
    let (blob_digest, blob_size) = raw.finish();
    if blob_digest != job.blob.digest {
        return Err(FetchError::DigestMismatch {
            what: format!("layer blob {}", job.blob.digest),
            expected: job.blob.digest.clone(),
            actual: blob_digest,
        });
    }
    if blob_size != job.blob.size {
        return Err(FetchError::SizeMismatch {
            what: format!("layer blob {}", job.blob.digest),
            expected: job.blob.size,
            actual: blob_size,
        });
    }
    if let Some(expected) = &job.diff_id
        && *expected != diff_id
    {
        return Err(FetchError::DigestMismatch {
            what: format!(
                "uncompressed layer {} (its diff id in the image config)",
                job.blob.digest
            ),
            expected: expected.clone(),
            actual: diff_id,
        });
    }
    let mut skipped = Vec::new();
    let mut aci = None;
    let tree = match (tx.take(), report) {
        (Some(tx), Some(report)) => {
            skipped = report.skipped;
            if let Some(m) = report.aci_manifest {
                aci = Some((m, sha512.clone().unwrap_or_else(|| diff_id.clone())));
            }
            let info = LayerInfo {
                diff_id: diff_id.clone(),
                tree_hash: report.tree_hash,
                entries: report.entries,
                bytes: report.bytes,
            };
            Some((tx, info))
        }
        _ => None,
    };
    if job.layout == LayerLayout::Aci && aci.is_none() {
        return Err(FetchError::InvalidImage {
            image: job.blob.digest.to_string(),
            reason: "the ACI has no manifest file".into(),
        });
    }
    Ok(Ingested {
        record: LayerRecord {
            diff_id,
            blob: job.blob.digest.clone(),
            media_type: job.blob.media_type.clone(),
            size: blob_size,
        },
        tree,
        blob: blob_writer,
        aci,
        skipped,
    })
}

/// Feeds everything read through `inner` to an optional extra hasher.
struct Sha512Tap<'h, R> {
    inner: R,
    hasher: Option<&'h mut Hasher>,
}

impl<R: Read> Read for Sha512Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_deref_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
