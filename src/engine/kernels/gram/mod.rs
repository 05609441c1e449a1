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
//! The pass over W's rows ([`pass`]) reads them as B_j = [W*_j | δW_j | e_j] with W* = W_t,
//! δW = W − W_t and writes r_ij = W*_j δa_i + δW_j x_i + e_j: it makes
//! K = W*ᵀδW, p = W*ᵀe, H = δWᵀδW, v = δWᵀe, ‖e‖² and G* = W*ᵀW* (or takes G* from a
//! [`TargetGram`], computed once for a target that does not change between calls), and each
//! row of ∂/∂W as one product of B with a (2k + 1) × (k + 1) matrix of row sums. Per row,
//! with y* = W*ᵀr_i = G* δa_i + K x_i + p and y_δ = δWᵀr_i = Kᵀδa_i + H x_i + v:
//! ‖r_i‖² = δa_i·(y* + p) + x_i·(y_δ + v) + ‖e‖², ∂/∂x_i = 2 (y* + y_δ), ∂/∂x_t,i = −2 y*.
//! The rows of W are cut into blocks dealt to a fixed number of lanes; a lane adds its blocks
//! in order and the lanes are added in lane order, so results do not depend on the number of
//! threads.

mod pass;
mod rows;
#[cfg(test)]
mod tests;
mod tile;

use super::gemm;
use crate::engine::tensor::Float;
use pass::{Block, Job, PassInput};
use rows::{RowSet, RowSums};

/// `make(start, g, out)`: see [`Weights::Made`].
pub type MakeRows<'a, F> = dyn Fn(usize, &[F], &mut [F]) + Sync + 'a;

/// The rows of W: stored, or made a range at a time while the pass reads them.
#[derive(Clone, Copy)]
pub enum Weights<'a, F> {
    /// W [n×k], row-major.
    Stored(&'a [F]),
    /// `make(start, g, out)` writes the flat elements `start..start + out.len()` of W [n×k]
    /// into `out`; the pass asks for each block of rows once. `g` is the same range of the
    /// ∂/∂W buffer as it holds before the pass writes there (with [`PairGrads::add_onto`], the
    /// gradient ∂ is added onto), or empty if no ∂/∂W is wanted. For a W never stored whole,
    /// such as θ + Δθ of a look-ahead, made from θ, the gradient and the optimizer's state as
    /// they are read.
    Made(&'a MakeRows<'a, F>),
}

impl<F> std::fmt::Debug for Weights<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stored(w) => write!(f, "Stored({} values)", w.len()),
            Self::Made(_) => f.write_str("Made(..)"),
        }
    }
}

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
    pub w: Weights<'a, F>,
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

/// Where the gradients go (each optional, overwriting what the slice holds, but see
/// [`PairGrads::add_onto`]), in the shapes of [`LayerPair`]'s inputs.
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
    /// `Some(factor)`: W's and b's slices hold a gradient other terms made, and the pass
    /// adds onto it in place, g ← g + factor · ∂, instead of writing ∂: the gradient of a loss
    /// `factor` times this distance, in the pass that makes ∂ (no second pass over W, no
    /// second buffer). Needs `w`, and no ∂/∂W_t or ∂/∂b_t.
    pub add_onto: Option<F>,
}

/// G* = W_tᵀW_t of a target layer W_t [n × k], over the rows [0, s) and [s, n) apart, s the
/// columns a group's cut last row compares (`len` mod n, or n if no row is cut): what
/// [`factored_squared_distance_with`] would otherwise compute in every call. O(n·k²) once.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetGram<F> {
    n: usize,
    k: usize,
    s: usize,
    parts: [Vec<F>; 2],
}

/// The columns the cut last row of a group of `len` elements compares: `len` mod n, or n.
fn split_of(n: usize, len: usize) -> usize {
    match len % n.max(1) {
        0 => n,
        s => s,
    }
}

impl<F: Float> TargetGram<F> {
    /// G* of `wt` [n × k] for groups comparing `len` elements.
    ///
    /// # Panics
    /// If `wt` is not [n × k].
    #[track_caller]
    pub fn new(wt: &[F], n: usize, k: usize, len: usize) -> Self {
        assert_eq!(wt.len(), checked(n, k), "W_t is not [{n}×{k}]");
        let s = split_of(n, len);
        let blocks = pass::blocks(n, s, [true, true]);
        let parts = [0, 1].map(|p| {
            let mine: Vec<Block> = blocks.iter().copied().filter(|b| b.part == p).collect();
            pass::target_gram_of(wt, k, &mine)
        });
        Self { n, k, s, parts }
    }

    /// Values it holds (2·k²).
    pub fn len(&self) -> usize {
        self.parts[0].len() + self.parts[1].len()
    }

    /// Whether it holds nothing (k = 0).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// a·b, panicking (at the caller's line) if it overflows `usize`.
#[track_caller]
fn checked(a: usize, b: usize) -> usize {
    match a.checked_mul(b) {
        Some(n) => n,
        None => panic!("factored distance: {a}×{b} elements overflow usize"),
    }
}

/// The Gram sums a set of rows reads: G* [k × k], K = W*ᵀδW [k × k], p = W*ᵀe, H = δWᵀδW,
/// v = δWᵀe, ‖e‖².
#[derive(Clone)]
struct Gram<F> {
    gstar: Vec<F>,
    kk: Vec<F>,
    p: Vec<F>,
    h: Vec<F>,
    v: Vec<F>,
    ee: f64,
}

impl<F: Float> Gram<F> {
    /// From a part's X and Y (see [`pass`]) and G* (if given; else X's first k columns).
    fn of(sums: &pass::PartSums<F>, gstar: Option<&[F]>, k: usize) -> Self {
        let width = 2 * k + 1;
        let cols = |c0: usize, c1: usize| -> Vec<F> {
            (0..k)
                .flat_map(|i| sums.x[i * width + c0..i * width + c1].iter().copied())
                .collect()
        };
        let kq = k + 1;
        Self {
            gstar: gstar.map_or_else(|| cols(0, k), <[F]>::to_vec),
            kk: cols(k, 2 * k),
            p: (0..k).map(|i| sums.x[i * width + 2 * k]).collect(),
            h: (0..k)
                .flat_map(|i| sums.y[i * kq..i * kq + k].iter().copied())
                .collect(),
            v: (0..k).map(|i| sums.y[i * kq + k]).collect(),
            ee: if k == 0 {
                sums.y[0]
            } else {
                sums.y[k * kq + k]
            }
            .to_f64(),
        }
    }

    fn plus(&self, o: &Self) -> Self {
        let add = |a: &[F], b: &[F]| a.iter().zip(b).map(|(&x, &y)| x + y).collect();
        Self {
            gstar: add(&self.gstar, &o.gstar),
            kk: add(&self.kk, &o.kk),
            p: add(&self.p, &o.p),
            h: add(&self.h, &o.h),
            v: add(&self.v, &o.v),
            ee: self.ee + o.ee,
        }
    }
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
    factored_squared_distance_with(p, None, grads)
}

/// [`factored_squared_distance`] with G* = W_tᵀW_t taken from `target_gram` (made by
/// [`TargetGram::new`] from the same W_t, n, k and `len`) instead of computed.
///
/// # Panics
/// As [`factored_squared_distance`], and if `target_gram` was made for another shape or `len`.
#[track_caller]
pub fn factored_squared_distance_with<F: Float>(
    p: LayerPair<'_, F>,
    target_gram: Option<&TargetGram<F>>,
    grads: PairGrads<'_, F>,
) -> f64 {
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
    if let Weights::Stored(w) = w {
        assert_eq!(w.len(), checked(n, k), "W is not [{n}×{k}]");
    }
    assert_eq!(wt.len(), checked(n, k), "W_t is not [{n}×{k}]");
    assert!(b.is_none_or(|b| b.len() == n), "b size");
    assert!(bt.is_none_or(|b| b.len() == n), "b_t size");
    assert!(rpg > 0 && m % rpg == 0, "{m} rows in groups of {rpg}");
    assert!(len <= checked(rpg, n), "len {len} exceeds a group");
    if let Some(tg) = target_gram {
        assert!(
            (tg.n, tg.k, tg.s) == (n, k, split_of(n, len)),
            "target Gram of {}×{} split at {}, not of {n}×{k} with len {len}",
            tg.n,
            tg.k,
            tg.s
        );
    }
    let PairGrads {
        x: gx,
        w: gw,
        b: gb,
        xt: gxt,
        wt: gwt,
        bt: gbt,
        add_onto,
    } = grads;
    assert!(
        add_onto.is_none() || (gw.is_some() && gwt.is_none() && gbt.is_none()),
        "add_onto: needs ∂/∂W, and no ∂/∂W_t or ∂/∂b_t"
    );
    for (g, l) in [(&gx, m * k), (&gxt, m * k), (&gw, n * k), (&gwt, n * k)] {
        assert!(g.as_ref().is_none_or(|g| g.len() == l), "gradient size");
    }
    for g in [&gb, &gbt] {
        assert!(g.as_ref().is_none_or(|g| g.len() == n), "gradient size");
    }
    // Rows no block reaches: written 0, or with `add_onto` (for ∂/∂W and ∂/∂b, `onto`)
    // g ← g + factor·0, as a tape adding a zero share would.
    let unreached = |g: &mut [F], onto: bool| match add_onto.filter(|_| onto) {
        Some(factor) => g.iter_mut().for_each(|d| *d += factor * F::ZERO),
        None => g.fill(F::ZERO),
    };
    // All six gradients when no row is compared (in the order of `PairGrads`).
    let none_reached = |gs: [&mut Option<&mut [F]>; 6]| {
        let onto = [false, true, true, false, false, false];
        for (g, onto) in gs.into_iter().zip(onto) {
            if let Some(g) = g.as_deref_mut() {
                unreached(g, onto);
            }
        }
    };
    let (mut gx, mut gw, mut gb, mut gxt, mut gwt, mut gbt) = (gx, gw, gb, gxt, gwt, gbt);
    if m == 0 || n == 0 {
        none_reached([&mut gx, &mut gw, &mut gb, &mut gxt, &mut gwt, &mut gbt]);
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
        none_reached([&mut gx, &mut gw, &mut gb, &mut gxt, &mut gwt, &mut gbt]);
        return 0.0;
    }
    // S per part: whole and prefix rows read part 0, whole rows part 1.
    let s_matrices = any_param_grad.then(|| {
        let want = (want_w, want_wt);
        let whole = RowSums::new(&sets[0], x, xt, k, want);
        let prefix = RowSums::new(&sets[1], x, xt, k, want);
        [whole.plus(&prefix), whole].map(|sums| [false, true].map(|target| sums.matrix(k, target)))
    });

    let blocks = pass::blocks(n, s, parts_active);
    let lanes = pass::lanes(blocks.len());
    // Each lane's rows of the gradients of W, W_t, b, b_t (the lanes' rows are contiguous
    // from 0).
    let mut rests = [gw, gwt, gb, gbt];
    let widths = [k, k, 1, 1];
    let mut jobs = Vec::with_capacity(lanes.len());
    for range in &lanes {
        let bl = &blocks[range.clone()];
        let (r0, r1) = (bl[0].j0, bl[bl.len() - 1].j1);
        let mut grads: [Option<&mut [F]>; 4] = [None, None, None, None];
        for ((slot, rest), width) in grads.iter_mut().zip(rests.iter_mut()).zip(widths) {
            if let Some(whole) = rest.take() {
                let (mine, tail) = whole.split_at_mut((r1 - r0) * width);
                *rest = Some(tail);
                *slot = Some(mine);
            }
        }
        jobs.push(Job {
            blocks: bl,
            r0,
            grads,
        });
    }
    // Rows of W no block covers (after s, read by no row) have no gradient.
    for (rest, onto) in rests.iter_mut().zip([true, false, true, false]) {
        if let Some(rest) = rest.as_deref_mut() {
            unreached(rest, onto);
        }
    }
    let input = PassInput {
        k,
        w,
        b,
        wt,
        bt,
        have_gstar: target_gram.is_some(),
        s: s_matrices,
        add_onto,
    };
    let sums = pass::run(&input, jobs);
    let grams = [0, 1].map(|p| Gram::of(&sums[p], target_gram.map(|t| &t.parts[p][..]), k));
    // Whole rows read both parts, prefix rows the first.
    let per_set = [grams[0].plus(&grams[1]), grams[0].clone()];

    // Per row: y* = G* δa + K x + p, y_δ = Kᵀδa + H x + v, and
    // ‖r‖² = δa·(y* + p) + x·(y_δ + v) + ‖e‖².
    let (mut gx, mut gxt) = (gx, gxt);
    for g in [&mut gx, &mut gxt] {
        if let Some(g) = g.as_deref_mut() {
            g.fill(F::ZERO);
        }
    }
    let two = F::ONE + F::ONE;
    let mut total = 0.0;
    for (set, gram) in sets.iter().zip(&per_set) {
        let rows = set.rows.len();
        if rows == 0 {
            continue;
        }
        let (da, xs) = (set.half(0, k), set.half(k, k));
        let mut ys = vec![F::ZERO; rows * k];
        let mut yd = vec![F::ZERO; rows * k];
        gemm(
            rows,
            k,
            k,
            F::ONE,
            &da,
            false,
            &gram.gstar,
            true,
            F::ZERO,
            &mut ys,
        );
        gemm(
            rows,
            k,
            k,
            F::ONE,
            &xs,
            false,
            &gram.kk,
            true,
            F::ONE,
            &mut ys,
        );
        gemm(
            rows,
            k,
            k,
            F::ONE,
            &da,
            false,
            &gram.kk,
            false,
            F::ZERO,
            &mut yd,
        );
        gemm(
            rows,
            k,
            k,
            F::ONE,
            &xs,
            false,
            &gram.h,
            true,
            F::ONE,
            &mut yd,
        );
        for (r, &i) in set.rows.iter().enumerate() {
            let (ysr, ydr) = (&mut ys[r * k..(r + 1) * k], &mut yd[r * k..(r + 1) * k]);
            let (dar, xr) = (&da[r * k..(r + 1) * k], &xs[r * k..(r + 1) * k]);
            let mut row = gram.ee;
            for l in 0..k {
                ysr[l] += gram.p[l];
                ydr[l] += gram.v[l];
                row += dar[l].to_f64() * (ysr[l] + gram.p[l]).to_f64()
                    + xr[l].to_f64() * (ydr[l] + gram.v[l]).to_f64();
            }
            total += row;
            if let Some(g) = gx.as_deref_mut() {
                let g = &mut g[i * k..(i + 1) * k];
                for l in 0..k {
                    g[l] += two * (ysr[l] + ydr[l]);
                }
            }
            if let Some(g) = gxt.as_deref_mut() {
                let g = &mut g[i * k..(i + 1) * k];
                for l in 0..k {
                    g[l] -= two * ysr[l];
                }
            }
        }
    }
    total
}
