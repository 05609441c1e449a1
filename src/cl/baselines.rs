//! Baselines on the same engine: the target MLP trained directly (its weights one flat leaf
//! buffer, Adam), with no protection (fine-tuning) or with a quadratic weight penalty.
//!
//! - EWC (Kirkpatrick et al., PNAS 2017): after each task, the diagonal Fisher F of the
//!   log-likelihood, estimated from the squared gradients of individual samples (label: the
//!   model's own prediction, as in van de Ven & Tolias's code, unless the true labels are
//!   asked for), averaged over N samples; penalty (λ/2) Σ_tasks Σ_i F_i (θ_i − θ*_i)².
//! - Online EWC (Schwarz et al., ICML 2018): one running Fisher F ← γF + F_new and one anchor
//!   θ* (the weights after the last task); penalty (λ/2) Σ_i F_i (θ_i − θ*_i)².
//! - SI (Zenke et al., ICML 2017): during a task, ω_i accumulates −g_i·Δθ_i after every step,
//!   g the gradient of the task loss alone (as in the authors' code, which uses the
//!   unregularized loss); at the end, Ω_i += ω_i / ((θ_i(end) − θ_i(start))² + ξ) and the anchor
//!   moves to θ(end); penalty c Σ_i Ω_i (θ_i − θ*_i)².
//!
//! Default strengths are those of van de Ven & Tolias's code (GMvandeVen/continual-learning,
//! `params/param_values.py`, read at commit d98e3d2): SplitMNIST task-incremental λ = 1e5,
//! c = 10; domain-incremental λ = 1e10, c = 5e4; class-incremental λ = 1e9, c = 5e3;
//! PermutedMNIST λ = 100 and c = 10 (5 for class-incremental); online EWC γ = 1; ξ = 0.1. Their
//! Fisher uses every training sample; ours uses `fisher_samples` random ones (default 1000), a
//! choice of this crate. Online EWC uses the EWC λ of the scenario.

use super::inference::{Readout, Scenario};
use super::trainer::{task_loop, Progress, TrainConfig};
use crate::data::TaskView;
use crate::nn::TargetMlp;
use crate::optim::Adam;
use crate::rng::Rng;
use crate::tape::{Tape, Var};
use crate::tensor::{Float, Tensor};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// A continual-learning method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Task-conditioned hypernetwork with the output regularizer (HNET, HNET+ENT).
    #[default]
    Hnet,
    /// The target network trained on each task in turn, nothing protected.
    Finetune,
    /// Elastic weight consolidation, one Fisher and anchor per task.
    Ewc,
    /// Online EWC: one running Fisher and anchor.
    OnlineEwc,
    /// Synaptic intelligence.
    Si,
}

impl Method {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Hnet => "hnet",
            Method::Finetune => "finetune",
            Method::Ewc => "ewc",
            Method::OnlineEwc => "online-ewc",
            Method::Si => "si",
        }
    }

    /// Every method.
    pub const ALL: [Method; 5] = [
        Method::Hnet,
        Method::Finetune,
        Method::Ewc,
        Method::OnlineEwc,
        Method::Si,
    ];
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown method '{s}' (hnet, finetune, ewc, online-ewc, si)"))
    }
}

/// Strengths of the weight penalties and the Fisher estimate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineConfig {
    /// λ of EWC and online EWC.
    pub ewc_lambda: f64,
    /// γ of online EWC.
    pub online_ewc_gamma: f64,
    /// c of SI.
    pub si_c: f64,
    /// ξ of SI.
    pub si_xi: f64,
    /// Samples per Fisher estimate (at most the task's training set).
    pub fisher_samples: usize,
    /// Use the true labels in the Fisher instead of the model's predictions.
    pub fisher_true_labels: bool,
}

impl BaselineConfig {
    /// van de Ven & Tolias's settings (see the module documentation) for SplitMNIST
    /// (`split = true`) or PermutedMNIST in `scenario`.
    pub fn defaults(split: bool, scenario: Scenario) -> Self {
        let (ewc_lambda, si_c) = match (split, scenario) {
            (true, Scenario::Cl1) => (1e5, 10.0),
            (true, Scenario::Cl2) => (1e10, 5e4),
            (true, Scenario::Cl3) => (1e9, 5e3),
            (false, Scenario::Cl3) => (100.0, 5.0),
            (false, _) => (100.0, 10.0),
        };
        Self {
            ewc_lambda,
            online_ewc_gamma: 1.0,
            si_c,
            si_xi: 0.1,
            fisher_samples: 1000,
            fisher_true_labels: false,
        }
    }
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self::defaults(true, Scenario::Cl1)
    }
}

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
    /// The empty state of `method` (not `Hnet`) for `n` weights.
    pub fn new(method: Method, config: &BaselineConfig, n: usize) -> Self {
        match method {
            Method::Hnet | Method::Finetune => Consolidation::None,
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

    /// The penalty at the flat weights `theta` on `tape` (importances and anchors copied in as
    /// constants), or `None` while there is nothing to protect.
    pub fn penalty(&self, tape: &mut Tape<'_, F>, theta: Var) -> Option<Var> {
        let terms: Vec<(&[F], &[F], f64)> = match self {
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
        };
        let mut total: Option<Var> = None;
        for (importance, anchor, scale) in terms {
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

/// A target network trained directly, with the state of its weight penalty.
#[derive(Clone, Debug)]
pub struct DirectLearner {
    /// The network.
    pub target: TargetMlp,
    /// Its weights.
    pub weights: Vec<f32>,
    /// The penalty protecting earlier tasks.
    pub consolidation: Consolidation<f32>,
    /// Strengths and Fisher settings.
    pub config: BaselineConfig,
}

impl DirectLearner {
    /// `method`'s learner on `target`, weights initialised from `seed`.
    pub fn new(target: TargetMlp, method: Method, config: &BaselineConfig, seed: u64) -> Self {
        let weights = target.init_weights(&mut Rng::derived(seed, "target-init", 0));
        let consolidation = Consolidation::new(method, config, weights.len());
        Self {
            target,
            weights,
            consolidation,
            config: config.clone(),
        }
    }

    /// One step: the gradient of the task loss (from `task_loss` on a tape over the weights)
    /// plus the penalty's, an Adam step, and SI's path update. Returns (task loss, penalty).
    pub fn step(
        &mut self,
        opt: &mut Adam<f32>,
        task_loss: &mut dyn for<'t> FnMut(&mut Tape<'t, f32>, Var) -> Var,
    ) -> Result<(f64, f64)> {
        let n = self.weights.len();
        let (loss, mut grad) = {
            let mut tape = Tape::new();
            let w = tape.leaf_ref(&[n], &self.weights);
            let l = task_loss(&mut tape, w);
            let mut grads = tape.backward(l);
            (
                tape.item(l).to_f64(),
                grads.take(w).unwrap_or_else(|| vec![0.0; n]),
            )
        };
        let task_grad =
            matches!(self.consolidation, Consolidation::Si { .. }).then(|| grad.clone());
        let mut penalty = 0.0;
        {
            let mut tape = Tape::new();
            let w = tape.leaf_ref(&[n], &self.weights);
            if let Some(p) = self.consolidation.penalty(&mut tape, w) {
                penalty = tape.item(p).to_f64();
                let grads = tape.backward(p);
                if let Some(g) = grads.get(w) {
                    crate::kernels::add_assign(&mut grad, g);
                }
            }
        }
        if !loss.is_finite() || !penalty.is_finite() {
            return Err(Error::NonFinite(format!(
                "task loss {loss}, penalty {penalty} (try a smaller learning rate than {} or a smaller penalty strength)",
                opt.lr
            )));
        }
        let before = task_grad.as_ref().map(|_| self.weights.clone());
        opt.step(&mut self.weights, &grad);
        if let (Some(g), Some(b)) = (task_grad, before) {
            self.consolidation.record_step(&g, &b, &self.weights);
        }
        Ok((loss, penalty))
    }

    /// Learns classification task `task` on `data` through `readout` (softmax cross-entropy
    /// over its outputs), then consolidates: a Fisher estimate on `fisher_samples` random
    /// training samples through the same readout for EWC, the path integral for SI.
    pub fn learn_classification(
        &mut self,
        task: usize,
        data: &TaskView,
        readout: &Readout,
        config: &TrainConfig,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let mut opt = Adam::new(self.weights.len(), config.lr);
        self.consolidation.begin_task(&self.weights.clone());
        let dim = data.input_dim();
        let mut shifted = Vec::new();
        let target = self.target.clone();
        task_loop(task, data, config, on_progress, &mut |x, labels| {
            let rows = labels.len();
            shifted.clear();
            shifted.extend(labels.iter().map(|l| l + readout.label_offset));
            let target = &target;
            let heads = readout.heads.clone();
            let shifted = &shifted;
            self.step(&mut opt, &mut |tape, w| {
                let xv = tape.constant(Tensor::from_vec(&[rows, dim], x.to_vec()));
                let logits = target.forward_heads(tape, w, xv, heads.clone());
                tape.softmax_cross_entropy(logits, shifted)
            })
            .map_err(|e| match e {
                Error::NonFinite(m) => Error::NonFinite(format!("task {task}: {m}")),
                other => other,
            })
        })?;
        if !self.weights.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "task {task}: the weights became NaN or infinite in the last step"
            )));
        }
        let fisher = self
            .consolidation
            .needs_fisher()
            .then(|| self.classification_fisher(task, data, readout, config.seed));
        let weights = self.weights.clone();
        self.consolidation.end_task(&weights, fisher);
        Ok(())
    }

    fn classification_fisher(
        &self,
        task: usize,
        data: &TaskView,
        readout: &Readout,
        seed: u64,
    ) -> Vec<f32> {
        let mut rng = Rng::derived(seed, "fisher-samples", task as u64);
        let n = self.config.fisher_samples.min(data.len());
        let samples = rng.choose_distinct(data.len(), n);
        let dim = data.input_dim();
        let mut x = vec![0.0f32; dim];
        let mut label = [0usize];
        let true_labels = self.config.fisher_true_labels;
        diagonal_fisher(&self.weights, &samples, |tape, w, s| {
            data.fill_batch(&[s], &mut x, &mut label);
            let xv = tape.constant(Tensor::from_vec(&[1, dim], x.clone()));
            let logits = self
                .target
                .forward_heads(tape, w, xv, readout.heads.clone());
            let y = if true_labels {
                label[0] + readout.label_offset
            } else {
                super::trainer::argmax(tape.value(logits))
            };
            tape.softmax_cross_entropy(logits, &[y])
        })
    }
}
