//! The continual-learning experiments of the paper on MNIST: their configuration (with the
//! official code's defaults), validation of a configuration, and a run from data to the
//! accuracy matrix.

use crate::cl::trainer::{accuracy, argmax, for_each_logits, train_task, Progress, TrainConfig};
use crate::cl::{
    entropy_inference, BaselineConfig, DirectLearner, HnetModel, InferredEval, Lookahead, Method,
    Readout, Scenario,
};
use crate::data::{load_mnist, permuted_mnist, split_mnist, ClassificationTask, TaskView};
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
    /// The scenario (CL1 for configurations saved before it existed).
    #[serde(default)]
    pub scenario: Scenario,
    /// The method (the hypernetwork for configurations saved before it existed).
    #[serde(default)]
    pub method: Method,
    /// Penalty strengths of the baselines (ignored by the hypernetwork).
    #[serde(default)]
    pub baseline: BaselineConfig,
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
            scenario: Scenario::Cl1,
            method: Method::Hnet,
            baseline: BaselineConfig::defaults(benchmark == Benchmark::SplitMnist, Scenario::Cl1),
        }
    }

    /// Sets the scenario and the baselines' default strengths for it.
    pub fn set_scenario(&mut self, scenario: Scenario) {
        self.scenario = scenario;
        self.baseline = BaselineConfig::defaults(self.benchmark == Benchmark::SplitMnist, scenario);
    }

    /// Inputs and outputs per head of the benchmark.
    pub fn io_dims(&self) -> (usize, usize) {
        match self.benchmark {
            Benchmark::SplitMnist => (784, 2),
            Benchmark::PermutedMnist => (1024, 10),
        }
    }

    /// The target network: one head per task, or one shared head in CL2.
    pub fn target(&self) -> TargetMlp {
        let (input, head) = self.io_dims();
        TargetMlp::new(
            input,
            &self.target_hidden,
            head,
            self.scenario.num_heads(self.num_tasks),
        )
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
    /// Number of trainable hypernetwork parameters θ (with chunk embeddings); 0 for a baseline.
    pub num_hnet_params: usize,
    /// #θ / #W (0 for a baseline).
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
    /// Seconds from the first step to the last evaluation (data loading excluded).
    pub wall_seconds: f64,
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
}

struct HnetLearner {
    model: HnetModel<f32>,
    scenario: Scenario,
    train: TrainConfig,
}

impl Learner for HnetLearner {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let head = self.scenario.head(t);
        train_task(
            &mut self.model,
            t,
            head,
            &task.train,
            &self.train,
            on_progress,
        )
    }

    fn evaluate(&self, tests: &[&TaskView]) -> EvalRow {
        if self.scenario.infers_task() {
            let inferred = entropy_inference(&self.model, tests.len(), self.scenario, tests);
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
}

struct BaselineLearner {
    learner: DirectLearner,
    scenario: Scenario,
    train: TrainConfig,
}

impl BaselineLearner {
    /// The outputs task `t` trains: its own head (CL1), the shared head (CL2), or the heads of
    /// every class seen so far with the task's classes after them (CL3, as van de Ven &
    /// Tolias train their class-incremental baselines).
    fn readout(&self, t: usize) -> Readout {
        match self.scenario {
            Scenario::Cl1 | Scenario::Cl2 => Readout::head(self.scenario.head(t)),
            Scenario::Cl3 => Readout {
                heads: 0..t + 1,
                label_offset: t * self.learner.target.head_dim(),
            },
        }
    }
}

impl Learner for BaselineLearner {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let readout = self.readout(t);
        self.learner
            .learn_classification(t, &task.train, &readout, &self.train, on_progress)
    }

    /// CL1: task j's head; CL2: the shared head; CL3: the argmax over the classes of every
    /// learned task, whose head names the inferred task.
    fn evaluate(&self, tests: &[&TaskView]) -> EvalRow {
        let target = &self.learner.target;
        let w = &self.learner.weights;
        let learned = tests.len();
        let hd = target.head_dim();
        let mut accuracy = Vec::with_capacity(learned);
        let mut inferred = Vec::with_capacity(learned);
        for (j, data) in tests.iter().enumerate() {
            let labels = data.labels();
            let n = data.len().max(1) as f64;
            let (heads, offset) = match self.scenario {
                Scenario::Cl3 => (0..learned, j * hd),
                s => (s.head(j)..s.head(j) + 1, 0),
            };
            let mut correct = 0usize;
            let mut picks = vec![0usize; learned];
            for_each_logits(target, w, heads, data, &mut |i, row| {
                let p = argmax(row);
                correct += usize::from(p == labels[i] + offset);
                if self.scenario == Scenario::Cl3 {
                    picks[p / hd] += 1;
                }
            });
            accuracy.push(100.0 * correct as f64 / n);
            if self.scenario == Scenario::Cl3 {
                inferred.push(InferredEval {
                    accuracy: 100.0 * correct as f64 / n,
                    task_inference_accuracy: 100.0 * picks[j] as f64 / n,
                    picks: picks.iter().map(|&c| 100.0 * c as f64 / n).collect(),
                });
            }
        }
        EvalRow {
            accuracy,
            inferred: (self.scenario == Scenario::Cl3).then_some(inferred),
        }
    }
}

/// Trains the tasks in order with `config.method`, evaluating every task seen so far after
/// each one in `config.scenario`. `on_task_end` gets the task index and its row of the
/// accuracy matrix.
pub fn run(
    config: &ExperimentConfig,
    tasks: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
    on_task_end: &mut dyn FnMut(usize, &[f64]),
) -> Result<RunResults> {
    config.validate()?;
    let target = config.target();
    let start = Instant::now();
    let (mut learner, num_hnet_params): (Box<dyn Learner>, usize) = match config.method {
        Method::Hnet => {
            let hnet = Hnet::new(&config.hnet, target.num_weights());
            let n = hnet.num_params();
            let model = HnetModel::<f32>::with_init(
                target.clone(),
                hnet,
                config.train.seed,
                config.hnet_init,
            );
            (
                Box::new(HnetLearner {
                    model,
                    scenario: config.scenario,
                    train: config.train.clone(),
                }),
                n,
            )
        }
        method => (
            Box::new(BaselineLearner {
                learner: DirectLearner::new(
                    target.clone(),
                    method,
                    &config.baseline,
                    config.train.seed,
                ),
                scenario: config.scenario,
                train: config.train.clone(),
            }),
            0,
        ),
    };
    let mut matrix = Vec::with_capacity(tasks.len());
    let mut inference: Vec<Vec<InferredEval>> = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        learner.learn(t, task, on_progress)?;
        let tests: Vec<&TaskView> = tasks[..=t].iter().map(|k| &k.test).collect();
        let row = learner.evaluate(&tests);
        on_task_end(t, &row.accuracy);
        matrix.push(row.accuracy);
        if let Some(i) = row.inferred {
            inference.push(i);
        }
    }
    let mut results = summarize(
        config,
        target.num_weights(),
        num_hnet_params,
        matrix,
        start.elapsed().as_secs_f64(),
    );
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
    Ok(results)
}

fn mean(v: &[f64]) -> f64 {
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
    matrix: Vec<Vec<f64>>,
    wall_seconds: f64,
) -> RunResults {
    let final_accuracy = matrix.last().cloned().unwrap_or_default();
    let during_accuracy: Vec<f64> = matrix.iter().enumerate().map(|(i, r)| r[i]).collect();
    RunResults {
        config: config.clone(),
        seed: config.train.seed,
        version: env!("CARGO_PKG_VERSION").to_string(),
        num_target_weights,
        num_hnet_params,
        compression_ratio: num_hnet_params as f64 / num_target_weights as f64,
        final_mean_accuracy: mean(&final_accuracy),
        during_mean_accuracy: mean(&during_accuracy),
        backward_transfer: backward_transfer(&matrix),
        forgetting: forgetting(&matrix),
        task_inference_matrix: None,
        final_task_inference_accuracy: None,
        final_mean_task_inference_accuracy: None,
        final_task_picks: None,
        final_accuracy,
        during_accuracy,
        accuracy_matrix: matrix,
        wall_seconds,
    }
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
