//! Directory-fd helpers: opening without following symlinks, `flock` probes, small reads and
//! atomic writes relative to a directory fd.
//!
//! Everything inside a pod directory is reached with `openat(…, O_NOFOLLOW)` from an fd on the
//! pod directory, so a rename of the pod (a state change) or a symlink planted inside it can
//! never redirect a read or write somewhere else.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{IoContext, PodError};

/// Mode of every directory this crate creates (`$dir/pods`, state dirs, pod dirs and the
/// directories inside them). rkt's own tmpfiles.d made these `root:rkt 2750`; a group the
/// administrator gives them can list pods, nobody else can look inside.
pub(crate) const DIR_MODE: u32 = 0o750;
/// Mode of files this crate writes inside a pod directory.
pub(crate) const FILE_MODE: u32 = 0o640;

/// Opens the directory `name` under `dirfd` without following a symlink.
pub(crate) fn open_dir_at(
    dirfd: BorrowedFd<'_>,
    name: impl rustix::path::Arg,
) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dirfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens a directory by path (following symlinks in `path` itself, which the caller chose).
pub(crate) fn open_dir(path: &Path) -> Result<OwnedFd, PodError> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx("open directory", path)
}

fn flock(fd: BorrowedFd<'_>, op: FlockOperation) -> Result<(), Errno> {
    loop {
        match rustix::fs::flock(fd, op) {
            Err(Errno::INTR) => continue,
            r => return r,
        }
    }
}

/// Tries to take the lock without waiting; `Ok(false)` when another open file holds it.
pub(crate) fn try_lock(fd: BorrowedFd<'_>, exclusive: bool) -> Result<bool, Errno> {
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    match flock(fd, op) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes a blocking exclusive lock (for short critical sections such as name bookkeeping).
pub(crate) fn lock_blocking(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    flock(fd, FlockOperation::LockExclusive)
}

/// How long a lock that should be free (or is held only by a `list` probe, for microseconds)
/// is retried before we conclude a live process holds it.
pub(crate) const PATIENCE: Duration = Duration::from_millis(150);

/// Tries for an exclusive lock for up to [`PATIENCE`], backing off between tries, and gives up
/// early when `keep_trying` says the pod has moved on. Probes by `rkt list` and `gc` take the
/// lock shared for an instant, which makes a single non-blocking exclusive attempt fail now and
/// then; retrying briefly tells such a probe from a real holder.
pub(crate) fn lock_patiently(
    fd: BorrowedFd<'_>,
    mut keep_trying: impl FnMut() -> bool,
) -> Result<bool, Errno> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        if try_lock(fd, true)? {
            return Ok(true);
        }
        if start.elapsed() >= PATIENCE || !keep_trying() {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Whether `name` under `dirfd` is still the inode open as `fd` (pods only move forward, but a
/// lock may be won on a directory that was renamed away meanwhile).
pub(crate) fn still_at(
    fd: BorrowedFd<'_>,
    dirfd: BorrowedFd<'_>,
    name: &str,
) -> Result<bool, Errno> {
    let ours = rustix::fs::fstat(fd)?;
    match rustix::fs::statat(dirfd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) => Ok(now.st_ino == ours.st_ino && now.st_dev == ours.st_dev),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The inode change time of a stat result. A rename into a state directory sets it, so it is
/// when the pod entered its state (or last had an entry added or removed).
pub(crate) fn ctime(st: &rustix::fs::Stat) -> SystemTime {
    let secs = u64::try_from(st.st_ctime).unwrap_or(0);
    let nanos = u32::try_from(st.st_ctime_nsec).unwrap_or(0);
    UNIX_EPOCH + Duration::new(secs, nanos)
}

/// How long ago `t` was; a time in the future counts as now.
pub(crate) fn age(t: SystemTime) -> Duration {
    SystemTime::now()
        .duration_since(t)
        .unwrap_or(Duration::ZERO)
}

/// Splits a relative path inside a pod directory into components, refusing anything that could
/// leave the directory or name it ambiguously.
pub(crate) fn components(rel: &str) -> Result<Vec<&str>, PodError> {
    let bad = |reason| PodError::InvalidPath {
        rel: rel.to_owned(),
        reason,
    };
    if rel.is_empty() {
        return Err(bad("it is empty"));
    }
    if rel.starts_with('/') {
        return Err(bad("it must be relative to the pod directory"));
    }
    let parts: Vec<&str> = rel.split('/').collect();
    for p in &parts {
        match *p {
            "" => {
                return Err(bad(
                    "it has an empty component (\"//\" or a trailing \"/\")",
                ));
            }
            "." | ".." => return Err(bad("it has a \".\" or \"..\" component")),
            _ if p.contains('\0') => return Err(bad("it contains a NUL byte")),
            _ => {}
        }
    }
    Ok(parts)
}

/// Reads at most `limit` bytes of the file at `rel` under `base`, following no symlink on the
/// way. `Ok(None)` if the file (or a directory on the way) does not exist.
pub(crate) fn read_small_at(
    base: BorrowedFd<'_>,
    base_path: &Path,
    rel: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, PodError> {
    let parts = components(rel)?;
    let path = base_path.join(rel);
    let (file, dirs) = parts.split_last().expect("components is never empty");
    let mut cur: Option<OwnedFd> = None;
    for d in dirs {
        let at = cur.as_ref().map_or(base, |f| f.as_fd());
        match open_dir_at(at, *d) {
            Ok(fd) => cur = Some(fd),
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(PodError::io("open", &path, e)),
        }
    }
    let at = cur.as_ref().map_or(base, |f| f.as_fd());
    let fd = match rustix::fs::openat(
        at,
        *file,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(PodError::io("open", &path, e)),
    };
    let st = rustix::fs::fstat(&fd).ctx("stat", &path)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(PodError::BadStatusFile {
            path,
            source: "not a regular file".into(),
        });
    }
    let mut buf = Vec::new();
    File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut buf)
        .ctx("read", &path)?;
    if buf.len() as u64 > limit {
        return Err(PodError::BadStatusFile {
            path,
            source: format!("longer than {limit} bytes").into(),
        });
    }
    Ok(Some(buf))
}

/// Makes distinct temp names for concurrent writers within one process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `rel` under `base` atomically: a temp file in the same directory, then
/// `rename(2)` over the target, so a reader sees the old content or the new, never a part.
/// Missing parent directories are created; no symlink is followed. With `sync`, the file's
/// data is fsynced before the rename (the caller fsyncs directories when it needs the rename
/// itself to be durable). Returns the fd of the directory holding the file.
pub(crate) fn write_atomic_at(
    base: BorrowedFd<'_>,
    base_path: &Path,
    rel: &str,
    bytes: &[u8],
    sync: bool,
) -> Result<OwnedFd, PodError> {
    let parts = components(rel)?;
    let path = base_path.join(rel);
    let (file, dirs) = parts.split_last().expect("components is never empty");
    let mut cur = rustix::io::dup(base).ctx("duplicate fd of", base_path)?;
    for d in dirs {
        // Usually there already (a pod's records go into directories stage1 made): opened
        // first, made only when missing.
        cur = match open_dir_at(cur.as_fd(), *d) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                match rustix::fs::mkdirat(&cur, *d, Mode::from_raw_mode(DIR_MODE)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(PodError::io("create directory", &base_path.join(d), e)),
                }
                open_dir_at(cur.as_fd(), *d).ctx("open directory", &path)?
            }
            Err(e) => return Err(PodError::io("open directory", &path, e)),
        };
    }
    loop {
        let tmp = format!(
            ".{file}.tmp{}.{}",
            rustix::process::getpid().as_raw_nonzero(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let fd = match rustix::fs::openat(
            &cur,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        ) {
            Ok(fd) => fd,
            // Left by a killed process whose pid we now have: take another name.
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(PodError::io("create", &path, e)),
        };
        let mut f = File::from(fd);
        let written = f
            .write_all(bytes)
            .and_then(|()| if sync { f.sync_data() } else { Ok(()) })
            .ctx("write", &path)
            .and_then(|()| {
                rustix::fs::renameat(&cur, tmp.as_str(), &cur, *file).ctx("rename into", &path)
            });
        if written.is_err() {
            let _ = rustix::fs::unlinkat(&cur, tmp.as_str(), AtFlags::empty());
        }
        return written.map(|()| cur);
    }
}

/// fsyncs the file at `rel` under `base` and the directory holding it.
pub(crate) fn fsync_at(base: BorrowedFd<'_>, base_path: &Path, rel: &str) -> Result<(), PodError> {
    let parts = components(rel)?;
    let path = base_path.join(rel);
    let (file, dirs) = parts.split_last().expect("components is never empty");
    let mut cur = rustix::io::dup(base).ctx("duplicate fd of", base_path)?;
    for d in dirs {
        cur = open_dir_at(cur.as_fd(), *d).ctx("open directory", &path)?;
    }
    let fd = rustix::fs::openat(
        &cur,
        *file,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", &path)?;
    rustix::fs::fsync(&fd).ctx("fsync", &path)?;
    rustix::fs::fsync(&cur).ctx("fsync the directory of", &path)
}

/// fsyncs a directory so renames and creations in it survive a crash.
pub(crate) fn fsync_fd(fd: BorrowedFd<'_>, path: &Path) -> Result<(), PodError> {
    rustix::fs::fsync(fd).ctx("fsync", path)
}

/// A time as the status files store it: RFC 3339, UTC, with the fraction (to nanoseconds)
/// only if there is one.
pub(crate) fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339(t).to_string()
}

/// Parses a time written by [`format_time`] (any RFC 3339 UTC time).
pub(crate) fn parse_time(s: &str) -> Result<SystemTime, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(s.trim())
}

/// A directory entry's name as UTF-8, if it is.
pub(crate) fn entry_name(name: &std::ffi::CStr) -> Option<&str> {
    name.to_str().ok()
}
