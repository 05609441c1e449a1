//! The pass over W's rows: blocks of rows B_j = [W*_j | δW_j | e_j] (W* = W_t, δW = W − W_t,
//! e = b − b_t), dealt to a fixed number of lanes. Per block, on `matrixmultiply`:
//! X += W*ᵀ[W* | δW | e] (k × (2k + 1); without its first k columns when G* = W*ᵀW* is
//! given), Y += [δW | e]ᵀ[δW | e] ((k + 1) × (k + 1)) and the block's gradient rows ±2 B·S.
//! A lane adds its blocks in order and the lanes are added in lane order, so the sums do not
//! depend on the number of threads.

use crate::engine::tensor::Float;
use rayon::prelude::*;

/// Lanes the blocks of W's rows are dealt to.
const LANES: usize = 8;

/// C [m × n] (row stride `rsc`) ← α·op(A)·op(B) + β·C with A and B given by strides, on
/// this thread (β = 0: C's content is ignored).
///
/// # Safety
/// Every element (i, l) of A at `a + i·rsa + l·csa` (i < m, l < inner), (l, j) of B at
/// `b + l·rsb + j·csb` and (i, j) of C at `c + i·rsc + j` must lie inside live buffers, and C
/// must not overlap A or B.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_strided<F: Float>(
    (m, n, inner): (usize, usize, usize),
    (alpha, beta): (F, F),
    a: *const F,
    (rsa, csa): (usize, usize),
    b: *const F,
    (rsb, csb): (usize, usize),
    c: *mut F,
    rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    F::gemm_raw(
        m,
        inner,
        n,
        alpha,
        a,
        rsa as isize,
        csa as isize,
        b,
        rsb as isize,
        csb as isize,
        beta,
        c,
        rsc as isize,
        1,
    );
}

/// One block of W's rows: rows j0..j1, of part `part` (0: [0, s), 1: [s, n)).
#[derive(Clone, Copy, Debug)]
pub(super) struct Block {
    pub(super) part: usize,
    pub(super) j0: usize,
    pub(super) j1: usize,
}

/// Rows of W per block for n outputs: about 64 blocks, each of 64 to 4096 rows.
pub(super) fn block_rows(n: usize) -> usize {
    n.div_ceil(64).clamp(64, 4096)
}

/// The blocks of rows [0, s) (if `active[0]`) and [s, n) (if `active[1]`), in order.
pub(super) fn blocks(n: usize, s: usize, active: [bool; 2]) -> Vec<Block> {
    let br = block_rows(n);
    let mut out = Vec::new();
    for (part, (lo, hi)) in [(0, s), (s, n)].into_iter().enumerate() {
        if active[part] {
            let mut j0 = lo;
            while j0 < hi {
                let j1 = (j0 + br).min(hi);
                out.push(Block { part, j0, j1 });
                j0 = j1;
            }
        }
    }
    out
}

/// The sums of one part of W's rows.
#[derive(Clone, Debug)]
pub(super) struct PartSums<F> {
    /// X = W*ᵀ[W* | δW | e] [k × (2k + 1)] (its first k columns, G*, only if computed here).
    pub(super) x: Vec<F>,
    /// Y = [δW | e]ᵀ[δW | e] [(k + 1) × (k + 1)].
    pub(super) y: Vec<F>,
}

impl<F: Float> PartSums<F> {
    fn zeros(k: usize) -> Self {
        Self {
            x: vec![F::ZERO; k * (2 * k + 1)],
            y: vec![F::ZERO; (k + 1) * (k + 1)],
        }
    }

    fn add(&mut self, other: &Self) {
        let add = |a: &mut [F], b: &[F]| a.iter_mut().zip(b).for_each(|(x, &y)| *x += y);
        add(&mut self.x, &other.x);
        add(&mut self.y, &other.y);
    }
}

/// S [(2k + 1) × (k + 1)] (see [`super::rows::RowSums::matrix`]) and its last column (the
/// bias gradient's), contiguous.
pub(super) type SumMatrix<F> = (Vec<F>, Vec<F>);

/// What the pass reads.
pub(super) struct PassInput<'a, F> {
    pub(super) k: usize,
    pub(super) w: &'a [F],
    pub(super) b: Option<&'a [F]>,
    pub(super) wt: &'a [F],
    pub(super) bt: Option<&'a [F]>,
    /// G* is given: X's first k columns are not computed.
    pub(super) have_gstar: bool,
    /// Per part: [S for ∂/∂W and ∂/∂b, S for ∂/∂W_t and ∂/∂b_t].
    pub(super) s: Option<[[SumMatrix<F>; 2]; 2]>,
}

/// A lane's blocks and its rows of the gradients of W, W_t, b, b_t (`None`: not wanted),
/// which start at the lane's first row `r0`.
pub(super) struct Job<'b, 'g, F> {
    pub(super) blocks: &'b [Block],
    pub(super) r0: usize,
    pub(super) grads: [Option<&'g mut [F]>; 4],
}

/// Runs the jobs (one per lane, in parallel) and returns the sums of each part, lanes added
/// in order.
pub(super) fn run<F: Float>(
    input: &PassInput<'_, F>,
    jobs: Vec<Job<'_, '_, F>>,
) -> [PartSums<F>; 2] {
    let k = input.k;
    let width = 2 * k + 1;
    let kq = k + 1;
    let two = F::ONE + F::ONE;
    let max_rows = jobs
        .iter()
        .flat_map(|j| j.blocks.iter().map(|b| b.j1 - b.j0))
        .max()
        .unwrap_or(0);
    let lane_sums: Vec<[PartSums<F>; 2]> = jobs
        .into_par_iter()
        .map(|job| {
            let Job {
                blocks,
                r0,
                mut grads,
            } = job;
            let mut acc: [PartSums<F>; 2] = [PartSums::zeros(k), PartSums::zeros(k)];
            let mut a = vec![F::ZERO; max_rows * width];
            for block in blocks {
                let rows = block.j1 - block.j0;
                let a = &mut a[..rows * width];
                let (w_rows, t_rows) = (
                    &input.w[block.j0 * k..block.j1 * k],
                    &input.wt[block.j0 * k..block.j1 * k],
                );
                for (r, ar) in a.chunks_exact_mut(width).enumerate() {
                    let (wj, tj) = (&w_rows[r * k..(r + 1) * k], &t_rows[r * k..(r + 1) * k]);
                    let (star, rest) = ar.split_at_mut(k);
                    let (dw, e) = rest.split_at_mut(k);
                    for l in 0..k {
                        star[l] = tj[l];
                        dw[l] = wj[l] - tj[l];
                    }
                    let j = block.j0 + r;
                    e[0] = match (input.b, input.bt) {
                        (Some(b), Some(t)) => b[j] - t[j],
                        (Some(b), None) => b[j],
                        (None, Some(t)) => -t[j],
                        (None, None) => F::ZERO,
                    };
                }
                let sums = &mut acc[block.part];
                let c0 = if input.have_gstar { k } else { 0 };
                // SAFETY: a is [rows × width] row-major: W*ᵀ's (i, l) at l·width + i, the
                // columns c0.. at (l, c) ↦ l·width + c0 + c, [δW | e]'s at l·width + k + c;
                // X [k × width] and Y [kq × kq] are buffers of their own.
                unsafe {
                    gemm_strided(
                        (k, width - c0, rows),
                        (F::ONE, F::ONE),
                        a.as_ptr(),
                        (1, width),
                        a.as_ptr().add(c0),
                        (width, 1),
                        sums.x.as_mut_ptr().add(c0),
                        width,
                    );
                    gemm_strided(
                        (kq, kq, rows),
                        (F::ONE, F::ONE),
                        a.as_ptr().add(k),
                        (1, width),
                        a.as_ptr().add(k),
                        (width, 1),
                        sums.y.as_mut_ptr(),
                        kq,
                    );
                }
                let Some(matrices) = input.s.as_ref() else {
                    continue;
                };
                let matrices = &matrices[block.part];
                let (o0, o1) = (block.j0 - r0, block.j1 - r0);
                // ±2 B·S: ∂/∂W and ∂/∂b (or ∂/∂W_t and ∂/∂b_t) of these rows, written; the
                // weights' part straight into the gradient, the bias column row by row.
                for (slot, sign) in [(0, two), (1, -two)] {
                    let bias = slot + 2;
                    let (s, s_bias) = (&matrices[slot].0, &matrices[slot].1);
                    if let Some(gm) = grads[slot].as_deref_mut() {
                        let gm = &mut gm[o0 * k..o1 * k];
                        // SAFETY: B [rows × width], S's first k columns [width × k] (row
                        // stride kq) and the block's rows of ∂/∂W [rows × k] are inside their
                        // buffers; the gradient is a buffer of its own.
                        unsafe {
                            gemm_strided(
                                (rows, k, width),
                                (sign, F::ZERO),
                                a.as_ptr(),
                                (width, 1),
                                s.as_ptr(),
                                (kq, 1),
                                gm.as_mut_ptr(),
                                k,
                            );
                        }
                    }
                    if let Some(gb) = grads[bias].as_deref_mut() {
                        let gb = &mut gb[o0..o1];
                        for (g, row) in gb.iter_mut().zip(a.chunks_exact(width)) {
                            *g = sign * dot(row, s_bias);
                        }
                    }
                }
            }
            acc
        })
        .collect();
    let mut total = [PartSums::zeros(k), PartSums::zeros(k)];
    for lane in &lane_sums {
        for (t, l) in total.iter_mut().zip(lane) {
            t.add(l);
        }
    }
    total
}

/// Σ a_i b_i in eight interleaved partial sums added in a fixed order (vectorizable, and the
/// same on every machine for a given length).
#[inline]
fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    let mut acc = [F::ZERO; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = F::ZERO;
    for (&x, &y) in ta.iter().zip(tb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Deals `blocks` to at most [`LANES`] lanes in order: the block ranges of each lane.
pub(super) fn lanes(blocks: usize) -> Vec<std::ops::Range<usize>> {
    let lanes = LANES.min(blocks);
    (0..lanes)
        .map(|l| l * blocks / lanes..(l + 1) * blocks / lanes)
        .collect()
}

/// G* = W_tᵀW_t [k × k] over rows [j0, j1) of W_t [n × k], block by block in order.
pub(super) fn target_gram_of<F: Float>(wt: &[F], k: usize, parts: &[Block]) -> Vec<F> {
    let mut g = vec![F::ZERO; k * k];
    for block in parts {
        let rows = block.j1 - block.j0;
        let t = &wt[block.j0 * k..block.j1 * k];
        // SAFETY: t is [rows × k] row-major (Tᵀ's (i, l) at l·k + i); g is [k × k], its own.
        unsafe {
            gemm_strided(
                (k, k, rows),
                (F::ONE, F::ONE),
                t.as_ptr(),
                (1, k),
                t.as_ptr(),
                (k, 1),
                g.as_mut_ptr(),
                k,
            );
        }
    }
    g
}
