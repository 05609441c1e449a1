//! More ops of the tape, with the conventions of \[`ops`\]: each op's forward method and, right
//! beside it, its backward rule; their records are variants of [`Op`] and their backward
//! rules are dispatched from [`Tape::backward_op`] with the others.
//!
//! - [`Tape::transpose`]: a matrix transposed;
//! - [`Tape::softmax`]: row-wise softmax, stable at any logit;
//! - [`Tape::sqrt`], [`Tape::pow`] (a constant exponent), [`Tape::abs`]: elementwise.

use super::{GradBuffers, Op, Tape, Var};
use crate::engine::kernels;
use crate::engine::tensor::Float;

// ---------------------------------------------------------------------------------------------
// Layout

impl<'a, F: Float> Tape<'a, F> {
    /// Xᵀ: `[m, n]` → `[n, m]`, y\[j, i\] = x\[i, j\] (a copy). A rank-1 `[n]` is one row and
    /// becomes the column `[n, 1]`; a rank-0 scalar becomes `[1, 1]`.
    ///
    /// # Panics
    /// If x has rank 3 or more.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    /// let y = tape.transpose(x);
    /// assert_eq!(tape.shape(y), &[3, 2]);
    /// assert_eq!(tape.value(y), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    /// ```
    #[track_caller]
    pub fn transpose(&mut self, x: Var) -> Var {
        let (m, n) = self.matrix(x, "transpose");
        let mut out = self.pool.take(self.value(x).len());
        transpose_into(self.value(x), m, n, &mut out, |_, v| v);
        self.push(Op::Transpose(x), &[x], vec![n, m], out)
    }

    /// dx = gᵀ: dx\[i, j\] += g\[j, i\].
    fn transpose_backward(&self, x: Var, g: &[F], grads: &mut GradBuffers<F>) {
        let (m, n) = self.dims(x);
        if let Some(gx) = self.grad_of(x, grads) {
            // g is [n, m]: its transpose is [m, n], x's layout.
            transpose_into(g, n, m, gx, |d, v| d + v);
        }
    }
}

/// dst\[j·m + i\] = f(dst\[j·m + i\], src\[i·n + j\]) for src [m×n] and dst [n×m], over tiles of
/// 32×32 so that both sides are read and written in cache lines.
fn transpose_into<F: Float>(src: &[F], m: usize, n: usize, dst: &mut [F], f: impl Fn(F, F) -> F) {
    const T: usize = 32;
    debug_assert_eq!(src.len(), m * n);
    debug_assert_eq!(dst.len(), m * n);
    for i0 in (0..m).step_by(T) {
        for j0 in (0..n).step_by(T) {
            for i in i0..(i0 + T).min(m) {
                for j in j0..(j0 + T).min(n) {
                    let d = &mut dst[j * m + i];
                    *d = f(*d, src[i * n + j]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Row-wise softmax

impl<'a, F: Float> Tape<'a, F> {
    /// yᵢⱼ = e^(xᵢⱼ − mᵢ) / Σₖ e^(xᵢₖ − mᵢ) with mᵢ = maxₖ xᵢₖ: softmax of each row, computed
    /// on logits shifted by their row maximum, so that no exponential overflows at any logit
    /// (each row sums to 1; a row of n equal logits gives 1/n). NaN propagates to its whole
    /// row, as does +∞ (∞ − ∞). For probabilities inside a loss, [`Tape::log_softmax`] or the
    /// fused [`Tape::softmax_cross_entropy`] are exact where this rounds small probabilities
    /// to 0.
    ///
    /// # Panics
    /// If x has rank 3 or more.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// // Stable at logits whose exponentials overflow: e^1000 is ∞ in f64.
    /// let x = tape.leaf(Tensor::from_vec(&[2, 2], vec![1000.0, 1000.0, 0.0, f64::ln(3.0)]));
    /// let y = tape.softmax(x);
    /// let p = tape.value(y);
    /// assert_eq!(&p[..2], &[0.5, 0.5]);
    /// assert!((p[2] - 0.25).abs() < 1e-15 && (p[3] - 0.75).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn softmax(&mut self, x: Var) -> Var {
        let (_, n) = self.matrix(x, "softmax");
        let mut out = self.pool.take(self.value(x).len());
        out.copy_from_slice(self.value(x));
        for row in out.chunks_exact_mut(n.max(1)) {
            let mx = row
                .iter()
                .fold(F::from_f64(f64::NEG_INFINITY), |a, &b| a.max(b));
            row.iter_mut().for_each(|v| *v = (*v - mx).exp());
            let total: F = row.iter().copied().sum();
            row.iter_mut().for_each(|v| *v /= total);
        }
        let shape = self.shape(x).to_vec();
        self.push(Op::Softmax(x), &[x], shape, out)
    }

    /// dxᵢⱼ = yᵢⱼ·(gᵢⱼ − Σₖ gᵢₖ yᵢₖ), row-wise (the Jacobian of a row is diag(y) − y yᵀ).
    fn softmax_backward(&self, x: Var, y: Var, g: &[F], grads: &mut GradBuffers<F>) {
        let (_, n) = self.dims(x);
        let yv = self.value(y);
        if let Some(gx) = self.grad_of(x, grads) {
            for ((gx, gr), yr) in gx
                .chunks_exact_mut(n.max(1))
                .zip(g.chunks_exact(n.max(1)))
                .zip(yv.chunks_exact(n.max(1)))
            {
                let dot: F = gr.iter().zip(yr).map(|(&gk, &yk)| gk * yk).sum();
                for ((d, &gj), &yj) in gx.iter_mut().zip(gr).zip(yr) {
                    *d += yj * (gj - dot);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Powers and absolute value

impl<'a, F: Float> Tape<'a, F> {
    /// y = √x elementwise; d/dx = 1/(2√x) = 1/(2y). Domain x ≥ 0: x < 0 gives NaN (value and
    /// gradient), and at x = 0 the derivative is +∞ (so a gradient of 0 arriving there gives
    /// NaN, 0·∞). Add a small constant first (√(x + ε)) where x can reach 0, as for a norm.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(&[2], vec![4.0, 0.25]));
    /// let y = tape.sqrt(x);
    /// let loss = tape.sum(y);
    /// assert_eq!(tape.value(y), &[2.0, 0.5]);
    /// let grads = tape.backward(loss);
    /// assert_eq!(grads.get(x).unwrap(), &[0.25, 1.0]); // 1/(2√x)
    /// ```
    #[track_caller]
    pub fn sqrt(&mut self, x: Var) -> Var {
        let mut out = self.pool.take(self.value(x).len());
        kernels::map(self.value(x), &mut out, |v| v.sqrt());
        let shape = self.shape(x).to_vec();
        self.push(Op::Sqrt(x), &[x], shape, out)
    }

    /// dx = g / (2y).
    fn sqrt_backward(&self, x: Var, y: Var, g: &[F], grads: &mut GradBuffers<F>) {
        let two = F::ONE + F::ONE;
        let yv = self.value(y);
        if let Some(gx) = self.grad_of(x, grads) {
            kernels::update2(gx, g, yv, |d, g, y| d + g / (two * y));
        }
    }

    /// y = x^p elementwise for a constant exponent p; d/dx = p·x^(p−1) (0 everywhere for
    /// p = 0, where y = 1). Domain: every x for an integer p (x^3 of −2 is −8); x ≥ 0 for any
    /// other p, as `powf` (a negative x gives NaN). At x = 0 the derivative is 0 for p > 1,
    /// 1 for p = 1, and infinite for p < 1 (p ≠ 0), as is 0^p itself for p < 0.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(&[2], vec![4.0, -2.0]));
    /// let y = tape.pow(x, 3.0);
    /// let loss = tape.sum(y);
    /// assert_eq!(tape.value(y), &[64.0, -8.0]);
    /// let grads = tape.backward(loss);
    /// assert_eq!(grads.get(x).unwrap(), &[48.0, 12.0]); // 3x²
    /// ```
    #[track_caller]
    pub fn pow(&mut self, x: Var, p: f64) -> Var {
        let pf = F::from_f64(p);
        let mut out = self.pool.take(self.value(x).len());
        kernels::map(self.value(x), &mut out, |v| v.powf(pf));
        let shape = self.shape(x).to_vec();
        self.push(Op::Pow(x, p), &[x], shape, out)
    }

    /// dx = g·p·x^(p−1); nothing flows for p = 0.
    fn pow_backward(&self, x: Var, p: f64, g: &[F], grads: &mut GradBuffers<F>) {
        if p == 0.0 {
            return; // y = 1: the derivative is 0, not the 0·x⁻¹ that is NaN at x = 0
        }
        let (pf, pm1) = (F::from_f64(p), F::from_f64(p - 1.0));
        let xv = self.value(x);
        if let Some(gx) = self.grad_of(x, grads) {
            kernels::update2(gx, g, xv, |d, g, x| d + g * pf * x.powf(pm1));
        }
    }

    /// y = |x| elementwise; d/dx = sign(x): 1 for x > 0, −1 for x < 0, and the sub-gradient
    /// 0 at x = 0 (the choice of PyTorch and JAX); NaN for NaN.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(&[3], vec![-1.5, 0.0, 2.0]));
    /// let y = tape.abs(x);
    /// let loss = tape.sum(y);
    /// assert_eq!(tape.value(y), &[1.5, 0.0, 2.0]);
    /// let grads = tape.backward(loss);
    /// assert_eq!(grads.get(x).unwrap(), &[-1.0, 0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn abs(&mut self, x: Var) -> Var {
        let mut out = self.pool.take(self.value(x).len());
        kernels::map(self.value(x), &mut out, |v| v.abs());
        let shape = self.shape(x).to_vec();
        self.push(Op::Abs(x), &[x], shape, out)
    }

    /// dx = g·sign(x), sign(0) = 0.
    fn abs_backward(&self, x: Var, g: &[F], grads: &mut GradBuffers<F>) {
        let xv = self.value(x);
        if let Some(gx) = self.grad_of(x, grads) {
            kernels::update2(gx, g, xv, |d, g, x| d + g * sign(x));
        }
    }

    /// Runs the backward rule of node `v` (an op of this file) with output gradient `g`.
    pub(super) fn extra_backward(&self, v: Var, g: &[F], grads: &mut GradBuffers<F>) {
        match self.op(v) {
            Op::Transpose(x) => self.transpose_backward(*x, g, grads),
            Op::Softmax(x) => self.softmax_backward(*x, v, g, grads),
            Op::Sqrt(x) => self.sqrt_backward(*x, v, g, grads),
            Op::Pow(x, p) => self.pow_backward(*x, *p, g, grads),
            Op::Abs(x) => self.abs_backward(*x, g, grads),
            other => unreachable!("{} is not an op of ops_extra", other.name()),
        }
    }
}

/// 1 for x > 0, −1 for x < 0, 0 at ±0, NaN for NaN.
#[inline]
fn sign<F: Float>(x: F) -> F {
    if x > F::ZERO {
        F::ONE
    } else if x < F::ZERO {
        -F::ONE
    } else if x.is_nan() {
        x
    } else {
        F::ZERO
    }
}
