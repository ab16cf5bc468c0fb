//! The disk space one fetch may use.
//!
//! `--max-layer-size` bounds one layer, but its default (64 GiB) is larger than many disks, and
//! several layers unpack at once. So a fetch also takes the free space of the store's
//! filesystem when it starts, keeps a reserve, and lets its layers draw on what is left: a
//! hostile image (a small gzip that expands without end) is refused with a clear message
//! before it fills the disk, instead of failing later on ENOSPC with the disk full.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Space kept free whatever the image: the smaller of 1 GiB and 5% of what was free.
fn reserve(free: u64) -> u64 {
    (1u64 << 30).min(free / 20)
}

/// A shared allowance of bytes, drawn on by every stream of one fetch.
#[derive(Clone, Debug)]
pub(crate) struct DiskBudget {
    left: Arc<AtomicI64>,
    allowed: u64,
    dir: PathBuf,
}

impl DiskBudget {
    /// The allowance for writing under `dir`: its filesystem's free space less the reserve.
    pub(crate) fn for_dir(dir: &Path) -> io::Result<Self> {
        let st = rustix::fs::statvfs(dir)?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        Ok(Self::with_allowance(free - reserve(free), dir))
    }

    /// An allowance of exactly `allowed` bytes.
    pub(crate) fn with_allowance(allowed: u64, dir: &Path) -> Self {
        DiskBudget {
            left: Arc::new(AtomicI64::new(i64::try_from(allowed).unwrap_or(i64::MAX))),
            allowed,
            dir: dir.to_owned(),
        }
    }

    /// Wraps `r` so that every byte read from it is drawn from the allowance.
    pub(crate) fn reader<R: Read>(&self, r: R) -> BudgetReader<R> {
        BudgetReader {
            inner: r,
            budget: self.clone(),
        }
    }

    fn draw(&self, n: usize) -> io::Result<()> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        if self.left.fetch_sub(n, Ordering::Relaxed) - n < 0 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "the image would take more than the {} MiB of free space on the store's \
                     filesystem ({}); free some space or use a --dir on a larger disk",
                    self.allowed >> 20,
                    self.dir.display()
                ),
            ));
        }
        Ok(())
    }
}

/// A reader that fails once the fetch's allowance is used up.
pub(crate) struct BudgetReader<R> {
    inner: R,
    budget: DiskBudget,
}

impl<R: Read> Read for BudgetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.budget.draw(n)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_allowance_runs_out() {
        let b = DiskBudget::with_allowance(10, Path::new("/store"));
        let mut out = Vec::new();
        b.reader(&b"123456"[..]).read_to_end(&mut out).unwrap();
        let e = b.reader(&b"123456"[..]).read_to_end(&mut out).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert!(e.to_string().contains("/store"), "{e}");
        assert_eq!(reserve(100 << 30), 1 << 30);
        assert_eq!(reserve(100), 5);
    }

    #[test]
    fn real_filesystem_has_an_allowance() {
        let d = DiskBudget::for_dir(Path::new("/")).unwrap();
        assert!(d.allowed > 0);
    }
}
