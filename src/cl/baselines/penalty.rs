//! The weight penalties of EWC, online EWC and SI and the diagonal Fisher estimate.

use super::BaselineConfig;
use crate::cl::Method;
use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::{Float, Tensor};
use crate::nn::Mlp;
use rayon::prelude::*;

/// Elements per block of the penalty's parallel pass.
const PENALTY_BLOCK: usize = 1 << 14;

/// The state of a weight penalty across tasks.
#[derive(Clone, Debug, PartialEq)]
pub enum Consolidation<F> {
    /// Fine-tuning: no penalty.
    None,
    /// EWC: (Fisher, anchor) of every finished task.
    Ewc {
        /// λ.
        lambda: f64,
        /// Per finished task.
        tasks: Vec<(Vec<F>, Vec<F>)>,
    },
    /// Online EWC.
    OnlineEwc {
        /// λ.
        lambda: f64,
        /// γ.
        gamma: f64,
        /// (running Fisher, anchor) once a task has finished.
        state: Option<(Vec<F>, Vec<F>)>,
    },
    /// SI.
    Si {
        /// c.
        c: f64,
        /// ξ.
        xi: f64,
        /// Ω, summed over finished tasks.
        omega: Vec<F>,
        /// θ* (the weights when the last task finished), once one has.
        anchor: Option<Vec<F>>,
        /// ω of the task in training.
        path: Vec<F>,
        /// θ when the task in training began.
        start: Vec<F>,
    },
}

impl<F: Float> Consolidation<F> {
    /// If an importance or anchor the penalty keeps is NaN or infinite, how to change the
    /// setting that most likely made it so: a smaller online-EWC decay (F ← γF + F_new), a
    /// larger SI damping (Ω += ω / (Δθ² + ξ)), a smaller learning rate for EWC (the Fisher of
    /// diverged weights).
    pub fn non_finite_setting(&self) -> Option<&'static str> {
        let bad = |v: &[F]| v.iter().any(|x| !x.is_finite());
        match self {
            Consolidation::None => None,
            Consolidation::Ewc { tasks, .. } => tasks
                .iter()
                .any(|(f, a)| bad(f) || bad(a))
                .then_some("a smaller --lr"),
            Consolidation::OnlineEwc { state, .. } => state
                .as_ref()
                .is_some_and(|(f, a)| bad(f) || bad(a))
                .then_some("a smaller --online-ewc-gamma"),
            Consolidation::Si { omega, anchor, .. } => (bad(omega)
                || anchor.as_ref().is_some_and(|a| bad(a)))
            .then_some("a larger --si-xi or a smaller --si-c"),
        }
    }

    /// The empty state of `method` (not `Hnet`) for `n` weights.
    pub fn new(method: Method, config: &BaselineConfig, n: usize) -> Self {
        match method {
            Method::Hnet | Method::Finetune | Method::HnetR | Method::HnetTir => {
                Consolidation::None
            }
            Method::Ewc => Consolidation::Ewc {
                lambda: config.ewc_lambda,
                tasks: Vec::new(),
            },
            Method::OnlineEwc => Consolidation::OnlineEwc {
                lambda: config.ewc_lambda,
                gamma: config.online_ewc_gamma,
                state: None,
            },
            Method::Si => Consolidation::Si {
                c: config.si_c,
                xi: config.si_xi,
                omega: vec![F::ZERO; n],
                anchor: None,
                path: vec![F::ZERO; n],
                start: Vec::new(),
            },
        }
    }

    /// True if [`Consolidation::end_task`] needs a Fisher estimate.
    pub fn needs_fisher(&self) -> bool {
        matches!(
            self,
            Consolidation::Ewc { .. } | Consolidation::OnlineEwc { .. }
        )
    }

    /// The penalty's terms: (importance, anchor, scale), the penalty being the sum over terms
    /// of scale · Σᵢ importanceᵢ (θᵢ − anchorᵢ)².
    fn terms(&self) -> Vec<(&[F], &[F], f64)> {
        match self {
            Consolidation::None => Vec::new(),
            Consolidation::Ewc { lambda, tasks } => tasks
                .iter()
                .map(|(f, a)| (f.as_slice(), a.as_slice(), lambda / 2.0))
                .collect(),
            Consolidation::OnlineEwc { lambda, state, .. } => state
                .iter()
                .map(|(f, a)| (f.as_slice(), a.as_slice(), lambda / 2.0))
                .collect(),
            Consolidation::Si {
                c, omega, anchor, ..
            } => anchor
                .iter()
                .map(|a| (omega.as_slice(), a.as_slice(), *c))
                .collect(),
        }
    }

    /// The penalty at the flat weights `theta` on `tape` (importances and anchors copied in as
    /// constants), or `None` while there is nothing to protect. Training uses the fused
    /// [`Consolidation::add_penalty_gradient`]; this one is for audits.
    pub fn penalty(&self, tape: &mut Tape<'_, F>, theta: Var) -> Option<Var> {
        let mut total: Option<Var> = None;
        for (importance, anchor, scale) in self.terms() {
            let n = anchor.len();
            let a = tape.constant(Tensor::from_vec(&[n], anchor.to_vec()));
            let w = tape.constant(Tensor::from_vec(&[n], importance.to_vec()));
            let d = tape.sub(theta, a);
            let sq = tape.square(d);
            let weighted = tape.mul(sq, w);
            let s = tape.sum(weighted);
            let term = tape.scale(s, F::from_f64(scale));
            total = Some(match total {
                Some(t) => tape.add(t, term),
                None => term,
            });
        }
        total
    }

    /// The penalty at `theta`, with its gradient added to `grad`: for each term,
    /// scale · Σᵢ wᵢ (θᵢ − aᵢ)² and 2 · scale · wᵢ (θᵢ − aᵢ), in one pass over fixed blocks
    /// (the same result on any number of threads).
    pub fn add_penalty_gradient(&self, theta: &[F], grad: &mut [F]) -> f64 {
        assert_eq!(theta.len(), grad.len(), "penalty: gradient size");
        let mut total = 0.0;
        for (importance, anchor, scale) in self.terms() {
            assert_eq!(importance.len(), theta.len(), "penalty: importance size");
            assert_eq!(anchor.len(), theta.len(), "penalty: anchor size");
            let two_scale = F::from_f64(2.0 * scale);
            let partial: Vec<f64> = grad
                .par_chunks_mut(PENALTY_BLOCK)
                .zip(theta.par_chunks(PENALTY_BLOCK))
                .zip(importance.par_chunks(PENALTY_BLOCK))
                .zip(anchor.par_chunks(PENALTY_BLOCK))
                .map(|(((g, t), w), a)| {
                    let mut s = 0.0f64;
                    for (((g, &t), &w), &a) in g.iter_mut().zip(t).zip(w).zip(a) {
                        let d = t - a;
                        s += w.to_f64() * d.to_f64() * d.to_f64();
                        *g += two_scale * w * d;
                    }
                    s
                })
                .collect();
            total += scale * partial.iter().sum::<f64>();
        }
        total
    }

    /// The penalty's value at `theta`, without recording.
    pub fn value(&self, theta: &[F]) -> f64 {
        let mut tape = Tape::no_grad();
        let th = tape.constant_ref(&[theta.len()], theta);
        self.penalty(&mut tape, th)
            .map_or(0.0, |p| tape.item(p).to_f64())
    }

    /// A task begins at weights `theta`.
    pub fn begin_task(&mut self, theta: &[F]) {
        if let Consolidation::Si { path, start, .. } = self {
            path.iter_mut().for_each(|w| *w = F::ZERO);
            *start = theta.to_vec();
        }
    }

    /// After an optimizer step from `before` to `after` driven by the task-loss gradient
    /// `task_grad`: SI adds −g·Δθ to ω.
    pub fn record_step(&mut self, task_grad: &[F], before: &[F], after: &[F]) {
        if let Consolidation::Si { path, .. } = self {
            for (((w, &g), &b), &a) in path.iter_mut().zip(task_grad).zip(before).zip(after) {
                *w -= g * (a - b);
            }
        }
    }

    /// The task ended at weights `theta`, with its Fisher estimate if
    /// [`Consolidation::needs_fisher`].
    pub fn end_task(&mut self, theta: &[F], fisher: Option<Vec<F>>) {
        match self {
            Consolidation::None => {}
            Consolidation::Ewc { tasks, .. } => {
                tasks.push((fisher.expect("EWC needs a Fisher"), theta.to_vec()));
            }
            Consolidation::OnlineEwc { gamma, state, .. } => {
                let new = fisher.expect("online EWC needs a Fisher");
                let g = F::from_f64(*gamma);
                let f = match state.take() {
                    Some((mut f, _)) => {
                        f.iter_mut().zip(&new).for_each(|(f, &n)| *f = g * *f + n);
                        f
                    }
                    None => new,
                };
                *state = Some((f, theta.to_vec()));
            }
            Consolidation::Si {
                xi,
                omega,
                anchor,
                path,
                start,
                ..
            } => {
                let xi = F::from_f64(*xi);
                for (((o, &w), &t), &s) in omega
                    .iter_mut()
                    .zip(path.iter())
                    .zip(theta)
                    .zip(start.iter())
                {
                    let d = t - s;
                    *o += w / (d * d + xi);
                }
                *anchor = Some(theta.to_vec());
            }
        }
    }
}

/// The diagonal Fisher estimate: the mean over `samples` of the squared gradient, with respect
/// to the flat weights `weights`, of the per-sample negative log-likelihood that `nll` builds on
/// a tape for sample `s` (weights var, sample index).
pub fn diagonal_fisher<F, L>(weights: &[F], samples: &[usize], mut nll: L) -> Vec<F>
where
    F: Float,
    L: FnMut(&mut Tape<'_, F>, Var, usize) -> Var,
{
    let mut fisher = vec![F::ZERO; weights.len()];
    for &s in samples {
        let mut tape = Tape::new();
        let w = tape.leaf_ref(&[weights.len()], weights);
        let loss = nll(&mut tape, w, s);
        let grads = tape.backward(loss);
        if let Some(g) = grads.get(w) {
            fisher.iter_mut().zip(g).for_each(|(f, &g)| *f += g * g);
        }
    }
    let n = F::from_f64(samples.len().max(1) as f64);
    fisher.iter_mut().for_each(|f| *f /= n);
    fisher
}

/// Rows per tape of [`mlp_diagonal_fisher`] (bounds its memory at any sample count).
const FISHER_ROWS: usize = 500;

/// The diagonal Fisher of a target MLP's weights: [`diagonal_fisher`] with the per-sample loss
/// −log softmax(logits_s)\[label_s\] over the heads `heads`, for the samples `x` [n × input],
/// in batched passes. A layer with inputs h [n × in] and per-sample gradients δ [n × out] of
/// its pre-activations has Σ_s (δ_s h_sᵀ)² = (δ²)ᵀ·(h²) and, for its bias, Σ_s δ_s²; the
/// weights of other heads get 0. `label(s, logits_s)` is sample s's class among the columns.
pub fn mlp_diagonal_fisher<F: Float>(
    target: &Mlp,
    weights: &[F],
    x: &[F],
    heads: std::ops::Range<usize>,
    mut label: impl FnMut(usize, &[F]) -> usize,
) -> Vec<F> {
    let dim = target.input_dim();
    assert_eq!(x.len() % dim, 0, "samples of {dim} inputs");
    let n = x.len() / dim;
    let mut fisher = vec![F::ZERO; weights.len()];
    for start in (0..n).step_by(FISHER_ROWS) {
        let rows = FISHER_ROWS.min(n - start);
        let mut tape = Tape::new();
        let w = tape.constant_ref(&[weights.len()], weights);
        let xv = tape.constant_ref(&[rows, dim], &x[start * dim..(start + rows) * dim]);
        // A zero leaf added to each pre-activation: its gradient is δ.
        let mut probes = Vec::new();
        let logits = target.forward_heads_with(&mut tape, w, xv, heads.clone(), |tape, h, z| {
            let probe = tape.leaf(Tensor::zeros(tape.shape(z)));
            probes.push((h, probe));
            tape.add(z, probe)
        });
        let width = tape.shape(logits)[1];
        let labels: Vec<usize> = tape
            .value(logits)
            .chunks(width)
            .enumerate()
            .map(|(i, row)| label(start + i, row))
            .collect();
        let loss = tape.softmax_cross_entropy(logits, &labels);
        let grads = tape.backward(loss);
        // The loss is the mean over rows: δ = rows · ∂loss/∂z.
        let scale = F::from_f64(rows as f64);
        for (layer, &(h, probe)) in probes.iter().enumerate() {
            let block = target.layer_block(layer, heads.clone());
            let Some(g) = grads.get(probe) else {
                continue; // nothing flowed back to this layer: its Fisher stays 0
            };
            let d2: Vec<F> = g.iter().map(|&d| (d * scale) * (d * scale)).collect();
            let h2: Vec<F> = tape.value(h).iter().map(|&v| v * v).collect();
            let (out, inp) = (block.outputs, block.inputs);
            let fw = &mut fisher[block.weight..block.weight + out * inp];
            crate::engine::kernels::gemm(out, inp, rows, F::ONE, &d2, true, &h2, false, F::ONE, fw);
            let fb = &mut fisher[block.bias..block.bias + out];
            for row in d2.chunks(out) {
                fb.iter_mut().zip(row).for_each(|(f, &d)| *f += d);
            }
        }
    }
    let n = F::from_f64(n.max(1) as f64);
    fisher.iter_mut().for_each(|f| *f /= n);
    fisher
}
