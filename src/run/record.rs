//! What a run records: after every task, the accuracy matrix and the task inference
//! ([`History`]); at the end, the results with their metrics ([`RunResults`]), written as
//! `results.json`, `accuracy_matrix.csv` and `accuracy.svg`.
//!
//! Metrics, from the accuracy matrix A (row i: test accuracies after task i, T the last task):
//! backward transfer = mean over j < T of `A[T][j]` − `A[j][j]` (Lopez-Paz & Ranzato 2017);
//! forgetting = mean over j < T of max over i < T of `A[i][j]` − `A[T][j]` (Chaudhry et al.
//! 2018, eq. 3; negative when tasks end better than they ever were before the last one).
//! Results written before this rule carry `metrics_version` 1, whose forgetting took the
//! max over i ≤ T (never negative); [`METRICS_VERSION`] is the current one.

use super::config::ExperimentConfig;
use super::figures::{matrix_subtitle, run_title};
use super::session::Session;
use crate::cl::{EvalRow, InferredEval, LearnerReport};
use crate::data::TaskSpec;
use crate::fsio::write_atomic;
use crate::report::{accuracy_csv, accuracy_svg, AccuracyFigure};
use crate::Result;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

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
    /// Backward transfer: mean over tasks j before the last of `A[last][j]` − `A[j][j]` (none with
    /// one task).
    pub backward_transfer: Option<f64>,
    /// Forgetting: mean over tasks j before the last T of max over i < T of `A[i][j]` −
    /// `A[T][j]` (Chaudhry et al. 2018, eq. 3; with `metrics_version` 1 the max ran over
    /// i ≤ T).
    pub forgetting: Option<f64>,
    /// Which definitions the metrics follow: 2 = this release's (forgetting over i < T);
    /// 1 (results written before the field existed) = forgetting over i ≤ T.
    #[serde(default = "metrics_version_1")]
    pub metrics_version: u32,
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
    /// The processes that learned the tasks, in order (see [`Session`]); empty for a run
    /// recorded before sessions were.
    #[serde(default)]
    pub sessions: Vec<Session>,
    /// HNET+R and HNET+TIR (CL2/CL3): per task the VAE learned, its mean reconstruction loss
    /// (BCE per pixel) and KL term over the last 100 steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_losses: Option<Vec<(f64, f64)>>,
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
    /// The processes that learned the tasks, in order (tasks learned before sessions were
    /// recorded have none).
    #[serde(default)]
    pub sessions: Vec<Session>,
}

impl History {
    /// Appends the evaluations after one more task (test sets, and validation sets if any).
    pub fn push(&mut self, (row, validation): (EvalRow, Option<EvalRow>)) {
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

/// The accuracy of one stored task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskAccuracy {
    /// Task index (and, except in CL2, its head).
    pub task: usize,
    /// What the task is.
    pub spec: TaskSpec,
    /// Test accuracy (%) with task identity given: the task's own weights and head (CL2: the
    /// shared head).
    pub with_task_id: f64,
    /// Test accuracy (%) without task identity ([`crate::cl::TaskIdentity::Inferred`]): the
    /// shared head in CL2; otherwise the CL3 rule (right only if task and class both are).
    pub without_task_id: f64,
    /// Percent of the task's test inputs whose task was inferred correctly (`None` where the
    /// method names no task: a directly trained network's shared CL2 head).
    pub task_inference: Option<f64>,
    /// Percent of the task's test inputs assigned to each stored task (empty where no task is
    /// named).
    #[serde(default)]
    pub picks: Vec<f64>,
}

/// The mean of `v` (0 when empty).
pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// Backward transfer of an accuracy matrix (row i = accuracies after task i): mean over
/// j < T of `A[T][j]` − `A[j][j]`, T the last task; `None` with fewer than two tasks.
pub fn backward_transfer(matrix: &[Vec<f64>]) -> Option<f64> {
    let last = matrix.last()?;
    let t = matrix.len() - 1;
    (t > 0).then(|| (0..t).map(|j| last[j] - matrix[j][j]).sum::<f64>() / t as f64)
}

/// The definitions [`RunResults`] follow (see `RunResults::metrics_version`).
pub const METRICS_VERSION: u32 = 2;

fn metrics_version_1() -> u32 {
    1
}

/// Forgetting (Chaudhry et al. 2018, eq. 3): mean over j < T of max over i < T of `A[i][j]`
/// − `A[T][j]`, i over the rows before the last that hold task j (j ≤ i < T); `None` with
/// fewer than two tasks.
pub fn forgetting(matrix: &[Vec<f64>]) -> Option<f64> {
    let last = matrix.last()?;
    let t = matrix.len() - 1;
    (t > 0).then(|| {
        (0..t)
            .map(|j| {
                let best = matrix[j..t]
                    .iter()
                    .map(|r| r[j])
                    .fold(f64::NEG_INFINITY, f64::max);
                best - last[j]
            })
            .sum::<f64>()
            / t as f64
    })
}

/// The results of a run of `config` that learned `tasks` with this `history`; `learner` gives
/// the network sizes, temperatures and replay losses.
pub fn summarize(
    config: &ExperimentConfig,
    learner: &LearnerReport,
    history: &History,
    tasks: Vec<TaskSpec>,
) -> RunResults {
    let (num_target_weights, num_hnet_params) = (learner.target_weights, learner.hnet_params);
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
        metrics_version: METRICS_VERSION,
        task_inference_matrix: None,
        final_task_inference_accuracy: None,
        final_mean_task_inference_accuracy: None,
        final_task_picks: None,
        validation_accuracy: None,
        validation_mean_accuracy: None,
        validation_task_inference_accuracy: None,
        validation_task_picks: None,
        task_temperatures: learner.task_temperatures.clone(),
        final_accuracy,
        during_accuracy,
        tasks,
        accuracy_matrix: matrix.clone(),
        wall_seconds: history.wall_seconds,
        sessions: history.sessions.clone(),
        vae_losses: learner.vae_losses.clone(),
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

/// Writes `dir/results.json`, `dir/accuracy_matrix.csv` and `dir/accuracy.svg`, each
/// atomically.
pub fn write_results(dir: &Path, results: &RunResults) -> Result<()> {
    let json = serde_json::to_vec_pretty(results).expect("results serialize");
    write_atomic(&dir.join("results.json"), &json)?;
    write_atomic(
        &dir.join("accuracy_matrix.csv"),
        accuracy_csv(&results.accuracy_matrix).as_bytes(),
    )?;
    let labels: Vec<String> = results.tasks.iter().map(|t| t.to_string()).collect();
    let c = &results.config;
    let figure = AccuracyFigure {
        title: &run_title(c),
        subtitle: &matrix_subtitle(c.method, c.scenario),
        matrix: &results.accuracy_matrix,
        labels: &labels,
    };
    write_atomic(&dir.join("accuracy.svg"), accuracy_svg(&figure).as_bytes())
}

/// The per-task table: each task's data, its test accuracy right after its own training
/// and after the last task, and means; with task inference (CL2/CL3), the final
/// task-inference accuracy and the share of each task's inputs assigned to each task. A
/// legend under the table says what the columns are.
pub fn accuracy_table(results: &RunResults) -> String {
    let inference = results.final_task_inference_accuracy.as_ref();
    let n = results.final_accuracy.len();
    let data: Vec<String> = (0..n)
        .map(|t| {
            results
                .tasks
                .get(t)
                .map_or_else(String::new, |s| s.describe())
        })
        .collect();
    let width = data.iter().map(String::len).max().unwrap_or(0).max(4);
    let mut s = format!("task  {:<width$}  learned %  end %", "data");
    if inference.is_some() {
        s.push_str("  inferred %  assigned %");
    }
    s.push('\n');
    for (t, (d, f)) in results
        .during_accuracy
        .iter()
        .zip(&results.final_accuracy)
        .enumerate()
    {
        let _ = write!(s, "{t:>4}  {:<width$}  {d:>9.2}  {f:>5.2}", data[t]);
        if let (Some(inf), Some(picks)) = (inference, results.final_task_picks.as_ref()) {
            let cells: Vec<String> = picks[t].iter().map(|p| format!("{p:.1}")).collect();
            let _ = write!(s, "  {:>10.2}  [{}]", inf[t], cells.join(" "));
        }
        s.push('\n');
    }
    let _ = write!(
        s,
        "mean  {:<width$}  {:>9.2}  {:>5.2}",
        "", results.during_mean_accuracy, results.final_mean_accuracy
    );
    if let Some(m) = results.final_mean_task_inference_accuracy {
        let _ = write!(s, "  {m:>10.2}");
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "(test accuracy: learned = right after the task's own training,\n end = after all {n} task{})",
        if n == 1 { "" } else { "s" },
    );
    if inference.is_some() {
        s.push_str(
            "(inferred: share of the task's test inputs whose task the model picked right;\n assigned: share of them picked as task 0, 1, … in order)\n",
        );
    }
    s
}

/// Backward transfer and forgetting in percentage points; HNET+ENT's calibration and
/// temperatures; the validation accuracy and task inference of a run with validation sets.
pub fn summary_lines(results: &RunResults) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:+.2}"));
    let mut out = format!(
        "backward transfer {} pp, forgetting {} pp\n",
        f(results.backward_transfer),
        f(results.forgetting)
    );
    if let Some(t) = &results.task_temperatures {
        let cells: Vec<String> = t.iter().map(|v| format!("{v:.2}")).collect();
        out += &format!(
            "HNET+ENT: {} calibration; logit-gap temperatures [{}]\n",
            results.config.entropy_calibration.name(),
            cells.join(", ")
        );
    }
    if let (Some(acc), Some(mean)) = (
        &results.validation_accuracy,
        results.validation_mean_accuracy,
    ) {
        let row = |v: &[f64]| {
            v.iter()
                .map(|a| format!("{a:.2}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        out += &format!("validation accuracy % {mean:.2} ({})", row(acc));
        if let Some(ti) = &results.validation_task_inference_accuracy {
            out += &format!(", task inferred % {}", row(ti));
        }
        out.push('\n');
    }
    out
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
        // The best accuracy before the last task counts, not the last one: a task that ends
        // better than it ever was is negative forgetting. Task 0: 80 before, 90 at the end.
        let m = vec![vec![80.0], vec![90.0, 95.0]];
        assert!((forgetting(&m).unwrap() + 10.0).abs() < 1e-12);
    }
}
