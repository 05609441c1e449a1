//! The continual-learning experiments of the paper on MNIST: their configuration (with the
//! official code's defaults), validation of a configuration, and a run from data to the
//! accuracy matrix.
//!
//! A run's state is a [`Checkpoint`]: [`continue_run`] trains the configuration's tasks it has
//! not learned yet and calls a hook after each (which writes the checkpoint), [`learn`] adds
//! one more task to a stored model, [`evaluate`] measures every stored task.

use crate::checkpoint::Checkpoint;
use crate::cl::trainer::{accuracy, train_task, Progress, TrainConfig};
use crate::cl::Lookahead;
use crate::data::{load_mnist, ClassificationTask, Mnist, TaskSpec};
use crate::nn::{Activation, HnetConfig, TargetMlp};
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
    /// The training loop.
    pub train: TrainConfig,
    /// Permutation seed of PermutedMNIST (defaults to the run's seed).
    pub data_seed: u64,
    /// Directory of the MNIST IDX files.
    pub data_dir: PathBuf,
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
            train: TrainConfig {
                iterations,
                batch_size: 128,
                lr,
                emb_lr: lr,
                beta,
                lookahead: Lookahead::Adam,
                reg_batch: None,
                online_targets: false,
                seed: 42,
            },
            data_seed: 42,
            data_dir: PathBuf::from("data/mnist"),
        }
    }

    /// Inputs and outputs per head of the benchmark.
    pub fn io_dims(&self) -> (usize, usize) {
        match self.benchmark {
            Benchmark::SplitMnist => (784, 2),
            Benchmark::PermutedMnist => (1024, 10),
        }
    }

    /// Number of output heads of the target network: `heads`, or one per task.
    pub fn num_heads(&self) -> usize {
        self.heads.unwrap_or(self.num_tasks)
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

    /// Checks that `other` describes the same run (the data directory may differ); the
    /// error names the first differing field, e.g. `train.lr`, with both values.
    pub fn check_same(&self, other: &ExperimentConfig) -> Result<()> {
        let value = |c: &ExperimentConfig| {
            let mut v = serde_json::to_value(c).expect("the configuration serializes");
            if let Some(m) = v.as_object_mut() {
                m.remove("data_dir");
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
        Ok(())
    }

    /// The tasks of the benchmark ([`ExperimentConfig::task_specs`]), read from `data_dir`.
    pub fn load_tasks(&self) -> Result<Vec<ClassificationTask>> {
        load_tasks(&self.data_dir, &self.task_specs())
    }
}

/// The tasks `specs`, read from the MNIST files in `data_dir`.
pub fn load_tasks(data_dir: &Path, specs: &[TaskSpec]) -> Result<Vec<ClassificationTask>> {
    let mnist: Mnist = load_mnist(data_dir)?;
    specs.iter().map(|s| s.load(&mnist, 0)).collect()
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
    /// Number of trainable hypernetwork parameters θ (with chunk embeddings).
    pub num_hnet_params: usize,
    /// #θ / #W.
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
    /// Seconds from the first step to the last evaluation (data loading excluded).
    pub wall_seconds: f64,
}

/// Trains the tasks in order, evaluating every task seen so far after each one.
/// `on_task_end` gets the task index and its row of the accuracy matrix.
pub fn run(
    config: &ExperimentConfig,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
    on_task_end: &mut dyn FnMut(usize, &[f64]),
) -> Result<RunResults> {
    let mut state = Checkpoint::new(config)?;
    continue_run(&mut state, tasks, on_progress, &mut |s| {
        let t = s.completed() - 1;
        on_task_end(t, &s.accuracy_matrix[t]);
        Ok(())
    })?;
    Ok(results(&state))
}

/// Trains the tasks of `state.config` that `state` has not learned yet, in order, each followed
/// by the test accuracy of every task learned so far; after each task, `on_task_end` gets the
/// new state (to write a checkpoint) and an error from it stops the run. `tasks` are the
/// configuration's tasks ([`ExperimentConfig::load_tasks`]). The random streams of task t
/// depend only on the seed and t, so a run continued from a checkpoint after task t ends
/// exactly as an uninterrupted one. On an error `state` is the state after the last
/// completed task.
pub fn continue_run(
    state: &mut Checkpoint,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
    on_task_end: &mut dyn FnMut(&Checkpoint) -> Result<()>,
) -> Result<()> {
    let specs = state.config.task_specs();
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
    if let Some(k) = (0..state.completed().min(specs.len())).find(|&k| state.tasks[k] != specs[k]) {
        return Err(Error::config(
            "tasks",
            format!(
                "task {k} of the checkpoint is {}, the configuration's is {}",
                state.tasks[k], specs[k]
            ),
        ));
    }
    for t in state.completed()..specs.len() {
        let tests: Vec<&ClassificationTask> = tasks[..=t].iter().collect();
        learn_next(state, specs[t], &tests, on_progress)?;
        on_task_end(state)?;
    }
    Ok(())
}

/// Learns one more task `spec` on a stored model, with the regularizer protecting every
/// stored task, and evaluates all of them. `tasks` holds the data of every stored task and,
/// last, of `spec` ([`load_tasks`] of the specs). Returns the new row of the accuracy matrix.
/// The task uses the next head: a model whose heads are all used gives an error (reserve heads
/// with `ExperimentConfig::heads`).
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
    let tests: Vec<&ClassificationTask> = tasks.iter().collect();
    learn_next(state, spec, &tests, on_progress)?;
    Ok(state.accuracy_matrix[n].clone())
}

/// Trains the next task (on a copy of the model, so an error leaves `state` as it was),
/// evaluates tasks 0..=t and records the task, its row and the Adam states.
fn learn_next(
    state: &mut Checkpoint,
    spec: TaskSpec,
    tasks: &[&ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<()> {
    let t = state.completed();
    let heads = state.config.num_heads();
    if t >= heads {
        return Err(Error::config(
            "heads",
            format!(
                "the target network has {heads} heads, all used by the {t} stored tasks; start a run with --heads N to reserve heads for tasks added later"
            ),
        ));
    }
    let start = Instant::now();
    let mut model = state.model.clone();
    let optimizer = train_task(
        &mut model,
        t,
        t,
        &tasks[t].train,
        &state.config.train,
        on_progress,
    )?;
    let row: Vec<f64> = (0..=t)
        .map(|j| accuracy(&model, j, j, &tasks[j].test))
        .collect();
    state.model = model;
    state.tasks.push(spec);
    state.accuracy_matrix.push(row);
    state.optimizer = Some(optimizer);
    state.wall_seconds += start.elapsed().as_secs_f64();
    Ok(())
}

/// The accuracy of one stored task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskAccuracy {
    /// Task index (and head).
    pub task: usize,
    /// What the task is.
    pub spec: TaskSpec,
    /// Test accuracy (%) with task identity given: the task's embedding and head.
    pub with_task_id: f64,
    /// Test accuracy (%) without task identity (the task inferred from the input). Not
    /// implemented yet: always `None`.
    pub without_task_id: Option<f64>,
}

/// Test accuracy of every stored task; `tasks` holds their data in order.
pub fn evaluate(state: &Checkpoint, tasks: &[ClassificationTask]) -> Result<Vec<TaskAccuracy>> {
    if tasks.len() != state.completed() {
        return Err(Error::config(
            "tasks",
            format!(
                "expected the data of {} tasks, found {}",
                state.completed(),
                tasks.len()
            ),
        ));
    }
    Ok(tasks
        .iter()
        .enumerate()
        .map(|(t, task)| TaskAccuracy {
            task: t,
            spec: state.tasks[t],
            with_task_id: accuracy(&state.model, t, t, &task.test),
            without_task_id: None,
        })
        .collect())
}

/// The results of the tasks `state` has learned so far.
pub fn results(state: &Checkpoint) -> RunResults {
    summarize(state)
}

fn summarize(state: &Checkpoint) -> RunResults {
    let (config, model, matrix) = (&state.config, &state.model, &state.accuracy_matrix);
    let final_accuracy = matrix.last().cloned().unwrap_or_default();
    let during_accuracy: Vec<f64> = matrix.iter().enumerate().map(|(i, r)| r[i]).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let num_target_weights = model.target.num_weights();
    let num_hnet_params = model.hnet.num_params();
    RunResults {
        config: config.clone(),
        seed: config.train.seed,
        version: env!("CARGO_PKG_VERSION").to_string(),
        num_target_weights,
        num_hnet_params,
        compression_ratio: num_hnet_params as f64 / num_target_weights as f64,
        final_mean_accuracy: mean(&final_accuracy),
        during_mean_accuracy: mean(&during_accuracy),
        final_accuracy,
        during_accuracy,
        tasks: state.tasks.clone(),
        accuracy_matrix: matrix.clone(),
        wall_seconds: state.wall_seconds,
    }
}
