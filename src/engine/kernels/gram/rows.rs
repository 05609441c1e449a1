//! The row side of the factored distance: the rows of x and x_t of one kind (compared whole or
//! on a prefix), their sums for the weight gradients, and the matrix S that turns a block of
//! W's rows into its gradient rows with one product.

use super::super::gemm;
use crate::engine::tensor::Float;

/// The rows of one kind (compared whole, or on the prefix): their indices and
/// z = [δa | a'] [rows × 2k], δa = x − x_t, a' = x.
pub(super) struct RowSet<F> {
    pub(super) rows: Vec<usize>,
    pub(super) z: Vec<F>,
}

impl<F: Float> RowSet<F> {
    pub(super) fn new(rows: Vec<usize>, x: &[F], xt: &[F], k: usize) -> Self {
        let mut z = vec![F::ZERO; rows.len() * 2 * k];
        for (r, &i) in rows.iter().enumerate() {
            let zr = &mut z[r * 2 * k..(r + 1) * 2 * k];
            let (xi, ti) = (&x[i * k..(i + 1) * k], &xt[i * k..(i + 1) * k]);
            for l in 0..k {
                zr[l] = xi[l] - ti[l];
                zr[k + l] = xi[l];
            }
        }
        Self { rows, z }
    }

    /// Columns `c0..c0 + k` of z, contiguous [rows × k].
    pub(super) fn half(&self, c0: usize, k: usize) -> Vec<F> {
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
pub(super) struct RowSums<F> {
    /// [Σ δa xᵀ; Σ x xᵀ] [2k × k] (for ∂/∂W).
    zx: Vec<F>,
    /// Σ x \[k\].
    x: Vec<F>,
    /// [Σ δa x_tᵀ; Σ x x_tᵀ] [2k × k] (for ∂/∂W_t).
    zt: Vec<F>,
    /// Σ x_t \[k\].
    t: Vec<F>,
    /// [Σ δa; Σ x] \[2k\] (for ∂/∂b).
    z: Vec<F>,
    /// Number of rows.
    count: F,
}

impl<F: Float> RowSums<F> {
    pub(super) fn new(set: &RowSet<F>, x: &[F], xt: &[F], k: usize, want: (bool, bool)) -> Self {
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
    pub(super) fn plus(&self, other: &Self) -> Self {
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

    /// S [(2k + 1) × (k + 1)] such that row j of B·S, B_j = [W*_j | δW_j | e_j], is
    /// [Σ_i r_ij x_iᵀ | Σ_i r_ij] (`target`: x_t instead of x):
    /// rows 0..k [Σ δa xᵀ | Σ δa], rows k..2k [Σ x xᵀ | Σ x], row 2k [Σ xᵀ | count]
    /// (the first k columns zero when that weight's sums were not made).
    pub(super) fn matrix(&self, k: usize, target: bool) -> Vec<F> {
        let (zs, xs) = if target {
            (&self.zt, &self.t)
        } else {
            (&self.zx, &self.x)
        };
        let kq = k + 1;
        let mut out = vec![F::ZERO; (2 * k + 1) * kq];
        for r in 0..2 * k {
            let row = &mut out[r * kq..(r + 1) * kq];
            if !zs.is_empty() {
                row[..k].copy_from_slice(&zs[r * k..(r + 1) * k]);
            }
            row[k] = self.z[r];
        }
        let row = &mut out[2 * k * kq..];
        if !xs.is_empty() {
            row[..k].copy_from_slice(xs);
        }
        row[k] = self.count;
        out
    }
}
