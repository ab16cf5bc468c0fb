//! `index.db`: opening, pragmas and the schema with its migrations.
//!
//! Schema (version 1):
//! - `schema_version(version)`: one row; the migrations below bring older files forward.
//! - `images(id PRIMARY KEY, algo, hex, format, manifest, platform, record, import_time,
//!   last_used)`: `record` is the [`rkt_types::ImageRecord`] as JSON (the source of truth);
//!   the other columns are indexed copies for lookups. Times are milliseconds since the epoch.
//! - `names(name, tag, image_id)`, primary key `(name, tag)`: one image per name:tag, so
//!   inserting an image under an existing tag moves the tag.
//! - `image_layers(image_id, pos, diff_id, blob)`: which layer trees and blobs an image uses,
//!   for gc and sizes.
//! - `remotes(key PRIMARY KEY, etag, manifest_digest, image_id, fetched_at, max_age)`: where an
//!   image came from, for `--pull-policy=update`.
//!
//! `names`, `image_layers` and `remotes` cascade on image deletion.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::StoreError;

/// How long a writer waits for another process's transaction before giving up. Writes are
/// short (gc holds the write lock only while renaming), so this is generous.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE images (
    id          TEXT PRIMARY KEY NOT NULL,
    algo        TEXT NOT NULL,
    hex         TEXT NOT NULL,
    format      TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    platform    TEXT NOT NULL,
    record      TEXT NOT NULL,
    import_time INTEGER NOT NULL,
    last_used   INTEGER NOT NULL
);
CREATE INDEX images_hex ON images(hex);
CREATE INDEX images_manifest ON images(manifest);
CREATE TABLE names (
    name     TEXT NOT NULL,
    tag      TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (name, tag)
);
CREATE INDEX names_image ON names(image_id);
CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    pos      INTEGER NOT NULL,
    diff_id  TEXT NOT NULL,
    blob     TEXT NOT NULL,
    PRIMARY KEY (image_id, pos)
);
CREATE INDEX image_layers_diff_id ON image_layers(diff_id);
CREATE TABLE remotes (
    key             TEXT PRIMARY KEY NOT NULL,
    etag            TEXT,
    manifest_digest TEXT,
    image_id        TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    fetched_at      INTEGER NOT NULL,
    max_age         INTEGER
);
CREATE INDEX remotes_image ON remotes(image_id);
"#];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) and migrates the index at `path`.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let err = |action| move |e| StoreError::db(action, path, e);
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err("open"))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err("configure"))?;
    // A rollback journal, not WAL: every `rkt` is a short-lived process and usually the only
    // one on the index, and in WAL mode each such first connection maps and resets the
    // shared-memory index (a dozen syscalls and writes) before it can read a page; `rkt run`
    // only reads. Writers (fetch, rm, gc) are rare and short; readers wait for their commit
    // through the busy handler. FULL makes each committed transaction survive power loss.
    if in_wal_mode(path) {
        set_rollback_journal(&conn).map_err(err("leave WAL mode"))?;
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(err("configure"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(err("configure"))?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Whether the index file's header says WAL (its read and write format versions, bytes 18
/// and 19, are 2 in WAL mode and 1 otherwise): only then is the pragma below needed, and
/// asking SQLite costs a lock and a read of the header on every `rkt`. A missing or short
/// file is a new index, in the default rollback mode.
fn in_wal_mode(path: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|f| f.read_exact_at(&mut header, 0))
        .is_ok_and(|()| header[18] == 2 || header[19] == 2)
}

/// Puts an index that an earlier rkt left in WAL mode back to a rollback journal (`DELETE`:
/// no journal file between transactions, so a reader's check for one is a failed `access`).
/// A rollback journal is per connection and the default, so on an index already out of WAL
/// this is a no-op; converting needs an exclusive lock, which SQLite refuses at once, without
/// the busy handler, while another process has the index open: so retry until
/// [`BUSY_TIMEOUT`].
fn set_rollback_journal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "DELETE") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            r => return r,
        }
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |action| move |e| StoreError::db(action, path, e);
    // The common case, an up-to-date index, needs no write lock (so a reader that may not
    // write, such as an unprivileged `rkt image list`, can open it).
    let current: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .optional()
        .ok()
        .flatten();
    if current == Some(SCHEMA_VERSION) {
        return Ok(());
    }
    // IMMEDIATE: two processes opening a fresh store must not both create the tables.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err("begin a transaction"))?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")
        .map_err(err("create the schema"))?;
    let found: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .map_err(err("read the schema version"))?;
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql).map_err(err("migrate the schema"))?;
        tracing::debug!("store index migrated to schema version {}", i + 1);
    }
    tx.execute("DELETE FROM schema_version", [])
        .map_err(err("migrate the schema"))?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [SCHEMA_VERSION],
    )
    .map_err(err("migrate the schema"))?;
    tx.commit().map_err(err("commit the schema"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_tells_a_wal_index_from_a_rollback_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        assert!(!in_wal_mode(&path), "a missing index");
        drop(open(&path).unwrap());
        assert!(!in_wal_mode(&path));
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert!(in_wal_mode(&path));
        drop(conn);
        drop(open(&path).unwrap());
        assert!(!in_wal_mode(&path), "open switches it back");
    }

    #[test]
    fn a_commit_is_in_the_index_file_itself_with_no_journal_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let conn = open(&path).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (42);")
            .unwrap();
        for leftover in ["index.db-wal", "index.db-shm", "index.db-journal"] {
            assert!(!dir.path().join(leftover).exists(), "{leftover}");
        }
        // Another process (connection) sees it with the writer still open.
        let other = open(&path).unwrap();
        let x: i64 = other
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(x, 42);
    }
}
