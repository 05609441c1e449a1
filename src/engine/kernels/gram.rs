//! The squared distance between the outputs of two dense layers of the same shape, computed
//! from d×d Gram matrices instead of the outputs: a hypernetwork's output regularizer whose
//! cost does not grow with the outputs of every regularized row.
//!
//! With y = x·Wᵀ + b and y_t = x_t·W_tᵀ + b_t (x, x_t [m×k]; W, W_t [n×k]), row i differs by
//!
//! ```text
//! r_i = W δa_i + D a_i + e,   δa_i = x_i − x_t,i,  a_i = x_t,i,  D = W − W_t,  e = b − b_t
//! ‖r_i‖² = δaᵀGδa + 2 δaᵀM a + aᵀH a + 2 δaᵀu + 2 aᵀv + ‖e‖²
//! G = WᵀW, M = WᵀD, H = DᵀD (k×k), u = Wᵀe, v = Dᵀe
//! ```
//!
//! G, M, H, u, v cost O(n k²) once, whatever the number of rows; each row then costs O(k²).
//! Every factor is a small difference (δa, D, e), so nothing cancels catastrophically in f32.
//! The gradients, for an output gradient of 1 (Σ over the rows that reach the element):
//!
//! ```text
//! ∂/∂x_i  = 2 Wᵀr_i = 2 (G δa_i + M a_i + u)            =: 2 y_i
//! ∂/∂x_t,i = −2 W_tᵀr_i = −2 (y_i − y*_i),  y*_i = Dᵀr_i = Mᵀδa_i + H a_i + v
//! ∂/∂W   = 2 Σ r_i x_iᵀ   = 2 ([W | D]·[Σ δa xᵀ; Σ a xᵀ] + e (Σ x)ᵀ)
//! ∂/∂W_t = −2 Σ r_i x_t,iᵀ = −2 ([W | D]·[Σ δa x_tᵀ; Σ a x_tᵀ] + e (Σ x_t)ᵀ)
//! ∂/∂b   = 2 Σ r_i         = 2 ([W | D]·[Σ δa; Σ a] + (rows) e),   ∂/∂b_t = −∂/∂b
//! ```
//!
//! The rows are read in groups (a task's chunks), and only the first `len` elements of each
//! group's flat output are compared: a row is compared whole, on a prefix of its columns (the
//! last, partial chunk) or not at all. All partial rows share one prefix s, so the sums over
//! W's rows are kept apart for rows [0, s) and [s, n): a partial row reads the first part only.
//!
//! The rows of W are cut into blocks dealt to a fixed number of lanes; a lane adds its blocks
//! in order and the lanes are added in lane order, so results do not depend on the number of
//! threads.

use super::gemm;
use crate::engine::tensor::Float;
use rayon::prelude::*;

/// Lanes the blocks of W's rows are dealt to.
const LANES: usize = 8;
/// Columns per strip of the Gram products: a multiple of the product kernels' tiles (16 × 16
/// in f32 with AVX-512, 8 × 8 with AVX2).
const STRIP: usize = 16;

/// The two layers and how their outputs are compared.
#[derive(Clone, Copy, Debug)]
pub struct LayerPair<'a, F> {
    /// Rows of x and x_t.
    pub m: usize,
    /// Inputs per row (columns of x and W).
    pub k: usize,
    /// Outputs per row (rows of W).
    pub n: usize,
    /// x [m×k].
    pub x: &'a [F],
    /// W [n×k].
    pub w: &'a [F],
    /// b \[n\], if any.
    pub b: Option<&'a [F]>,
    /// x_t [m×k].
    pub xt: &'a [F],
    /// W_t [n×k].
    pub wt: &'a [F],
    /// b_t \[n\], if any.
    pub bt: Option<&'a [F]>,
    /// Rows per group (m is a multiple of it).
    pub rows_per_group: usize,
    /// Elements compared per group (≤ rows_per_group · n).
    pub len: usize,
}

/// Where the gradients go (each optional, overwriting what the slice holds), in the shapes of
/// [`LayerPair`]'s inputs.
#[derive(Debug, Default)]
pub struct PairGrads<'g, F> {
    /// ∂/∂x.
    pub x: Option<&'g mut [F]>,
    /// ∂/∂W.
    pub w: Option<&'g mut [F]>,
    /// ∂/∂b.
    pub b: Option<&'g mut [F]>,
    /// ∂/∂x_t.
    pub xt: Option<&'g mut [F]>,
    /// ∂/∂W_t.
    pub wt: Option<&'g mut [F]>,
    /// ∂/∂b_t.
    pub bt: Option<&'g mut [F]>,
}

/// a·b, panicking (at the caller's line) if it overflows `usize`.
#[track_caller]
fn checked(a: usize, b: usize) -> usize {
    match a.checked_mul(b) {
        Some(n) => n,
        None => panic!("factored distance: {a}×{b} elements overflow usize"),
    }
}

/// The rows of one kind (compared whole, or on the prefix): their indices and
/// z = [δa | a] [rows × 2k], δa = x − x_t, a = x_t.
struct RowSet<F> {
    rows: Vec<usize>,
    z: Vec<F>,
}

impl<F: Float> RowSet<F> {
    fn new(rows: Vec<usize>, x: &[F], xt: &[F], k: usize) -> Self {
        let mut z = vec![F::ZERO; rows.len() * 2 * k];
        for (r, &i) in rows.iter().enumerate() {
            let zr = &mut z[r * 2 * k..(r + 1) * 2 * k];
            let (xi, ti) = (&x[i * k..(i + 1) * k], &xt[i * k..(i + 1) * k]);
            for l in 0..k {
                zr[l] = xi[l] - ti[l];
                zr[k + l] = ti[l];
            }
        }
        Self { rows, z }
    }

    /// Column `c0..c0 + k` of z, contiguous [rows × k].
    fn half(&self, c0: usize, k: usize) -> Vec<F> {
        (0..self.rows.len())
            .flat_map(|r| self.z[r * 2 * k + c0..r * 2 * k + c0 + k].iter().copied())
            .collect()
    }

    /// The rows of `src` ([m × k]) at this set's indices, contiguous.
    fn gather(&self, src: &[F], k: usize) -> Vec<F> {
        self.rows
            .iter()
            .flat_map(|&i| src[i * k..(i + 1) * k].iter().copied())
            .collect()
    }
}

/// The sums over a set of rows that the gradients of W, W_t, b and b_t need.
#[derive(Clone)]
struct RowSums<F> {
    /// [Σ δa xᵀ; Σ a xᵀ] [2k × k] (for ∂/∂W).
    zx: Vec<F>,
    /// Σ x \[k\].
    x: Vec<F>,
    /// [Σ δa x_tᵀ; Σ a x_tᵀ] [2k × k] (for ∂/∂W_t).
    zt: Vec<F>,
    /// Σ x_t \[k\].
    t: Vec<F>,
    /// [Σ δa; Σ a] \[2k\] (for ∂/∂b).
    z: Vec<F>,
    /// Number of rows.
    count: F,
}

impl<F: Float> RowSums<F> {
    fn new(set: &RowSet<F>, x: &[F], xt: &[F], k: usize, want: (bool, bool)) -> Self {
        let rows = set.rows.len();
        let col_sums = |v: &[F], width: usize| {
            let mut s = vec![F::ZERO; width];
            for r in v.chunks_exact(width.max(1)) {
                s.iter_mut().zip(r).for_each(|(a, &v)| *a += v);
            }
            s
        };
        let product = |v: &[F]| {
            let mut out = vec![F::ZERO; 2 * k * k];
            if rows == 0 {
                return out;
            }
            gemm(
                2 * k,
                k,
                rows,
                F::ONE,
                &set.z,
                true,
                v,
                false,
                F::ZERO,
                &mut out,
            );
            out
        };
        let (want_w, want_wt) = want;
        let (zx, sx) = if want_w {
            let xs = set.gather(x, k);
            (product(&xs), col_sums(&xs, k))
        } else {
            (Vec::new(), Vec::new())
        };
        let (zt, st) = if want_wt {
            let ts = set.gather(xt, k);
            (product(&ts), col_sums(&ts, k))
        } else {
            (Vec::new(), Vec::new())
        };
        let z = col_sums(&set.z, 2 * k);
        Self {
            zx,
            x: sx,
            zt,
            t: st,
            z,
            count: F::from_f64(rows as f64),
        }
    }

    /// The sums over the union of two disjoint sets.
    fn plus(&self, other: &Self) -> Self {
        let add = |a: &[F], b: &[F]| a.iter().zip(b).map(|(&x, &y)| x + y).collect();
        Self {
            zx: add(&self.zx, &other.zx),
            x: add(&self.x, &other.x),
            zt: add(&self.zt, &other.zt),
            t: add(&self.t, &other.t),
            z: add(&self.z, &other.z),
            count: self.count + other.count,
        }
    }
}

/// The sums over a range of W's rows: [G | M] [k × 2k], H [k × k], [u; v] \[2k\], ‖e‖².
#[derive(Clone)]
struct Gram<F> {
    gm: Vec<F>,
    h: Vec<F>,
    uv: Vec<F>,
    ee: f64,
}

impl<F: Float> Gram<F> {
    fn zeros(k: usize) -> Self {
        Self {
            gm: vec![F::ZERO; 2 * k * k],
            h: vec![F::ZERO; k * k],
            uv: vec![F::ZERO; 2 * k],
            ee: 0.0,
        }
    }

    fn add(&mut self, other: &Self) {
        let add = |a: &mut [F], b: &[F]| a.iter_mut().zip(b).for_each(|(x, &y)| *x += y);
        add(&mut self.gm, &other.gm);
        add(&mut self.h, &other.h);
        add(&mut self.uv, &other.uv);
        self.ee += other.ee;
    }

    /// The sums of width k from the upper strips of Γ = AᵀA [wp × wp] for the rows
    /// A_j = [W_j, e_j, D_j] of a block pass (see [`factored_squared_distance`]): an entry
    /// (r, c) was computed where c's strip of [`STRIP`] columns is not before r's.
    fn from_upper(gamma: &[F], k: usize, wp: usize) -> Self {
        let at = |r: usize, c: usize| {
            if c / STRIP >= r / STRIP {
                gamma[r * wp + c]
            } else {
                gamma[c * wp + r]
            }
        };
        let mut out = Self::zeros(k);
        for i in 0..k {
            for j in 0..k {
                out.gm[i * 2 * k + j] = at(i, j);
                out.gm[i * 2 * k + k + j] = at(i, k + 1 + j);
                out.h[i * k + j] = at(k + 1 + i, k + 1 + j);
            }
            out.uv[i] = at(i, k);
            out.uv[k + i] = at(k, k + 1 + i);
        }
        out.ee = at(k, k).to_f64();
        out
    }

    /// G, M and H as contiguous [k × k] matrices.
    fn split(&self, k: usize) -> (Vec<F>, Vec<F>) {
        let mut g = Vec::with_capacity(k * k);
        let mut m = Vec::with_capacity(k * k);
        for i in 0..k {
            g.extend_from_slice(&self.gm[i * 2 * k..i * 2 * k + k]);
            m.extend_from_slice(&self.gm[i * 2 * k + k..(i + 1) * 2 * k]);
        }
        (g, m)
    }
}

/// C [m × n] (row stride `rsc`) ← α·op(A)·op(B) + β·C with A and B given by strides, on
/// this thread (β = 0: C's content is ignored).
///
/// # Safety
/// Every element (i, l) of A at `a + i·rsa + l·csa` (i < m, l < inner), (l, j) of B at
/// `b + l·rsb + j·csb` and (i, j) of C at `c + i·rsc + j` must lie inside live buffers, and C
/// must not overlap A or B.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_strided<F: Float>(
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
#[derive(Clone, Copy)]
struct Block {
    part: usize,
    j0: usize,
    j1: usize,
}

/// Rows of W per block for n outputs: about 64 blocks, each of 64 to 4096 rows.
fn block_rows(n: usize) -> usize {
    n.div_ceil(64).clamp(64, 4096)
}

/// Σ over groups of ‖the first `len` elements of the group's rows of y − y_t‖², y and y_t
/// the outputs of [`LayerPair`]'s two layers, without making either output; the gradients
/// for an output gradient of 1 are written into `grads` (see the module documentation).
///
/// # Panics
/// If a buffer's length does not match its shape, `rows_per_group` does not divide m, or
/// `len` exceeds a group (a programming error: the op checks its operands first).
#[track_caller]
pub fn factored_squared_distance<F: Float>(p: LayerPair<'_, F>, grads: PairGrads<'_, F>) -> f64 {
    let LayerPair {
        m,
        k,
        n,
        x,
        w,
        b,
        xt,
        wt,
        bt,
        rows_per_group: rpg,
        len,
    } = p;
    assert_eq!(x.len(), checked(m, k), "x is not [{m}×{k}]");
    assert_eq!(xt.len(), checked(m, k), "x_t is not [{m}×{k}]");
    assert_eq!(w.len(), checked(n, k), "W is not [{n}×{k}]");
    assert_eq!(wt.len(), checked(n, k), "W_t is not [{n}×{k}]");
    assert!(b.is_none_or(|b| b.len() == n), "b size");
    assert!(bt.is_none_or(|b| b.len() == n), "b_t size");
    assert!(rpg > 0 && m % rpg == 0, "{m} rows in groups of {rpg}");
    assert!(len <= checked(rpg, n), "len {len} exceeds a group");
    let PairGrads {
        x: gx,
        w: gw,
        b: gb,
        xt: gxt,
        wt: gwt,
        bt: gbt,
    } = grads;
    for (g, l) in [(&gx, m * k), (&gxt, m * k), (&gw, n * k), (&gwt, n * k)] {
        assert!(g.as_ref().is_none_or(|g| g.len() == l), "gradient size");
    }
    for g in [&gb, &gbt] {
        assert!(g.as_ref().is_none_or(|g| g.len() == n), "gradient size");
    }
    let zero_all = |gs: [&mut Option<&mut [F]>; 6]| {
        for g in gs {
            if let Some(g) = g.as_deref_mut() {
                g.fill(F::ZERO);
            }
        }
    };
    let (mut gx, mut gw, mut gb, mut gxt, mut gwt, mut gbt) = (gx, gw, gb, gxt, gwt, gbt);
    if m == 0 || n == 0 {
        zero_all([&mut gx, &mut gw, &mut gb, &mut gxt, &mut gwt, &mut gbt]);
        return 0.0;
    }

    // The rows compared whole, and on the prefix [0, s) of their columns.
    let valid = |i: usize| len.saturating_sub((i % rpg).saturating_mul(n)).min(n);
    let whole: Vec<usize> = (0..m).filter(|&i| valid(i) == n).collect();
    let prefix: Vec<usize> = (0..m).filter(|&i| (1..n).contains(&valid(i))).collect();
    let s = prefix.first().map_or(n, |&i| valid(i));
    let sets = [RowSet::new(whole, x, xt, k), RowSet::new(prefix, x, xt, k)];
    let (want_w, want_wt) = (gw.is_some(), gwt.is_some());
    let want_b = gb.is_some() || gbt.is_some();
    let any_param_grad = want_w || want_wt || want_b;
    // Part 0 (rows [0, s) of W) is read by both kinds of rows, part 1 by whole rows only.
    let parts_active = [
        !(sets[0].rows.is_empty() && sets[1].rows.is_empty()),
        !sets[0].rows.is_empty() && s < n,
    ];
    if !parts_active[0] {
        zero_all([&mut gx, &mut gw, &mut gb, &mut gxt, &mut gwt, &mut gbt]);
        return 0.0;
    }
    let sums: Option<[RowSums<F>; 2]> = any_param_grad.then(|| {
        let want = (want_w, want_wt);
        let whole = RowSums::new(&sets[0], x, xt, k, want);
        let prefix = RowSums::new(&sets[1], x, xt, k, want);
        [whole.plus(&prefix), whole]
    });

    // Blocks of W's rows, part by part, dealt to lanes in order.
    let br = block_rows(n);
    let mut blocks = Vec::new();
    for (part, (lo, hi)) in [(0, s), (s, n)].into_iter().enumerate() {
        if parts_active[part] {
            let mut j0 = lo;
            while j0 < hi {
                let j1 = (j0 + br).min(hi);
                blocks.push(Block { part, j0, j1 });
                j0 = j1;
            }
        }
    }
    let lanes = LANES.min(blocks.len());
    let lane_blocks = |l: usize| &blocks[l * blocks.len() / lanes..(l + 1) * blocks.len() / lanes];
    // Each lane's rows of the gradients of W, W_t, b, b_t (the lanes' rows are contiguous from 0).
    let mut rests = [gw, gwt, gb, gbt];
    let widths = [k, k, 1, 1];
    let mut jobs = Vec::with_capacity(lanes);
    for l in 0..lanes {
        let bl = lane_blocks(l);
        let (r0, r1) = (bl[0].j0, bl[bl.len() - 1].j1);
        let slices: Vec<Option<&mut [F]>> = rests
            .iter_mut()
            .zip(widths)
            .map(|(rest, width)| {
                let whole = rest.take()?;
                let (mine, tail) = whole.split_at_mut((r1 - r0) * width);
                *rest = Some(tail);
                Some(mine)
            })
            .collect();
        jobs.push((bl, r0, slices));
    }
    // Rows of W no block covers (after s, read by no row) have no gradient.
    for rest in rests.iter_mut() {
        if let Some(rest) = rest.take() {
            rest.fill(F::ZERO);
        }
    }
    let two = F::ONE + F::ONE;
    // A block's rows are A_j = [W_j, e_j, D_j, 0…] (2k + 1 values, padded to wp, a multiple of
    // the strips). The upper strips of Γ = AᵀA hold G, u = Wᵀe, M, ‖e‖², v = Dᵀe and H.
    let width = 2 * k + 1;
    let wp = width.next_multiple_of(STRIP);
    // One product A·S makes a block's ∂/∂W and ∂/∂b (or ∂/∂W_t and ∂/∂b_t): S
    // [(2k + 1) × kq] holds [Σ δa xᵀ | Σ δa] in rows 0..k, [Σ xᵀ | count] in row k and
    // [Σ a xᵀ | Σ a] in rows k + 1.. (x_t for W_t), so that row j of A·S is
    // [Σ_i r_ij x_iᵀ | Σ_i r_ij]; kq ≥ k + 1 is a multiple of the strips.
    let kq = (k + 1).next_multiple_of(STRIP);
    let sum_matrix = |zs: &[F], xs: &[F], sums: &RowSums<F>| {
        let mut out = vec![F::ZERO; width * kq];
        for half in 0..2 {
            for i in 0..k {
                let r = if half == 0 { i } else { k + 1 + i };
                let row = &mut out[r * kq..(r + 1) * kq];
                if !zs.is_empty() {
                    row[..k].copy_from_slice(&zs[(half * k + i) * k..(half * k + i + 1) * k]);
                }
                row[k] = sums.z[half * k + i];
            }
        }
        let row = &mut out[k * kq..(k + 1) * kq];
        if !xs.is_empty() {
            row[..k].copy_from_slice(xs);
        }
        row[k] = sums.count;
        out
    };
    let sum_matrices: Option<[[Vec<F>; 2]; 2]> = sums.as_ref().map(|s| {
        [0, 1].map(|p| {
            let s = &s[p];
            [sum_matrix(&s.zx, &s.x, s), sum_matrix(&s.zt, &s.t, s)]
        })
    });
    let lane_grams: Vec<[Vec<F>; 2]> = jobs
        .into_par_iter()
        .map(|(bl, r0, mut slices)| {
            let mut acc = [vec![F::ZERO; wp * wp], vec![F::ZERO; wp * wp]];
            let mut a = vec![F::ZERO; br * wp];
            let mut out = vec![F::ZERO; if any_param_grad { br * kq } else { 0 }];
            for block in bl {
                let rows = block.j1 - block.j0;
                let a = &mut a[..rows * wp];
                let (w_rows, t_rows) = (
                    &w[block.j0 * k..block.j1 * k],
                    &wt[block.j0 * k..block.j1 * k],
                );
                for (r, ar) in a.chunks_exact_mut(wp).enumerate() {
                    let (wj, tj) = (&w_rows[r * k..(r + 1) * k], &t_rows[r * k..(r + 1) * k]);
                    let (aw, rest) = ar.split_at_mut(k);
                    aw.copy_from_slice(wj);
                    let j = block.j0 + r;
                    rest[0] = match (b, bt) {
                        (Some(b), Some(t)) => b[j] - t[j],
                        (Some(b), None) => b[j],
                        (None, Some(t)) => -t[j],
                        (None, None) => F::ZERO,
                    };
                    for ((d, &x), &t) in rest[1..=k].iter_mut().zip(wj).zip(tj) {
                        *d = x - t;
                    }
                }
                let gamma = &mut acc[block.part];
                for s0 in (0..wp).step_by(STRIP) {
                    // SAFETY: a is [rows × wp] row-major: the strip's Aᵀ rows s0..s0 + STRIP
                    // are read at (i, l) ↦ l·wp + s0 + i and A's columns s0..wp at
                    // (l, c) ↦ l·wp + s0 + c, inside a; γ is [wp × wp], a buffer of its own.
                    unsafe {
                        gemm_strided(
                            (STRIP, wp - s0, rows),
                            (F::ONE, F::ONE),
                            a.as_ptr().add(s0),
                            (1, wp),
                            a.as_ptr().add(s0),
                            (wp, 1),
                            gamma.as_mut_ptr().add(s0 * wp + s0),
                            wp,
                        );
                    }
                }
                let Some(matrices) = sum_matrices.as_ref() else {
                    continue;
                };
                let matrices = &matrices[block.part];
                let (o0, o1) = (block.j0 - r0, block.j1 - r0);
                // ±2 A·S: ∂/∂W and ∂/∂b (or ∂/∂W_t and ∂/∂b_t) of these rows, written.
                for (slot, s, sign) in [(0, &matrices[0], two), (1, &matrices[1], -two)] {
                    let bias = slot + 2;
                    if slices[slot].is_none() && slices[bias].is_none() {
                        continue;
                    }
                    let out = &mut out[..rows * kq];
                    // SAFETY: A's first 2k + 1 columns at (l, c) ↦ l·wp + c, S [(2k + 1) × kq]
                    // and out [rows × kq] are inside their buffers; out is its own.
                    unsafe {
                        gemm_strided(
                            (rows, kq, width),
                            (sign, F::ZERO),
                            a.as_ptr(),
                            (wp, 1),
                            s.as_ptr(),
                            (kq, 1),
                            out.as_mut_ptr(),
                            kq,
                        );
                    }
                    if let Some(gm) = slices[slot].as_deref_mut() {
                        let gm = &mut gm[o0 * k..o1 * k];
                        for (gr, or) in gm.chunks_exact_mut(k.max(1)).zip(out.chunks_exact(kq)) {
                            gr.copy_from_slice(&or[..k]);
                        }
                    }
                    if let Some(gb) = slices[bias].as_deref_mut() {
                        let gb = &mut gb[o0..o1];
                        gb.iter_mut()
                            .zip(out.chunks_exact(kq))
                            .for_each(|(g, or)| *g = or[k]);
                    }
                }
            }
            acc
        })
        .collect();
    let mut gammas = [vec![F::ZERO; wp * wp], vec![F::ZERO; wp * wp]];
    for lane in &lane_grams {
        for (g, l) in gammas.iter_mut().zip(lane) {
            g.iter_mut().zip(l).for_each(|(a, &b)| *a += b);
        }
    }
    let grams = gammas.map(|g| Gram::from_upper(&g, k, wp));
    // Whole rows read both parts, prefix rows the first.
    let mut whole_gram = grams[0].clone();
    whole_gram.add(&grams[1]);
    let per_set = [whole_gram, grams[0].clone()];

    // Per row: y = Wᵀr = G δa + M a + u, y* = Dᵀr = Mᵀδa + H a + v, and
    // ‖r‖² = δa·(y + u) + a·(y* + v) + ‖e‖².
    let (mut gx, mut gxt) = (gx, gxt);
    for g in [&mut gx, &mut gxt] {
        if let Some(g) = g.as_deref_mut() {
            g.fill(F::ZERO);
        }
    }
    let mut total = 0.0;
    for (set, gram) in sets.iter().zip(&per_set) {
        let rows = set.rows.len();
        if rows == 0 {
            continue;
        }
        let (g, mm) = gram.split(k);
        let (da, at) = (set.half(0, k), set.half(k, k));
        let mut y = vec![F::ZERO; rows * k];
        let mut ys = vec![F::ZERO; rows * k];
        gemm(rows, k, k, F::ONE, &da, false, &g, true, F::ZERO, &mut y);
        gemm(rows, k, k, F::ONE, &at, false, &mm, true, F::ONE, &mut y);
        gemm(rows, k, k, F::ONE, &da, false, &mm, false, F::ZERO, &mut ys);
        gemm(
            rows,
            k,
            k,
            F::ONE,
            &at,
            false,
            &gram.h,
            true,
            F::ONE,
            &mut ys,
        );
        let (u, v) = gram.uv.split_at(k);
        for (r, &i) in set.rows.iter().enumerate() {
            let (yr, ysr) = (&mut y[r * k..(r + 1) * k], &mut ys[r * k..(r + 1) * k]);
            let (dar, atr) = (&da[r * k..(r + 1) * k], &at[r * k..(r + 1) * k]);
            let mut row = gram.ee;
            for l in 0..k {
                yr[l] += u[l];
                ysr[l] += v[l];
                row += dar[l].to_f64() * (yr[l] + u[l]).to_f64()
                    + atr[l].to_f64() * (ysr[l] + v[l]).to_f64();
            }
            total += row;
            if let Some(g) = gx.as_deref_mut() {
                let g = &mut g[i * k..(i + 1) * k];
                g.iter_mut()
                    .zip(yr.iter())
                    .for_each(|(g, &y)| *g += two * y);
            }
            if let Some(g) = gxt.as_deref_mut() {
                let g = &mut g[i * k..(i + 1) * k];
                for l in 0..k {
                    g[l] -= two * (yr[l] - ysr[l]);
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f64 - 500.0) / 500.0)
            .collect()
    }

    /// Σ over groups of ‖first len of (x Wᵀ + b) − (x_t W_tᵀ + b_t)‖², made whole.
    #[allow(clippy::too_many_arguments)]
    fn direct(
        m: usize,
        k: usize,
        n: usize,
        x: &[f64],
        w: &[f64],
        b: &[f64],
        xt: &[f64],
        wt: &[f64],
        bt: &[f64],
        rpg: usize,
        len: usize,
    ) -> f64 {
        let mut total = 0.0;
        for i in 0..m {
            let r = i % rpg;
            for j in 0..n {
                if r * n + j >= len {
                    continue;
                }
                let y: f64 = (0..k).map(|l| x[i * k + l] * w[j * k + l]).sum::<f64>() + b[j];
                let t: f64 = (0..k).map(|l| xt[i * k + l] * wt[j * k + l]).sum::<f64>() + bt[j];
                total += (y - t) * (y - t);
            }
        }
        total
    }

    #[test]
    fn value_matches_the_outputs_made_whole() {
        for &(m, k, n, rpg, cut) in &[
            (6, 3, 7, 3, 4),
            (4, 2, 500, 2, 0),
            (6, 5, 300, 3, 299),
            (3, 1, 9, 1, 5),
            (8, 4, 700, 4, 1400),
        ] {
            let len = rpg * n - cut;
            let (x, w, b) = (values(m * k, 1), values(n * k, 2), values(n, 3));
            let (xt, wt, bt) = (values(m * k, 4), values(n * k, 5), values(n, 6));
            let p = LayerPair {
                m,
                k,
                n,
                x: &x,
                w: &w,
                b: Some(&b),
                xt: &xt,
                wt: &wt,
                bt: Some(&bt),
                rows_per_group: rpg,
                len,
            };
            let got = factored_squared_distance(p, PairGrads::default());
            let want = direct(m, k, n, &x, &w, &b, &xt, &wt, &bt, rpg, len);
            assert!(
                (got - want).abs() <= 1e-10 * want.max(1.0),
                "{m}×{k}×{n}, groups of {rpg}, len {len}: {got} vs {want}"
            );
        }
    }
}
