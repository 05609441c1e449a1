//! Reuse of buffers between tapes: a training step allocates the same sizes every time, so
//! the buffers of one step's tape serve the next instead of going back to the allocator
//! (which, for large buffers, means unmapping and refaulting pages on every step).

use crate::tensor::Float;
use std::collections::HashMap;

/// Free buffers by length.
#[derive(Debug, Default)]
pub struct BufferPool<F> {
    free: HashMap<usize, Vec<Vec<F>>>,
}

impl<F: Float> BufferPool<F> {
    /// An empty pool.
    pub fn new() -> Self {
        Self {
            free: HashMap::new(),
        }
    }

    /// A buffer of `len` elements whose contents are unspecified (the caller overwrites all).
    pub fn take(&mut self, len: usize) -> Vec<F> {
        match self.free.get_mut(&len).and_then(Vec::pop) {
            Some(v) => v,
            None => vec![F::ZERO; len],
        }
    }

    /// A buffer of `len` zeros.
    pub fn take_zeroed(&mut self, len: usize) -> Vec<F> {
        match self.free.get_mut(&len).and_then(Vec::pop) {
            Some(mut v) => {
                crate::kernels::fill(&mut v, F::ZERO);
                v
            }
            None => vec![F::ZERO; len],
        }
    }

    /// A copy of `src` in a pooled buffer.
    pub fn take_copy(&mut self, src: &[F]) -> Vec<F> {
        let mut v = self.take(src.len());
        v.copy_from_slice(src);
        v
    }

    /// Returns a buffer for reuse (empty ones are dropped).
    pub fn give(&mut self, v: Vec<F>) {
        if !v.is_empty() {
            self.free.entry(v.len()).or_default().push(v);
        }
    }

    /// Number of elements held.
    pub fn held(&self) -> usize {
        self.free.values().flatten().map(Vec::len).sum()
    }
}
