//! The training loop every learner shares: `iterations` steps per task on shuffled batches,
//! each batch's indices drawn from a stream derived from the run's seed and the task index (so
//! a run resumed after task t continues exactly as an uninterrupted one).

use crate::data::TaskView;
use crate::rng::Rng;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// How the hypernetwork's output regularizer looks ahead (the others ignore it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lookahead {
    /// Δθ = 0: the regularizer at θ.
    Off,
    /// Δθ = the change of one Adam step for the task gradient.
    Adam,
    /// Δθ = −lr·∂L_task/∂θ.
    Sgd,
}

impl Lookahead {
    /// In words: "an Adam step", "a gradient-descent step" or "none (at θ)".
    pub fn describe(self) -> &'static str {
        match self {
            Lookahead::Off => "none (at θ)",
            Lookahead::Adam => "an Adam step",
            Lookahead::Sgd => "a gradient-descent step",
        }
    }
}

/// How the hypernetwork's output regularizer is computed (the others ignore it). Every form
/// gives the same value and gradient up to rounding; they differ in cost and memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegularizerForm {
    /// Every previous task's generated weights made whole and compared with their targets,
    /// stored (growing with the tasks) or recomputed from θ*: O(chunks · chunk size · width)
    /// per task.
    Direct,
    /// From Gram matrices of the output layer, which is linear: O(chunk size · width²) per
    /// step, then O(chunks · width²) per task; stores the last hidden activations of θ* per
    /// task (or recomputes them), not the targets.
    Factored,
    /// Whichever of the two a cost model from the shapes finds cheaper, per step.
    #[default]
    Auto,
}

impl RegularizerForm {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RegularizerForm::Direct => "direct",
            RegularizerForm::Factored => "factored",
            RegularizerForm::Auto => "auto",
        }
    }
}

impl std::str::FromStr for RegularizerForm {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "direct" => Ok(RegularizerForm::Direct),
            "factored" => Ok(RegularizerForm::Factored),
            "auto" => Ok(RegularizerForm::Auto),
            _ => Err(format!(
                "unknown regularizer form '{s}' (direct, factored, auto)"
            )),
        }
    }
}

/// Settings of the training loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// How the output regularizer is computed (configurations stored before it existed:
    /// auto).
    #[serde(default)]
    pub regularizer: RegularizerForm,
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
pub(crate) fn check_not_empty(task: usize, data: &TaskView) -> Result<()> {
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

/// A setting's value as a user would type it: plain in [1e-4, 1e6), else in exponent form.
pub fn number(v: f64) -> String {
    if v == 0.0 || (1e-4..1e6).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}
