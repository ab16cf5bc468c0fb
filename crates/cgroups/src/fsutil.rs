//! Reading and writing cgroup files, with errors that name the file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::fs::FsWord;

use crate::CgroupError;

/// `CGROUP_SUPER_MAGIC` (linux/magic.h): a v1 hierarchy.
const CGROUP_SUPER_MAGIC: FsWord = 0x0027_e0eb;
/// `CGROUP2_SUPER_MAGIC`: the unified hierarchy.
const CGROUP2_SUPER_MAGIC: FsWord = 0x6367_7270;

/// The whole of a (small) cgroup or proc file.
pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    read_small(path).map_err(|source| CgroupError::Read {
        path: path.to_owned(),
        source,
    })
}

/// A `/proc` or cgroupfs file: they report a size of 0, so `fs::read_to_string` would start
/// at 32 bytes and double, a read per step (eight for a `mountinfo`); one page holds most.
fn read_small(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(4096);
    fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Like [`read`], but a missing file (or directory) is `None`.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match read_small(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `value` in one `write(2)`, as cgroup files require; the raw OS error for callers
/// that look at the errno.
pub(crate) fn write_raw(path: &Path, value: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    // One write: cgroup files parse each write(2) on its own, so a split value would be two
    // (wrong) values.
    let n = f.write(value.as_bytes())?;
    if n != value.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to a cgroup file",
        ));
    }
    Ok(())
}

/// Writes each of `values` to `path` in a `write(2)` of its own on one open file (a cgroup file
/// such as `devices.allow` takes one value per write).
pub(crate) fn write_each<'a>(
    path: &Path,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<(), CgroupError> {
    let err = |value: &str, source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    };
    let mut values = values.into_iter().peekable();
    let Some(first) = values.peek().copied() else {
        return Ok(());
    };
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| err(first, e))?;
    for value in values {
        let n = f.write(value.as_bytes()).map_err(|e| err(value, e))?;
        if n != value.len() {
            let short = io::Error::new(io::ErrorKind::WriteZero, "short write to a cgroup file");
            return Err(err(value, short));
        }
    }
    Ok(())
}

/// [`write_raw`] with the error naming the file and the value.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    write_raw(path, value).map_err(|source| CgroupError::Write {
        path: path.to_owned(),
        value: value.to_owned(),
        source,
    })
}

/// How many threads this process has (`/proc/self/task`).
pub(crate) fn thread_count() -> Result<usize, CgroupError> {
    let dir = Path::new("/proc/self/task");
    fs::read_dir(dir)
        .map(Iterator::count)
        .map_err(|source| CgroupError::Read {
            path: dir.to_owned(),
            source,
        })
}

/// Space-separated words of a file such as `cgroup.controllers`.
pub(crate) fn read_words(path: &Path) -> Result<Vec<String>, CgroupError> {
    Ok(read(path)?.split_whitespace().map(str::to_owned).collect())
}

/// The pids in `<dir>/cgroup.procs`; a missing cgroup holds none.
pub(crate) fn read_pids(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let path = dir.join("cgroup.procs");
    let Some(text) = read_opt(&path)? else {
        return Ok(Vec::new());
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim().parse::<i32>().map_err(|_| CgroupError::Parse {
                path: path.clone(),
                line: l.to_owned(),
                reason: "not a pid".into(),
            })
        })
        .collect()
}

/// `dir` and every cgroup below it, children before their parents (the order `rmdir` needs).
/// A directory that vanishes while we walk is left out.
pub(crate) fn subtree_postorder(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    // A cgroup directory's link count is 2 plus its child cgroups (kernfs keeps it so): a
    // leaf, which is what an app's cgroup nearly always is, needs no listing of its ~30 files.
    // (The read of its OOM count is on the path of every pod's exit.)
    match rustix::fs::stat(dir) {
        Ok(st) if st.st_nlink == 2 => {
            out.push(dir.to_owned());
            return Ok(());
        }
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        _ => {}
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(CgroupError::Read {
                    path: dir.to_owned(),
                    source,
                });
            }
        };
        // cgroupfs has no symlinks; file_type() does not follow them anyway.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), out)?;
        }
    }
    out.push(dir.to_owned());
    Ok(())
}

/// Whether `dir` exists, after checking that it is on the cgroup filesystem of the given
/// version: a damaged record must not make us write pids, kill processes or rmdir elsewhere.
pub(crate) fn check_cgroupfs(dir: &Path, v2: bool) -> Result<bool, CgroupError> {
    let st = match rustix::fs::statfs(dir) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(false),
        Err(e) => {
            return Err(CgroupError::Statfs {
                path: dir.to_owned(),
                source: e.into(),
            });
        }
    };
    let (magic, expected) = if v2 {
        (CGROUP2_SUPER_MAGIC, "cgroup2")
    } else {
        (CGROUP_SUPER_MAGIC, "cgroup")
    };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between backends.
    if st.f_type as FsWord != magic {
        return Err(CgroupError::NotCgroupFs {
            path: dir.to_owned(),
            expected,
        });
    }
    Ok(true)
}

/// A value of a `key value` line in files such as `memory.events` and `memory.oom_control`.
pub(crate) fn keyed_value(path: &Path, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some(key) {
            let v = it.next().and_then(|v| v.parse().ok());
            return match v {
                Some(v) => Ok(Some(v)),
                None => Err(CgroupError::Parse {
                    path: path.to_owned(),
                    line: line.to_owned(),
                    reason: format!("{key} is not followed by a number"),
                }),
            };
        }
    }
    Ok(None)
}
