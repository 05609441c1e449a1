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
use crate::cl::eval::{argmax, for_each_logits};
use crate::cl::train::{check_not_empty, number, probed_task_loop, PHASE_CLASSIFIER};
use crate::cl::{Progress, TrainConfig};
use crate::data::TaskView;
use crate::engine::tape::Tape;
use crate::optim::Adam;
use crate::rng::Rng;
use crate::{Error, Result};

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
    emb_lr: f64,
    beta: f64,
    /// The flag of β in error messages (`--beta`; the replay model's: `--replay-beta`).
    beta_flag: &'static str,
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
        let reg = (task > 0 && config.beta > 0.0).then(|| {
            OutputRegularizer::with_form(
                model,
                task,
                config.beta,
                config.online_targets,
                config.regularizer,
            )
        });
        Self {
            task,
            head,
            reg,
            theta_opt: Adam::new(model.theta.len(), config.lr),
            emb_opt: Adam::new(model.hnet.config().task_emb_dim, config.emb_lr),
            workspace: StepWorkspace::new(),
            lookahead: config.lookahead,
            lr: config.lr,
            emb_lr: config.emb_lr,
            beta: config.beta,
            beta_flag: "--beta",
            label_smoothing: config.label_smoothing,
        }
    }

    /// The regularizer over the earlier tasks (`None` for the first task or β = 0).
    pub fn regularizer(&self) -> Option<&OutputRegularizer<f32>> {
        self.reg.as_ref()
    }

    /// Names β's flag `flag` in the hint of a diverged step (the replay model's session).
    pub fn with_beta_flag(mut self, flag: &'static str) -> Self {
        self.beta_flag = flag;
        self
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
            // ε was checked by the configuration, the labels by the data (like the ε = 0 path).
            step_gradients_with(
                m,
                self.task,
                |tape, weights| {
                    let xv = tape.constant_ref(&[rows, m.target.input_dim()], x);
                    let logits = m.target.forward(tape, weights, xv, input.head);
                    tape.softmax_cross_entropy_smoothed(logits, labels, smoothing)
                },
                reg,
                self.lookahead,
                &self.theta_opt,
                &mut self.workspace,
            )
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
            crate::engine::tape::Var,
        ) -> (crate::engine::tape::Var, Vec<crate::engine::tape::Var>),
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
            let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
            // A non-finite loss follows from the last update: name what it broke.
            let hint = if !finite(&model.task_embs[self.task]) {
                format!(
                    "the task embedding diverged: try a smaller --emb-lr than {}",
                    number(self.emb_lr)
                )
            } else if !finite(&model.theta) {
                format!("try a smaller --lr than {}", number(self.lr))
            } else if !losses.0.is_finite() {
                // Both parameters are finite but too large: the larger rate first.
                if self.emb_lr > self.lr {
                    format!(
                        "try a smaller --emb-lr than {} or a smaller --lr than {}",
                        number(self.emb_lr),
                        number(self.lr)
                    )
                } else {
                    format!("try a smaller --lr than {}", number(self.lr))
                }
            } else {
                format!(
                    "the output regularizer diverged: try a smaller {} than {} or a smaller --lr than {}",
                    self.beta_flag,
                    number(self.beta),
                    number(self.lr)
                )
            };
            return Err(Error::NonFinite(format!(
                "task {}: task loss {}, regularizer {} ({hint})",
                self.task, losses.0, losses.1
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
        if !finite(&model.theta) {
            Err(Error::NonFinite(format!(
                "task {}: the hypernetwork parameters became NaN or infinite in the last step (try a smaller --lr than {})",
                self.task,
                number(self.lr)
            )))
        } else if !finite(&model.task_embs[self.task]) {
            Err(Error::NonFinite(format!(
                "task {}: the task embedding became NaN or infinite in the last step (try a smaller --emb-lr than {})",
                self.task,
                number(self.emb_lr)
            )))
        } else {
            Ok(OptimizerState {
                theta: self.theta_opt,
                embedding: self.emb_opt,
            })
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
    probed_task_loop(
        task,
        data,
        config,
        PHASE_CLASSIFIER,
        on_progress,
        model,
        &mut |model, x, labels| {
            let subset = match config.reg_batch {
                Some(k) if k < task => subset_rng.choose_distinct(task, k),
                _ => all_prev.clone(),
            };
            session.step(model, x, labels, &subset)
        },
        Some(&|model, v| accuracy(model, task, head, v)),
    )?;
    session.finish(model)
}

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
