//! The pass over W's rows: blocks of rows B_j = [W*_j | δW_j | e_j] (W* = W_t, δW = W − W_t,
//! e = b − b_t), dealt to a fixed number of lanes. Per block, on the register-tiled kernels of
//! [`super::tile`]: O += Bᵀ·B[:, c0..] (c0 = k when G* = W*ᵀW* is given, else 0), which holds
//! X = W*ᵀ[W* | δW | e] (k × (2k + 1), without its first k columns when G* is given) and
//! Y = [δW | e]ᵀ[δW | e] ((k + 1) × (k + 1)), and the block's gradient rows ±2 B·S. A lane
//! adds its blocks' rows in order and the lanes are added in lane order, so the sums do not
//! depend on the number of threads; the kernels' paths (portable, AVX2 + FMA, AVX-512F) give
//! the same bits, so they do not depend on the processor either.

use super::tile::{self, Layout, Path};
use super::Weights;
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

/// S [(2k + 1) × (k + 1)] (see [`super::rows::RowSums::matrix`]): its first k columns make
/// the weights' gradient rows, its last the bias gradient's.
pub(super) type SumMatrix<F> = Vec<F>;

/// What the pass reads.
pub(super) struct PassInput<'a, F> {
    pub(super) k: usize,
    pub(super) w: Weights<'a, F>,
    pub(super) b: Option<&'a [F]>,
    pub(super) wt: &'a [F],
    pub(super) bt: Option<&'a [F]>,
    /// G* is given: X's first k columns are not computed.
    pub(super) have_gstar: bool,
    /// Per part: [S for ∂/∂W and ∂/∂b, S for ∂/∂W_t and ∂/∂b_t].
    pub(super) s: Option<[[SumMatrix<F>; 2]; 2]>,
    /// `Some(factor)`: ∂/∂W's and ∂/∂b's rows hold a gradient, g ← g + factor·∂ in place.
    pub(super) add_onto: Option<F>,
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
    run_on(Path::detected(), input, jobs)
}

/// [`run`] on the given path of the kernels.
pub(super) fn run_on<F: Float>(
    path: Path,
    input: &PassInput<'_, F>,
    jobs: Vec<Job<'_, '_, F>>,
) -> [PartSums<F>; 2] {
    let k = input.k;
    let width = 2 * k + 1;
    let kq = k + 1;
    let two = F::ONE + F::ONE;
    let c0 = if input.have_gstar { k } else { 0 };
    let layout = Layout::new::<F>(width, c0);
    let ws = layout.ws;
    // S per part and slot, in the gradient kernel's column tiles.
    let packed_s: Option<[[Vec<F>; 2]; 2]> = input.s.as_ref().map(|parts| {
        parts
            .each_ref()
            .map(|slots| slots.each_ref().map(|s| tile::pack_s(s, width, kq, kq)))
    });
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
            let mut acc = [0, 1].map(|_| vec![F::ZERO; layout.out_len::<F>()]);
            // Past each row's width, and in the rows past a block's, zeros or stale values
            // that no kept result reads.
            let mut a = vec![F::ZERO; max_rows.next_multiple_of(tile::RJ) * ws];
            // The block's rows of W when they are made, not stored.
            let mut made = match input.w {
                Weights::Stored(_) => Vec::new(),
                Weights::Made(_) => vec![F::ZERO; max_rows * k],
            };
            // The block's ∂/∂W and ∂/∂b before they are added onto the gradients' rows.
            let (mut scratch_w, mut scratch_b) = match input.add_onto {
                Some(_) => (vec![F::ZERO; max_rows * k], vec![F::ZERO; max_rows]),
                None => (Vec::new(), Vec::new()),
            };
            for block in blocks {
                let rows = block.j1 - block.j0;
                let (o0, o1) = (block.j0 - r0, block.j1 - r0);
                let w_rows: &[F] = match input.w {
                    Weights::Stored(w) => &w[block.j0 * k..block.j1 * k],
                    Weights::Made(make) => {
                        let out = &mut made[..rows * k];
                        let [gw, ..] = &grads;
                        let g = gw.as_deref().map_or(&[][..], |g| &g[o0 * k..o1 * k]);
                        make(block.j0 * k, g, out);
                        out
                    }
                };
                let t_rows = &input.wt[block.j0 * k..block.j1 * k];
                for (r, ar) in a.chunks_exact_mut(ws).take(rows).enumerate() {
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
                tile::gram(path, &layout, &a, rows, &mut acc[block.part]);
                let Some(matrices) = packed_s.as_ref() else {
                    continue;
                };
                let matrices = &matrices[block.part];
                // ±2 B·S: ∂/∂W and ∂/∂b (or ∂/∂W_t and ∂/∂b_t) of these rows, written, or
                // with add_onto added onto ∂/∂W and ∂/∂b.
                for (slot, sign) in [(0, two), (1, -two)] {
                    let (gm, gb) = {
                        let [gw, gwt, gb, gbt] = &mut grads;
                        match slot {
                            0 => (gw, gb),
                            _ => (gwt, gbt),
                        }
                    };
                    if gm.is_none() && gb.is_none() {
                        continue;
                    }
                    let gm = gm.as_deref_mut().map(|g| &mut g[o0 * k..o1 * k]);
                    let gb = gb.as_deref_mut().map(|g| &mut g[o0..o1]);
                    // With add_onto, ∂ goes to the lane's scratch and g ← g + factor·∂ follows
                    // while the rows are in cache (slot 0 only: checked); else ∂ goes into g.
                    let (has_w, has_b) = (gm.is_some(), gb.is_some());
                    let (add_w, add_b, kernel_w, kernel_b) = match input.add_onto {
                        Some(_) => (
                            gm,
                            gb,
                            has_w.then(|| &mut scratch_w[..rows * k]),
                            has_b.then(|| &mut scratch_b[..rows]),
                        ),
                        None => (None, None, gm, gb),
                    };
                    tile::grad_rows(
                        path,
                        (width, ws, k),
                        &a,
                        rows,
                        &matrices[slot],
                        sign,
                        kernel_w,
                        kernel_b,
                    );
                    if let Some(factor) = input.add_onto {
                        for (g, d) in [(add_w, &scratch_w[..rows * k]), (add_b, &scratch_b[..rows])]
                        {
                            if let Some(g) = g {
                                g.iter_mut().zip(d).for_each(|(g, &d)| *g += factor * d);
                            }
                        }
                    }
                }
            }
            acc.map(|o| sums_of(&o, &layout, k, layout.out_cols::<F>()))
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

/// X and Y read from O = Bᵀ·B[:, c0..] (`oc` columns): X's column c ≥ c0 of row i is
/// O[i][c − c0], Y[a][b] = O[k + a][k + b − c0].
fn sums_of<F: Float>(o: &[F], l: &Layout, k: usize, oc: usize) -> PartSums<F> {
    let (width, kq) = (2 * k + 1, k + 1);
    let mut sums = PartSums::zeros(k);
    for i in 0..k {
        for c in l.c0..width {
            sums.x[i * width + c] = o[i * oc + c - l.c0];
        }
    }
    for a in 0..kq {
        for b in 0..kq {
            sums.y[a * kq + b] = o[(k + a) * oc + k + b - l.c0];
        }
    }
    sums
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
