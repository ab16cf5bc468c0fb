//! Turning what a user typed into an indexed image.
//!
//! In order, the first rule that matches wins:
//! 1. a full id, `sha256:<hex>`, `sha256-<hex>` or `sha512-<hex>`;
//! 2. `NAME@DIGEST`: an image known under NAME whose id or manifest digest is DIGEST;
//! 3. an id prefix with its algorithm, `sha256:<hex…>` / `sha512-<hex…>`;
//! 4. `NAME[:TAG]` (TAG defaults to `latest`), as typed or normalised the Docker way
//!    (`busybox` → `docker.io/library/busybox`); a leading `docker://` is ignored;
//!    and, when no tag was typed and `NAME:latest` does not exist, the one image known under
//!    NAME whatever its tag (appc images are tagged with their version; several is ambiguous);
//! 5. a bare id prefix of at least [`MIN_ID_PREFIX`] hex digits.
//!
//! An id prefix matching several images is an error listing them.

use rkt_types::{Digest, DockerRef, ImageRecord};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Store;
use crate::error::StoreError;
use crate::images::parse_record;

/// Fewest hex digits accepted as an id prefix: shorter strings are too likely to be names.
pub const MIN_ID_PREFIX: usize = 4;

/// Most candidates listed in an ambiguity error.
const MAX_CANDIDATES: usize = 10;

impl Store {
    /// Finds the image `query` names (see the module docs for the rules).
    pub fn resolve(&self, query: &str) -> Result<ImageRecord, StoreError> {
        let q = query.trim();
        let path = self.index_path();
        let err = |e| StoreError::db("look up an image", &path, e);
        let conn = self.conn();
        let found = |json: Option<(String, String)>| match json {
            Some((id, json)) => parse_record(&id, &json).map(Some),
            None => Ok(None),
        };

        if let Ok(d) = q.parse::<Digest>() {
            let row = by_id(&conn, &d.to_string()).map_err(err)?;
            if let Some(rec) = found(row)? {
                return Ok(rec);
            }
        }
        let plain = q.strip_prefix("docker://").unwrap_or(q);
        if let Some((name, digest)) = plain.split_once('@')
            && let Ok(d) = digest.parse::<Digest>()
        {
            for (name, _) in name_candidates(name) {
                let row = conn
                    .query_row(
                        "SELECT i.id, i.record FROM images i JOIN names n ON n.image_id = i.id
                         WHERE n.name = ?1 AND (i.id = ?2 OR i.manifest = ?2) LIMIT 1",
                        params![name, d.to_string()],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(err)?;
                if let Some(rec) = found(row)? {
                    return Ok(rec);
                }
            }
        }
        if let Some((algo, hex)) = split_algo_prefix(q)
            && let Some(rec) = self.by_prefix(&conn, q, Some(algo), &hex)?
        {
            return Ok(rec);
        }
        if !plain.contains('@') {
            for (name, tag) in name_candidates(plain) {
                let row = conn
                    .query_row(
                        "SELECT i.id, i.record FROM images i JOIN names n ON n.image_id = i.id
                         WHERE n.name = ?1 AND n.tag = ?2",
                        params![name, tag],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(err)?;
                if let Some(rec) = found(row)? {
                    return Ok(rec);
                }
            }
            if !has_explicit_tag(plain)
                && let Some(rec) = self.by_untagged_name(&conn, plain)?
            {
                return Ok(rec);
            }
        }
        if is_hex(q)
            && q.len() >= MIN_ID_PREFIX
            && let Some(rec) = self.by_prefix(&conn, q, None, &q.to_ascii_lowercase())?
        {
            return Ok(rec);
        }
        Err(StoreError::NotFound {
            query: q.to_owned(),
            hint: not_found_hint(q),
        })
    }

    /// A name without a tag and without a `latest` tag: the one image known under that name
    /// (appc images are tagged with their version label, and rkt found them by bare name).
    fn by_untagged_name(
        &self,
        conn: &Connection,
        q: &str,
    ) -> Result<Option<ImageRecord>, StoreError> {
        let err = |e| StoreError::db("look up an image", &self.index_path(), e);
        for (name, _) in name_candidates(q) {
            let mut st = conn
                .prepare(
                    "SELECT i.id, i.record, n.tag FROM images i JOIN names n ON n.image_id = i.id
                     WHERE n.name = ?1 ORDER BY n.tag LIMIT ?2",
                )
                .map_err(err)?;
            let rows = st
                .query_map(params![name, MAX_CANDIDATES as i64 + 1], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let mut ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
            ids.dedup();
            match ids.len() {
                0 => continue,
                1 => return parse_record(&rows[0].0, &rows[0].1).map(Some),
                _ => {
                    return Err(StoreError::Ambiguous {
                        query: q.to_owned(),
                        candidates: rows
                            .iter()
                            .map(|(_, _, tag)| format!("{name}:{tag}"))
                            .collect(),
                    });
                }
            }
        }
        Ok(None)
    }

    fn by_prefix(
        &self,
        conn: &Connection,
        query: &str,
        algo: Option<&str>,
        hex: &str,
    ) -> Result<Option<ImageRecord>, StoreError> {
        let err = |e| StoreError::db("look up an image", &self.index_path(), e);
        // `hex` is validated hex, so it cannot smuggle LIKE wildcards.
        let mut st = conn
            .prepare(
                "SELECT id, record FROM images WHERE hex LIKE ?1 || '%'
                 AND (?2 IS NULL OR algo = ?2) ORDER BY id LIMIT ?3",
            )
            .map_err(err)?;
        let rows = st
            .query_map(params![hex, algo, MAX_CANDIDATES as i64 + 1], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        match rows.len() {
            0 => Ok(None),
            1 => {
                let (id, json) = &rows[0];
                parse_record(id, json).map(Some)
            }
            n => {
                let mut candidates: Vec<String> = rows.into_iter().map(|(id, _)| id).collect();
                if n > MAX_CANDIDATES {
                    candidates.truncate(MAX_CANDIDATES);
                    candidates.push("…".into());
                }
                Err(StoreError::Ambiguous {
                    query: query.to_owned(),
                    candidates,
                })
            }
        }
    }
}

fn by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<(String, String)>> {
    conn.query_row("SELECT id, record FROM images WHERE id = ?1", [id], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `sha256:abcd` / `sha512-abcd` → (`sha256`, `abcd`), for partial ids with an algorithm.
fn split_algo_prefix(q: &str) -> Option<(&'static str, String)> {
    for algo in ["sha256", "sha512"] {
        if let Some(rest) = q
            .strip_prefix(algo)
            .and_then(|r| r.strip_prefix(':').or_else(|| r.strip_prefix('-')))
            && is_hex(rest)
        {
            return Some((algo, rest.to_ascii_lowercase()));
        }
    }
    None
}

/// Whether `q` (`NAME[:TAG]`) names a tag: a ':' after the last '/'.
fn has_explicit_tag(q: &str) -> bool {
    q.rfind(':').is_some_and(|i| !q[i..].contains('/'))
}

/// The (name, tag) pairs `q` may mean: as typed, then Docker-normalised.
fn name_candidates(q: &str) -> Vec<(String, String)> {
    let (name, tag) = match q.rfind(':') {
        Some(i) if !q[i..].contains('/') => (&q[..i], &q[i + 1..]),
        _ => (q, "latest"),
    };
    let mut out = vec![(name.to_owned(), tag.to_owned())];
    if let Ok(r) = DockerRef::parse(q) {
        let c = (r.name(), r.tag_or_latest().to_owned());
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

fn not_found_hint(q: &str) -> String {
    if is_hex(q) || split_algo_prefix(q).is_some() {
        let short = if is_hex(q) && q.len() < MIN_ID_PREFIX {
            format!(" (an id prefix needs at least {MIN_ID_PREFIX} hex digits)")
        } else {
            String::new()
        };
        return format!("no image id starts with that{short}; list images with `rkt image list`");
    }
    // A local source or URL names no stored image: say so rather than suggesting docker://.
    if !matches!(
        rkt_types::ImageSource::parse(q),
        Ok(rkt_types::ImageSource::Name(_) | rkt_types::ImageSource::Registry(_)) | Err(_)
    ) {
        return format!(
            "that is an image source, not a stored image: fetch it with              `rkt fetch --insecure-options=image {q}` and use the id it prints"
        );
    }
    let plain = q.strip_prefix("docker://").unwrap_or(q);
    format!(
        "fetch it first, for example `rkt fetch --insecure-options=image docker://{plain}` \
         (or `rkt fetch {plain}` for a signed appc image)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_not_names() {
        for q in [
            "oci:/tmp/layout:latest",
            "/tmp/app.aci",
            "http://127.0.0.1/x.aci",
        ] {
            let h = not_found_hint(q);
            assert!(
                h.contains("image source") && !h.contains("docker://"),
                "{q}: {h}"
            );
        }
        assert!(not_found_hint("busybox").contains("docker://busybox"));
    }

    #[test]
    fn candidates() {
        assert_eq!(
            name_candidates("busybox"),
            [
                ("busybox".to_owned(), "latest".to_owned()),
                ("docker.io/library/busybox".to_owned(), "latest".to_owned())
            ]
        );
        assert_eq!(
            name_candidates("127.0.0.1:5000/app:v1"),
            [("127.0.0.1:5000/app".to_owned(), "v1".to_owned())]
        );
        assert_eq!(
            name_candidates("localhost:5000/app")[0],
            ("localhost:5000/app".to_owned(), "latest".to_owned())
        );
        assert_eq!(
            split_algo_prefix("sha512-AbC"),
            Some(("sha512", "abc".into()))
        );
        assert_eq!(split_algo_prefix("sha256-xyz"), None);
        assert!(has_explicit_tag("a/b:1"));
        assert!(!has_explicit_tag("localhost:5000/app"));
    }
}
