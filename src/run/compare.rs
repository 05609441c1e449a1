//! A grid of runs, methods × scenarios × seeds, summarized like Table 1 of von Oswald et al.
//! (2020): rows methods, columns scenarios, mean ± standard deviation over seeds of the final
//! mean accuracy (the paper gives the standard error over 20 seeds instead).

use super::config::ExperimentConfig;
use super::record::{write_results, RunResults};
use super::rundir::RunDir;
use super::runner::RunState;
use super::store;
use crate::cl::{Method, Scenario};
use crate::report::write_replay_pictures;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One (method, scenario) cell over seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompareCell {
    /// The method.
    pub method: Method,
    /// The scenario.
    pub scenario: Scenario,
    /// The seeds run.
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
    /// One per (method, scenario), row-major.
    pub cells: Vec<CompareCell>,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

fn mean_of(v: &[Option<f64>]) -> Option<f64> {
    let vals: Vec<f64> = v.iter().flatten().copied().collect();
    (!vals.is_empty() && vals.len() == v.len()).then(|| mean_std(&vals).0)
}

/// How a cell of the grid was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellOrigin {
    /// Run from its first task.
    New,
    /// Continued from the checkpoint in its directory after its last completed task.
    Resumed {
        /// Tasks the checkpoint had learned.
        completed: usize,
    },
    /// Finished earlier: its checkpoint (or, for a grid written before cells kept
    /// checkpoints, its `results.json`) is of the same run.
    Reused,
}

/// The directory of the run of `config` in a grid under `out`: `<method>-<scenario>-seed<seed>`.
pub fn cell_dir(out: &Path, config: &ExperimentConfig) -> PathBuf {
    out.join(format!(
        "{}-{}-seed{}",
        config.method.name(),
        config.scenario.name(),
        config.train.seed
    ))
}

/// Runs every (method, scenario, seed) from `base` (the defaults that go with a method and
/// a scenario set per cell, see [`ExperimentConfig::set_method_and_scenario`]), each cell in
/// [`cell_dir`] through the same run loop as `run` ([`RunState::continue_run`]), so each cell
/// keeps a checkpoint after every task and its result files. A cell whose directory holds a
/// checkpoint of the same run ([`ExperimentConfig::check_same`]; the data directory may
/// differ) continues after its last completed task, or is reused when finished; `fresh`
/// starts every cell again. A checkpoint of a different run is an error naming the cell's
/// directory and the first differing setting. HNET+R and HNET+TIR cells also write their
/// replay pictures when they finish.
///
/// `on_task_end(state)` sees each new task's row as it is learned; `on_cell(results, origin)`
/// each cell when it is done.
#[allow(clippy::too_many_arguments)]
pub fn run_grid(
    base: &ExperimentConfig,
    methods: &[Method],
    scenarios: &[Scenario],
    seeds: &[u64],
    out: &Path,
    fresh: bool,
    on_task_end: &mut dyn FnMut(&RunState),
    on_cell: &mut dyn FnMut(&RunResults, CellOrigin),
) -> Result<CompareResults> {
    let mut cells = Vec::new();
    for &method in methods {
        for &scenario in scenarios {
            let mut accs = Vec::new();
            let mut inf = Vec::new();
            let mut bwt = Vec::new();
            for &seed in seeds {
                let mut c = base.clone();
                c.set_method_and_scenario(method, scenario);
                c.train.seed = seed;
                c.data_seed = seed;
                c.validate()?;
                let (results, origin) = run_cell(&c, &cell_dir(out, &c), fresh, on_task_end)?;
                on_cell(&results, origin);
                let r = &results;
                accs.push(r.final_mean_accuracy);
                inf.push(r.final_mean_task_inference_accuracy);
                bwt.push(r.backward_transfer);
            }
            let (mean, std) = mean_std(&accs);
            cells.push(CompareCell {
                method,
                scenario,
                seeds: seeds.to_vec(),
                final_mean_accuracy: accs,
                mean,
                std,
                task_inference_mean: mean_of(&inf),
                backward_transfer_mean: mean_of(&bwt),
            });
        }
    }
    Ok(CompareResults {
        base: base.clone(),
        methods: methods.to_vec(),
        scenarios: scenarios.to_vec(),
        cells,
    })
}

/// One cell: resumed, reused or run from the start in `dir` (see [`run_grid`]).
fn run_cell(
    config: &ExperimentConfig,
    dir: &Path,
    fresh: bool,
    on_task_end: &mut dyn FnMut(&RunState),
) -> Result<(RunResults, CellOrigin)> {
    let lock = RunDir::open(dir, "hypertape compare (a cell)")?;
    let mut state = if !fresh && store::exists(dir) {
        let mut state = RunState::load(dir)?;
        state.config.check_same(config).map_err(|e| {
            Error::config(
                "out",
                format!(
                    "{} holds a run of other settings ({e}); use --fresh to run the grid again, or another --out",
                    dir.display()
                ),
            )
        })?;
        state.config.data_dir = config.data_dir.clone();
        if state.is_finished() {
            return Ok((state.results(), CellOrigin::Reused));
        }
        state
    } else {
        if !fresh {
            if let Some(results) = earlier_results(dir, config) {
                return Ok((results, CellOrigin::Reused));
            }
        }
        RunState::new(config)?
    };
    let origin = match state.completed() {
        0 => CellOrigin::New,
        completed => CellOrigin::Resumed { completed },
    };
    let data = state.load_data()?;
    state.continue_run(&data, Some(&lock), &mut |_| {}, on_task_end)?;
    let results = state.results();
    write_results(dir, &results)?;
    write_replay_pictures(dir, &state.replay_samples(&data))?;
    Ok((results, origin))
}

/// The `results.json` of a finished cell of a grid written before cells kept checkpoints, if
/// it is of the same run.
fn earlier_results(dir: &Path, config: &ExperimentConfig) -> Option<RunResults> {
    let bytes = std::fs::read(dir.join("results.json")).ok()?;
    let results: RunResults = serde_json::from_slice(&bytes).ok()?;
    (results.config.check_same(config).is_ok() && results.tasks.len() == config.num_tasks)
        .then_some(results)
}

/// The table as Markdown: rows methods, columns scenarios, "mean ± std" of the final mean
/// accuracy, with the task-inference accuracy in parentheses where there is one.
pub fn markdown(results: &CompareResults) -> String {
    let c = &results.base;
    let seeds = results.cells.first().map_or(0, |c| c.seeds.len());
    let mut s = format!(
        "{}, {} tasks, {} steps per task, {} seed(s): final mean test accuracy %, mean ± std over seeds (task-inference accuracy %)\n\n| method |",
        c.benchmark.name(),
        c.num_tasks,
        c.train.iterations,
        seeds
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
                .find(|c| c.method == *m && c.scenario == *sc)
                .expect("every cell was run");
            let _ = write!(s, " {:.2} ± {:.2}", cell.mean, cell.std);
            if let Some(t) = cell.task_inference_mean {
                let _ = write!(s, " ({t:.1})");
            }
            s.push_str(" |");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
        assert_eq!(mean_of(&[Some(1.0), None]), None);
    }
}
