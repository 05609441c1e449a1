//! The task loop: for each task, `iterations` steps of Adam on θ and on the task's embedding,
//! with the output regularizer protecting every earlier task; after each task, the test
//! accuracy of every task seen so far (a row of the accuracy matrix).
//!
//! Every random stream is derived from the run's seed and the task index (batch order,
//! embedding init, regularizer subsets), so a run resumed after task t continues exactly as an
//! uninterrupted one.

use super::{
    step_gradients, step_gradients_extra, step_gradients_with, HnetModel, Lookahead,
    OutputRegularizer, StepInput, StepWorkspace,
};
use crate::data::TaskView;
use crate::nn::TargetMlp;
use crate::optim::Adam;
use crate::rng::Rng;
use crate::tape::{BufferPool, Tape};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Settings of the training loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Steps per task.
    pub iterations: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Adam learning rate of θ.
    pub lr: f64,
    /// Adam learning rate of the current task embedding.
    pub emb_lr: f64,
    /// β of the output regularizer.
    pub beta: f64,
    /// The look-ahead of the regularizer.
    pub lookahead: Lookahead,
    /// Regularize a random subset of this many previous tasks per step (all if `None`).
    pub reg_batch: Option<usize>,
    /// Recompute the regularizer's targets from a frozen θ* instead of storing them.
    pub online_targets: bool,
    /// Label smoothing ε of the task loss (hypernetwork only): the soft target puts 1 − ε on
    /// the label and ε/(n − 1) on each other class of the head (0: one-hot targets).
    #[serde(default)]
    pub label_smoothing: f64,
    /// The run's seed.
    pub seed: u64,
}

/// What the loop reports while it trains.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Task index.
    pub task: usize,
    /// Steps done in this task.
    pub iteration: usize,
    /// Steps per task.
    pub iterations: usize,
    /// L_task of the last step.
    pub task_loss: f64,
    /// Regularizer of the last step.
    pub reg_loss: f64,
}

/// The Adam states of a task's training after its last step: θ's and the task embedding's.
/// Every task begins with fresh states (as the official code does), so these matter only to
/// inspect or to store a complete record of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    /// Adam of θ.
    pub theta: Adam<f32>,
    /// Adam of the task's embedding.
    pub embedding: Adam<f32>,
}

/// Shuffled passes over a training set, `batch` rows at a time.
pub struct BatchSampler {
    order: Vec<usize>,
    next: usize,
    rng: Rng,
}

impl BatchSampler {
    /// Batches over `len` samples from `rng`.
    pub fn new(len: usize, rng: Rng) -> Self {
        Self {
            order: (0..len).collect(),
            next: len,
            rng,
        }
    }

    /// The indices of the next batch; a new shuffled pass starts when one runs out.
    pub fn next_batch(&mut self, batch: usize, out: &mut Vec<usize>) {
        out.clear();
        while out.len() < batch {
            if self.next == self.order.len() {
                self.rng.shuffle(&mut self.order);
                self.next = 0;
            }
            let take = (batch - out.len()).min(self.order.len() - self.next);
            out.extend_from_slice(&self.order[self.next..self.next + take]);
            self.next += take;
        }
    }
}

/// The state of learning one task: the regularizer over the earlier tasks (targets captured
/// when the task begins), fresh Adam states for θ and for the task's embedding, as the
/// official implementation creates per task, and the step buffers.
pub struct TaskSession {
    task: usize,
    head: usize,
    reg: Option<OutputRegularizer<f32>>,
    theta_opt: Adam<f32>,
    emb_opt: Adam<f32>,
    workspace: StepWorkspace<f32>,
    lookahead: Lookahead,
    lr: f64,
    label_smoothing: f64,
}

impl TaskSession {
    /// Begins task `task` (the next one: `model.task_embs.len() == task`) with head `head`:
    /// adds its embedding and captures the regularizer's targets.
    pub fn begin(
        model: &mut HnetModel<f32>,
        task: usize,
        head: usize,
        config: &TrainConfig,
    ) -> Self {
        assert_eq!(model.task_embs.len(), task, "tasks are learned in order");
        model.add_task(config.seed);
        let reg = (task > 0 && config.beta > 0.0)
            .then(|| OutputRegularizer::new(model, task, config.beta, config.online_targets));
        Self {
            task,
            head,
            reg,
            theta_opt: Adam::new(model.theta.len(), config.lr),
            emb_opt: Adam::new(model.hnet.config().task_emb_dim, config.emb_lr),
            workspace: StepWorkspace::new(),
            lookahead: config.lookahead,
            lr: config.lr,
            label_smoothing: config.label_smoothing,
        }
    }

    /// One step on the batch (`x`, `labels`), regularizing the previous tasks `subset`:
    /// the gradients of the task loss and the look-ahead regularizer, then the Adam steps.
    /// Returns (task loss, regularizer); a non-finite loss is an error and changes nothing.
    pub fn step(
        &mut self,
        model: &mut HnetModel<f32>,
        x: &[f32],
        labels: &[usize],
        subset: &[usize],
    ) -> Result<(f64, f64)> {
        let input = StepInput {
            x,
            labels,
            task: self.task,
            head: self.head,
        };
        let reg = self.reg.as_ref().map(|r| (r, subset));
        let smoothing = self.label_smoothing;
        let grads = if smoothing == 0.0 {
            step_gradients(
                model,
                input,
                reg,
                self.lookahead,
                &self.theta_opt,
                &mut self.workspace,
            )
        } else {
            let m: &HnetModel<f32> = model;
            let rows = labels.len();
            let mut bad = None;
            let grads = step_gradients_with(
                m,
                self.task,
                |tape, weights| {
                    let xv = tape.constant_ref(&[rows, m.target.input_dim()], x);
                    let logits = m.target.forward(tape, weights, xv, input.head);
                    tape.softmax_cross_entropy_smoothed(logits, labels, smoothing)
                        .unwrap_or_else(|e| {
                            // Any scalar: the step is discarded with the error.
                            bad = Some(e);
                            tape.sum(logits)
                        })
                },
                reg,
                self.lookahead,
                &self.theta_opt,
                &mut self.workspace,
            );
            if let Some(e) = bad {
                return Err(e);
            }
            grads
        };
        self.apply(model, grads)
    }

    /// One regression step on the batch (`x` [rows × input], `y` [rows × outputs]) with the
    /// mean squared error over rows, Σ (f(x) − y)² / rows, as the task loss.
    pub fn step_regression(
        &mut self,
        model: &mut HnetModel<f32>,
        x: &[f32],
        y: &[f32],
        subset: &[usize],
    ) -> Result<(f64, f64)> {
        let reg = self.reg.as_ref().map(|r| (r, subset));
        let m: &HnetModel<f32> = model;
        let rows = x.len() / m.target.input_dim();
        let head = self.head;
        let grads = step_gradients_with(
            m,
            self.task,
            |tape, weights| {
                let xv = tape.constant_ref(&[rows, m.target.input_dim()], x);
                let yv = tape.constant_ref(&[rows, m.target.head_dim()], y);
                let out = m.target.forward(tape, weights, xv, head);
                let sq = tape.squared_distance(out, yv);
                tape.scale(sq, 1.0 / rows as f32)
            },
            reg,
            self.lookahead,
            &self.theta_opt,
            &mut self.workspace,
        );
        self.apply(model, grads)
    }

    /// The gradients of a step whose task loss has parameters of its own besides the generated
    /// weights (see [`step_gradients_extra`]); [`TaskSession::apply`] then takes the step on θ
    /// and the embedding, the caller on its own parameters (from `extra`).
    pub fn gradients_extra<'m, L>(
        &mut self,
        model: &'m HnetModel<f32>,
        subset: &[usize],
        loss: L,
    ) -> super::StepGradients<f32>
    where
        L: FnOnce(
            &mut Tape<'m, f32>,
            crate::tape::Var,
        ) -> (crate::tape::Var, Vec<crate::tape::Var>),
    {
        let reg = self.reg.as_ref().map(|r| (r, subset));
        step_gradients_extra(
            model,
            self.task,
            loss,
            reg,
            self.lookahead,
            &self.theta_opt,
            &mut self.workspace,
        )
    }

    /// The Adam steps on θ and the task's embedding for `grads`; returns (task loss,
    /// regularizer). A non-finite loss is an error and changes nothing.
    pub fn apply(
        &mut self,
        model: &mut HnetModel<f32>,
        grads: super::StepGradients<f32>,
    ) -> Result<(f64, f64)> {
        let losses = (grads.task_loss, grads.reg_loss);
        if !losses.0.is_finite() || !losses.1.is_finite() {
            return Err(Error::NonFinite(format!(
                "task {}: task loss {}, regularizer {} (try a smaller learning rate than {})",
                self.task, losses.0, losses.1, self.lr
            )));
        }
        self.theta_opt.step(&mut model.theta, &grads.theta);
        self.emb_opt
            .step(&mut model.task_embs[self.task], &grads.task_emb);
        self.workspace.recycle(grads);
        Ok(losses)
    }

    /// Checks that θ and the task's embedding are finite (a NaN in θ shows in the next step's
    /// loss, so only the last step's update needs this look), and returns the Adam states.
    pub fn finish(self, model: &HnetModel<f32>) -> Result<OptimizerState> {
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if finite(&model.theta) && finite(&model.task_embs[self.task]) {
            Ok(OptimizerState {
                theta: self.theta_opt,
                embedding: self.emb_opt,
            })
        } else {
            Err(Error::NonFinite(format!(
                "task {}: the hypernetwork parameters or the task embedding became NaN or infinite in the last step (try a smaller learning rate than {})",
                self.task, self.lr
            )))
        }
    }
}

/// Trains task `task` (the next one: `model.task_embs.len() == task`) on `data` with head
/// `head`: `iterations` steps on shuffled batches; returns the Adam states after the last step.
/// Fails if a loss or a parameter becomes NaN or infinite.
pub fn train_task(
    model: &mut HnetModel<f32>,
    task: usize,
    head: usize,
    data: &TaskView,
    config: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<OptimizerState> {
    check_not_empty(task, data)?;
    let mut session = TaskSession::begin(model, task, head, config);
    let mut subset_rng = Rng::derived(config.seed, "regularizer-subsets", task as u64);
    let all_prev: Vec<usize> = (0..task).collect();
    task_loop(task, data, config, on_progress, &mut |x, labels| {
        let subset = match config.reg_batch {
            Some(k) if k < task => subset_rng.choose_distinct(task, k),
            _ => all_prev.clone(),
        };
        session.step(model, x, labels, &subset)
    })?;
    session.finish(model)
}

fn check_not_empty(task: usize, data: &TaskView) -> Result<()> {
    if data.is_empty() {
        return Err(Error::config(
            "task",
            format!("task {task} has no training samples"),
        ));
    }
    Ok(())
}

/// One step on a batch (inputs, labels), returning (task loss, regularizer).
pub type BatchStep<'s> = dyn FnMut(&[f32], &[usize]) -> Result<(f64, f64)> + 's;

/// The loop every learner shares: `config.iterations` steps, each on the next shuffled batch of
/// `config.batch_size` rows of `data` (stream derived from the seed and the task), given to
/// `step`, which returns (task loss, regularizer). A step's error is returned with the
/// iteration named; progress is reported after every step.
pub fn task_loop(
    task: usize,
    data: &TaskView,
    config: &TrainConfig,
    on_progress: &mut dyn FnMut(&Progress),
    step: &mut BatchStep<'_>,
) -> Result<()> {
    check_not_empty(task, data)?;
    let mut sampler = BatchSampler::new(
        data.len(),
        Rng::derived(config.seed, "batches", task as u64),
    );
    let b = config.batch_size;
    let mut x = vec![0.0f32; b * data.input_dim()];
    let mut labels = vec![0usize; b];
    let mut indices = Vec::with_capacity(b);
    for it in 0..config.iterations {
        sampler.next_batch(b, &mut indices);
        data.fill_batch(&indices, &mut x, &mut labels);
        let (task_loss, reg_loss) = step(&x, &labels).map_err(|e| match e {
            Error::NonFinite(m) => Error::NonFinite(format!("iteration {it}, {m}")),
            other => other,
        })?;
        on_progress(&Progress {
            task,
            iteration: it + 1,
            iterations: config.iterations,
            task_loss,
            reg_loss,
        });
    }
    Ok(())
}

/// Rows evaluated per batch.
pub const EVAL_BATCH: usize = 1000;

/// Percent of `data` classified correctly by head `head` with the weights generated for
/// `task`.
pub fn accuracy(model: &HnetModel<f32>, task: usize, head: usize, data: &TaskView) -> f64 {
    let weights = model.generated_weights(task);
    let predictions = predict(model, &weights, head, data);
    let labels = data.labels();
    let correct = predictions
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p == l)
        .count();
    100.0 * correct as f64 / data.len().max(1) as f64
}

/// The argmax of head `head` for every sample of `data`, with target weights `weights`.
pub fn predict(
    model: &HnetModel<f32>,
    weights: &[f32],
    head: usize,
    data: &TaskView,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(data.len());
    for_each_logits(
        &model.target,
        weights,
        head..head + 1,
        data,
        &mut |_, row| {
            out.push(argmax(row));
        },
    );
    out
}

/// Runs `target` with weights `weights` over all of `data` in batches of [`EVAL_BATCH`] rows
/// and calls `f(sample, logits)` for every sample in order, the logits being those of the
/// heads `heads` side by side.
pub fn for_each_logits(
    target: &TargetMlp,
    weights: &[f32],
    heads: Range<usize>,
    data: &TaskView,
    f: &mut dyn FnMut(usize, &[f32]),
) {
    let dim = data.input_dim();
    let mut x = vec![0.0f32; EVAL_BATCH * dim];
    let mut labels = vec![0usize; EVAL_BATCH];
    let all: Vec<usize> = (0..data.len()).collect();
    let mut pool = BufferPool::new();
    let k = heads.len() * target.head_dim();
    for idx in all.chunks(EVAL_BATCH) {
        let rows = idx.len();
        data.fill_batch(idx, &mut x[..rows * dim], &mut labels[..rows]);
        let mut tape = Tape::with_pool(false, pool);
        let w = tape.constant_ref(&[weights.len()], weights);
        let xv = tape.constant_ref(&[rows, dim], &x[..rows * dim]);
        let logits = target.forward_heads(&mut tape, w, xv, heads.clone());
        for (r, row) in tape.value(logits).chunks_exact(k).enumerate() {
            f(idx[0] + r, row);
        }
        pool = tape.into_pool(None);
    }
}

/// Index of the largest element (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}
