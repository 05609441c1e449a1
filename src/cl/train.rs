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
#[derive(Clone, Copy)]
pub struct Progress<'a> {
    /// Task index.
    pub task: usize,
    /// Steps done in this task.
    pub iteration: usize,
    /// Steps per task.
    pub iterations: usize,
    /// L_task of the last step.
    pub task_loss: f64,
    /// Regularizer of the last step (0 for a loop without one).
    pub reg_loss: f64,
    /// Which network the loop trains: [`PHASE_CLASSIFIER`], [`PHASE_TASK_INFERENCE`] or
    /// [`PHASE_VAE`]. HNET+R and HNET+TIR run several loops per task, one per network.
    pub phase: &'static str,
    /// The accuracy (%) on a data set of the network being trained, with its parameters
    /// after this step, read as the loop's loss reads the current task (its weights and
    /// head or heads); `None` in a loop that trains no classifier (the VAE's). Consumes no
    /// random numbers and changes nothing, so calling it does not change the training.
    pub probe: Option<&'a dyn Fn(&TaskView) -> f64>,
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("task", &self.task)
            .field("iteration", &self.iteration)
            .field("iterations", &self.iterations)
            .field("task_loss", &self.task_loss)
            .field("reg_loss", &self.reg_loss)
            .field("phase", &self.phase)
            .field("probe", &self.probe.is_some())
            .finish()
    }
}

/// The loop of the network that classifies (the hypernetwork's target network, a baseline's
/// network, HNET+R's classifier).
pub const PHASE_CLASSIFIER: &str = "classifier";
/// The loop of HNET+TIR's task-inference network.
pub const PHASE_TASK_INFERENCE: &str = "task-inference";
/// The loop of the replay model (HNET+R, HNET+TIR): the VAE with its generated decoder.
pub const PHASE_VAE: &str = "vae";

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

/// One step of [`probed_task_loop`] on its state and a batch (inputs, labels), returning
/// (task loss, regularizer).
pub type StateStep<'s, S> = dyn FnMut(&mut S, &[f32], &[usize]) -> Result<(f64, f64)> + 's;

/// The accuracy (%) on a data set of the network in a [`probed_task_loop`]'s state.
pub type StateProbe<'s, S> = dyn Fn(&S, &TaskView) -> f64 + 's;

/// The loop every learner shares: `config.iterations` steps, each on the next shuffled batch of
/// `config.batch_size` rows of `data` (stream derived from the seed and the task), given to
/// `step`, which returns (task loss, regularizer). A step's error is returned with the
/// iteration named; progress is reported after every step, as loop `phase`, without a probe.
pub fn task_loop(
    task: usize,
    data: &TaskView,
    config: &TrainConfig,
    phase: &'static str,
    on_progress: &mut dyn FnMut(&Progress),
    step: &mut BatchStep<'_>,
) -> Result<()> {
    probed_task_loop(
        task,
        data,
        config,
        phase,
        on_progress,
        &mut (),
        &mut |_, x, labels| step(x, labels),
        None,
    )
}

/// [`task_loop`] over a `state` that the step changes and `probe` reads: after every step the
/// progress report carries `probe` applied to the state, so that whoever receives it can
/// measure the network being trained on a held-out set (see [`Progress::probe`]).
#[allow(clippy::too_many_arguments)]
pub fn probed_task_loop<S: ?Sized>(
    task: usize,
    data: &TaskView,
    config: &TrainConfig,
    phase: &'static str,
    on_progress: &mut dyn FnMut(&Progress),
    state: &mut S,
    step: &mut StateStep<'_, S>,
    probe: Option<&StateProbe<'_, S>>,
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
        let (task_loss, reg_loss) = step(state, &x, &labels).map_err(|e| match e {
            Error::NonFinite(m) => Error::NonFinite(format!("iteration {it}, {m}")),
            other => other,
        })?;
        let held: &S = state;
        let measure = probe.map(|p| move |v: &TaskView| p(held, v));
        on_progress(&Progress {
            task,
            iteration: it + 1,
            iterations: config.iterations,
            task_loss,
            reg_loss,
            phase,
            probe: measure.as_ref().map(|m| m as &dyn Fn(&TaskView) -> f64),
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
