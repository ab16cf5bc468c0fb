//! Progress bars on a terminal; nothing at all otherwise.

use std::io::{self, Read};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rkt_types::Digest;

/// The bars of one fetch.
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Bars are drawn only if `enabled` (the CLI passes "stderr is a terminal").
    pub(crate) fn new(enabled: bool) -> Self {
        Progress {
            multi: enabled.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// A bar for one layer of `size` bytes.
    pub(crate) fn layer(&self, digest: &Digest, size: u64) -> LayerBar {
        let bar = self.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(size));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(digest.short());
            b
        });
        LayerBar { bar }
    }

    /// Removes every bar.
    pub(crate) fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

/// One layer's bar (or nothing).
#[derive(Clone)]
pub(crate) struct LayerBar {
    bar: Option<ProgressBar>,
}

impl LayerBar {
    /// Advances by `n` bytes.
    pub(crate) fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    /// Marks the layer done.
    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }

    /// Counts bytes as they are read from `r`.
    pub(crate) fn wrap_read<R: Read>(&self, r: R) -> CountingReader<R> {
        CountingReader {
            inner: r,
            bar: self.clone(),
        }
    }
}

/// A reader that advances a bar.
pub(crate) struct CountingReader<R> {
    inner: R,
    bar: LayerBar,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
