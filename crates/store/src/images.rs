//! The index of images: inserting, reading, listing, touching, removing, remotes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::{Duration, SystemTime};

use rkt_types::{Digest, ImageFormat, ImageRecord, Platform};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::Store;
use crate::error::{IoContext, StoreError};
use crate::fsutil::{from_ms, now_ms, to_ms};

/// A name an image is known by: `name:tag`, one image per pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName {
    /// Full name: `docker.io/library/busybox`, `127.0.0.1:5000/app`, `coreos.com/etcd`.
    pub name: String,
    /// Tag (Docker/OCI) or version label (appc); `latest` when none was given.
    pub tag: String,
}

impl ImageName {
    /// `name:tag`.
    pub fn new(name: impl Into<String>, tag: impl Into<String>) -> Self {
        ImageName {
            name: name.into(),
            tag: tag.into(),
        }
    }

    fn validate(&self) -> Result<(), StoreError> {
        let ok = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if ok(&self.name) && ok(&self.tag) && !self.tag.contains(['/', ':']) {
            Ok(())
        } else {
            Err(StoreError::InvalidName(self.to_string()))
        }
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// Where an image was fetched from, for `--pull-policy=update` (conditional re-fetch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteInfo {
    /// What was fetched: `docker://reg/repo:tag`, an ACI URL, ….
    pub key: String,
    /// HTTP ETag of the last response, if any.
    pub etag: Option<String>,
    /// Digest of the manifest the registry served, if any.
    pub manifest_digest: Option<Digest>,
    /// The image it resolved to.
    pub image_id: Digest,
    /// When it was fetched.
    pub fetched_at: SystemTime,
    /// How long the response may be cached (HTTP `Cache-Control: max-age`), if said.
    pub max_age: Option<Duration>,
}

/// One row of [`Store::list_images`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// Image id.
    pub id: Digest,
    /// Names pointing at it, sorted (empty for an image whose tags all moved away).
    pub names: Vec<ImageName>,
    /// Format it arrived in.
    pub format: ImageFormat,
    /// When it was first inserted.
    pub import_time: SystemTime,
    /// When it was last used by a pod ([`Store::touch`]), or inserted.
    pub last_used: SystemTime,
    /// Bytes on disk for this image: its blobs (manifest, config, layers as distributed) plus
    /// its unpacked layer trees, each counted once per image. Content shared with other images
    /// is counted in each of them (like `docker images`), and also in `shared_size`.
    pub size: u64,
    /// The part of `size` also used by another image, so removing this one would not free it.
    pub shared_size: u64,
    /// Platform.
    pub platform: Platform,
}

fn corrupt(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Corrupt {
        what: what.to_owned(),
        source: Box::new(e),
    }
}

pub(crate) fn parse_record(id: &str, json: &str) -> Result<ImageRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| corrupt(&format!("index record of image {id}"), e))
}

pub(crate) fn parse_digest(s: &str) -> Result<Digest, StoreError> {
    s.parse()
        .map_err(|e| corrupt(&format!("digest {s:?} in the index"), e))
}

impl Store {
    /// Indexes an image, in one transaction: its record, its names (moving each `name:tag`
    /// to this image) and, if given, where it came from (`remote.image_id` is taken from
    /// `rec`). Re-inserting an image updates it and keeps its import time and other names.
    ///
    /// Every blob (`rec.manifest`, `rec.config_blob`, each layer's blob) and every layer tree
    /// the record uses must already be committed, or this fails with
    /// [`StoreError::IncompleteImage`] and changes nothing. The check runs inside the write
    /// transaction, which gc also holds while it removes content, so an indexed image never
    /// lacks content.
    pub fn insert_image(
        &self,
        rec: &ImageRecord,
        names: &[ImageName],
        remote: Option<&RemoteInfo>,
    ) -> Result<(), StoreError> {
        for n in names {
            n.validate()?;
        }
        let record = serde_json::to_string(rec).expect("ImageRecord serialises");
        let index = self.index_path();
        let path = index.as_path();
        let err = |action| move |e| StoreError::db(action, path, e);
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err("begin a transaction"))?;
        let blobs = [&rec.manifest, &rec.config_blob]
            .into_iter()
            .chain(rec.layers.iter().map(|l| &l.blob));
        for b in blobs {
            if !self.has_blob(b) {
                return Err(StoreError::IncompleteImage {
                    image: rec.id.clone(),
                    what: format!("blob {b}"),
                });
            }
        }
        for l in &rec.layers {
            if self.layer_tree(&l.diff_id).is_none() {
                return Err(StoreError::IncompleteImage {
                    image: rec.id.clone(),
                    what: format!("layer tree {}", l.diff_id),
                });
            }
        }
        let id = rec.id.to_string();
        let now = now_ms();
        tx.execute(
            "INSERT INTO images (id, algo, hex, format, manifest, platform, record, import_time,
                                 last_used)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT(id) DO UPDATE SET format = excluded.format,
                 manifest = excluded.manifest, platform = excluded.platform,
                 record = excluded.record",
            params![
                id,
                rec.id.algorithm().name(),
                rec.id.hex(),
                rec.format.as_str(),
                rec.manifest.to_string(),
                rec.platform.to_string(),
                record,
                now
            ],
        )
        .map_err(err("insert the image"))?;
        tx.execute("DELETE FROM image_layers WHERE image_id = ?1", [&id])
            .map_err(err("insert the image"))?;
        for (pos, l) in rec.layers.iter().enumerate() {
            tx.execute(
                "INSERT INTO image_layers (image_id, pos, diff_id, blob) VALUES (?1, ?2, ?3, ?4)",
                params![id, pos as i64, l.diff_id.to_string(), l.blob.to_string()],
            )
            .map_err(err("insert the image's layers"))?;
        }
        for n in names {
            tx.execute(
                "INSERT INTO names (name, tag, image_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name, tag) DO UPDATE SET image_id = excluded.image_id",
                params![n.name, n.tag, id],
            )
            .map_err(err("name the image"))?;
        }
        if let Some(r) = remote {
            upsert_remote(&tx, r, &id).map_err(err("record the image's remote"))?;
        }
        tx.commit().map_err(err("commit the image"))
    }

    /// The record of an image, if indexed.
    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>, StoreError> {
        let conn = self.conn();
        let json: Option<String> = conn
            .query_row(
                "SELECT record FROM images WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| StoreError::db("read an image", &self.index_path(), e))?;
        json.map(|j| parse_record(&id.to_string(), &j)).transpose()
    }

    /// Every image, oldest import first, with names and sizes (see [`ImageEntry::size`]).
    pub fn list_images(&self) -> Result<Vec<ImageEntry>, StoreError> {
        let path = self.index_path();
        let err = |e| StoreError::db("list images", &path, e);
        let (rows, mut names) = {
            let mut conn = self.conn();
            // One read transaction so names and images come from the same snapshot.
            let tx = conn.transaction().map_err(err)?;
            let rows = tx
                .prepare(
                    "SELECT id, record, import_time, last_used FROM images
                     ORDER BY import_time, id",
                )
                .and_then(|mut st| {
                    st.query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()
                })
                .map_err(err)?;
            let mut names: HashMap<String, Vec<ImageName>> = HashMap::new();
            tx.prepare("SELECT name, tag, image_id FROM names ORDER BY name, tag")
                .and_then(|mut st| {
                    for row in st.query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get(1)?, r.get::<_, String>(2)?))
                    })? {
                        let (name, tag, id) = row?;
                        names.entry(id).or_default().push(ImageName { name, tag });
                    }
                    Ok(())
                })
                .map_err(err)?;
            (rows, names)
        };
        let mut images = Vec::with_capacity(rows.len());
        for (id, json, import_time, last_used) in rows {
            let rec = parse_record(&id, &json)?;
            images.push((rec, import_time, last_used));
        }
        let sizes = self.sizes(images.iter().map(|(r, ..)| r));
        Ok(images
            .into_iter()
            .zip(sizes)
            .map(|((rec, import_time, last_used), (size, shared_size))| {
                let used = self.used_time(&rec.id);
                ImageEntry {
                    names: names.remove(&rec.id.to_string()).unwrap_or_default(),
                    id: rec.id,
                    format: rec.format,
                    import_time: from_ms(import_time),
                    last_used: used.map_or(from_ms(last_used), |t| t.max(from_ms(last_used))),
                    size,
                    shared_size,
                    platform: rec.platform,
                }
            })
            .collect())
    }

    /// (size, shared size) of each image; see [`ImageEntry::size`].
    fn sizes<'a>(&self, recs: impl Iterator<Item = &'a ImageRecord>) -> Vec<(u64, u64)> {
        #[derive(PartialEq, Eq, Hash, Clone, PartialOrd, Ord)]
        enum Item {
            Blob(Digest),
            Tree(Digest),
        }
        let per_image: Vec<HashSet<Item>> = recs
            .map(|r| {
                let mut s: HashSet<Item> = [&r.manifest, &r.config_blob]
                    .into_iter()
                    .chain(r.layers.iter().map(|l| &l.blob))
                    .map(|d| Item::Blob(d.clone()))
                    .collect();
                s.extend(r.layers.iter().map(|l| Item::Tree(l.diff_id.clone())));
                s
            })
            .collect();
        let mut refs: BTreeMap<&Item, usize> = BTreeMap::new();
        for s in &per_image {
            for i in s {
                *refs.entry(i).or_default() += 1;
            }
        }
        let bytes: HashMap<&Item, u64> = refs
            .keys()
            .map(|&i| {
                let b = match i {
                    Item::Blob(d) => std::fs::metadata(self.blob_path(d)).map_or(0, |m| m.len()),
                    Item::Tree(d) => self.layer_info(d).ok().flatten().map_or(0, |li| li.bytes),
                };
                (i, b)
            })
            .collect();
        per_image
            .iter()
            .map(|s| {
                s.iter().fold((0, 0), |(size, shared), i| {
                    let b = bytes[i];
                    (size + b, if refs[i] > 1 { shared + b } else { shared })
                })
            })
            .collect()
    }

    /// The names pointing at image `id`, sorted (cheaper than [`Store::list_images`] when only
    /// one image's names are wanted).
    pub fn names(&self, id: &Digest) -> Result<Vec<ImageName>, StoreError> {
        let err = |e| StoreError::db("read image names", &self.index_path(), e);
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT name, tag FROM names WHERE image_id = ?1 ORDER BY name, tag")
            .map_err(err)?;
        st.query_map([id.to_string()], |r| {
            Ok(ImageName {
                name: r.get(0)?,
                tag: r.get(1)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(err)
    }

    /// Records that an image was just used (by a pod), for `rkt image list` and image gc
    /// policies.
    ///
    /// It is on `rkt run`'s path, so it does not write the index: a commit there would take
    /// the index's write lock (making concurrent pod starts wait for each other) and fsync a
    /// journal, the index and its directory. The time goes into the modification time of
    /// `used/<algo>-<hex>` instead, one `open` and `futimens`, and [`Store::list_images`]
    /// takes the later of the two.
    pub fn touch(&self, id: &Digest) -> Result<(), StoreError> {
        let path = self.used_path(id);
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let file = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A store made before `used/` existed.
                crate::fsutil::ensure_dir(&self.used_dir())?;
                open()
            }
            r => r,
        }
        .ctx("create", &path)?;
        file.set_modified(SystemTime::now())
            .ctx("set the time of", &path)
    }

    /// When a pod last used `id`, if one did since the index last recorded it.
    pub(crate) fn used_time(&self, id: &Digest) -> Option<SystemTime> {
        std::fs::metadata(self.used_path(id))
            .and_then(|m| m.modified())
            .ok()
    }

    fn used_path(&self, id: &Digest) -> std::path::PathBuf {
        self.used_dir().join(used_mark(id))
    }

    /// Removes an image from the index, with its names and remotes. Its blobs and layer trees
    /// stay until [`Store::gc`] finds them unreferenced (so a removal needs no disk space and
    /// cannot leave half-deleted content behind).
    pub fn remove_image(&self, id: &Digest) -> Result<(), StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM images WHERE id = ?1", [id.to_string()])
            .map_err(|e| StoreError::db("remove an image", &self.index_path(), e))?;
        if n == 0 {
            return Err(not_indexed(id));
        }
        crate::fsutil::remove_any(&self.used_path(id))
    }

    /// What was recorded when `key` was last fetched.
    pub fn remote(&self, key: &str) -> Result<Option<RemoteInfo>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT etag, manifest_digest, image_id, fetched_at, max_age FROM remotes
                 WHERE key = ?1",
                [key],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| StoreError::db("read a remote", &self.index_path(), e))?;
        let Some((etag, manifest_digest, image_id, fetched_at, max_age)) = row else {
            return Ok(None);
        };
        Ok(Some(RemoteInfo {
            key: key.to_owned(),
            etag,
            manifest_digest: manifest_digest.as_deref().map(parse_digest).transpose()?,
            image_id: parse_digest(&image_id)?,
            fetched_at: from_ms(fetched_at),
            max_age: max_age.map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0))),
        }))
    }

    /// Records (or refreshes, after a `304 Not Modified`) where an already indexed image came
    /// from.
    pub fn put_remote(&self, remote: &RemoteInfo) -> Result<(), StoreError> {
        let conn = self.conn();
        match upsert_remote(&conn, remote, &remote.image_id.to_string()) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(not_indexed(&remote.image_id))
            }
            r => r.map_err(|e| StoreError::db("record a remote", &self.index_path(), e)),
        }
    }
}

/// The name of `id`'s file under `used/`: `<algo>-<hex>`.
pub(crate) fn used_mark(id: &Digest) -> String {
    format!("{}-{}", id.algorithm().name(), id.hex())
}

fn not_indexed(id: &Digest) -> StoreError {
    StoreError::NotFound {
        query: id.to_string(),
        hint: "list the images there are with `rkt image list`".into(),
    }
}

fn upsert_remote(
    conn: &rusqlite::Connection,
    r: &RemoteInfo,
    image_id: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO remotes (key, etag, manifest_digest, image_id, fetched_at, max_age)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(key) DO UPDATE SET etag = excluded.etag,
             manifest_digest = excluded.manifest_digest, image_id = excluded.image_id,
             fetched_at = excluded.fetched_at, max_age = excluded.max_age",
        params![
            r.key,
            r.etag,
            r.manifest_digest.as_ref().map(Digest::to_string),
            image_id,
            to_ms(r.fetched_at),
            r.max_age
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        ],
    )
    .map(drop)
}
