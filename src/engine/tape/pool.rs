//! Reuse of buffers between tapes: a training step allocates the same sizes every time, so
//! the buffers of one step's tape serve the next instead of going back to the allocator
//! (which, for large buffers, means unmapping and refaulting pages on every step).

use crate::engine::tensor::Float;
use std::collections::HashMap;

/// Free buffers by length. Of each length it keeps at most as many buffers as were ever out
/// at once: a buffer allocated elsewhere (a constant built from a fresh `Vec`, say) and given
/// back every step is dropped instead of piling up.
#[derive(Debug, Default)]
pub struct BufferPool<F> {
    free: HashMap<usize, Vec<Vec<F>>>,
    /// Per length: (buffers taken and not yet given back, the most ever out at once).
    out: HashMap<usize, (usize, usize)>,
}

impl<F: Float> BufferPool<F> {
    /// An empty pool.
    pub fn new() -> Self {
        Self {
            free: HashMap::new(),
            out: HashMap::new(),
        }
    }

    fn pop(&mut self, len: usize) -> Option<Vec<F>> {
        let (out, peak) = self.out.entry(len).or_default();
        *out += 1;
        *peak = (*peak).max(*out);
        self.free.get_mut(&len).and_then(Vec::pop)
    }

    /// A buffer of `len` elements whose contents are unspecified (the caller overwrites all).
    pub fn take(&mut self, len: usize) -> Vec<F> {
        self.pop(len).unwrap_or_else(|| vec![F::ZERO; len])
    }

    /// A buffer of `len` zeros.
    pub fn take_zeroed(&mut self, len: usize) -> Vec<F> {
        match self.pop(len) {
            Some(mut v) => {
                crate::engine::kernels::fill(&mut v, F::ZERO);
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

    /// Returns a buffer for reuse (empty ones, and ones beyond what was ever out at once, are
    /// dropped).
    pub fn give(&mut self, v: Vec<F>) {
        if v.is_empty() {
            return;
        }
        let len = v.len();
        let (out, peak) = self.out.get(&len).copied().unwrap_or_default();
        self.out.insert(len, (out.saturating_sub(1), peak));
        let free = self.free.entry(len).or_default();
        if free.len() < peak {
            free.push(v);
        }
    }

    /// Number of elements held.
    pub fn held(&self) -> usize {
        self.free.values().flatten().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again() {
        let mut pool = BufferPool::<f32>::new();
        let v = pool.take(1000);
        let ptr = v.as_ptr();
        pool.give(v);
        let again = pool.take_zeroed(1000);
        assert_eq!(again.as_ptr(), ptr);
    }

    #[test]
    fn buffers_from_elsewhere_do_not_pile_up() {
        let mut pool = BufferPool::<f32>::new();
        pool.give(vec![1.0; 50]);
        assert_eq!(pool.held(), 0, "a length never taken is not kept");
        for _ in 0..100 {
            // A step: three buffers out at once, plus one allocated outside the pool.
            let bufs: Vec<Vec<f32>> = (0..3).map(|_| pool.take(100)).collect();
            bufs.into_iter().for_each(|b| pool.give(b));
            pool.give(vec![0.0; 100]);
        }
        assert_eq!(pool.held(), 300);
    }
}
