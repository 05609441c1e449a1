//! The results of a grid: per (method, scenario) cell the mean and spread over seeds, the
//! runs still missing, and the table shaped like the paper's Table 1.

use crate::cl::{Method, Scenario};
use crate::run::config::ExperimentConfig;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;

/// One (method, scenario) cell over seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareCell {
    /// The method.
    pub method: Method,
    /// The scenario.
    pub scenario: Scenario,
    /// The seeds run (with [`Grid::collect`](super::Grid::collect): the seeds whose runs had finished).
    pub seeds: Vec<u64>,
    /// Final mean accuracy of each seed's run, percent.
    pub final_mean_accuracy: Vec<f64>,
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation over seeds (0 for one seed).
    pub std: f64,
    /// Mean over seeds of the final mean task-inference accuracy (CL2/CL3 where defined).
    pub task_inference_mean: Option<f64>,
    /// Mean over seeds of the backward transfer.
    pub backward_transfer_mean: Option<f64>,
}

/// The whole grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareResults {
    /// The configuration every run started from (method, scenario and seed vary).
    pub base: ExperimentConfig,
    /// Methods, in row order.
    pub methods: Vec<Method>,
    /// Scenarios, in column order.
    pub scenarios: Vec<Scenario>,
    /// One per (method, scenario) with at least one finished run, row-major.
    pub cells: Vec<CompareCell>,
    /// The runs of the grid that had not finished ([`Grid::collect`](super::Grid::collect) only; empty, and then
    /// absent from `compare.json`, for a complete grid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingRun>,
}

/// A run of the grid without results, as [`Grid::collect`](super::Grid::collect) found it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MissingRun {
    /// Its index in [`Grid::cells`](super::Grid::cells).
    pub index: usize,
    /// The method.
    pub method: Method,
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// Its run directory.
    pub dir: PathBuf,
    /// Tasks its checkpoint had learned (0: not started).
    pub completed: usize,
    /// Tasks of the run.
    pub num_tasks: usize,
    /// Why the checkpoint could not be read, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

impl MissingRun {
    /// "not started", "after task 0 of 2", or why the checkpoint could not be read.
    pub fn state(&self) -> String {
        match (&self.unreadable, self.completed) {
            (Some(e), _) => format!("checkpoint unreadable: {e}"),
            (None, 0) => "not started".to_string(),
            (None, c) => format!("stopped after task {} of {}", c - 1, self.num_tasks),
        }
    }
}

pub(super) fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

pub(super) fn mean_of(v: &[Option<f64>]) -> Option<f64> {
    let vals: Vec<f64> = v.iter().flatten().copied().collect();
    (!vals.is_empty() && vals.len() == v.len()).then(|| mean_std(&vals).0)
}

impl CompareResults {
    /// The grid's seeds, ascending: those of finished runs and of missing ones.
    pub fn seeds(&self) -> Vec<u64> {
        let mut seeds: Vec<u64> = self
            .cells
            .iter()
            .flat_map(|c| c.seeds.iter().copied())
            .chain(self.missing.iter().map(|m| m.seed))
            .collect();
        seeds.sort_unstable();
        seeds.dedup();
        seeds
    }
}

/// The table as Markdown: rows methods, columns scenarios, "mean ± std" of the final mean
/// accuracy, with the task-inference accuracy in parentheses where there is one. Of a grid
/// with missing runs ([`Grid::collect`](super::Grid::collect)): a cell over fewer seeds than the grid's says how
/// many ("[1 of 2 seeds]"), one without any finished run reads "missing", and a list of the
/// missing runs follows the table.
pub fn markdown(results: &CompareResults) -> String {
    let c = &results.base;
    let seeds = results.seeds().len();
    let what = if seeds == 1 {
        "1 seed: final mean test accuracy % (task-inference accuracy %)"
    } else {
        "seeds: final mean test accuracy %, mean ± std over seeds (task-inference accuracy %)"
    };
    let mut s = format!(
        "{}, {} tasks, {} steps per task, {}{what}\n\n| method |",
        c.benchmark.name(),
        c.num_tasks,
        c.train.iterations,
        if seeds == 1 {
            String::new()
        } else {
            format!("{seeds} ")
        },
    );
    for sc in &results.scenarios {
        let _ = write!(s, " {} |", sc.name().to_uppercase());
    }
    s.push_str("\n|---|");
    for _ in &results.scenarios {
        s.push_str("---|");
    }
    s.push('\n');
    for m in &results.methods {
        let _ = write!(s, "| {} |", m.table_label());
        for sc in &results.scenarios {
            let cell = results
                .cells
                .iter()
                .find(|c| c.method == *m && c.scenario == *sc);
            match cell {
                None => s.push_str(" missing"),
                Some(cell) => {
                    if seeds == 1 {
                        let _ = write!(s, " {:.2}", cell.mean);
                    } else {
                        let _ = write!(s, " {:.2} ± {:.2}", cell.mean, cell.std);
                    }
                    if let Some(t) = cell.task_inference_mean {
                        let _ = write!(s, " ({t:.1})");
                    }
                    if cell.seeds.len() < seeds {
                        let _ = write!(s, " [{} of {seeds} seeds]", cell.seeds.len());
                    }
                }
            }
            s.push_str(" |");
        }
        s.push('\n');
    }
    if !results.missing.is_empty() {
        let _ = writeln!(
            s,
            "\nIncomplete: {} missing:\n",
            match results.missing.len() {
                1 => "1 run".to_string(),
                n => format!("{n} runs"),
            }
        );
        for m in &results.missing {
            let _ = writeln!(
                s,
                "- cell {}: {} {} seed {} ({}), {}",
                m.index,
                m.method.name(),
                m.scenario.name(),
                m.seed,
                m.dir.display(),
                m.state()
            );
        }
    }
    s
}
