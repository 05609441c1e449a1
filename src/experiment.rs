//! The continual-learning experiments of the paper on MNIST: their configuration (with the
//! official code's defaults), validation of a configuration, and a run from data to the
//! accuracy matrix.
//!
//! [`run`] drives every method through one loop (learn a task, evaluate every task so far in
//! the scenario). The hypernetwork's run state is a [`Checkpoint`]: [`continue_run`] trains
//! the configuration's tasks it has not learned yet and calls a hook after each (which writes
//! the checkpoint), [`learn`] adds one more task to a stored model, [`evaluate`] measures
//! every stored task. The other methods' run state is a [`LearnerCheckpoint`] (the learner's
//! named tensors), continued the same way by [`continue_learner_run`].

use crate::checkpoint::Checkpoint;
use crate::cl::replay::{ReplayClassifier, ReplayConfig, ReplayReadouts, ReplayTargets, Vae};
use crate::cl::trainer::{
    accuracy, argmax, for_each_logits, train_task, OptimizerState, Progress, TrainConfig,
};
use crate::cl::{
    entropy_inference, infer_tasks, logit_gap_temperature, BaselineConfig, DirectLearner,
    EntropyCalibration, HnetModel, InferredEval, LearnerState, Lookahead, Method, Readout,
    Scenario, StateResult,
};
use crate::data::{load_mnist, ClassificationTask, Mnist, TaskSpec, TaskView};
use crate::nn::{Activation, HnetConfig, HnetInit, TargetMlp};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Benchmark {
    /// Five tasks of digit pairs {0,1}, {2,3}, …, 784 inputs, 2 outputs per head.
    SplitMnist,
    /// One pixel permutation per task of 32×32 zero-padded digits, 10 outputs per head.
    PermutedMnist,
}

impl Benchmark {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::SplitMnist => "split-mnist",
            Benchmark::PermutedMnist => "permuted-mnist",
        }
    }
}

/// Everything that determines a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentConfig {
    /// The benchmark.
    pub benchmark: Benchmark,
    /// Number of tasks.
    pub num_tasks: usize,
    /// Output heads of the target network (`None`: one per task). More heads than tasks
    /// reserve room for tasks added later with [`learn`].
    #[serde(default)]
    pub heads: Option<usize>,
    /// Hidden widths of the target MLP.
    pub target_hidden: Vec<usize>,
    /// The hypernetwork.
    pub hnet: HnetConfig,
    /// How θ is initialised.
    #[serde(default)]
    pub hnet_init: HnetInit,
    /// The training loop.
    pub train: TrainConfig,
    /// Permutation seed of PermutedMNIST (defaults to the run's seed).
    pub data_seed: u64,
    /// Directory of the MNIST IDX files.
    pub data_dir: PathBuf,
    /// The scenario (CL1 for configurations saved before it existed).
    #[serde(default)]
    pub scenario: Scenario,
    /// The method (the hypernetwork for configurations saved before it existed).
    #[serde(default)]
    pub method: Method,
    /// Penalty strengths of the baselines (ignored by the hypernetwork).
    #[serde(default)]
    pub baseline: BaselineConfig,
    /// Training samples held out per task as a validation set (the last ones of the task's
    /// training subset; 0: none). Held-out samples are not trained on; after every task the
    /// run also evaluates the validation sets, to choose settings without the test sets.
    #[serde(default)]
    pub validation: usize,
    /// How HNET+ENT (CL2/CL3, hypernetwork) scales each task's logits before comparing
    /// entropies.
    #[serde(default)]
    pub entropy_calibration: EntropyCalibration,
    /// The replay model of HNET+R and HNET+TIR (ignored by the other methods).
    #[serde(default)]
    pub replay: ReplayConfig,
}

impl ExperimentConfig {
    /// The settings of the official code (METHOD.md §5) for `benchmark`.
    pub fn paper_defaults(benchmark: Benchmark) -> Self {
        let (num_tasks, target_hidden, hnet, iterations, lr, beta) = match benchmark {
            Benchmark::SplitMnist => (
                5,
                vec![400, 400],
                HnetConfig {
                    task_emb_dim: 96,
                    hidden: vec![10, 10],
                    activation: Activation::Relu,
                    chunk_size: Some(42_000),
                    chunk_emb_dim: 96,
                },
                2000,
                1e-3,
                0.01,
            ),
            Benchmark::PermutedMnist => (
                10,
                vec![1000, 1000],
                HnetConfig {
                    task_emb_dim: 24,
                    hidden: vec![25, 25],
                    activation: Activation::Elu,
                    chunk_size: Some(78_000),
                    chunk_emb_dim: 8,
                },
                5000,
                1e-4,
                0.1,
            ),
        };
        Self {
            benchmark,
            num_tasks,
            heads: None,
            target_hidden,
            hnet,
            hnet_init: HnetInit::Xavier,
            train: TrainConfig {
                iterations,
                batch_size: 128,
                lr,
                emb_lr: lr,
                beta,
                lookahead: Lookahead::Adam,
                reg_batch: None,
                online_targets: false,
                label_smoothing: 0.0,
                seed: 42,
            },
            data_seed: 42,
            data_dir: PathBuf::from("data/mnist"),
            scenario: Scenario::Cl1,
            method: Method::Hnet,
            baseline: BaselineConfig::defaults(benchmark == Benchmark::SplitMnist, Scenario::Cl1),
            validation: 0,
            entropy_calibration: EntropyCalibration::None,
            replay: replay_defaults(benchmark, Method::Hnet),
        }
    }

    /// Sets the method and the scenario, with the defaults that go with them: the official
    /// code's replay settings of the benchmark for HNET+R and HNET+TIR (their decoders
    /// differ), the baselines' strengths for the scenario, and HNET+ENT's calibration:
    /// logit-gap temperatures for the hypernetwork in CL2 and CL3 (chosen on SplitMNIST
    /// validation sets, README "HNET+ENT calibration"), none otherwise (CL1 infers no task;
    /// the other methods do not use it).
    pub fn set_method_and_scenario(&mut self, method: Method, scenario: Scenario) {
        self.method = method;
        self.replay = replay_defaults(self.benchmark, method);
        self.scenario = scenario;
        self.baseline = BaselineConfig::defaults(self.benchmark == Benchmark::SplitMnist, scenario);
        self.entropy_calibration = if scenario.infers_task() && self.method == Method::Hnet {
            EntropyCalibration::LogitGap
        } else {
            EntropyCalibration::None
        };
    }

    /// Whether the run records task inference after every task: the hypernetwork and HNET+TIR
    /// when the scenario infers the task (CL2, CL3); a directly trained network (the
    /// baselines, HNET+R's classifier) in CL3, where its argmax over every class names a task.
    pub fn records_task_inference(&self) -> bool {
        match self.method {
            Method::Hnet | Method::HnetTir => self.scenario.infers_task(),
            _ => self.scenario == Scenario::Cl3,
        }
    }

    /// Whether the run trains a replay model (VAE): HNET+R always, HNET+TIR when it infers
    /// the task (CL2, CL3).
    pub fn trains_vae(&self) -> bool {
        match self.method {
            Method::HnetR => true,
            Method::HnetTir => self.scenario.infers_task(),
            _ => false,
        }
    }

    /// How many tasks the VAE has learned after `completed` tasks: every task but the last
    /// (nothing replays it), none if the run trains no VAE.
    pub fn vae_tasks(&self, completed: usize) -> usize {
        if self.trains_vae() {
            completed.min(self.num_tasks.saturating_sub(1))
        } else {
            0
        }
    }

    /// Inputs and outputs per head of the benchmark.
    pub fn io_dims(&self) -> (usize, usize) {
        match self.benchmark {
            Benchmark::SplitMnist => (784, 2),
            Benchmark::PermutedMnist => (1024, 10),
        }
    }

    /// Number of output heads of the target network: one shared head in CL2; otherwise
    /// `heads`, or one per task.
    pub fn num_heads(&self) -> usize {
        match self.scenario {
            Scenario::Cl2 => 1,
            Scenario::Cl1 | Scenario::Cl3 => self.heads.unwrap_or(self.num_tasks),
        }
    }

    /// The head task `task` is trained and read with (CL2: the shared head 0).
    pub fn head(&self, task: usize) -> usize {
        self.scenario.head(task)
    }

    /// Whether the target network has a head for task `task` (always in CL2).
    pub fn has_head_for(&self, task: usize) -> bool {
        self.head(task) < self.num_heads()
    }

    /// The target network (`num_heads()` heads).
    pub fn target(&self) -> TargetMlp {
        let (input, head) = self.io_dims();
        TargetMlp::new(input, &self.target_hidden, head, self.num_heads())
    }

    /// The benchmark's tasks: SplitMNIST's digit pairs {2k, 2k+1}; PermutedMNIST's
    /// unpermuted task 0 and, for k ≥ 1, the permutation of `data_seed` and k.
    pub fn task_specs(&self) -> Vec<TaskSpec> {
        (0..self.num_tasks)
            .map(|k| match self.benchmark {
                Benchmark::SplitMnist => TaskSpec::Split {
                    classes: [2 * k as u8, 2 * k as u8 + 1],
                },
                Benchmark::PermutedMnist => TaskSpec::Permuted {
                    seed: (k > 0).then_some(self.data_seed),
                    index: k as u64,
                },
            })
            .collect()
    }

    /// Checks that `spec` is a task of this benchmark's kind (inputs and head size).
    pub fn check_task(&self, spec: &TaskSpec) -> Result<()> {
        spec.validate()?;
        match (self.benchmark, spec) {
            (Benchmark::SplitMnist, TaskSpec::Split { .. })
            | (Benchmark::PermutedMnist, TaskSpec::Permuted { .. }) => Ok(()),
            _ => Err(Error::config(
                "task",
                format!(
                    "{spec} is not a {} task (a model has one input size and head size)",
                    self.benchmark.name()
                ),
            )),
        }
    }

    /// Checks that `other` describes the same run: equal in every field the method reads (the
    /// data directory may differ; the baselines' strengths do not count for the hypernetwork,
    /// nor the replay model for methods that do not replay); the error names the first
    /// differing field, e.g. `train.lr`, with both values.
    pub fn check_same(&self, other: &ExperimentConfig) -> Result<()> {
        let value = |c: &ExperimentConfig| {
            let mut v = serde_json::to_value(c).expect("the configuration serializes");
            if let Some(m) = v.as_object_mut() {
                m.remove("data_dir");
                if c.method == Method::Hnet {
                    // The baselines' strengths follow the scenario and play no part.
                    m.remove("baseline");
                }
                if !c.method.replays() {
                    m.remove("replay");
                }
            }
            v
        };
        match first_difference(&value(self), &value(other), "") {
            None => Ok(()),
            Some((field, stored, given)) => Err(Error::config(
                field,
                format!("the checkpoint's run has {stored}, this command gives {given}"),
            )),
        }
    }

    /// Checks every field; the error names the field and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let positive = |field: &str, v: usize| {
            if v == 0 {
                Err(Error::config(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        let rate = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    field,
                    format!("must be a positive finite number, got {v}"),
                ))
            }
        };
        positive("tasks", self.num_tasks)?;
        if self.heads.is_some() && self.scenario == Scenario::Cl2 {
            return Err(Error::config(
                "heads",
                "CL2 has one head shared by all tasks; --heads applies to CL1 and CL3",
            ));
        }
        if let Some(h) = self.heads {
            if h < self.num_tasks {
                return Err(Error::config(
                    "heads",
                    format!(
                        "expected at least one head per task ({}), found {h}",
                        self.num_tasks
                    ),
                ));
            }
        }
        if self.benchmark == Benchmark::SplitMnist && self.num_tasks > 5 {
            return Err(Error::config(
                "tasks",
                format!("SplitMNIST has 5 tasks, {} asked", self.num_tasks),
            ));
        }
        positive("iterations", self.train.iterations)?;
        positive("batch-size", self.train.batch_size)?;
        rate("lr", self.train.lr)?;
        rate("emb-lr", self.train.emb_lr)?;
        if !(self.train.beta.is_finite() && self.train.beta >= 0.0) {
            return Err(Error::config(
                "beta",
                format!("must be finite and >= 0, got {}", self.train.beta),
            ));
        }
        if self.target_hidden.contains(&0) {
            return Err(Error::config(
                "target-hidden",
                "every width must be at least 1",
            ));
        }
        if self.hnet.hidden.contains(&0) {
            return Err(Error::config(
                "hnet-hidden",
                "every width must be at least 1",
            ));
        }
        positive("task-emb-dim", self.hnet.task_emb_dim)?;
        if let Some(c) = self.hnet.chunk_size {
            positive("chunk-size", c)?;
            positive("chunk-emb-dim", self.hnet.chunk_emb_dim)?;
        }
        if let Some(k) = self.train.reg_batch {
            positive("reg-batch", k)?;
        }
        let eps = self.train.label_smoothing;
        if !(0.0..1.0).contains(&eps) {
            return Err(Error::config(
                "label-smoothing",
                format!("must be in [0, 1), got {eps}"),
            ));
        }
        if eps > 0.0 && self.method != Method::Hnet {
            return Err(Error::config(
                "label-smoothing",
                format!("applies to --method hnet only, not {}", self.method.name()),
            ));
        }
        if self.entropy_calibration != EntropyCalibration::None && self.method != Method::Hnet {
            return Err(Error::config(
                "entropy-calibration",
                format!(
                    "applies to HNET+ENT (--method hnet) only, not {}",
                    self.method.name()
                ),
            ));
        }
        let b = &self.baseline;
        for (field, v) in [
            ("ewc-lambda", b.ewc_lambda),
            ("online-ewc-gamma", b.online_ewc_gamma),
            ("si-c", b.si_c),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(
                    field,
                    format!("must be finite and >= 0, got {v}"),
                ));
            }
        }
        rate("si-xi", b.si_xi)?;
        positive("fisher-samples", b.fisher_samples)?;
        if self.method.replays() {
            self.replay.validate()?;
        }
        Ok(())
    }

    /// The tasks of the benchmark ([`ExperimentConfig::task_specs`]), read from `data_dir`,
    /// each with `validation` training samples held out.
    pub fn load_tasks(&self) -> Result<Vec<ClassificationTask>> {
        load_tasks(&self.data_dir, &self.task_specs(), self.validation)
    }
}

/// The official code's replay settings for `benchmark` and `method` (HNET+TIR's decoder and
/// β differ from HNET+R's; other methods get HNET+R's, unused).
pub fn replay_defaults(benchmark: Benchmark, method: Method) -> ReplayConfig {
    let task_inference = method == Method::HnetTir;
    match benchmark {
        Benchmark::SplitMnist => ReplayConfig::split_mnist(task_inference),
        Benchmark::PermutedMnist => ReplayConfig::permuted_mnist(task_inference),
    }
}

/// The tasks `specs`, read from the MNIST files in `data_dir`, each with `validation` training
/// samples held out (0: no validation sets).
pub fn load_tasks(
    data_dir: &Path,
    specs: &[TaskSpec],
    validation: usize,
) -> Result<Vec<ClassificationTask>> {
    let mnist: Mnist = load_mnist(data_dir)?;
    specs.iter().map(|s| s.load(&mnist, validation)).collect()
}

/// The first leaf where `a` and `b` differ: (dotted path, value in a, value in b).
fn first_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    if let (Value::Object(x), Value::Object(y)) = (a, b) {
        let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
        keys.sort();
        keys.dedup();
        return keys.into_iter().find_map(|k| {
            let sub = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            let null = Value::Null;
            first_difference(x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), &sub)
        });
    }
    (a != b).then(|| (path.to_string(), a.to_string(), b.to_string()))
}

/// The outcome of a run: accuracies in percent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// The configuration that produced it.
    pub config: ExperimentConfig,
    /// The run's seed.
    pub seed: u64,
    /// hypertape's version.
    pub version: String,
    /// Number of target weights (all heads).
    pub num_target_weights: usize,
    /// Number of trainable hypernetwork parameters θ (with chunk embeddings); 0 for a baseline.
    pub num_hnet_params: usize,
    /// #θ / #W (0 for a baseline).
    pub compression_ratio: f64,
    /// The tasks learned, in order (task k used head k).
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
    /// Row i: test accuracy of tasks 0..=i after training task i.
    pub accuracy_matrix: Vec<Vec<f64>>,
    /// Accuracy of each task after the last task.
    pub final_accuracy: Vec<f64>,
    /// Mean of `final_accuracy`.
    pub final_mean_accuracy: f64,
    /// Accuracy of each task right after its own training.
    pub during_accuracy: Vec<f64>,
    /// Mean of `during_accuracy`.
    pub during_mean_accuracy: f64,
    /// Backward transfer: mean over tasks j before the last of A[last][j] − A[j][j] (none with
    /// one task).
    pub backward_transfer: Option<f64>,
    /// Forgetting: mean over tasks j before the last of max_i A[i][j] − A[last][j].
    pub forgetting: Option<f64>,
    /// CL2/CL3: row i = percent of each task's test inputs whose task was inferred correctly
    /// after training task i.
    pub task_inference_matrix: Option<Vec<Vec<f64>>>,
    /// CL2/CL3: the last row of `task_inference_matrix`.
    pub final_task_inference_accuracy: Option<Vec<f64>>,
    /// CL2/CL3: mean of `final_task_inference_accuracy`.
    pub final_mean_task_inference_accuracy: Option<f64>,
    /// CL2/CL3 after the last task: row j = percent of task j's test inputs assigned to each
    /// task.
    pub final_task_picks: Option<Vec<Vec<f64>>>,
    /// With `validation` > 0: each task's accuracy on its held-out validation set after the
    /// last task (CL2/CL3 with HNET+ENT), their mean, and in CL2/CL3 the task inference and
    /// picks on them, as for the test sets.
    #[serde(default)]
    pub validation_accuracy: Option<Vec<f64>>,
    /// Mean of `validation_accuracy`.
    #[serde(default)]
    pub validation_mean_accuracy: Option<f64>,
    /// CL2/CL3: percent of each validation set whose task was inferred correctly.
    #[serde(default)]
    pub validation_task_inference_accuracy: Option<Vec<f64>>,
    /// CL2/CL3: row j = percent of task j's validation inputs assigned to each task.
    #[serde(default)]
    pub validation_task_picks: Option<Vec<Vec<f64>>>,
    /// CL2/CL3 with the hypernetwork: every task's logit-gap temperature (see
    /// `--entropy-calibration`), whether or not inference used it.
    #[serde(default)]
    pub task_temperatures: Option<Vec<f64>>,
    /// Seconds from the first step to the last evaluation (data loading excluded).
    pub wall_seconds: f64,
    /// HNET+R and HNET+TIR (CL2/CL3): per task the VAE learned, its mean reconstruction loss
    /// (BCE per pixel) and KL term over the last 100 steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_losses: Option<Vec<(f64, f64)>>,
}

/// One task's evaluation: accuracy of every learned task and, without task identity, the
/// task inference.
struct EvalRow {
    accuracy: Vec<f64>,
    inferred: Option<Vec<InferredEval>>,
}

/// A continual learner the run loop drives.
trait Learner {
    /// Learns task `t`.
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()>;
    /// Evaluates the first `tests.len()` tasks (all learned).
    fn evaluate(&self, tests: &[&TaskView]) -> EvalRow;
    /// The state carried from one task to the next ([`LearnerState`]).
    fn save_state(&self) -> LearnerState;
    /// Takes the state [`Learner::save_state`] gave after `completed` tasks, the replay model
    /// (if any) having learned `vae_tasks` ([`ExperimentConfig::vae_tasks`]); the error names
    /// the value that is missing, left over or of the wrong size.
    fn restore_state(
        &mut self,
        completed: usize,
        vae_tasks: usize,
        state: LearnerState,
    ) -> StateResult<()>;
    /// The replay model, for learners that have one.
    fn vae(&self) -> Option<&Vae> {
        None
    }
}

/// The VAE's mean reconstruction loss and KL per task as flat scalars (and back).
fn flat_losses(losses: &[(f64, f64)]) -> Vec<f64> {
    losses.iter().flat_map(|&(r, k)| [r, k]).collect()
}

fn take_losses(state: &mut LearnerState, tasks: usize) -> StateResult<Vec<(f64, f64)>> {
    let v = state.take_scalars("vae.losses", 2 * tasks)?;
    Ok(v.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

struct HnetLearner {
    model: HnetModel<f32>,
    scenario: Scenario,
    train: TrainConfig,
    /// The Adam states after the last task learned.
    optimizer: Option<OptimizerState>,
    /// Every learned task's logit-gap temperature, measured when its training ended.
    temperatures: Vec<f64>,
    calibration: EntropyCalibration,
}

impl HnetLearner {
    /// Stores θ and the embeddings (`{prefix}theta`, `{prefix}task_embedding.{k}`) and the
    /// temperatures (scalars `{prefix}temperatures`); not the Adam states, which every task
    /// starts afresh.
    fn save_into(&self, prefix: &str, state: &mut LearnerState) {
        self.model.save_state(prefix, state);
        state.put_scalars(format!("{prefix}temperatures"), &self.temperatures);
    }

    /// Takes what [`HnetLearner::save_into`] stored after `completed` tasks.
    fn restore_from(
        &mut self,
        prefix: &str,
        completed: usize,
        state: &mut LearnerState,
    ) -> StateResult<()> {
        self.model.restore_state(prefix, completed, state)?;
        let n = if self.scenario.infers_task() {
            completed
        } else {
            0
        };
        self.temperatures = state.take_scalars(&format!("{prefix}temperatures"), n)?;
        Ok(())
    }

    /// The temperatures HNET+ENT divides the logits by (none: 1 for every task).
    fn entropy_temperatures(&self) -> &[f64] {
        match self.calibration {
            EntropyCalibration::None => &[],
            EntropyCalibration::LogitGap => &self.temperatures,
        }
    }
}

impl Learner for HnetLearner {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let head = self.scenario.head(t);
        self.optimizer = Some(train_task(
            &mut self.model,
            t,
            head,
            &task.train,
            &self.train,
            on_progress,
        )?);
        if self.scenario.infers_task() {
            self.temperatures.truncate(t);
            self.temperatures
                .push(logit_gap_temperature(&self.model, t, head, &task.train));
        }
        Ok(())
    }

    fn evaluate(&self, tests: &[&TaskView]) -> EvalRow {
        if self.scenario.infers_task() {
            let inferred = entropy_inference(
                &self.model,
                tests.len(),
                self.scenario,
                tests,
                self.entropy_temperatures(),
            );
            EvalRow {
                accuracy: inferred.iter().map(|e| e.accuracy).collect(),
                inferred: Some(inferred),
            }
        } else {
            EvalRow {
                accuracy: tests
                    .iter()
                    .enumerate()
                    .map(|(j, d)| accuracy(&self.model, j, j, d))
                    .collect(),
                inferred: None,
            }
        }
    }

    fn save_state(&self) -> LearnerState {
        let mut state = LearnerState::default();
        self.save_into("", &mut state);
        state
    }

    fn restore_state(
        &mut self,
        completed: usize,
        _vae_tasks: usize,
        mut state: LearnerState,
    ) -> StateResult<()> {
        self.restore_from("", completed, &mut state)?;
        state.check_all_taken()
    }
}

struct BaselineLearner {
    learner: DirectLearner,
    scenario: Scenario,
    train: TrainConfig,
}

/// The outputs task `t` of a directly trained network trains: its own head (CL1), the shared
/// head (CL2), or the heads of every class seen so far with the task's classes after them
/// (CL3, as van de Ven & Tolias train their class-incremental baselines).
fn direct_readout(scenario: Scenario, t: usize, head_dim: usize) -> Readout {
    match scenario {
        Scenario::Cl1 | Scenario::Cl2 => Readout::head(scenario.head(t)),
        Scenario::Cl3 => Readout {
            heads: 0..t + 1,
            label_offset: t * head_dim,
        },
    }
}

/// A directly trained network's evaluation. CL1: task j's head; CL2: the shared head; CL3:
/// the argmax over the classes of every learned task, whose head names the inferred task.
fn evaluate_direct(
    target: &TargetMlp,
    w: &[f32],
    scenario: Scenario,
    tests: &[&TaskView],
) -> EvalRow {
    let learned = tests.len();
    let hd = target.head_dim();
    let mut accuracy = Vec::with_capacity(learned);
    let mut inferred = Vec::with_capacity(learned);
    for (j, data) in tests.iter().enumerate() {
        let labels = data.labels();
        let n = data.len().max(1) as f64;
        let (heads, offset) = match scenario {
            Scenario::Cl3 => (0..learned, j * hd),
            s => (s.head(j)..s.head(j) + 1, 0),
        };
        let mut correct = 0usize;
        let mut picks = vec![0usize; learned];
        for_each_logits(target, w, heads, data, &mut |i, row| {
            let p = argmax(row);
            correct += usize::from(p == labels[i] + offset);
            if scenario == Scenario::Cl3 {
                picks[p / hd] += 1;
            }
        });
        accuracy.push(100.0 * correct as f64 / n);
        if scenario == Scenario::Cl3 {
            inferred.push(InferredEval {
                accuracy: 100.0 * correct as f64 / n,
                task_inference_accuracy: 100.0 * picks[j] as f64 / n,
                picks: picks.iter().map(|&c| 100.0 * c as f64 / n).collect(),
            });
        }
    }
    EvalRow {
        accuracy,
        inferred: (scenario == Scenario::Cl3).then_some(inferred),
    }
}

impl Learner for BaselineLearner {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let readout = direct_readout(self.scenario, t, self.learner.target.head_dim());
        self.learner
            .learn_classification(t, &task.train, &readout, &self.train, on_progress)
    }

    fn evaluate(&self, tests: &[&TaskView]) -> EvalRow {
        evaluate_direct(
            &self.learner.target,
            &self.learner.weights,
            self.scenario,
            tests,
        )
    }

    fn save_state(&self) -> LearnerState {
        let mut state = LearnerState::default();
        self.learner.save_state("", &mut state);
        state
    }

    fn restore_state(
        &mut self,
        completed: usize,
        _vae_tasks: usize,
        mut state: LearnerState,
    ) -> StateResult<()> {
        self.learner.restore_state("", completed, &mut state)?;
        state.check_all_taken()
    }
}

/// HNET+R: a classifier trained directly on current and replayed data (soft targets from its
/// copy before the task), and the VAE whose decoder a hypernetwork generates, learned on
/// every task but the last (nothing replays it).
struct ReplayLearner {
    classifier: ReplayClassifier,
    vae: Vae,
    scenario: Scenario,
    train: TrainConfig,
    num_tasks: usize,
    vae_losses: Vec<(f64, f64)>,
}

impl Learner for ReplayLearner {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let scenario = self.scenario;
        let current = direct_readout(scenario, t, self.classifier.learner.target.head_dim());
        // A replayed sample of task k is read where task k was (CL1: head k; CL2: the shared
        // head; CL3: all heads so far, the teacher's being those of tasks 0..t).
        let replayed = move |k: usize| match scenario {
            Scenario::Cl1 | Scenario::Cl2 => (
                Readout::head(scenario.head(k)),
                Readout::head(scenario.head(k)),
            ),
            Scenario::Cl3 => (
                Readout {
                    heads: 0..t + 1,
                    label_offset: 0,
                },
                Readout {
                    heads: 0..t,
                    label_offset: 0,
                },
            ),
        };
        let readouts = ReplayReadouts {
            current,
            label: &|l| l,
            replayed: &replayed,
        };
        self.classifier.learn_task(
            t,
            &task.train,
            &self.vae,
            &readouts,
            &self.train,
            on_progress,
        )?;
        if t + 1 < self.num_tasks {
            let losses = self
                .vae
                .learn_task(t, &task.train, &self.train, on_progress)?;
            self.vae_losses.push(losses);
        }
        Ok(())
    }

    fn evaluate(&self, tests: &[&TaskView]) -> EvalRow {
        let c = &self.classifier.learner;
        evaluate_direct(&c.target, &c.weights, self.scenario, tests)
    }

    /// The classifier (`classifier.weights`), the VAE (`vae.`) and its losses.
    fn save_state(&self) -> LearnerState {
        let mut state = LearnerState::default();
        self.classifier
            .learner
            .save_state("classifier.", &mut state);
        self.vae.save_state("vae.", &mut state);
        state.put_scalars("vae.losses", &flat_losses(&self.vae_losses));
        state
    }

    fn restore_state(
        &mut self,
        completed: usize,
        vae_tasks: usize,
        mut state: LearnerState,
    ) -> StateResult<()> {
        self.classifier
            .learner
            .restore_state("classifier.", completed, &mut state)?;
        self.vae.restore_state("vae.", vae_tasks, &mut state)?;
        self.vae_losses = take_losses(&mut state, vae_tasks)?;
        state.check_all_taken()
    }

    fn vae(&self) -> Option<&Vae> {
        Some(&self.vae)
    }
}

/// HNET+TIR: the hypernetwork classifier trained as in CL1 (each task its embedding; its head
/// in CL3, the shared head in CL2), a task-inference network trained on the current task
/// (label t) and replayed data (label k for task k's samples), and the VAE. Without task
/// identity, the task-inference network's argmax over the learned tasks picks the embedding
/// (and in CL3 the head). In CL1 the task is given: no task inference, no replay.
struct TirLearner {
    classifier: HnetLearner,
    task_net: ReplayClassifier,
    task_net_train: TrainConfig,
    vae: Vae,
    num_tasks: usize,
    vae_losses: Vec<(f64, f64)>,
}

impl Learner for TirLearner {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        self.classifier.learn(t, task, on_progress)?;
        if !self.classifier.scenario.infers_task() {
            return Ok(());
        }
        // With one task learned there is nothing to tell apart.
        if t > 0 {
            let all = Readout {
                heads: 0..t + 1,
                label_offset: 0,
            };
            let replayed = |_: usize| (all.clone(), all.clone());
            let readouts = ReplayReadouts {
                current: all.clone(),
                label: &|_| t,
                replayed: &replayed,
            };
            self.task_net.learn_task(
                t,
                &task.train,
                &self.vae,
                &readouts,
                &self.task_net_train,
                on_progress,
            )?;
        }
        if t + 1 < self.num_tasks {
            let losses =
                self.vae
                    .learn_task(t, &task.train, &self.classifier.train, on_progress)?;
            self.vae_losses.push(losses);
        }
        Ok(())
    }

    fn evaluate(&self, tests: &[&TaskView]) -> EvalRow {
        let scenario = self.classifier.scenario;
        if !scenario.infers_task() {
            return self.classifier.evaluate(tests);
        }
        let learned = tests.len();
        let net = &self.task_net.learner;
        let picks: Vec<Vec<usize>> = tests
            .iter()
            .map(|d| {
                let mut v = Vec::with_capacity(d.len());
                for_each_logits(&net.target, &net.weights, 0..learned, d, &mut |_, row| {
                    v.push(argmax(row))
                });
                v
            })
            .collect();
        let inferred = infer_tasks(
            &self.classifier.model,
            learned,
            scenario,
            tests,
            &mut |k, j, i, _| if picks[j][i] == k { 0.0 } else { 1.0 },
        );
        EvalRow {
            accuracy: inferred.iter().map(|e| e.accuracy).collect(),
            inferred: Some(inferred),
        }
    }

    /// The hypernetwork classifier (`classifier.`), the task-inference network
    /// (`task_net.weights`), the VAE (`vae.`) and its losses.
    fn save_state(&self) -> LearnerState {
        let mut state = LearnerState::default();
        self.classifier.save_into("classifier.", &mut state);
        self.task_net.learner.save_state("task_net.", &mut state);
        self.vae.save_state("vae.", &mut state);
        state.put_scalars("vae.losses", &flat_losses(&self.vae_losses));
        state
    }

    fn restore_state(
        &mut self,
        completed: usize,
        vae_tasks: usize,
        mut state: LearnerState,
    ) -> StateResult<()> {
        self.classifier
            .restore_from("classifier.", completed, &mut state)?;
        self.task_net
            .learner
            .restore_state("task_net.", completed, &mut state)?;
        self.vae.restore_state("vae.", vae_tasks, &mut state)?;
        self.vae_losses = take_losses(&mut state, vae_tasks)?;
        state.check_all_taken()
    }

    /// Without task inference (CL1) the VAE is never trained: none.
    fn vae(&self) -> Option<&Vae> {
        self.classifier.scenario.infers_task().then_some(&self.vae)
    }
}

/// Trains the tasks in order with `config.method`, evaluating every task seen so far after
/// each one in `config.scenario`. `on_task_end` gets the task index and its row of the
/// accuracy matrix. The hypernetwork runs through [`continue_run`] from a fresh
/// [`Checkpoint`], the other methods through [`continue_learner_run`] from a fresh
/// [`LearnerCheckpoint`] (so the results equal a checkpointed run's); nothing is written.
pub fn run(
    config: &ExperimentConfig,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
    on_task_end: &mut dyn FnMut(usize, &[f64]),
) -> Result<RunResults> {
    run_full(config, tasks, on_progress, on_task_end).map(|o| o.results)
}

/// A run's results and, for HNET+R and HNET+TIR, samples of what the replay model remembers.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The results.
    pub results: RunResults,
    /// Per task the VAE learned: [`REPLAY_PICTURE_SAMPLES`] replayed samples as 28×28 digits
    /// (pixel probabilities, PermutedMNIST's permutation and padding undone), one after the
    /// other; empty for the other methods.
    pub replay_samples: Vec<Vec<f32>>,
}

/// Samples per task in [`RunOutput::replay_samples`].
pub const REPLAY_PICTURE_SAMPLES: usize = 64;

/// [`run`], keeping the replay model's samples.
pub fn run_full(
    config: &ExperimentConfig,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
    on_task_end: &mut dyn FnMut(usize, &[f64]),
) -> Result<RunOutput> {
    config.validate()?;
    if config.method == Method::Hnet {
        let mut state = Checkpoint::new(config)?;
        continue_run(&mut state, tasks, on_progress, &mut |s| {
            let t = s.completed() - 1;
            on_task_end(t, &s.history.accuracy_matrix[t]);
            Ok(())
        })?;
        return Ok(RunOutput {
            results: results(&state),
            replay_samples: Vec::new(),
        });
    }
    let mut state = LearnerCheckpoint::new(config)?;
    continue_learner_run(&mut state, tasks, on_progress, &mut |s| {
        let t = s.completed() - 1;
        on_task_end(t, &s.history.accuracy_matrix[t]);
        Ok(())
    })
}

/// The learner of `config.method` (not the hypernetwork's) before its first task: every
/// initialisation from the run's seed.
fn new_learner(config: &ExperimentConfig) -> Box<dyn Learner> {
    let seed = config.train.seed;
    let (input_dim, _) = config.io_dims();
    let target = config.target();
    match config.method {
        Method::HnetR => Box::new(ReplayLearner {
            classifier: ReplayClassifier::new(
                target,
                ReplayTargets::Distill {
                    temperature: config.replay.temperature,
                    unseen: config.replay.unseen_classes,
                },
                config.replay.replay_weight,
                seed,
            ),
            vae: Vae::new(&config.replay, input_dim, config.num_tasks, seed),
            scenario: config.scenario,
            train: config.train.clone(),
            num_tasks: config.num_tasks,
            vae_losses: Vec::new(),
        }),
        Method::HnetTir => {
            let hnet = crate::nn::Hnet::new(&config.hnet, target.num_weights());
            let model = HnetModel::with_init(target, hnet, seed, config.hnet_init);
            let task_seed = crate::rng::Rng::derived(seed, "task-inference-seed", 0).next_u64();
            let mut task_net_train = config.train.clone();
            task_net_train.seed = task_seed;
            let task_net = TargetMlp::new(input_dim, &config.target_hidden, 1, config.num_tasks);
            Box::new(TirLearner {
                classifier: HnetLearner {
                    model,
                    scenario: config.scenario,
                    train: config.train.clone(),
                    optimizer: None,
                    temperatures: Vec::new(),
                    calibration: config.entropy_calibration,
                },
                task_net: ReplayClassifier::new(
                    task_net,
                    ReplayTargets::TaskLabel,
                    config.replay.replay_weight,
                    task_seed,
                ),
                task_net_train,
                vae: Vae::new(&config.replay, input_dim, config.num_tasks, seed),
                num_tasks: config.num_tasks,
                vae_losses: Vec::new(),
            })
        }
        method => Box::new(BaselineLearner {
            learner: DirectLearner::new(target, method, &config.baseline, seed),
            scenario: config.scenario,
            train: config.train.clone(),
        }),
    }
}

/// A run of a method other than the hypernetwork's (a baseline, HNET+R or HNET+TIR) after its
/// last completed task: what [`crate::checkpoint::save_learner`] writes after every task and
/// `--resume` continues. (The hypernetwork's runs are a [`Checkpoint`].)
#[derive(Clone, Debug, PartialEq)]
pub struct LearnerCheckpoint {
    /// The run's configuration.
    pub config: ExperimentConfig,
    /// Every task learned so far.
    pub tasks: Vec<TaskSpec>,
    /// The accuracy matrix, the task inference (CL2/CL3) and the time spent.
    pub history: History,
    /// The learner's state after the last task (its weights, penalties, replay model).
    pub state: LearnerState,
}

impl LearnerCheckpoint {
    /// The state before the first task. Fails for the hypernetwork (see [`Checkpoint`]).
    pub fn new(config: &ExperimentConfig) -> Result<Self> {
        config.validate()?;
        if config.method == Method::Hnet {
            return Err(Error::config(
                "method",
                "a hypernetwork run's state is a Checkpoint",
            ));
        }
        Ok(Self {
            config: config.clone(),
            tasks: Vec::new(),
            history: History::default(),
            state: new_learner(config).save_state(),
        })
    }

    /// Number of tasks learned.
    pub fn completed(&self) -> usize {
        self.tasks.len()
    }

    /// Number of weights in the networks of `config`'s learner (the target network trained
    /// directly, or for HNET+TIR the hypernetwork's θ that generates it and the task-inference
    /// network; for HNET+R and HNET+TIR also the VAE's encoder and decoder hypernetwork θ),
    /// each of which its state stores. Computed from the layouts, without building the
    /// networks.
    pub fn network_sizes(config: &ExperimentConfig) -> usize {
        let (input, _) = config.io_dims();
        let target = config.target().num_weights();
        let mut n = if config.method == Method::HnetTir {
            crate::nn::Hnet::new(&config.hnet, target).num_params()
                + TargetMlp::new(input, &config.target_hidden, 1, config.num_tasks).num_weights()
        } else {
            target
        };
        if config.method.replays() {
            let r = &config.replay;
            n += TargetMlp::new(input, &r.encoder_hidden, r.latent_dim, 2).num_weights();
            let decoder =
                TargetMlp::new(r.latent_dim + config.num_tasks, &r.decoder_hidden, input, 1);
            n += crate::nn::Hnet::new(&r.hnet, decoder.num_weights()).num_params();
        }
        n
    }

    /// The configuration's learner with the stored state; the error names a stored value
    /// that is missing, left over or of another size than the configuration gives.
    fn learner(&self) -> StateResult<Box<dyn Learner>> {
        let mut learner = new_learner(&self.config);
        let completed = self.completed();
        learner.restore_state(
            completed,
            self.config.vae_tasks(completed),
            self.state.clone(),
        )?;
        Ok(learner)
    }

    /// Checks that the stored state is the one of this configuration after
    /// [`LearnerCheckpoint::completed`] tasks (every value present, none extra, sizes equal).
    pub fn check_state(&self) -> StateResult<()> {
        self.learner().map(|_| ())
    }
}

/// Trains the tasks of `state.config` that `state` has not learned yet, in order, each followed
/// by the evaluation of every task learned so far; after each task `on_task_end` gets the new
/// state (to write a checkpoint) and an error from it stops the run. Every random stream of a
/// task depends only on the seed and the task, and every optimizer starts afresh with a task,
/// so a run continued from a checkpoint ends exactly as an uninterrupted one. Returns the
/// results and, for HNET+R and HNET+TIR, pictures of what the replay model remembers.
pub fn continue_learner_run(
    state: &mut LearnerCheckpoint,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
    on_task_end: &mut dyn FnMut(&LearnerCheckpoint) -> Result<()>,
) -> Result<RunOutput> {
    let specs = check_continued_tasks(&state.config, &state.tasks, tasks)?;
    let mut learner = state
        .learner()
        .map_err(|e| Error::config("checkpoint", e))?;
    for t in state.completed()..specs.len() {
        let start = Instant::now();
        let row = learn_and_evaluate(learner.as_mut(), t, &tasks[..=t], on_progress)?;
        state.tasks.push(specs[t]);
        state.history.push(row);
        state.history.wall_seconds += start.elapsed().as_secs_f64();
        state.state = learner.save_state();
        on_task_end(state)?;
    }
    let replay_samples = learner
        .vae()
        .map(|vae| replay_samples(vae, tasks, state.config.train.seed))
        .unwrap_or_default();
    Ok(RunOutput {
        results: learner_results(state),
        replay_samples,
    })
}

/// The results of a run of a method other than the hypernetwork's.
pub fn learner_results(state: &LearnerCheckpoint) -> RunResults {
    let config = &state.config;
    let target_weights = config.target().num_weights();
    let hnet_params = match config.method {
        Method::HnetTir => crate::nn::Hnet::new(&config.hnet, target_weights).num_params(),
        _ => 0,
    };
    let mut results = summarize(
        config,
        target_weights,
        hnet_params,
        &state.history,
        state.tasks.clone(),
    );
    if config.trains_vae() {
        let losses = state.state.scalars.get("vae.losses");
        results.vae_losses = Some(
            losses
                .map(|v| v.chunks_exact(2).map(|p| (p[0], p[1])).collect())
                .unwrap_or_default(),
        );
    }
    results
}

/// [`REPLAY_PICTURE_SAMPLES`] samples of every task `vae` learned, mapped back to the digits'
/// 28×28 pixels through the task's pixel map (PermutedMNIST) when it has one.
fn replay_samples(vae: &Vae, tasks: &[ClassificationTask], seed: u64) -> Vec<Vec<f32>> {
    crate::cl::replay::replay_pictures(vae, REPLAY_PICTURE_SAMPLES, seed, &|k, sample| match tasks
        .get(k)
        .and_then(|t| t.train.pixel_map())
    {
        None => sample.to_vec(),
        Some(map) => {
            let mut digit = vec![0.0f32; 28 * 28];
            for (&m, &v) in map.iter().zip(sample) {
                if let Some(d) = digit.get_mut(m as usize) {
                    *d = v;
                }
            }
            digit
        }
    })
}

/// The step every learner shares: learns task `t` (the last of `tasks`), then evaluates tasks
/// 0..=t on their test sets and, if every task has one, on their validation sets.
fn learn_and_evaluate(
    learner: &mut dyn Learner,
    t: usize,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<(EvalRow, Option<EvalRow>)> {
    learner.learn(t, &tasks[t], on_progress)?;
    let tests: Vec<&TaskView> = tasks.iter().map(|k| &k.test).collect();
    let validation: Option<Vec<&TaskView>> = tasks.iter().map(|k| k.validation.as_ref()).collect();
    Ok((
        learner.evaluate(&tests),
        validation.map(|v| learner.evaluate(&v)),
    ))
}

/// What a run records after each task: the accuracy matrix, without task identity the task
/// inference, and the time spent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Row i: test accuracy (%) of tasks 0..=i after task i.
    pub accuracy_matrix: Vec<Vec<f64>>,
    /// CL2/CL3 (empty in CL1): row i = the task inference of tasks 0..=i after task i.
    pub task_inference: Vec<Vec<InferredEval>>,
    /// Seconds spent training and evaluating, summed over all sessions.
    pub wall_seconds: f64,
    /// Row i: validation accuracy (%) of tasks 0..=i after task i (runs with validation sets).
    #[serde(default)]
    pub validation_accuracy_matrix: Vec<Vec<f64>>,
    /// CL2/CL3: row i = the task inference on the validation sets after task i.
    #[serde(default)]
    pub validation_task_inference: Vec<Vec<InferredEval>>,
    /// Hypernetwork: every task's logit-gap temperature (median top-2 logit gap on its own
    /// training inputs when its training ended), used by `--entropy-calibration logit-gap`.
    #[serde(default)]
    pub task_temperatures: Vec<f64>,
}

impl History {
    fn push(&mut self, (row, validation): (EvalRow, Option<EvalRow>)) {
        self.accuracy_matrix.push(row.accuracy);
        if let Some(i) = row.inferred {
            self.task_inference.push(i);
        }
        if let Some(v) = validation {
            self.validation_accuracy_matrix.push(v.accuracy);
            if let Some(i) = v.inferred {
                self.validation_task_inference.push(i);
            }
        }
    }
}

/// Trains the tasks of `state.config` that `state` has not learned yet, in order, each followed
/// by the test accuracy of every task learned so far (in the configuration's scenario); after
/// each task, `on_task_end` gets the new state (to write a checkpoint) and an error from it
/// stops the run. `tasks` are the configuration's tasks ([`ExperimentConfig::load_tasks`]).
/// The random streams of task t depend only on the seed and t, so a run continued from a
/// checkpoint after task t ends exactly as an uninterrupted one. On an error `state` is the
/// state after the last completed task.
pub fn continue_run(
    state: &mut Checkpoint,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
    on_task_end: &mut dyn FnMut(&Checkpoint) -> Result<()>,
) -> Result<()> {
    let specs = check_continued_tasks(&state.config, &state.tasks, tasks)?;
    for t in state.completed()..specs.len() {
        learn_next(state, specs[t], &tasks[..=t], on_progress)?;
        on_task_end(state)?;
    }
    Ok(())
}

/// The configuration's task specs, after checking that `tasks` holds their data and that the
/// tasks a checkpoint learned (`learned`) begin with them (`learn` may have added more).
fn check_continued_tasks(
    config: &ExperimentConfig,
    learned: &[TaskSpec],
    tasks: &[ClassificationTask],
) -> Result<Vec<TaskSpec>> {
    let specs = config.task_specs();
    if tasks.len() != specs.len() {
        return Err(Error::config(
            "tasks",
            format!(
                "expected the configuration's {} tasks, found {}",
                specs.len(),
                tasks.len()
            ),
        ));
    }
    if let Some(k) = (0..learned.len().min(specs.len())).find(|&k| learned[k] != specs[k]) {
        return Err(Error::config(
            "tasks",
            format!(
                "task {k} of the checkpoint is {}, the configuration's is {}",
                learned[k], specs[k]
            ),
        ));
    }
    Ok(specs)
}

/// Learns one more task `spec` on a stored model, with the regularizer protecting every
/// stored task, and evaluates all of them (in the configuration's scenario). `tasks` holds the
/// data of every stored task and, last, of `spec` ([`load_tasks`] of the specs). Returns the
/// new row of the accuracy matrix. In CL1 and CL3 the task uses the next head: a model whose
/// heads are all used gives an error (reserve heads with `ExperimentConfig::heads`); in CL2
/// it uses the shared head.
pub fn learn(
    state: &mut Checkpoint,
    spec: TaskSpec,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<f64>> {
    state.config.check_task(&spec)?;
    let n = state.completed();
    if tasks.len() != n + 1 {
        return Err(Error::config(
            "tasks",
            format!(
                "expected the data of {} tasks, found {}",
                n + 1,
                tasks.len()
            ),
        ));
    }
    learn_next(state, spec, tasks, on_progress)?;
    Ok(state.history.accuracy_matrix[n].clone())
}

/// Trains the next task (on a copy of the model, so an error leaves `state` as it was),
/// evaluates tasks 0..=t and records the task, its rows and the Adam states.
fn learn_next(
    state: &mut Checkpoint,
    spec: TaskSpec,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<()> {
    let t = state.completed();
    let heads = state.config.num_heads();
    if !state.config.has_head_for(t) {
        return Err(Error::config(
            "heads",
            format!(
                "the target network has {heads} heads, all used by the {t} stored tasks; start a run with --heads N to reserve heads for tasks added later"
            ),
        ));
    }
    let start = Instant::now();
    let mut learner = HnetLearner {
        model: state.model.clone(),
        scenario: state.config.scenario,
        train: state.config.train.clone(),
        optimizer: None,
        temperatures: state.history.task_temperatures.clone(),
        calibration: state.config.entropy_calibration,
    };
    let row = learn_and_evaluate(&mut learner, t, tasks, on_progress)?;
    state.model = learner.model;
    state.optimizer = learner.optimizer;
    state.history.task_temperatures = learner.temperatures;
    state.tasks.push(spec);
    state.history.push(row);
    state.history.wall_seconds += start.elapsed().as_secs_f64();
    Ok(())
}

/// The accuracy of one stored task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskAccuracy {
    /// Task index (and, except in CL2, its head).
    pub task: usize,
    /// What the task is.
    pub spec: TaskSpec,
    /// Test accuracy (%) with task identity given: the task's embedding and head (CL2: the
    /// shared head).
    pub with_task_id: f64,
    /// Test accuracy (%) without task identity: the task inferred by predictive entropy over
    /// every stored task (HNET+ENT, [`entropy_inference`]), read with the shared head in CL2
    /// and with each task's own head otherwise (the CL3 rule: right only if task and class
    /// both are).
    pub without_task_id: f64,
    /// Percent of the task's test inputs whose task was inferred correctly.
    pub task_inference: f64,
    /// Percent of the task's test inputs assigned to each stored task.
    #[serde(default)]
    pub picks: Vec<f64>,
}

/// Test accuracy of every stored task, with and without task identity; `tasks` holds their
/// data in order.
pub fn evaluate(state: &Checkpoint, tasks: &[ClassificationTask]) -> Result<Vec<TaskAccuracy>> {
    let n = state.completed();
    if tasks.len() != n {
        return Err(Error::config(
            "tasks",
            format!("expected the data of {n} tasks, found {}", tasks.len()),
        ));
    }
    if n == 0 {
        return Ok(Vec::new());
    }
    let scenario = match state.config.scenario {
        Scenario::Cl2 => Scenario::Cl2,
        Scenario::Cl1 | Scenario::Cl3 => Scenario::Cl3,
    };
    let tests: Vec<&TaskView> = tasks.iter().map(|k| &k.test).collect();
    let temperatures: &[f64] = match state.config.entropy_calibration {
        EntropyCalibration::None => &[],
        EntropyCalibration::LogitGap => &state.history.task_temperatures,
    };
    let inferred = entropy_inference(&state.model, n, scenario, &tests, temperatures);
    Ok(tasks
        .iter()
        .zip(inferred)
        .enumerate()
        .map(|(t, (task, inf))| TaskAccuracy {
            task: t,
            spec: state.tasks[t],
            with_task_id: accuracy(&state.model, t, state.config.head(t), &task.test),
            without_task_id: inf.accuracy,
            task_inference: inf.task_inference_accuracy,
            picks: inf.picks,
        })
        .collect())
}

/// The results of the tasks `state` has learned so far.
pub fn results(state: &Checkpoint) -> RunResults {
    summarize(
        &state.config,
        state.model.target.num_weights(),
        state.model.hnet.num_params(),
        &state.history,
        state.tasks.clone(),
    )
}

/// The mean of `v` (0 when empty).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Backward transfer of an accuracy matrix (row i = accuracies after task i): mean over
/// j < T of A[T][j] − A[j][j], T the last task; `None` with fewer than two tasks.
pub fn backward_transfer(matrix: &[Vec<f64>]) -> Option<f64> {
    let last = matrix.last()?;
    let t = matrix.len() - 1;
    (t > 0).then(|| (0..t).map(|j| last[j] - matrix[j][j]).sum::<f64>() / t as f64)
}

/// Forgetting: mean over j < T of max_i A[i][j] − A[T][j] (i over the rows that hold task
/// j); `None` with fewer than two tasks.
pub fn forgetting(matrix: &[Vec<f64>]) -> Option<f64> {
    let last = matrix.last()?;
    let t = matrix.len() - 1;
    (t > 0).then(|| {
        (0..t)
            .map(|j| {
                let best = matrix[j..]
                    .iter()
                    .map(|r| r[j])
                    .fold(f64::NEG_INFINITY, f64::max);
                best - last[j]
            })
            .sum::<f64>()
            / t as f64
    })
}

fn summarize(
    config: &ExperimentConfig,
    num_target_weights: usize,
    num_hnet_params: usize,
    history: &History,
    tasks: Vec<TaskSpec>,
) -> RunResults {
    let matrix = &history.accuracy_matrix;
    let final_accuracy = matrix.last().cloned().unwrap_or_default();
    let during_accuracy: Vec<f64> = matrix.iter().enumerate().map(|(i, r)| r[i]).collect();
    let mut results = RunResults {
        config: config.clone(),
        seed: config.train.seed,
        version: env!("CARGO_PKG_VERSION").to_string(),
        num_target_weights,
        num_hnet_params,
        compression_ratio: num_hnet_params as f64 / num_target_weights as f64,
        final_mean_accuracy: mean(&final_accuracy),
        during_mean_accuracy: mean(&during_accuracy),
        backward_transfer: backward_transfer(matrix),
        forgetting: forgetting(matrix),
        task_inference_matrix: None,
        final_task_inference_accuracy: None,
        final_mean_task_inference_accuracy: None,
        final_task_picks: None,
        validation_accuracy: None,
        validation_mean_accuracy: None,
        validation_task_inference_accuracy: None,
        validation_task_picks: None,
        task_temperatures: (!history.task_temperatures.is_empty())
            .then(|| history.task_temperatures.clone()),
        final_accuracy,
        during_accuracy,
        tasks,
        accuracy_matrix: matrix.clone(),
        wall_seconds: history.wall_seconds,
        vae_losses: None,
    };
    let inference = &history.task_inference;
    if !inference.is_empty() {
        let m: Vec<Vec<f64>> = inference
            .iter()
            .map(|r| r.iter().map(|e| e.task_inference_accuracy).collect())
            .collect();
        let last = m.last().cloned().unwrap_or_default();
        results.final_mean_task_inference_accuracy = Some(mean(&last));
        results.final_task_inference_accuracy = Some(last);
        results.task_inference_matrix = Some(m);
        results.final_task_picks = inference
            .last()
            .map(|r| r.iter().map(|e| e.picks.clone()).collect());
    }
    // Only when every task was evaluated on a validation set (a task added by `learn` is not).
    let validation = &history.validation_accuracy_matrix;
    if !validation.is_empty() && validation.len() == matrix.len() {
        let last = validation.last().cloned().unwrap_or_default();
        results.validation_mean_accuracy = Some(mean(&last));
        results.validation_accuracy = Some(last);
        if let Some(r) = history.validation_task_inference.last() {
            results.validation_task_inference_accuracy =
                Some(r.iter().map(|e| e.task_inference_accuracy).collect());
            results.validation_task_picks = Some(r.iter().map(|e| e.picks.clone()).collect());
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_transfer_and_forgetting_by_hand() {
        let m = vec![vec![90.0], vec![80.0, 95.0], vec![85.0, 70.0, 99.0]];
        // BWT = ((85 − 90) + (70 − 95)) / 2 = −15; forgetting = ((90 − 85) + (95 − 70)) / 2 = 15.
        assert!((backward_transfer(&m).unwrap() + 15.0).abs() < 1e-12);
        assert!((forgetting(&m).unwrap() - 15.0).abs() < 1e-12);
        // Forgetting measures from the best row, not the first: task 0 peaks after task 1.
        let m = vec![vec![80.0], vec![90.0, 95.0], vec![85.0, 95.0, 99.0]];
        assert!((forgetting(&m).unwrap() - 2.5).abs() < 1e-12);
        assert!((backward_transfer(&m).unwrap() - 2.5).abs() < 1e-12);
        assert_eq!(backward_transfer(&m[..1]), None);
        assert_eq!(forgetting(&[]), None);
    }
}
