//! Numerical kernels with no knowledge of the tape: the matrix product on `matrixmultiply`
//! (transposes by strides, never by copies) and elementwise loops and reductions, spread over
//! the cores with rayon only when the work is large enough to pay for it.
//!
//! Reductions split their input at fixed boundaries and add the partial sums in order, so a
//! result never depends on the number of threads or their timing.

use crate::engine::tensor::Float;
use rayon::prelude::*;

mod dense;
mod gram;
pub use dense::{copy_panel, dense_backward_panels, panel_scratch_len, panels_pay_off, DenseGrads};
pub use gram::{
    factored_squared_distance, factored_squared_distance_with, LayerPair, MakeRows, PairGrads,
    TargetGram, Weights,
};

/// Elementwise loops shorter than this run on one thread.
pub const PARALLEL_MIN_LEN: usize = 1 << 16;
/// Block length of parallel loops and of the fixed split of reductions.
const BLOCK: usize = 1 << 13;

/// C (m×n) ← α·op(A)·op(B) + β·C, all row-major. A is stored m×k, or k×m when `trans_a`
/// (then op(A) = Aᵀ); B is stored k×n, or n×k when `trans_b`. With β = 0, C is overwritten
/// (its old content, even NaN, is ignored).
///
/// # Panics
/// If a buffer is shorter than its shape requires, or a size (m·k, k·n, m·n) overflows
/// `usize` (a programming error): the panic is reported at the caller's line.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn gemm<F: Float>(
    m: usize,
    n: usize,
    k: usize,
    alpha: F,
    a: &[F],
    trans_a: bool,
    b: &[F],
    trans_b: bool,
    beta: F,
    c: &mut [F],
) {
    let threads = rayon::current_num_threads();
    gemm_on(threads, m, n, k, alpha, a, trans_a, b, trans_b, beta, c);
}

/// [`gemm`] on the calling thread only, for products that are themselves one part of a
/// parallel loop.
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub(crate) fn gemm_serial<F: Float>(
    m: usize,
    n: usize,
    k: usize,
    alpha: F,
    a: &[F],
    trans_a: bool,
    b: &[F],
    trans_b: bool,
    beta: F,
    c: &mut [F],
) {
    gemm_on(1, m, n, k, alpha, a, trans_a, b, trans_b, beta, c);
}

/// Checks that a `rows`×`cols` operand fits in a buffer of `len` elements, its size computed
/// without overflow: the bounds check that makes the raw product safe.
#[track_caller]
fn check_operand(what: &str, rows: usize, cols: usize, len: usize) {
    match rows.checked_mul(cols) {
        Some(need) => assert!(
            len >= need,
            "gemm: {what} has {len} elements, needs {rows}×{cols} = {need}"
        ),
        None => panic!("gemm: {what} of {rows}×{cols} elements overflows usize"),
    }
}

/// [`gemm`] split over at most `threads` threads.
#[allow(clippy::too_many_arguments)]
#[track_caller]
fn gemm_on<F: Float>(
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    alpha: F,
    a: &[F],
    trans_a: bool,
    b: &[F],
    trans_b: bool,
    beta: F,
    c: &mut [F],
) {
    check_operand("A", m, k, a.len());
    check_operand("B", k, n, b.len());
    check_operand("C", m, n, c.len());
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = if trans_a { (1, m) } else { (k, 1) };
    let (rsb, csb) = if trans_b { (1, k) } else { (n, 1) };
    let a = StridedMatrix {
        ptr: a.as_ptr(),
        rs: rsa,
        cs: csa,
    };
    let b = StridedMatrix {
        ptr: b.as_ptr(),
        rs: rsb,
        cs: csb,
    };
    let c = OutputMatrix {
        ptr: c.as_mut_ptr(),
        rs: n,
    };
    gemm_split(m, n, k, alpha, a, b, beta, c, threads);
}

/// Products with fewer multiply-adds than this run on one thread.
const PARALLEL_MIN_FLOP: usize = 1 << 21;

/// A read-only strided matrix (pointer into a slice checked by the caller).
#[derive(Clone, Copy)]
struct StridedMatrix<F> {
    ptr: *const F,
    rs: usize,
    cs: usize,
}

/// A row-major output matrix with row stride `rs`.
#[derive(Clone, Copy)]
struct OutputMatrix<F> {
    ptr: *mut F,
    rs: usize,
}

// SAFETY: the pointers come from slices that outlive the call; the recursion hands disjoint
// row or column blocks of C to the two halves, so no element is written by two threads.
unsafe impl<F: Send> Send for StridedMatrix<F> {}
unsafe impl<F: Sync> Sync for StridedMatrix<F> {}
unsafe impl<F: Send> Send for OutputMatrix<F> {}
unsafe impl<F: Sync> Sync for OutputMatrix<F> {}

/// Splits C into `parts` blocks (halving along its longer side, which duplicates the packing
/// of the smaller operand) computed on separate threads; each block is one call of
/// matrixmultiply. The sum over k is never split, so the result does not depend on the
/// number of threads.
#[allow(clippy::too_many_arguments)]
fn gemm_split<F: Float>(
    m: usize,
    n: usize,
    k: usize,
    alpha: F,
    a: StridedMatrix<F>,
    b: StridedMatrix<F>,
    beta: F,
    c: OutputMatrix<F>,
    parts: usize,
) {
    if parts > 1
        && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_FLOP
        && (m >= 16 || n >= 16)
    {
        let (p1, p2) = (parts / 2, parts - parts / 2);
        if m >= n {
            let h = m * p1 / parts;
            // SAFETY: rows 0..h and h..m of A and C are in bounds and disjoint in C.
            let (a2, c2) = unsafe {
                (
                    StridedMatrix {
                        ptr: a.ptr.add(h * a.rs),
                        ..a
                    },
                    OutputMatrix {
                        ptr: c.ptr.add(h * c.rs),
                        ..c
                    },
                )
            };
            rayon::join(
                || gemm_split(h, n, k, alpha, a, b, beta, c, p1),
                || gemm_split(m - h, n, k, alpha, a2, b, beta, c2, p2),
            );
        } else {
            let h = n * p1 / parts;
            // SAFETY: columns 0..h and h..n of B and C are in bounds and disjoint in C.
            let (b2, c2) = unsafe {
                (
                    StridedMatrix {
                        ptr: b.ptr.add(h * b.cs),
                        ..b
                    },
                    OutputMatrix {
                        ptr: c.ptr.add(h),
                        ..c
                    },
                )
            };
            rayon::join(
                || gemm_split(m, h, k, alpha, a, b, beta, c, p1),
                || gemm_split(m, n - h, k, alpha, a, b2, beta, c2, p2),
            );
        }
        return;
    }
    // SAFETY: the caller checked that every (row, col) reached through these strides lies
    // inside its slice, and blocks of C handed to different threads are disjoint.
    unsafe {
        F::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.ptr,
            a.rs as isize,
            a.cs as isize,
            b.ptr,
            b.rs as isize,
            b.cs as isize,
            beta,
            c.ptr,
            c.rs as isize,
            1,
        );
    }
}

/// `dst[i] = f(src[i])`.
pub fn map<F: Float>(src: &[F], dst: &mut [F], f: impl Fn(F) -> F + Sync) {
    assert_eq!(src.len(), dst.len());
    if dst.len() >= PARALLEL_MIN_LEN {
        dst.par_chunks_mut(BLOCK)
            .zip(src.par_chunks(BLOCK))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, &s)| *d = f(s)));
    } else {
        dst.iter_mut().zip(src).for_each(|(d, &s)| *d = f(s));
    }
}

/// `dst[i] = f(a[i], b[i])`.
pub fn zip_map<F: Float>(a: &[F], b: &[F], dst: &mut [F], f: impl Fn(F, F) -> F + Sync) {
    update2(dst, a, b, |_, a, b| f(a, b));
}

/// `dst[i] = f(dst[i], a[i])`: accumulation in place.
pub fn update<F: Float>(dst: &mut [F], a: &[F], f: impl Fn(F, F) -> F + Sync) {
    assert_eq!(a.len(), dst.len());
    if dst.len() >= PARALLEL_MIN_LEN {
        dst.par_chunks_mut(BLOCK)
            .zip(a.par_chunks(BLOCK))
            .for_each(|(d, a)| d.iter_mut().zip(a).for_each(|(d, &a)| *d = f(*d, a)));
    } else {
        dst.iter_mut().zip(a).for_each(|(d, &a)| *d = f(*d, a));
    }
}

/// `dst[i] = f(dst[i], a[i], b[i])`: accumulation of a two-input rule in place.
pub fn update2<F: Float>(dst: &mut [F], a: &[F], b: &[F], f: impl Fn(F, F, F) -> F + Sync) {
    assert_eq!(a.len(), dst.len());
    assert_eq!(b.len(), dst.len());
    if dst.len() >= PARALLEL_MIN_LEN {
        dst.par_chunks_mut(BLOCK)
            .zip(a.par_chunks(BLOCK).zip(b.par_chunks(BLOCK)))
            .for_each(|(d, (a, b))| {
                for ((d, &a), &b) in d.iter_mut().zip(a).zip(b) {
                    *d = f(*d, a, b);
                }
            });
    } else {
        for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
            *d = f(*d, a, b);
        }
    }
}

/// `dst[i] = value`.
pub fn fill<F: Float>(dst: &mut [F], value: F) {
    if dst.len() >= PARALLEL_MIN_LEN {
        dst.par_chunks_mut(BLOCK).for_each(|d| d.fill(value));
    } else {
        dst.fill(value);
    }
}

/// `dst[i] += src[i]`.
pub fn add_assign<F: Float>(dst: &mut [F], src: &[F]) {
    update(dst, src, |d, s| d + s);
}

/// Σᵢ f(xᵢ) accumulated in f64 over a fixed split: the same result for any thread count.
/// The sum of nothing is +0.
pub fn sum_map<F: Float>(x: &[F], f: impl Fn(F) -> f64 + Sync) -> f64 {
    if x.is_empty() {
        return 0.0; // not the −0 of an empty `Iterator::sum` of floats
    }
    let block_sum = |b: &[F]| b.iter().map(|&v| f(v)).sum::<f64>();
    if x.len() >= PARALLEL_MIN_LEN {
        let partial: Vec<f64> = x.par_chunks(BLOCK).map(block_sum).collect();
        partial.iter().sum()
    } else {
        x.chunks(BLOCK).map(block_sum).sum()
    }
}

/// Σᵢ f(aᵢ, bᵢ) accumulated in f64 over a fixed split. The sum of nothing is +0.
pub fn sum_zip<F: Float>(a: &[F], b: &[F], f: impl Fn(F, F) -> f64 + Sync) -> f64 {
    assert_eq!(a.len(), b.len());
    if a.is_empty() {
        return 0.0;
    }
    let block_sum = |(a, b): (&[F], &[F])| a.iter().zip(b).map(|(&x, &y)| f(x, y)).sum::<f64>();
    if a.len() >= PARALLEL_MIN_LEN {
        let partial: Vec<f64> = a
            .par_chunks(BLOCK)
            .zip(b.par_chunks(BLOCK))
            .map(block_sum)
            .collect();
        partial.iter().sum()
    } else {
        a.chunks(BLOCK).zip(b.chunks(BLOCK)).map(block_sum).sum()
    }
}

/// d ← s·(d − t), returning Σ (d − t)² in f64; t = 0 where `t` is `None`. Eight interleaved
/// partial sums, added in a fixed order, so the loop vectorizes and the result is
/// reproducible. One thread.
pub fn sub_scale_sum_squares<F: Float>(d: &mut [F], t: Option<&[F]>, s: F) -> f64 {
    match t {
        Some(t) => {
            assert_eq!(d.len(), t.len());
            sub_scale_sum_squares_of(d, t, s)
        }
        None => {
            const ZEROS: usize = 512;
            let zeros = [F::ZERO; ZEROS];
            d.chunks_mut(ZEROS)
                .map(|d| sub_scale_sum_squares_of(d, &zeros[..d.len()], s))
                .sum()
        }
    }
}

/// [`sub_scale_sum_squares`] with t given.
fn sub_scale_sum_squares_of<F: Float>(d: &mut [F], t: &[F], s: F) -> f64 {
    let mut acc = [0.0f64; 8];
    let mut dc = d.chunks_exact_mut(8);
    let mut tc = t.chunks_exact(8);
    for (d8, t8) in (&mut dc).zip(&mut tc) {
        for i in 0..8 {
            let v = d8[i] - t8[i];
            acc[i] += v.to_f64() * v.to_f64();
            d8[i] = s * v;
        }
    }
    for (x, &y) in dc.into_remainder().iter_mut().zip(tc.remainder()) {
        let v = *x - y;
        acc[0] += v.to_f64() * v.to_f64();
        *x = s * v;
    }
    acc.iter().sum()
}

/// `d[i] −= t[i]`, returning Σᵢ d\[i\]² (after the subtraction) in f64 over a fixed split: one
/// pass over both buffers.
pub fn sub_assign_sum_squares<F: Float>(d: &mut [F], t: &[F]) -> f64 {
    assert_eq!(d.len(), t.len());
    let block = |(d, t): (&mut [F], &[F])| sub_scale_sum_squares_of(d, t, F::ONE);
    if d.len() >= PARALLEL_MIN_LEN {
        let partial: Vec<f64> = d
            .par_chunks_mut(BLOCK)
            .zip(t.par_chunks(BLOCK))
            .map(block)
            .collect();
        partial.iter().sum()
    } else {
        d.chunks_mut(BLOCK).zip(t.chunks(BLOCK)).map(block).sum()
    }
}

/// Σᵢ xᵢ in f64 over a fixed split.
pub fn sum<F: Float>(x: &[F]) -> f64 {
    sum_map(x, |v| v.to_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_small_all_transposes() {
        // A = [[1,2,3],[4,5,6]] (2×3), B = [[1,0],[0,1],[1,1]] (3×2): A·B = [[4,5],[10,11]].
        let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let at = [1.0f64, 4.0, 2.0, 5.0, 3.0, 6.0];
        let b = [1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0];
        let bt = [1.0f64, 0.0, 1.0, 0.0, 1.0, 1.0];
        for (aa, ta) in [(&a, false), (&at, true)] {
            for (bb, tb) in [(&b, false), (&bt, true)] {
                let mut c = [f64::NAN; 4];
                gemm(2, 2, 3, 1.0, aa, ta, bb, tb, 0.0, &mut c);
                assert_eq!(c, [4.0, 5.0, 10.0, 11.0], "trans_a={ta} trans_b={tb}");
            }
        }
    }

    #[test]
    fn reductions_do_not_depend_on_the_split() {
        let x: Vec<f32> = (0..200_003)
            .map(|i| ((i * 7919) % 1000) as f32 * 1e-3)
            .collect();
        let serial: f64 = x
            .chunks(BLOCK)
            .map(|b| b.iter().map(|&v| f64::from(v)).sum::<f64>())
            .sum();
        assert_eq!(sum(&x), serial);
    }
}
