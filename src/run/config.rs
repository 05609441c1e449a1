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

    /// The number of values the networks of this configuration's learner hold (θ of each
    /// hypernetwork with its chunk embeddings, the weights of each network trained
    /// directly), computed from the sizes alone, without building a network; `None` if a
    /// size computation overflows or any network exceeds 2^40 values. A checkpoint must hold
    /// at least as many values as its configuration's networks: that check comes before the
    /// networks are built, so a crafted configuration cannot ask for more memory than its
    /// file holds.
    pub fn learner_values(&self) -> Option<u64> {
        self.sizes().map(|(values, _)| values)
    }

    /// (learner values, target network weights): see [`ExperimentConfig::learner_values`].
    fn sizes(&self) -> Option<(u64, u64)> {
        const LIMIT: u64 = 1 << 40;
        let fits = |v: Option<u64>| v.filter(|&v| v <= LIMIT);
        let mul = |a: u64, b: u64| fits(a.checked_mul(b));
        let add = |a: u64, b: u64| fits(a.checked_add(b));
        let mlp = |input: u64, hidden: &[usize], out: u64| -> Option<u64> {
            let mut total = 0u64;
            let mut fan_in = input;
            for &h in hidden.iter().chain(std::iter::once(&(out as usize))) {
                let h = h as u64;
                total = add(total, mul(fan_in, h)?.checked_add(h)?)?;
                fan_in = h;
            }
            Some(total)
        };
        // θ of a hypernetwork with `cfg` generating `weights` outputs.
        let hnet = |cfg: &HnetConfig, weights: u64| -> Option<u64> {
            let (chunk, emb) = match cfg.chunk_size {
                Some(s) => (s as u64, cfg.chunk_emb_dim as u64),
                None => (weights, 0),
            };
            let hnet_in = add(cfg.task_emb_dim as u64, emb)?;
            let body = mlp(hnet_in, &cfg.hidden, chunk)?;
            add(body, mul(weights.div_ceil(chunk.max(1)), emb)?)
        };
        let (input, head) = self.io_dims();
        let input = input as u64;
        let heads = mul(self.num_heads() as u64, head as u64)?;
        let target = mlp(input, &self.target_hidden, heads)?;
        let theta = hnet(&self.hnet, target)?;
        let mut values = match self.method {
            Method::Hnet => theta,
            // The hypernetwork classifier and the task-inference network (one output per task).
            Method::HnetTir => add(
                theta,
                mlp(input, &self.target_hidden, self.num_tasks as u64)?,
            )?,
            _ => target,
        };
        if self.method.replays() {
            let r = &self.replay;
            let latent = r.latent_dim as u64;
            values = add(values, mlp(input, &r.encoder_hidden, mul(latent, 2)?)?)?;
            let z = add(latent, self.num_tasks as u64)?;
            let decoder = mlp(z, &r.decoder_hidden, input)?;
            values = add(values, hnet(&r.hnet, decoder)?)?;
        }
        Some((values, target))
    }

    /// A rough estimate of the memory a run of this configuration needs, in bytes: every
    /// learner value with its gradient and Adam moments (16 bytes), the generated target
    /// weights with their gradients, the stored regularizer targets of every task, a batch's
    /// activations and the MNIST images. `None` if a size overflows.
    pub fn memory_estimate(&self) -> Option<u64> {
        let (values, target) = self.sizes()?;
        let mul = |a: u64, b: u64| a.checked_mul(b);
        let (input, head) = self.io_dims();
        let widths = (input as u64)
            .checked_add(self.target_hidden.iter().map(|&h| h as u64).sum::<u64>())?
            .checked_add(mul(self.num_heads() as u64, head as u64)?)?;
        let activations = mul(mul(self.train.batch_size as u64, widths)?, 4 * 6)?;
        let targets = if matches!(self.method, Method::Hnet | Method::HnetTir) {
            self.regularizer_memory(values, target)?
        } else {
            0
        };
        const DATA: u64 = 256 << 20;
        mul(values, 16)?
            .checked_add(mul(target, 12)?)?
            .checked_add(targets)?
            .checked_add(activations)?
            .checked_add(DATA)
    }

    /// Bytes the hypernetwork classifier's output regularizer keeps at most, for θ of
    /// `values` values and a target network of `target` weights: the direct form's stored
    /// targets ([previous tasks × target weights]), or θ* (online targets, the factored form)
    /// and the factored form's last hidden activations of every previous task; the automatic
    /// form stores targets only over the first tasks, where the direct form is cheaper.
    fn regularizer_memory(&self, values: u64, target: u64) -> Option<u64> {
        use crate::cl::hnet::RegularizerCost;
        let mul = |a: u64, b: u64| a.checked_mul(b);
        let tasks = self.num_tasks as u64;
        let stored_targets = |t: u64| mul(mul(t, target)?, 4);
        let theta_star = mul(values, 4)?;
        let h = &self.hnet;
        let chunk = h.chunk_size.map_or(target, |c| c as u64).max(1);
        let chunks = target.div_ceil(chunk);
        let width = match h.hidden.last() {
            Some(&w) => w as u64,
            None => (h.task_emb_dim + h.chunk_size.map_or(0, |_| h.chunk_emb_dim)) as u64,
        };
        let factors = theta_star.checked_add(mul(mul(mul(tasks, chunks)?, width)?, 4)?)?;
        if self.train.online_targets {
            return Some(theta_star);
        }
        match self.train.regularizer {
            RegularizerForm::Direct => stored_targets(tasks),
            RegularizerForm::Factored => Some(factors),
            RegularizerForm::Auto => {
                // Previous tasks P over which the direct form with stored targets is cheaper:
                // both costs are linear in P, direct a·P against factored c + b·P.
                let cost = |p| {
                    RegularizerCost::of_shapes(
                        chunk as usize,
                        width as usize,
                        chunks as usize,
                        p,
                        true,
                    )
                };
                let (zero, one) = (cost(0), cost(1));
                let (a, b, c) = (one.direct, one.factored - zero.factored, zero.factored);
                let most = tasks.saturating_sub(1);
                let direct_tasks = if a > b {
                    ((c / (a - b)).floor() as u64).min(most)
                } else {
                    most
                };
                factors.checked_add(stored_targets(direct_tasks)?)
            }
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
        if self.train.iterations > MAX_ITERATIONS {
            return Err(Error::config(
                "iterations",
                format!(
                    "must be at most {MAX_ITERATIONS} steps per task, got {}",
                    self.train.iterations
                ),
            ));
        }
        if self.train.batch_size > MAX_BATCH {
            return Err(Error::config(
                "batch-size",
                format!("must be at most {MAX_BATCH}, got {}", self.train.batch_size),
            ));
        }
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
        self.check_memory()
    }

    /// Refuses a configuration whose networks overflow a size computation or whose
    /// [`ExperimentConfig::memory_estimate`] exceeds this machine's physical memory, before
    /// anything is allocated; the error gives the estimate.
    pub fn check_memory(&self) -> Result<()> {
        let too_large = || {
            let chunks = match self.hnet.chunk_size {
                Some(c) => format!("chunks of {c}"),
                None => "unchunked".to_string(),
            };
            let replay = if self.method.replays() {
                let r = &self.replay;
                format!(
                    ", VAE encoder {:?}, latent {}, decoder {:?}",
                    r.encoder_hidden, r.latent_dim, r.decoder_hidden
                )
            } else {
                String::new()
            };
            Error::config(
                "sizes",
                format!(
                    "the networks of this configuration are too large to count (target widths {:?}, {} heads of {}, hypernetwork widths {:?}, {chunks}, chunk embedding {}, task embedding {}{replay})",
                    self.target_hidden,
                    self.num_heads(),
                    self.io_dims().1,
                    self.hnet.hidden,
                    self.hnet.chunk_emb_dim,
                    self.hnet.task_emb_dim,
                ),
            )
        };
        let (values, target) = self.sizes().ok_or_else(too_large)?;
        let estimate = self.memory_estimate().ok_or_else(too_large)?;
        if let Some(memory) = physical_memory() {
            if estimate > memory {
                let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
                return Err(Error::config(
                    "sizes",
                    format!(
                        "this configuration needs about {:.1} GiB ({values} trained values, a target network of {target} weights, {} tasks, batch {}), more than this machine's {:.1} GiB",
                        gib(estimate),
                        self.num_tasks,
                        self.train.batch_size,
                        gib(memory)
                    ),
                ));
            }
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

/// The machine's physical memory in bytes (`MemTotal` of /proc/meminfo; `None` where there is
/// none).
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
