//! A grid of runs, methods × scenarios × seeds, summarized like Table 1 of von Oswald et al.
//! (2020): rows methods, columns scenarios, mean ± standard deviation over seeds of the final
//! mean accuracy (the paper gives the standard error over 20 seeds instead).

use crate::cl::{Method, Scenario};
use crate::experiment::{run_full, ExperimentConfig, RunOutput, RunResults};
use crate::Result;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

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

/// Runs every (method, scenario, seed) from `base` (the defaults that go with a method and
/// a scenario set per cell, see [`ExperimentConfig::set_method_and_scenario`]). `earlier` may
/// return the results of a run already made; when they are of the same run
/// ([`ExperimentConfig::check_same`]) they are used instead of running it again; `on_task_end(config, t, row)` sees, during a new run,
/// the test accuracies of tasks 0..=t after task t; `on_run` sees each run's output (results,
/// and replayed samples of a new run) as it finishes or is reused, with whether it was reused.
pub fn run_grid(
    base: &ExperimentConfig,
    methods: &[Method],
    scenarios: &[Scenario],
    seeds: &[u64],
    earlier: &mut dyn FnMut(&ExperimentConfig) -> Option<RunResults>,
    on_task_end: &mut dyn FnMut(&ExperimentConfig, usize, &[f64]),
    on_run: &mut dyn FnMut(&RunOutput, bool),
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
                let (output, reused) = match earlier(&c).filter(|r| r.config.check_same(&c).is_ok())
                {
                    Some(results) => {
                        let output = RunOutput {
                            results,
                            replay_samples: Vec::new(),
                        };
                        (output, true)
                    }
                    None => {
                        let tasks = c.load_tasks()?;
                        let output = run_full(&c, &tasks, &mut |_| {}, &mut |t, row| {
                            on_task_end(&c, t, row)
                        })?;
                        (output, false)
                    }
                };
                on_run(&output, reused);
                let r = &output.results;
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
        let name = match m {
            Method::Hnet => "hnet (CL2/CL3: HNET+ENT)",
            Method::HnetR => "hnet-r (HNET+R)",
            Method::HnetTir => "hnet-tir (HNET+TIR; CL1: HNET)",
            other => other.name(),
        };
        let _ = write!(s, "| {name} |");
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
