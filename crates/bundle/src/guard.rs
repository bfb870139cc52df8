//! Readers that watch the bytes going by: one hashes and counts what comes from the source,
//! the other stops decompression as soon as the output outgrows the input (a bomb) or the
//! limits.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::RATIO_GRACE_BYTES;

/// Hashes and counts every byte read from the source, whoever reads it.
pub(super) struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Hashing<R> {
    /// Wraps `inner`; `count` is shared with the [`Budget`] that needs the compressed size.
    pub(super) fn new(inner: R, count: Rc<Cell<u64>>) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count,
        }
    }

    /// Reads what is left (padding, trailers) so the digest covers the whole source, and
    /// returns it as lowercase hex.
    pub(super) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Lowercase hex of a digest.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How much decompressed output is allowed for the compressed input read so far.
pub(super) struct Budget {
    /// Compressed bytes consumed so far (shared with the reader that counts them).
    pub(super) input: Rc<Cell<u64>>,
    output: Cell<u64>,
    /// 0 = no ratio check (uncompressed input).
    max_ratio: u64,
    max_output: u64,
    tripped: RefCell<Option<String>>,
}

impl Budget {
    /// A budget enforcing `max_ratio` (0 for none) and at most `max_output` bytes in all.
    pub(super) fn new(input: Rc<Cell<u64>>, max_ratio: u64, max_output: u64) -> Self {
        Self {
            input,
            output: Cell::new(0),
            max_ratio,
            max_output,
            tripped: RefCell::new(None),
        }
    }

    /// Why the budget stopped the stream, if it did; readers above it only see an I/O error.
    pub(super) fn tripped(&self) -> Option<String> {
        self.tripped.borrow().clone()
    }

    fn spend(&self, n: usize) -> io::Result<()> {
        let out = self.output.get() + n as u64;
        self.output.set(out);
        let input = self.input.get().max(1);
        let why = if self.max_ratio > 0 && out > RATIO_GRACE_BYTES && out / input > self.max_ratio {
            format!(
                "compression ratio above {}:1 ({out} bytes unpacked from {input}); this looks \
                 like a decompression bomb — raise the ratio limit only if the bundle is trusted",
                self.max_ratio
            )
        } else if out > self.max_output {
            format!(
                "the unpacked stream exceeds {} bytes, more than the size and entry limits allow",
                self.max_output
            )
        } else {
            return Ok(());
        };
        *self.tripped.borrow_mut() = Some(why.clone());
        Err(io::Error::other(why))
    }
}

/// A reader whose output is charged to a [`Budget`].
pub(super) struct Guarded<'b, R> {
    /// The decompressing reader.
    pub(super) inner: R,
    /// Where its output is charged.
    pub(super) budget: &'b Budget,
}

impl<R: Read> Read for Guarded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.budget.spend(n)?;
        Ok(n)
    }
}
