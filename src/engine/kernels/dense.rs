//! The backward of a dense layer y = x·Wᵀ + b with few rows and inputs (x [m×k], m·k small)
//! and many outputs (W [n×k], n large): a hypernetwork's output layer.
//!
//! As three whole products, dx = G·W (a sum over all n), dW = Gᵀ·x and db = column sums of G
//! each read the [m×n] gradient G from memory again, and the product with k = n re-packs W and
//! G block by block. Here the columns of y are cut into panels J of a few hundred columns;
//! each panel G_J is produced once (copied from a stored gradient, or computed on the spot by
//! a fused op) and used at once, while it sits in cache, for dW_J = G_Jᵀ·x, db_J and
//! dx += G_J·W_J.
//!
//! The panels are dealt to a fixed number of lanes, independent of the number of threads; a
//! lane adds its panels' dx and partial results in panel order and the lanes are added in lane
//! order, so the results are the same for any number of threads.

use super::gemm_serial;
use crate::engine::tensor::Float;
use rayon::prelude::*;

/// Lanes the panels are dealt to.
const LANES: usize = 16;
/// Elements of one gradient panel (256 KiB in f32: it stays in a core's L2 cache).
const PANEL_ELEMS: usize = 1 << 16;

/// Whether the panel backward pays off for x [m×k] and W [n×k]: many outputs, and x (which
/// every panel reads) small.
pub fn panels_pay_off(m: usize, n: usize, k: usize) -> bool {
    n >= 8 * 1024 && (1..=1024).contains(&m) && m.saturating_mul(k) <= 1 << 16
}

/// Columns per panel for m rows: 16 (the width of the SIMD kernels) times an odd number. A
/// panel is row-major with the panel width as row stride, and a stride of a multiple of a
/// large power of two puts its rows in the same cache sets: matrixmultiply's products on a
/// [12 × 4096] panel took 5× as long as on a [12 × 4080] one.
fn panel_width(m: usize) -> usize {
    let blocks = (PANEL_ELEMS / m.max(1)).clamp(16, 4096) / 16;
    16 * if blocks.is_multiple_of(2) {
        blocks - 1
    } else {
        blocks
    }
}

/// (columns per panel, lanes, dx elements per lane) for x [m×k] and n outputs.
#[track_caller]
fn plan(m: usize, n: usize, k: usize, want_x: bool) -> (usize, usize, usize) {
    let nb = panel_width(m);
    let lanes = LANES.min(n.div_ceil(nb));
    (nb, lanes, if want_x { checked(m, k) } else { 0 })
}

/// a·b, panicking (at the caller's line) if it overflows `usize`.
#[track_caller]
fn checked(a: usize, b: usize) -> usize {
    // `match`, not `unwrap_or_else`: a closure would report its own line, not the caller's.
    match a.checked_mul(b) {
        Some(n) => n,
        None => panic!("dense panels: {a}×{b} elements overflow usize"),
    }
}

/// Elements of working memory [`dense_backward_panels`] needs.
///
/// # Panics
/// If the size overflows `usize`.
#[track_caller]
pub fn panel_scratch_len(m: usize, n: usize, k: usize, want_x: bool) -> usize {
    let (nb, lanes, dx_len) = plan(m, n, k, want_x);
    let Some(per_lane) = checked(m, nb).checked_add(dx_len) else {
        panic!("dense panels: scratch for {m}×{k} overflows usize");
    };
    checked(lanes, per_lane)
}

/// Where the gradients of a dense layer go, each optional: dx [m×k], dW [n×k], db \[n\].
/// Gradients are added to what the slices hold.
#[derive(Debug, Default)]
pub struct DenseGrads<'g, F> {
    /// ∂/∂x.
    pub x: Option<&'g mut [F]>,
    /// ∂/∂W.
    pub w: Option<&'g mut [F]>,
    /// ∂/∂b.
    pub b: Option<&'g mut [F]>,
}

/// The first `len` elements of `rest`, leaving the remainder in `rest`.
fn split_off<'g, F>(rest: &mut Option<&'g mut [F]>, len: usize) -> Option<&'g mut [F]> {
    let whole = rest.take()?;
    let (head, tail) = whole.split_at_mut(len);
    *rest = Some(tail);
    Some(head)
}

/// Fills `panel` ([m × cols] row-major, m = rows of `g`) with α·g[:, j0..j0+cols] of a stored
/// [m × n] gradient `g`: the panel producer of a plain dense layer's backward.
pub fn copy_panel<F: Float>(g: &[F], n: usize, alpha: F, j0: usize, panel: &mut [F]) {
    let m = g.len() / n.max(1);
    let cols = panel.len() / m.max(1);
    for (i, row) in panel.chunks_exact_mut(cols.max(1)).enumerate() {
        let src = &g[i * n + j0..i * n + j0 + cols];
        row.iter_mut().zip(src).for_each(|(d, &s)| *d = alpha * s);
    }
}

/// The backward of y = x·Wᵀ + b (x [m×k], W [n×k], row-major) for an output gradient G made
/// panel by panel: for each block of columns J = j0..j0+nb, `fill(j0, g)` writes G[:, J] into
/// `g` ([m × nb] row-major; nb = g.len() / m) and returns a number; then dW_J += G_Jᵀ·x,
/// db_J += Σ_rows G_J and dx += G_J·W_J. `scratch` is working memory of at least
/// [`panel_scratch_len`] elements (its contents are overwritten).
/// Returns the sum of `fill`'s numbers, added in a fixed order.
///
/// # Panics
/// If a buffer's length does not match its shape, or a size overflows `usize` (a programming
/// error).
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn dense_backward_panels<F: Float>(
    m: usize,
    n: usize,
    k: usize,
    x: &[F],
    w: &[F],
    fill: impl Fn(usize, &mut [F]) -> f64 + Sync,
    grads: DenseGrads<'_, F>,
    scratch: &mut [F],
) -> f64 {
    assert_eq!(x.len(), checked(m, k), "x is not [{m}×{k}]");
    assert_eq!(w.len(), checked(n, k), "W is not [{n}×{k}]");
    let DenseGrads {
        x: gx,
        w: mut gw,
        b: mut gb,
    } = grads;
    assert!(gx.as_ref().is_none_or(|g| g.len() == m * k), "dx size");
    assert!(gw.as_ref().is_none_or(|g| g.len() == n * k), "dW size");
    assert!(gb.as_ref().is_none_or(|g| g.len() == n), "db size");
    if m == 0 || n == 0 {
        return 0.0;
    }
    let want_x = gx.is_some();
    let (nb, lanes, dx_len) = plan(m, n, k, want_x);
    let panels = n.div_ceil(nb);
    assert!(
        scratch.len() >= panel_scratch_len(m, n, k, want_x),
        "scratch too short"
    );
    let (panel_bufs, rest) = scratch.split_at_mut(lanes * m * nb);
    let dx_bufs = &mut rest[..lanes * dx_len];

    // Lane l owns panels l·panels/lanes .. (l+1)·panels/lanes.
    let lane_start = |l: usize| (l * panels / lanes * nb).min(n);
    let mut jobs = Vec::with_capacity(lanes);
    let mut dx_rest = dx_bufs.chunks_mut(dx_len.max(1));
    for (l, panel) in panel_bufs.chunks_exact_mut(m * nb).enumerate() {
        let (c0, c1) = (lane_start(l), lane_start(l + 1));
        let dx = if want_x { dx_rest.next() } else { None };
        let gw = split_off(&mut gw, (c1 - c0) * k);
        let gb = split_off(&mut gb, c1 - c0);
        jobs.push((c0, c1, panel, dx, gw, gb));
    }

    let totals: Vec<f64> = jobs
        .into_par_iter()
        .map(|(c0, c1, panel, mut dx, mut gw, mut gb)| {
            if let Some(dx) = dx.as_deref_mut() {
                dx.fill(F::ZERO);
            }
            let mut total = 0.0;
            let mut j0 = c0;
            while j0 < c1 {
                let cols = nb.min(c1 - j0);
                let g = &mut panel[..m * cols];
                total += fill(j0, g);
                let local = j0 - c0;
                if let Some(gw) = gw.as_deref_mut() {
                    let gw = &mut gw[local * k..(local + cols) * k];
                    gemm_serial(cols, k, m, F::ONE, g, true, x, false, F::ONE, gw);
                }
                if let Some(gb) = gb.as_deref_mut() {
                    let gb = &mut gb[local..local + cols];
                    for row in g.chunks_exact(cols) {
                        gb.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
                    }
                }
                if let Some(dx) = dx.as_deref_mut() {
                    let w_j = &w[j0 * k..(j0 + cols) * k];
                    gemm_serial(m, k, cols, F::ONE, g, false, w_j, false, F::ONE, dx);
                }
                j0 += cols;
            }
            total
        })
        .collect();

    if let Some(gx) = gx {
        for dx in dx_bufs.chunks(dx_len.max(1)) {
            gx.iter_mut().zip(dx).for_each(|(a, &v)| *a += v);
        }
    }
    totals.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernels::gemm;

    /// The three whole products the panel backward replaces.
    fn reference(m: usize, n: usize, k: usize, x: &[f64], w: &[f64], g: &[f64]) -> Vec<Vec<f64>> {
        let mut gx = vec![0.5; m * k];
        let mut gw = vec![0.25; n * k];
        let mut gb = vec![1.0; n];
        gemm(m, k, n, 1.0, g, false, w, false, 1.0, &mut gx);
        gemm(n, k, m, 1.0, g, true, x, false, 1.0, &mut gw);
        for row in g.chunks(n) {
            gb.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
        }
        vec![gx, gw, gb]
    }

    fn values(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f64 - 500.0) / 250.0)
            .collect()
    }

    #[test]
    fn panels_match_whole_products() {
        for &(m, n, k) in &[(3, 5, 2), (27, 9000, 25), (1, 20_000, 3), (300, 1000, 7)] {
            let (x, w, g) = (values(m * k, 1), values(n * k, 2), values(m * n, 3));
            let want = reference(m, n, k, &x, &w, &g);
            let (mut gx, mut gw, mut gb) = (vec![0.5; m * k], vec![0.25; n * k], vec![1.0; n]);
            let mut scratch = vec![0.0; panel_scratch_len(m, n, k, true)];
            let total = dense_backward_panels(
                m,
                n,
                k,
                &x,
                &w,
                |j0, panel| {
                    copy_panel(&g, n, 1.0, j0, panel);
                    (panel.len() / m) as f64
                },
                DenseGrads {
                    x: Some(&mut gx),
                    w: Some(&mut gw),
                    b: Some(&mut gb),
                },
                &mut scratch,
            );
            assert_eq!(total, n as f64, "every column filled once");
            for (got, want) in [gx, gw, gb].iter().zip(&want) {
                for (a, b) in got.iter().zip(want) {
                    assert!(
                        (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                        "{m}×{n}×{k}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn same_result_on_one_and_two_threads() {
        let (m, n, k) = (27, 30_000, 25);
        let x: Vec<f32> = values(m * k, 4).iter().map(|&v| v as f32).collect();
        let w: Vec<f32> = values(n * k, 5).iter().map(|&v| v as f32).collect();
        let g: Vec<f32> = values(m * n, 6).iter().map(|&v| v as f32).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let (mut gx, mut gw) = (vec![0.0f32; m * k], vec![0.0f32; n * k]);
                let mut scratch = vec![0.0; panel_scratch_len(m, n, k, true)];
                dense_backward_panels(
                    m,
                    n,
                    k,
                    &x,
                    &w,
                    |j0, panel| {
                        copy_panel(&g, n, 1.0, j0, panel);
                        0.0
                    },
                    DenseGrads {
                        x: Some(&mut gx),
                        w: Some(&mut gw),
                        b: None,
                    },
                    &mut scratch,
                );
                (gx, gw)
            })
        };
        assert_eq!(run(1), run(2));
    }
}
