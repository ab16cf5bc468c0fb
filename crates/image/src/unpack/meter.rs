//! A reader that bounds what the `tar` crate may read while it assembles one entry's header.
//!
//! `tar` reads GNU long names, long link names and PAX extension records into memory in full,
//! however large their headers say they are. A small compressed layer can expand into a
//! "long name" of many gigabytes, so between entries (while `Entries::next` runs) reads are
//! capped at [`METADATA_BUDGET`]. The unpacker consumes each entry's data itself before asking
//! for the next one, so what `next` reads is only padding, headers and extension records.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// The most header data (padding, headers, long names, PAX records, sparse maps) one entry may
/// use. Real entries need a few KiB; PAX records carrying several large xattrs stay far below.
pub(crate) const METADATA_BUDGET: u64 = 1 << 20;

/// Shared between the reader (inside the `tar::Archive`) and the unpack loop.
#[derive(Default)]
pub(crate) struct MeterState {
    /// `Some(left)` while headers are being read.
    budget: Cell<Option<u64>>,
    tripped: Cell<bool>,
    total: Cell<u64>,
}

impl MeterState {
    /// Headers of the next entry are about to be read.
    pub(crate) fn begin_headers(&self) {
        self.budget.set(Some(METADATA_BUDGET));
    }

    /// The entry has been returned; its data may be read without this bound.
    pub(crate) fn end_headers(&self) {
        self.budget.set(None);
    }

    /// Whether a read failed because the budget ran out.
    pub(crate) fn tripped(&self) -> bool {
        self.tripped.get()
    }

    /// Bytes read from the stream so far.
    pub(crate) fn total(&self) -> u64 {
        self.total.get()
    }
}

/// See the module documentation.
pub(crate) struct Meter<R> {
    inner: R,
    state: Rc<MeterState>,
}

impl<R: Read> Meter<R> {
    pub(crate) fn new(inner: R) -> (Self, Rc<MeterState>) {
        let state = Rc::new(MeterState::default());
        (
            Meter {
                inner,
                state: state.clone(),
            },
            state,
        )
    }
}

impl<R: Read> Read for Meter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let budget = self.state.budget.get();
        let want = match budget {
            Some(0) => {
                self.state.tripped.set(true);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "an entry's headers (GNU long name or PAX records) exceed {METADATA_BUDGET} bytes"
                    ),
                ));
            }
            Some(left) => buf.len().min(usize::try_from(left).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..want])?;
        if let Some(left) = budget {
            self.state.budget.set(Some(left - n as u64));
        }
        self.state.total.set(self.state.total.get() + n as u64);
        Ok(n)
    }
}
