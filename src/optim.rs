//! Optimizers on flat parameter buffers: Adam (Kingma & Ba, as PyTorch implements it) and the
//! look-ahead Δθ of the hypernetwork regularizer: the change a step would make now, computed
//! without touching the optimizer's state.

use crate::engine::tensor::Float;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Loops over at least this many parameters are split over the cores.
const PARALLEL_MIN_LEN: usize = 1 << 15;
const BLOCK: usize = 1 << 12;

/// Adam with bias correction: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
/// θ ← θ − lr·(m / (1−β₁ᵗ)) / (√v / √(1−β₂ᵗ) + ε).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adam<F> {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    m: Vec<F>,
    v: Vec<F>,
    steps: u64,
}

/// The per-step constants of Adam at step count t.
#[derive(Clone, Copy)]
struct AdamScalars<F> {
    b1: F,
    b2: F,
    step_size: F,
    inv_sqrt_bc2: F,
    eps: F,
}

impl<F: Float> Adam<F> {
    /// Fresh state for `len` parameters, β = (0.9, 0.999), ε = 1e-8.
    pub fn new(len: usize, lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            m: vec![F::ZERO; len],
            v: vec![F::ZERO; len],
            steps: 0,
        }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// First and second moments.
    pub fn moments(&self) -> (&[F], &[F]) {
        (&self.m, &self.v)
    }

    /// Restores moments and step count (from a checkpoint); `None` if the lengths differ.
    pub fn with_state(mut self, m: Vec<F>, v: Vec<F>, steps: u64) -> Option<Self> {
        (m.len() == self.m.len() && v.len() == self.v.len()).then(|| {
            self.m = m;
            self.v = v;
            self.steps = steps;
            self
        })
    }

    fn scalars(&self, t: u64) -> AdamScalars<F> {
        let t = t as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        AdamScalars {
            b1: F::from_f64(self.beta1),
            b2: F::from_f64(self.beta2),
            step_size: F::from_f64(self.lr / bc1),
            inv_sqrt_bc2: F::from_f64(1.0 / bc2.sqrt()),
            eps: F::from_f64(self.eps),
        }
    }

    /// One step: updates the moments and adds the change to `params`.
    pub fn step(&mut self, params: &mut [F], grad: &[F]) {
        assert_eq!(params.len(), self.m.len(), "Adam: parameter count");
        assert_eq!(grad.len(), self.m.len(), "Adam: gradient count");
        self.steps += 1;
        let s = self.scalars(self.steps);
        let update = |(p, g, m, v): (&mut [F], &[F], &mut [F], &mut [F])| {
            for i in 0..p.len() {
                let (mi, vi) = moment_update(&s, m[i], v[i], g[i]);
                m[i] = mi;
                v[i] = vi;
                p[i] += adam_change(&s, mi, vi);
            }
        };
        if params.len() >= PARALLEL_MIN_LEN {
            params
                .par_chunks_mut(BLOCK)
                .zip(grad.par_chunks(BLOCK))
                .zip(
                    self.m
                        .par_chunks_mut(BLOCK)
                        .zip(self.v.par_chunks_mut(BLOCK)),
                )
                .for_each(|((p, g), (m, v))| update((p, g, m, v)));
        } else {
            update((params, grad, &mut self.m, &mut self.v));
        }
    }

    /// The change [`Adam::step`] would add to the parameters for `grad` now (the moments
    /// updated and the step count incremented in thought only), written to `delta`. The
    /// state is untouched.
    pub fn lookahead_delta(&self, grad: &[F], delta: &mut [F]) {
        self.lookahead(grad, None, delta);
    }

    /// `params` plus [`Adam::lookahead_delta`], written to `out` in the same pass.
    pub fn lookahead_point(&self, params: &[F], grad: &[F], out: &mut [F]) {
        assert_eq!(params.len(), self.m.len(), "Adam: parameter count");
        self.lookahead(grad, Some(params), out);
    }

    /// [`Adam::lookahead_point`] for the elements `start..start + out.len()` only: `out[i]` =
    /// `params[start + i]` + Δ for `grad[i]` (`grad` holds the gradient of that range only),
    /// the same values the whole pass makes there (a caller that needs θ + Δθ a range at a
    /// time, as a fused pass reads it).
    ///
    /// # Panics
    /// If the range exceeds the parameters, or `grad` is not as long as `out`.
    pub fn lookahead_point_at(&self, params: &[F], grad: &[F], start: usize, out: &mut [F]) {
        assert_eq!(params.len(), self.m.len(), "Adam: parameter count");
        assert_eq!(grad.len(), out.len(), "Adam: gradient count of the range");
        let s = self.scalars(self.steps + 1);
        self.fill_lookahead(&s, grad, Some(params), start, out);
    }

    /// out = base + Δ (Δ alone without a base).
    fn lookahead(&self, grad: &[F], base: Option<&[F]>, out: &mut [F]) {
        assert_eq!(grad.len(), self.m.len(), "Adam: gradient count");
        assert_eq!(out.len(), self.m.len(), "Adam: output count");
        let s = self.scalars(self.steps + 1);
        if out.len() >= PARALLEL_MIN_LEN {
            out.par_chunks_mut(BLOCK)
                .zip(grad.par_chunks(BLOCK))
                .enumerate()
                .for_each(|(i, (d, g))| self.fill_lookahead(&s, g, base, i * BLOCK, d));
        } else {
            self.fill_lookahead(&s, grad, base, 0, out);
        }
    }

    /// Elements `start..start + d.len()` of [`Adam::lookahead`] into `d`, for `g` the
    /// gradient of those elements.
    #[inline]
    fn fill_lookahead(
        &self,
        s: &AdamScalars<F>,
        g: &[F],
        base: Option<&[F]>,
        start: usize,
        d: &mut [F],
    ) {
        debug_assert_eq!(g.len(), d.len(), "the range's gradient");
        let range = start..start + d.len();
        // Sliced to d's length, so that the loops below index without bounds checks.
        let (g, m, v) = (
            &g[..d.len()],
            &self.m[range.clone()],
            &self.v[range.clone()],
        );
        match base {
            Some(p) => {
                let p = &p[range];
                for i in 0..d.len() {
                    let (mi, vi) = moment_update(s, m[i], v[i], g[i]);
                    d[i] = p[i] + adam_change(s, mi, vi);
                }
            }
            None => {
                for i in 0..d.len() {
                    let (mi, vi) = moment_update(s, m[i], v[i], g[i]);
                    d[i] = adam_change(s, mi, vi);
                }
            }
        }
    }
}

#[inline]
fn moment_update<F: Float>(s: &AdamScalars<F>, m: F, v: F, g: F) -> (F, F) {
    let m = s.b1 * m + (F::ONE - s.b1) * g;
    let v = s.b2 * v + (F::ONE - s.b2) * g * g;
    (m, v)
}

#[inline]
fn adam_change<F: Float>(s: &AdamScalars<F>, m: F, v: F) -> F {
    -s.step_size * m / (v.sqrt() * s.inv_sqrt_bc2 + s.eps)
}

/// The look-ahead of plain gradient descent: Δθ = −lr·g.
pub fn sgd_delta<F: Float>(lr: f64, grad: &[F], delta: &mut [F]) {
    let lr = F::from_f64(lr);
    crate::engine::kernels::map(grad, delta, |g| -lr * g);
}

/// The look-ahead point of plain gradient descent, θ − lr·g, for the elements
/// `start..start + out.len()` of `params`, `grad` holding the gradient of that range only:
/// the values of [`sgd_delta`] added to θ.
///
/// # Panics
/// If the range exceeds the parameters, or `grad` is not as long as `out`.
pub fn sgd_point_at<F: Float>(lr: f64, params: &[F], grad: &[F], start: usize, out: &mut [F]) {
    assert_eq!(grad.len(), out.len(), "SGD: gradient count of the range");
    let lr = F::from_f64(lr);
    let params = &params[start..start + out.len()];
    for ((o, &g), &p) in out.iter_mut().zip(grad).zip(params) {
        *o = -lr * g + p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sgd_point_of_a_range_is_theta_plus_the_sgd_delta() {
        let n = 1000;
        let p: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut delta = vec![0f32; n];
        sgd_delta(0.03, &g, &mut delta);
        let whole: Vec<u32> = delta
            .iter()
            .zip(&p)
            .map(|(d, t)| (d + t).to_bits())
            .collect();
        let mut part = vec![0f32; 300];
        sgd_point_at(0.03, &p, &g[650..950], 650, &mut part);
        let bits: Vec<u32> = part.iter().map(|x| x.to_bits()).collect();
        assert_eq!(bits, whole[650..950]);
    }

    #[test]
    fn the_lookahead_of_a_range_is_that_range_of_the_whole_lookahead() {
        // Long enough for the whole pass to split over the cores, with Adam history.
        let n = PARALLEL_MIN_LEN + 1234;
        let p: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos() * 1e-2).collect();
        let mut adam = Adam::<f32>::new(n, 1e-3);
        let mut q = p.clone();
        adam.step(&mut q, &g);
        adam.step(&mut q, &p);
        let mut whole = vec![0f32; n];
        adam.lookahead_point(&q, &g, &mut whole);
        for (start, len) in [
            (0, 0),
            (0, 1),
            (5, 1000),
            (BLOCK - 3, 7),
            (n - 17, 17),
            (n, 0),
        ] {
            let mut part = vec![0f32; len];
            adam.lookahead_point_at(&q, &g[start..start + len], start, &mut part);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&part),
                bits(&whole[start..start + len]),
                "{start}+{len}"
            );
        }
    }

    #[test]
    fn first_step_moves_each_parameter_by_about_lr_against_its_gradient() {
        // At t = 1: m̂ = g, v̂ = g², so Δ = −lr·g / (|g| + ε).
        let mut adam = Adam::<f64>::new(3, 0.01);
        let mut p = vec![1.0, 2.0, 3.0];
        let g = [0.5, -2.0, 1e-3];
        adam.step(&mut p, &g);
        for (i, (&pi, &gi)) in p.iter().zip(&g).enumerate() {
            let expected = [1.0, 2.0, 3.0][i] - 0.01 * gi / (gi.abs() + 1e-8);
            assert!((pi - expected).abs() < 1e-12, "{i}: {pi} vs {expected}");
        }
    }
}
