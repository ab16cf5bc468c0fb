//! Garbage collection: unreferenced blobs and layer trees, `tmp/` debris, stale lock files.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::time::Duration;

use rkt_types::{Algorithm, Digest};
use rusqlite::TransactionBehavior;

use crate::Store;
use crate::error::{IoContext, StoreError};
use crate::fsutil::{age, remove_any, tree_bytes};
use crate::images::{parse_record, used_mark};
use crate::layer::{INFO, read_info};
use crate::lock::{TmpEntry, create_tmp, fence, is_key_lock_file, lock_key, try_lock_existing};

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs removed.
    pub blobs: Vec<Digest>,
    /// Layer trees removed, by diff id.
    pub layers: Vec<Digest>,
    /// Leftovers of killed or failed writers removed from `tmp/`.
    pub tmp_entries: usize,
    /// `tmp/` entries left alone because a live process is writing them.
    pub tmp_in_use: usize,
    /// Lock files of killed processes removed from `locks/`.
    pub lock_files: usize,
    /// Apparent bytes freed, all of the above together.
    pub freed_bytes: u64,
}

impl std::fmt::Display for GcReport {
    /// One line for the CLI: `removed 3 blobs, 1 layer tree, 2 temp leftovers; freed 12.5 MB`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |count: usize, what: &str| {
            format!("{count} {what}{}", if count == 1 { "" } else { "s" })
        };
        write!(
            f,
            "removed {}, {}, {}; freed {:.1} MB",
            n(self.blobs.len(), "blob"),
            n(self.layers.len(), "layer tree"),
            n(self.tmp_entries, "temp leftover"),
            self.freed_bytes as f64 / 1e6
        )?;
        if self.tmp_in_use > 0 {
            write!(f, " ({} in use by running fetches)", self.tmp_in_use)?;
        }
        Ok(())
    }
}

const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

impl Store {
    /// Removes what no image needs, and reports it.
    ///
    /// - Every `tmp/` entry whose lock is free, once no fetch holds the fence: the leftovers of
    ///   a killed fetch or gc. Entries a live [`crate::BlobWriter`] or [`crate::LayerTx`] holds
    ///   are left alone.
    /// - Blobs and layer trees that no indexed image references, that are not in `keep`, and
    ///   whose mtime is older than `grace`. (Reusing a blob or tree through
    ///   [`crate::BlobWriter::commit`] or [`Store::commit_layer`] resets its mtime.)
    /// - Lock files left by killed processes.
    ///
    /// `keep` is the hook for users of layer trees outside the index: pods overlay-mount
    /// trees, and a pod may outlive `rkt image rm` of its image. The caller passes the diff ids
    /// (or blob digests) such users hold; computing that set race-free is the caller's job.
    ///
    /// Waits for fetches holding [`Store::gc_fence`] to finish. A tree is removed by first
    /// renaming it into `tmp/` inside the index's write transaction, so a half-deleted tree is
    /// never visible in `layers/`, and [`Store::insert_image`] (which checks content inside its
    /// own write transaction) can never index an image whose content gc is taking away.
    pub fn gc(&self, grace: Duration, keep: &HashSet<Digest>) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        let victims = {
            let _fence = fence(&self.locks_dir(), true)?;
            // Inside the fence: a fetch may keep unlocked scratch files in tmp/ while it holds
            // its shared fence (see `Store::tmp_dir`), so only now is every unlocked entry
            // debris.
            self.gc_tmp(&mut report)?;
            self.gc_content(grace, keep, &mut report)?
        };
        for v in victims {
            remove_any(&v.path)?;
        }
        self.gc_locks(&mut report)?;
        tracing::debug!(?report, "store gc done");
        Ok(report)
    }

    /// Removes unlocked `tmp/` entries.
    fn gc_tmp(&self, report: &mut GcReport) -> Result<(), StoreError> {
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).ctx("read", &tmp)? {
            let path = entry.ctx("read", &tmp)?.path();
            match try_lock_existing(&path)? {
                None => report.tmp_in_use += 1,
                Some(_lock) => {
                    report.freed_bytes += tree_bytes(&path);
                    remove_any(&path)?;
                    report.tmp_entries += 1;
                }
            }
        }
        Ok(())
    }

    /// Moves unreferenced blobs and trees out of the store; returns the locked `tmp/` entries
    /// holding the trees, to be deleted after the index is released.
    fn gc_content(
        &self,
        grace: Duration,
        keep: &HashSet<Digest>,
        report: &mut GcReport,
    ) -> Result<Vec<TmpEntry>, StoreError> {
        let index = self.index_path();
        let path = index.as_path();
        let err = |action| move |e| StoreError::db(action, path, e);
        let mut conn = self.conn();
        // The write lock keeps insert_image out until every victim is gone from blobs/ and
        // layers/; nothing is written, so the transaction just ends.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin a transaction"))?;
        let mut used: HashSet<Digest> = keep.clone();
        let mut images = HashSet::new();
        {
            let mut st = tx
                .prepare("SELECT id, record FROM images")
                .map_err(err("read images"))?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(err("read images"))?;
            for row in rows {
                let (id, json) = row.map_err(err("read images"))?;
                let rec = parse_record(&id, &json)?;
                images.insert(used_mark(&rec.id));
                used.insert(rec.manifest);
                used.insert(rec.config_blob);
                for l in rec.layers {
                    used.insert(l.blob);
                    used.insert(l.diff_id);
                }
            }
        }

        for algo in ALGORITHMS {
            let dir = self.blobs_dir().join(algo.name());
            for (digest, path) in digests_in(&dir, algo)? {
                if used.contains(&digest) {
                    continue;
                }
                let md = fs::symlink_metadata(&path).ctx("stat", &path)?;
                if age(&md) < grace {
                    continue;
                }
                fs::remove_file(&path).ctx("remove", &path)?;
                report.freed_bytes += md.len();
                report.blobs.push(digest);
            }
        }

        let mut victims = Vec::new();
        for algo in ALGORITHMS {
            let dir = self.layers_dir().join(algo.name());
            for (diff_id, path) in digests_in(&dir, algo)? {
                if used.contains(&diff_id) {
                    continue;
                }
                let info_path = path.join(INFO);
                let md = fs::symlink_metadata(&info_path)
                    .or_else(|_| fs::symlink_metadata(&path))
                    .ctx("stat", &path)?;
                if age(&md) < grace {
                    continue;
                }
                let bytes = match read_info(&info_path) {
                    Ok(Some(info)) => info.bytes,
                    _ => tree_bytes(&path),
                };
                // Into a directory we already hold locked, so a concurrent gc's tmp sweep
                // cannot start deleting it under us.
                let entry = create_tmp(&self.tmp_dir(), "gc", true)?;
                let to = entry.path.join("layer");
                fs::rename(&path, &to).ctx("move out of the store", &path)?;
                report.freed_bytes += bytes;
                report.layers.push(diff_id);
                victims.push(entry);
            }
        }
        self.gc_used_marks(&images)?;
        tx.commit().map_err(err("end the gc transaction"))?;
        Ok(victims)
    }

    /// Removes the `used/` marks of images no longer in the index (a pod that started from an
    /// image while it was being removed). `images` holds the index's images as mark names
    /// ([`used_mark`]).
    fn gc_used_marks(&self, images: &HashSet<String>) -> Result<(), StoreError> {
        let dir = self.used_dir();
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            r => r.ctx("read", &dir)?,
        };
        for entry in entries {
            let entry = entry.ctx("read", &dir)?;
            if !entry
                .file_name()
                .to_str()
                .is_some_and(|n| images.contains(n))
            {
                remove_any(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Removes lock files nobody holds (left by killed processes).
    fn gc_locks(&self, report: &mut GcReport) -> Result<(), StoreError> {
        let locks = self.locks_dir();
        for entry in fs::read_dir(&locks).ctx("read", &locks)? {
            let entry = entry.ctx("read", &locks)?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(is_key_lock_file) {
                continue;
            }
            // Taking the lock and dropping the guard unlinks the file, race-free.
            if lock_key(&entry.path(), false)?.is_some() {
                report.lock_files += 1;
            }
        }
        Ok(())
    }
}

/// The entries of a `blobs/<algo>` or `layers/<algo>` directory that are named by a digest.
fn digests_in(
    dir: &Path,
    algo: Algorithm,
) -> Result<Vec<(Digest, std::path::PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).ctx("read", dir)? {
        let entry = entry.ctx("read", dir)?;
        let name = entry.file_name();
        match name.to_str().map(|n| Digest::new(algo, n)) {
            Some(Ok(d)) => out.push((d, entry.path())),
            _ => tracing::warn!(
                "ignoring {}: not named by a digest, so not the store's",
                entry.path().display()
            ),
        }
    }
    Ok(out)
}
