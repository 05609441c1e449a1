//! A target network trained directly (its weights one flat leaf buffer, Adam) with the state
//! of its weight penalty.

use super::{mlp_diagonal_fisher, BaselineConfig, Consolidation};
use crate::cl::eval::argmax;
use crate::cl::eval::readout_accuracy;
use crate::cl::train::{probed_task_loop, PHASE_CLASSIFIER};
use crate::cl::{LearnerState, Method, Progress, Readout, StateResult, TrainConfig};
use crate::data::TaskView;
use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::{Float, Tensor};
use crate::nn::Mlp;
use crate::optim::Adam;
use crate::rng::Rng;
use crate::{Error, Result};

/// A target network trained directly, with the state of its weight penalty.
#[derive(Clone, Debug)]
pub struct DirectLearner {
    /// The network.
    pub target: Mlp,
    /// Its weights.
    pub weights: Vec<f32>,
    /// The penalty protecting earlier tasks.
    pub consolidation: Consolidation<f32>,
    /// Strengths and Fisher settings.
    pub config: BaselineConfig,
}

impl DirectLearner {
    /// `method`'s learner on `target`, weights initialised from `seed`.
    pub fn new(target: Mlp, method: Method, config: &BaselineConfig, seed: u64) -> Self {
        let weights = target.init_weights(&mut Rng::derived(seed, "target-init", 0));
        let consolidation = Consolidation::new(method, config, weights.len());
        Self {
            target,
            weights,
            consolidation,
            config: config.clone(),
        }
    }

    /// Stores the weights as `{prefix}weights` and the penalty's state after the last task:
    /// EWC `{prefix}ewc.{k}.fisher` / `.anchor` per task, online EWC `{prefix}online_ewc.fisher`
    /// / `.anchor`, SI `{prefix}si.omega` and `{prefix}si.anchor` (SI's path integral and start
    /// are the task in training's, reset when a task begins).
    pub fn save_state(&self, prefix: &str, state: &mut LearnerState) {
        state.put(format!("{prefix}weights"), &self.weights);
        match &self.consolidation {
            Consolidation::None => {}
            Consolidation::Ewc { tasks, .. } => {
                for (k, (f, a)) in tasks.iter().enumerate() {
                    state.put(format!("{prefix}ewc.{k}.fisher"), f);
                    state.put(format!("{prefix}ewc.{k}.anchor"), a);
                }
            }
            Consolidation::OnlineEwc { state: s, .. } => {
                if let Some((f, a)) = s {
                    state.put(format!("{prefix}online_ewc.fisher"), f);
                    state.put(format!("{prefix}online_ewc.anchor"), a);
                }
            }
            Consolidation::Si { omega, anchor, .. } => {
                state.put(format!("{prefix}si.omega"), omega);
                if let Some(a) = anchor {
                    state.put(format!("{prefix}si.anchor"), a);
                }
            }
        }
    }

    /// Takes what [`DirectLearner::save_state`] stored after `completed` tasks.
    pub fn restore_state(
        &mut self,
        prefix: &str,
        completed: usize,
        state: &mut LearnerState,
    ) -> StateResult<()> {
        let n = self.weights.len();
        self.weights = state.take(&format!("{prefix}weights"), n)?;
        let mut pair = |name: &str| -> StateResult<(Vec<f32>, Vec<f32>)> {
            Ok((
                state.take(&format!("{prefix}{name}.fisher"), n)?,
                state.take(&format!("{prefix}{name}.anchor"), n)?,
            ))
        };
        match &mut self.consolidation {
            Consolidation::None => {}
            Consolidation::Ewc { tasks, .. } => {
                *tasks = (0..completed)
                    .map(|k| pair(&format!("ewc.{k}")))
                    .collect::<StateResult<_>>()?;
            }
            Consolidation::OnlineEwc { state: s, .. } => {
                *s = if completed > 0 {
                    Some(pair("online_ewc")?)
                } else {
                    None
                };
            }
            Consolidation::Si { omega, anchor, .. } => {
                *omega = state.take(&format!("{prefix}si.omega"), n)?;
                *anchor = if completed > 0 {
                    Some(state.take(&format!("{prefix}si.anchor"), n)?)
                } else {
                    None
                };
            }
        }
        Ok(())
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
        let penalty = self
            .consolidation
            .add_penalty_gradient(&self.weights, &mut grad);
        if !loss.is_finite() || !penalty.is_finite() {
            let strength = match &self.consolidation {
                Consolidation::None => None,
                Consolidation::Ewc { .. } | Consolidation::OnlineEwc { .. } => Some("--ewc-lambda"),
                Consolidation::Si { .. } => Some("--si-c"),
            };
            let lr = crate::cl::train::number(opt.lr);
            let hint = match strength {
                Some(flag) if !penalty.is_finite() => {
                    format!("the penalty diverged: try a smaller {flag} or --lr than {lr}")
                }
                _ => format!("try a smaller --lr than {lr}"),
            };
            return Err(Error::NonFinite(format!(
                "task loss {loss}, penalty {penalty} ({hint})"
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
        let probe_target = &target;
        probed_task_loop(
            task,
            data,
            config,
            PHASE_CLASSIFIER,
            on_progress,
            self,
            &mut |me, x, labels| {
                let rows = labels.len();
                shifted.clear();
                shifted.extend(labels.iter().map(|l| l + readout.label_offset));
                let target = &target;
                let heads = readout.heads.clone();
                let shifted = &shifted;
                me.step(&mut opt, &mut |tape, w| {
                    let xv = tape.constant(Tensor::from_vec(&[rows, dim], x.to_vec()));
                    let logits = target.forward_heads(tape, w, xv, heads.clone());
                    tape.softmax_cross_entropy(logits, shifted)
                })
                .map_err(|e| match e {
                    Error::NonFinite(m) => Error::NonFinite(format!("task {task}: {m}")),
                    other => other,
                })
            },
            Some(&|me, v| readout_accuracy(probe_target, &me.weights, readout, &|l| l, v)),
        )?;
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
        if let Some(flag) = self.consolidation.non_finite_setting() {
            return Err(Error::NonFinite(format!(
                "task {task}: the penalty's importance weights became NaN or infinite at the end of the task (try {flag})"
            )));
        }
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
        let mut x = vec![0.0f32; n * data.input_dim()];
        let mut labels = vec![0usize; n];
        data.fill_batch(&samples, &mut x, &mut labels);
        let true_labels = self.config.fisher_true_labels;
        let offset = readout.label_offset;
        mlp_diagonal_fisher(
            &self.target,
            &self.weights,
            &x,
            readout.heads.clone(),
            |s, logits| {
                if true_labels {
                    labels[s] + offset
                } else {
                    argmax(logits)
                }
            },
        )
    }
}
