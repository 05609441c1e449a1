//! The configuration of a run: the benchmark, the method and scenario, every network size
//! and training setting, with the official code's defaults per benchmark
//! ([`ExperimentConfig::paper_defaults`]); validation (every error names the command-line
//! flag); and the tasks of a benchmark.

use crate::cl::baselines::BaselineConfig;
use crate::cl::hnet::{EntropyCalibration, Lookahead, RegularizerForm};
use crate::cl::replay::ReplayConfig;
use crate::cl::{Method, Scenario, TrainConfig};
use crate::data::{load_tasks, ClassificationTask, TaskSpec};
use crate::nn::{Activation, HnetConfig, HnetInit, Mlp};
use crate::{Error, Result};

mod check;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Most training steps per task a configuration may ask for (the paper's runs take 5000).
pub const MAX_ITERATIONS: usize = 10_000_000;
/// Largest batch a configuration may ask for (the paper's is 128).
pub const MAX_BATCH: usize = 1 << 20;

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

/// Everything that determines a run. Stored in checkpoints and results; a stored
/// configuration with a field this release does not know is refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The benchmark.
    pub benchmark: Benchmark,
    /// Number of tasks.
    pub num_tasks: usize,
    /// Output heads of the target network (`None`: one per task). More heads than tasks
    /// reserve room for tasks added later with \[`learn`\].
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

/// Tasks from which a PermutedMNIST run takes the official code's configuration for long
/// sequences (PermutedMNIST-100) instead of PermutedMNIST-10's.
pub const LONG_SEQUENCE_TASKS: usize = 100;

impl ExperimentConfig {
    /// The settings of the official code for `benchmark` with `num_tasks` tasks: those of
    /// [`ExperimentConfig::paper_defaults`], except that PermutedMNIST with
    /// [`LONG_SEQUENCE_TASKS`] tasks or more gets the official code's PermutedMNIST-100
    /// hypernetwork: hidden 200, 250, 350 with ReLU, chunks of 7500, task embeddings of 128,
    /// chunk embeddings of 12, and β = 0.01 (learning rate, batch and steps as for
    /// PermutedMNIST-10).
    pub fn paper_defaults_for(benchmark: Benchmark, num_tasks: usize) -> Self {
        let mut c = Self::paper_defaults(benchmark);
        c.num_tasks = num_tasks;
        if benchmark == Benchmark::PermutedMnist && num_tasks >= LONG_SEQUENCE_TASKS {
            c.hnet = HnetConfig {
                task_emb_dim: 128,
                hidden: vec![200, 250, 350],
                activation: Activation::Relu,
                chunk_size: Some(7500),
                chunk_emb_dim: 12,
            };
            c.train.beta = 0.01;
        }
        c
    }

    /// The settings of the official code for `benchmark` (PermutedMNIST: PermutedMNIST-10's).
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
                regularizer: RegularizerForm::Auto,
                label_smoothing: 0.0,
                seed: 42,
            },
            data_seed: 42,
            data_dir: crate::data::default_mnist_dir(),
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
    /// validation sets, docs/method.md, "HNET+ENT calibration"), none otherwise (CL1 infers no task;
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
    pub fn target(&self) -> Mlp {
        let (input, head) = self.io_dims();
        Mlp::new(input, &self.target_hidden, head, self.num_heads())
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
        match self.difference(other) {
            None => Ok(()),
            Some((field, stored, given)) => Err(Error::config(
                field,
                format!("the checkpoint's run has {stored}, this command gives {given}"),
            )),
        }
    }

    /// The first setting the method reads where `other` differs from `self`, as (dotted
    /// field, value in `self`, value in `other`) in JSON; the data directory, and settings the
    /// method does not read, do not count (see [`ExperimentConfig::check_same`]).
    pub fn difference(&self, other: &ExperimentConfig) -> Option<(String, String, String)> {
        self.differences(other).into_iter().next()
    }

    /// Every setting the method reads where `other` differs from `self` (see
    /// [`ExperimentConfig::difference`]), in field order.
    pub fn differences(&self, other: &ExperimentConfig) -> Vec<(String, String, String)> {
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
        let mut out = Vec::new();
        all_differences(&value(self), &value(other), "", &mut out);
        out
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

/// Every leaf where `a` and `b` differ: (dotted path, value in a, value in b), keys in order.
fn all_differences(
    a: &serde_json::Value,
    b: &serde_json::Value,
    path: &str,
    out: &mut Vec<(String, String, String)>,
) {
    use serde_json::Value;
    if let (Value::Object(x), Value::Object(y)) = (a, b) {
        let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let sub = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            let null = Value::Null;
            all_differences(
                x.get(k).unwrap_or(&null),
                y.get(k).unwrap_or(&null),
                &sub,
                out,
            );
        }
    } else if a != b {
        out.push((path.to_string(), a.to_string(), b.to_string()));
    }
}
