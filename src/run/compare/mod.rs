//! A grid of runs, methods × scenarios × seeds, summarized like Table 1 of von Oswald et al.
//! (2020): rows methods, columns scenarios, mean ± standard deviation over seeds of the final
//! mean accuracy (the paper gives the standard error over 20 seeds instead).
//!
//! Every cell of the grid (one method, scenario and seed) is an ordinary run, a pure function
//! of its configuration and seed, kept in its own directory ([`cell_dir`]). So the cells can
//! be run in any order, on any machine that sees the output directory, by any scheduler: a
//! [`Grid`] numbers its cells ([`Grid::cells`]), runs one ([`Grid::run_cell`]), all of them,
//! several at once ([`Grid::run`]), or gathers whatever has finished ([`Grid::collect`]).

mod figure;
mod table;

pub use figure::compare_figure;
pub use table::{markdown, CompareCell, CompareResults, MissingRun};
use table::{mean_of, mean_std};

use crate::cl::{Method, Scenario};
use crate::report::write_replay_pictures;
use crate::run::config::ExperimentConfig;
use crate::run::record::{write_results, RunResults};
use crate::run::rundir::RunDir;
use crate::run::runner::RunState;
use crate::run::store;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

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

/// One run of a grid.
#[derive(Clone, Debug)]
pub struct GridCell {
    /// Its index: methods × scenarios × seeds, row-major (the table's order).
    pub index: usize,
    /// Its configuration: the grid's base with the method's and scenario's defaults and the
    /// seed (training and data).
    pub config: ExperimentConfig,
    /// Its run directory ([`cell_dir`]).
    pub dir: PathBuf,
}

impl GridCell {
    /// The method.
    pub fn method(&self) -> Method {
        self.config.method
    }

    /// The scenario.
    pub fn scenario(&self) -> Scenario {
        self.config.scenario
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.config.train.seed
    }
}

/// What [`Grid::status`] finds in a cell's directory.
#[derive(Clone, Debug)]
pub enum CellStatus {
    /// The run has finished; its results.
    Finished(Box<RunResults>),
    /// Its checkpoint has learned `completed` tasks of the run's (0: nothing there).
    Unfinished {
        /// Tasks learned.
        completed: usize,
    },
    /// A checkpoint is there but cannot be read (e.g. written at this moment); why.
    Unreadable(String),
}

/// Called when a cell starts or resumes training (not for a reused one).
pub type OnStart<'a> = &'a (dyn Fn(&GridCell, CellOrigin) + Sync);
/// Called after every task a cell learns, with the run's state.
pub type OnTaskEnd<'a> = &'a (dyn Fn(&GridCell, &RunState) + Sync);
/// Called when a cell is done, with its results and how they were obtained.
pub type OnCell<'a> = &'a (dyn Fn(&GridCell, &RunResults, CellOrigin) + Sync);

/// The cells of methods × scenarios × seeds from one base configuration, under one output
/// directory.
#[derive(Clone, Debug)]
pub struct Grid {
    base: ExperimentConfig,
    methods: Vec<Method>,
    scenarios: Vec<Scenario>,
    seeds: Vec<u64>,
    cells: Vec<GridCell>,
}

impl Grid {
    /// The grid of every (method, scenario, seed) from `base` (the defaults that go with a
    /// method and a scenario set per cell, see [`ExperimentConfig::set_method_and_scenario`];
    /// the seed sets `train.seed` and `data_seed`), each cell's run in [`cell_dir`] under
    /// `out`. Nothing is read or written. Errors: a cell's configuration is invalid (naming
    /// the setting); an empty list.
    pub fn new(
        base: &ExperimentConfig,
        methods: &[Method],
        scenarios: &[Scenario],
        seeds: &[u64],
        out: &Path,
    ) -> Result<Self> {
        for (what, empty) in [
            ("methods", methods.is_empty()),
            ("scenarios", scenarios.is_empty()),
            ("seeds", seeds.is_empty()),
        ] {
            if empty {
                return Err(Error::config(what, "a grid needs at least one"));
            }
        }
        let mut cells = Vec::with_capacity(methods.len() * scenarios.len() * seeds.len());
        for &method in methods {
            for &scenario in scenarios {
                for &seed in seeds {
                    let mut c = base.clone();
                    c.set_method_and_scenario(method, scenario);
                    c.train.seed = seed;
                    c.data_seed = seed;
                    c.validate()?;
                    cells.push(GridCell {
                        index: cells.len(),
                        dir: cell_dir(out, &c),
                        config: c,
                    });
                }
            }
        }
        Ok(Self {
            base: base.clone(),
            methods: methods.to_vec(),
            scenarios: scenarios.to_vec(),
            seeds: seeds.to_vec(),
            cells,
        })
    }

    /// Every cell, in index order: methods × scenarios × seeds, row-major.
    pub fn cells(&self) -> &[GridCell] {
        &self.cells
    }

    /// Cell `k`; the error gives the range.
    pub fn cell(&self, k: usize) -> Result<&GridCell> {
        self.cells.get(k).ok_or_else(|| {
            Error::config(
                "cell",
                format!(
                    "the grid has {} cells, numbered 0 to {} (see --list); {k} is not one",
                    self.cells.len(),
                    self.cells.len() - 1
                ),
            )
        })
    }

    /// Runs cell `k` through the same run loop as `run` ([`RunState::continue_run`]), in its
    /// directory, which it locks ([`RunDir`]) for the whole run, so it keeps a checkpoint after
    /// every task and its result files. A directory holding a checkpoint of the same run
    /// ([`ExperimentConfig::check_same`]; the data directory may differ) continues after its
    /// last completed task, or is reused when finished; `fresh` starts it again. A checkpoint
    /// of a different run is an error naming the cell's directory and the first differing
    /// setting. HNET+R and HNET+TIR cells also write their replay pictures when they finish.
    pub fn run_cell(
        &self,
        k: usize,
        fresh: bool,
        on_start: OnStart,
        on_task_end: OnTaskEnd,
    ) -> Result<(RunResults, CellOrigin)> {
        let cell = self.cell(k)?;
        let (config, dir) = (&cell.config, cell.dir.as_path());
        let lock = RunDir::open(dir, "hypertape compare (a cell)")?;
        let mut state = if !fresh && store::exists(dir) {
            let mut state = RunState::load(dir)?;
            state
                .config
                .check_same(config)
                .map_err(|e| other_run(dir, e))?;
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
        on_start(cell, origin);
        let data = state.load_data()?;
        state.continue_run(&data, Some(&lock), &mut |_| {}, &mut |s| {
            on_task_end(cell, s)
        })?;
        let results = state.results();
        write_results(dir, &results)?;
        write_replay_pictures(dir, &state.replay_samples(&data))?;
        Ok((results, origin))
    }

    /// Runs every cell ([`Grid::run_cell`]) and summarizes them. With `jobs` ≤ 1 one cell
    /// at a time, in index order, each on the calling thread's rayon pool (all cores). With
    /// `jobs` = N > 1, N cells at once, each in a rayon pool of its own with one thread; a
    /// cell's results do not depend on the number of threads (the engine is deterministic
    /// with any), so the summary is the same bit for bit. After a cell fails no further cell
    /// is started, the ones running finish, and the error of the lowest-numbered failed cell
    /// is returned.
    ///
    /// The callbacks are called from the thread running the cell (see [`OnStart`],
    /// [`OnTaskEnd`], [`OnCell`]).
    pub fn run(
        &self,
        fresh: bool,
        jobs: usize,
        on_start: OnStart,
        on_task_end: OnTaskEnd,
        on_cell: OnCell,
    ) -> Result<CompareResults> {
        let n = self.cells.len();
        let mut results: Vec<Option<RunResults>> = Vec::with_capacity(n);
        if jobs <= 1 {
            for k in 0..n {
                let (r, origin) = self.run_cell(k, fresh, on_start, on_task_end)?;
                on_cell(&self.cells[k], &r, origin);
                results.push(Some(r));
            }
            return Ok(self.summarize(&results, Vec::new()));
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let slots: Vec<Mutex<Option<Result<RunResults>>>> =
            (0..n).map(|_| Mutex::new(None)).collect();
        std::thread::scope(|scope| {
            for _ in 0..jobs.min(n) {
                scope.spawn(|| {
                    let pool = match rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .stack_size(CELL_STACK)
                        .build()
                    {
                        Ok(pool) => pool,
                        Err(e) => {
                            let k = next.fetch_add(1, Ordering::SeqCst);
                            if k < n {
                                failed.store(true, Ordering::SeqCst);
                                *slots[k].lock().unwrap() = Some(Err(Error::config(
                                    "jobs",
                                    format!("cannot start a thread for a cell: {e}"),
                                )));
                            }
                            return;
                        }
                    };
                    while !failed.load(Ordering::SeqCst) {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        if k >= n {
                            break;
                        }
                        let outcome =
                            pool.install(|| self.run_cell(k, fresh, on_start, on_task_end));
                        let outcome = outcome.map(|(r, origin)| {
                            on_cell(&self.cells[k], &r, origin);
                            r
                        });
                        if outcome.is_err() {
                            failed.store(true, Ordering::SeqCst);
                        }
                        *slots[k].lock().unwrap() = Some(outcome);
                    }
                });
            }
        });
        for slot in slots {
            match slot.into_inner().unwrap() {
                Some(Ok(r)) => results.push(Some(r)),
                Some(Err(e)) => return Err(e),
                None => results.push(None),
            }
        }
        Ok(self.summarize(&results, Vec::new()))
    }

    /// What cell `k`'s directory holds, read without taking its lock (a cell being run
    /// elsewhere is read as of its last checkpoint). Errors: a run of other settings is there
    /// (naming the directory and the first differing setting).
    pub fn status(&self, k: usize) -> Result<CellStatus> {
        let cell = self.cell(k)?;
        let (config, dir) = (&cell.config, cell.dir.as_path());
        if store::exists(dir) {
            let state = match RunState::load(dir) {
                Ok(state) => state,
                Err(e) => return Ok(CellStatus::Unreadable(e.to_string())),
            };
            state
                .config
                .check_same(config)
                .map_err(|e| other_run(dir, e))?;
            return Ok(if state.is_finished() {
                let mut state = state;
                state.config.data_dir = config.data_dir.clone();
                CellStatus::Finished(Box::new(state.results()))
            } else {
                CellStatus::Unfinished {
                    completed: state.completed(),
                }
            });
        }
        Ok(match earlier_results(dir, config) {
            Some(results) => CellStatus::Finished(Box::new(results)),
            None => CellStatus::Unfinished { completed: 0 },
        })
    }

    /// The summary of the cells that have finished ([`Grid::status`]), running nothing;
    /// [`CompareResults::missing`] lists the others. For a complete grid it equals what
    /// [`Grid::run`] returns. Errors: as [`Grid::status`].
    pub fn collect(&self) -> Result<CompareResults> {
        let mut results = Vec::with_capacity(self.cells.len());
        let mut missing = Vec::new();
        for cell in &self.cells {
            let (completed, unreadable) = match self.status(cell.index)? {
                CellStatus::Finished(r) => {
                    results.push(Some(*r));
                    continue;
                }
                CellStatus::Unfinished { completed } => (completed, None),
                CellStatus::Unreadable(e) => (0, Some(e)),
            };
            results.push(None);
            missing.push(MissingRun {
                index: cell.index,
                method: cell.method(),
                scenario: cell.scenario(),
                seed: cell.seed(),
                dir: cell.dir.clone(),
                completed,
                num_tasks: cell.config.num_tasks,
                unreadable,
            });
        }
        Ok(self.summarize(&results, missing))
    }

    /// The table's cells from each run's results (`None`: not finished), in cell order.
    fn summarize(
        &self,
        results: &[Option<RunResults>],
        missing: Vec<MissingRun>,
    ) -> CompareResults {
        let mut cells = Vec::new();
        let per = self.seeds.len();
        for (i, &method) in self.methods.iter().enumerate() {
            for (j, &scenario) in self.scenarios.iter().enumerate() {
                let first = (i * self.scenarios.len() + j) * per;
                let runs: Vec<(u64, &RunResults)> = self
                    .seeds
                    .iter()
                    .zip(&results[first..first + per])
                    .filter_map(|(&s, r)| r.as_ref().map(|r| (s, r)))
                    .collect();
                if runs.is_empty() {
                    continue;
                }
                let accs: Vec<f64> = runs.iter().map(|(_, r)| r.final_mean_accuracy).collect();
                let inf: Vec<Option<f64>> = runs
                    .iter()
                    .map(|(_, r)| r.final_mean_task_inference_accuracy)
                    .collect();
                let bwt: Vec<Option<f64>> = runs.iter().map(|(_, r)| r.backward_transfer).collect();
                let (mean, std) = mean_std(&accs);
                cells.push(CompareCell {
                    method,
                    scenario,
                    seeds: runs.iter().map(|&(s, _)| s).collect(),
                    final_mean_accuracy: accs,
                    mean,
                    std,
                    task_inference_mean: mean_of(&inf),
                    backward_transfer_mean: mean_of(&bwt),
                });
            }
        }
        CompareResults {
            base: self.base.clone(),
            methods: self.methods.clone(),
            scenarios: self.scenarios.clone(),
            cells,
            missing,
        }
    }
}

/// Stack of a thread running a cell with `--jobs` (the main thread's usual size).
const CELL_STACK: usize = 8 << 20;

/// The error for a cell directory holding a run of other settings.
fn other_run(dir: &Path, e: Error) -> Error {
    Error::config(
        "out",
        format!(
            "{} holds a run of other settings ({e}); use --fresh to run the grid again, or another --out",
            dir.display()
        ),
    )
}

/// Runs every (method, scenario, seed) of [`Grid::new`] one after another ([`Grid::run`]
/// with one job) and summarizes them.
#[allow(clippy::too_many_arguments)]
pub fn run_grid(
    base: &ExperimentConfig,
    methods: &[Method],
    scenarios: &[Scenario],
    seeds: &[u64],
    out: &Path,
    fresh: bool,
    on_task_end: OnTaskEnd,
    on_cell: OnCell,
) -> Result<CompareResults> {
    Grid::new(base, methods, scenarios, seeds, out)?.run(fresh, 1, &|_, _| {}, on_task_end, on_cell)
}

/// The `results.json` of a finished cell of a grid written before cells kept checkpoints, if
/// it is of the same run.
fn earlier_results(dir: &Path, config: &ExperimentConfig) -> Option<RunResults> {
    let bytes = std::fs::read(dir.join("results.json")).ok()?;
    let results: RunResults = serde_json::from_slice(&bytes).ok()?;
    (results.config.check_same(config).is_ok() && results.tasks.len() == config.num_tasks)
        .then_some(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Benchmark;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
        assert_eq!(mean_of(&[Some(1.0), None]), None);
    }

    #[test]
    fn cells_are_numbered_methods_then_scenarios_then_seeds() {
        let mut base = ExperimentConfig::paper_defaults(Benchmark::SplitMnist);
        base.num_tasks = 2;
        let grid = Grid::new(
            &base,
            &[Method::Hnet, Method::Si],
            &[Scenario::Cl1, Scenario::Cl3],
            &[42, 43],
            Path::new("out"),
        )
        .unwrap();
        let names: Vec<String> = grid
            .cells()
            .iter()
            .map(|c| c.dir.display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "out/hnet-cl1-seed42",
                "out/hnet-cl1-seed43",
                "out/hnet-cl3-seed42",
                "out/hnet-cl3-seed43",
                "out/si-cl1-seed42",
                "out/si-cl1-seed43",
                "out/si-cl3-seed42",
                "out/si-cl3-seed43"
            ]
        );
        assert!(grid.cells().iter().enumerate().all(|(k, c)| c.index == k));
        assert_eq!(grid.cells()[5].config.data_seed, 43);
        let err = grid.cell(8).unwrap_err().to_string();
        assert!(err.contains("0 to 7"), "{err}");
        assert!(Grid::new(&base, &[], &[Scenario::Cl1], &[42], Path::new("out")).is_err());
    }
}
