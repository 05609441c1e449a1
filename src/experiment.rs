//! The continual-learning experiments of the paper on MNIST: their configuration (with the
//! official code's defaults), validation of a configuration, and a run from data to the
//! accuracy matrix.

use crate::cl::trainer::{accuracy, train_task, Progress, TrainConfig};
use crate::cl::{HnetModel, Lookahead};
use crate::data::{load_mnist, permuted_mnist, split_mnist, ClassificationTask};
use crate::nn::{Activation, Hnet, HnetConfig, HnetInit, TargetMlp};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
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

    /// The target network (one head per task).
    pub fn target(&self) -> TargetMlp {
        let (input, head) = self.io_dims();
        TargetMlp::new(input, &self.target_hidden, head, self.num_tasks)
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

    /// The tasks of the benchmark, read from `data_dir`.
    pub fn load_tasks(&self) -> Result<Vec<ClassificationTask>> {
        let mnist = load_mnist(&self.data_dir)?;
        match self.benchmark {
            Benchmark::SplitMnist => split_mnist(&mnist, self.num_tasks, 0),
            Benchmark::PermutedMnist => permuted_mnist(&mnist, self.num_tasks, self.data_seed, 0),
        }
    }
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
    config.validate()?;
    let target = config.target();
    let hnet = Hnet::new(&config.hnet, target.num_weights());
    let mut model = HnetModel::<f32>::with_init(target, hnet, config.train.seed, config.hnet_init);
    let start = Instant::now();
    let mut matrix = Vec::with_capacity(tasks.len());
    for (t, task) in tasks.iter().enumerate() {
        train_task(&mut model, t, t, &task.train, &config.train, on_progress)?;
        let row: Vec<f64> = (0..=t)
            .map(|j| accuracy(&model, j, j, &tasks[j].test))
            .collect();
        on_task_end(t, &row);
        matrix.push(row);
    }
    Ok(summarize(
        config,
        &model,
        matrix,
        start.elapsed().as_secs_f64(),
    ))
}

fn summarize(
    config: &ExperimentConfig,
    model: &HnetModel<f32>,
    matrix: Vec<Vec<f64>>,
    wall_seconds: f64,
) -> RunResults {
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
        accuracy_matrix: matrix,
        wall_seconds,
    }
}
