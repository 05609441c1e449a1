//! The run loop and the state of a run: one [`RunState`] and one loop for every method.
//!
//! A run learns the tasks of its configuration in order; after each it evaluates every task
//! learned so far (test sets, and validation sets if the run holds some out), appends the
//! row to its [`History`], and, when it has a directory, saves itself there: the checkpoint
//! ([`super::store`]), then `results.json`, `accuracy_matrix.csv` and `accuracy.svg`. Every
//! random stream of task t derives from the seed and t, and every optimizer starts afresh with
//! each task, so a run continued from the checkpoint after task t ends bit for bit as one that
//! never stopped.

use super::config::ExperimentConfig;
use super::curves::{
    stored_curve_every, write_curves, write_task_curve, CurveRecorder, TaskCurve,
    DEFAULT_CURVE_EVERY,
};
use super::figures::run_title;
use super::record::{summarize, write_results, History, RunResults, TaskAccuracy};
use super::rundir::RunDir;
use super::session::Session;
use super::store::{self, Snapshot};
use crate::cl::baselines::BaselineLearner;
use crate::cl::hnet::HnetLearner;
use crate::cl::replay::{HnetR, HnetTir};
use crate::cl::{EvalRow, Learner, Method, Progress, TaskIdentity};
use crate::data::{load_tasks, ClassificationTask, TaskSpec, TaskView};
use crate::{Error, Result};
use std::path::Path;
use std::time::Instant;

/// Samples per task in [`RunState::replay_samples`].
pub const REPLAY_PICTURE_SAMPLES: usize = 64;

/// The learner of `config.method` before its first task, every initialisation from the run's
/// seed. The one place that maps a [`Method`] to its [`Learner`].
pub fn new_learner(c: &ExperimentConfig) -> Box<dyn Learner> {
    let target = c.target();
    match c.method {
        Method::Hnet => Box::new(HnetLearner::new(
            target,
            &c.hnet,
            c.hnet_init,
            c.scenario,
            &c.train,
            c.entropy_calibration,
        )),
        Method::Finetune | Method::Ewc | Method::OnlineEwc | Method::Si => Box::new(
            BaselineLearner::new(target, c.method, &c.baseline, c.scenario, &c.train),
        ),
        Method::HnetR => {
            let input_dim = target.input_dim();
            Box::new(HnetR::new(
                target,
                &c.replay,
                input_dim,
                c.num_tasks,
                c.scenario,
                &c.train,
            ))
        }
        Method::HnetTir => Box::new(HnetTir::new(
            target,
            &c.hnet,
            c.hnet_init,
            &c.replay,
            c.num_tasks,
            c.scenario,
            &c.train,
        )),
    }
}

/// A run after its last completed task: configuration, tasks learned, record, and the learner.
pub struct RunState {
    /// The run's configuration (its `num_tasks` tasks; [`RunState::learn_task`] may add more).
    pub config: ExperimentConfig,
    /// Every task learned so far, in order.
    pub tasks: Vec<TaskSpec>,
    /// The accuracy matrix, the task inference and the time spent.
    pub history: History,
    /// The method's networks and state.
    pub learner: Box<dyn Learner>,
    /// Steps between two points of the training curves ([`super::curves`]; at least 1,
    /// default [`DEFAULT_CURVE_EVERY`]). Not part of the configuration: it changes no result.
    pub curve_every: usize,
    /// The curve of the task this process learned last, until [`RunState::save`] writes it.
    curve: Option<TaskCurve>,
    /// Whether the last of `history.sessions` is this process's (from its first task on).
    in_session: bool,
}

impl std::fmt::Debug for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunState")
            .field("config", &self.config)
            .field("tasks", &self.tasks)
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

impl RunState {
    /// The state before the first task. Errors: an invalid configuration (naming the flag).
    pub fn new(config: &ExperimentConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config: config.clone(),
            tasks: Vec::new(),
            history: History::default(),
            learner: new_learner(config),
            curve_every: DEFAULT_CURVE_EVERY,
            curve: None,
            in_session: false,
        })
    }

    /// The run stored in `dir` (see [`store::load`]); the error names the file and the value
    /// that is missing, left over or of another size than the configuration gives. Its
    /// `curve_every` is the one its curve files were written with (default if it has none).
    pub fn load(dir: &Path) -> Result<Self> {
        let (snapshot, model_path) = store::load(dir)?;
        let mut learner = new_learner(&snapshot.config);
        learner
            .restore(snapshot.tasks.len(), snapshot.state)
            .map_err(|e| Error::format(&model_path, e))?;
        Ok(Self {
            config: snapshot.config,
            tasks: snapshot.tasks,
            history: snapshot.history,
            learner,
            curve_every: stored_curve_every(dir).unwrap_or(DEFAULT_CURVE_EVERY),
            curve: None,
            in_session: false,
        })
    }

    /// Writes the training curve of the task learned last (`curves-task<t>.csv`, if this
    /// process learned it), the checkpoint to `dir` (a new generation), then `results.json`,
    /// `accuracy_matrix.csv`, `accuracy.svg`, `curves.csv` and `curves.svg`. A state with a
    /// NaN or infinite value is not written (the error names it; `dir` keeps its last
    /// checkpoint).
    pub fn save(&self, dir: &RunDir) -> Result<()> {
        let dir = dir.path();
        if let Some(curve) = self
            .curve
            .as_ref()
            .filter(|c| c.task + 1 == self.completed())
        {
            write_task_curve(dir, curve)?;
        }
        store::save(
            dir,
            &Snapshot {
                config: self.config.clone(),
                tasks: self.tasks.clone(),
                history: self.history.clone(),
                state: self.learner.save(),
            },
        )?;
        write_results(dir, &self.results())?;
        write_curves(dir, self.completed(), &run_title(&self.config))
    }

    /// Number of tasks learned.
    pub fn completed(&self) -> usize {
        self.tasks.len()
    }

    /// Whether every task of the configuration is learned.
    pub fn is_finished(&self) -> bool {
        self.completed() >= self.config.num_tasks
    }

    /// The data of the configuration's tasks, from its data directory, each with its
    /// validation samples held out.
    pub fn load_data(&self) -> Result<Vec<ClassificationTask>> {
        self.config.load_tasks()
    }

    /// The data of every learned task and then `extra` (no validation sets), from the
    /// configuration's data directory.
    pub fn load_learned_data(&self, extra: Option<TaskSpec>) -> Result<Vec<ClassificationTask>> {
        if let Some(spec) = &extra {
            self.config.check_task(spec)?;
        }
        let specs: Vec<TaskSpec> = self.tasks.iter().copied().chain(extra).collect();
        load_tasks(&self.config.data_dir, &specs, 0)
    }

    /// Learns the configuration's tasks this run has not learned yet, in order, each followed
    /// by the evaluation of every task so far; after each, saves the run to `dir` (if given)
    /// and then calls `on_task_end`. `data` holds the configuration's tasks
    /// ([`RunState::load_data`]). On an error the learner may be part-way into a task; what
    /// `dir` holds is the state after the last completed task.
    pub fn continue_run(
        &mut self,
        data: &[ClassificationTask],
        dir: Option<&RunDir>,
        on_progress: &mut dyn FnMut(&Progress),
        on_task_end: &mut dyn FnMut(&RunState),
    ) -> Result<()> {
        let specs = self.config.task_specs();
        if data.len() != specs.len() {
            return Err(Error::config(
                "tasks",
                format!(
                    "expected the configuration's {} tasks, found {}",
                    specs.len(),
                    data.len()
                ),
            ));
        }
        let learned = &self.tasks;
        if let Some(k) = (0..learned.len().min(specs.len())).find(|&k| learned[k] != specs[k]) {
            return Err(Error::config(
                "tasks",
                format!(
                    "task {k} of the checkpoint is {}, the configuration's is {}",
                    learned[k], specs[k]
                ),
            ));
        }
        for t in self.completed()..specs.len() {
            self.learn_next(specs[t], &data[..=t], on_progress)?;
            if let Some(dir) = dir {
                self.save(dir)?;
            }
            on_task_end(self);
        }
        Ok(())
    }

    /// Learns one more task `spec` beyond the stored ones, every earlier task protected as the
    /// method protects it, and evaluates all of them. `data` holds the data of every learned
    /// task and, last, of `spec` ([`RunState::load_learned_data`]). Errors: a task of another
    /// benchmark, no free head (reserve heads with `--heads`), a learner whose networks hold
    /// no more tasks.
    pub fn learn_task(
        &mut self,
        spec: TaskSpec,
        data: &[ClassificationTask],
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        self.config.check_task(&spec)?;
        let n = self.completed();
        if data.len() != n + 1 {
            return Err(Error::config(
                "tasks",
                format!("expected the data of {} tasks, found {}", n + 1, data.len()),
            ));
        }
        self.learn_next(spec, data, on_progress)
    }

    /// Whether one more task fits: a head for it, and room in the learner's networks; the
    /// error says how to make room.
    pub fn check_room_for_task(&self) -> Result<()> {
        let t = self.completed();
        let heads = self.config.num_heads();
        if !self.config.has_head_for(t) {
            return Err(Error::config(
                "--heads",
                format!(
                    "the run's target network has {heads} head{}, all used by its {t} task{}; a run takes more tasks with `learn` when started with --heads N (N > its --tasks)",
                    if heads == 1 { "" } else { "s" },
                    if t == 1 { "" } else { "s" }
                ),
            ));
        }
        if let Some(max) = self.learner.max_tasks() {
            if t >= max {
                return Err(Error::config(
                    "tasks",
                    format!(
                        "{} holds at most {max} tasks (its replay model is conditioned on the run's --tasks), all learned",
                        self.config.method.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Learns task t = `completed()` (the last of `data`), evaluates tasks 0..=t and records
    /// the task and its rows.
    fn learn_next(
        &mut self,
        spec: TaskSpec,
        data: &[ClassificationTask],
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        self.check_room_for_task()?;
        let t = self.completed();
        let start = Instant::now();
        let began = std::time::SystemTime::now();
        let mut recorder = CurveRecorder::new(self.config.method, t, &data[t], self.curve_every);
        self.curve = None;
        self.learner.learn(t, &data[t], &mut |p| {
            recorder.observe(p);
            on_progress(p);
        })?;
        self.curve = Some(recorder.finish());
        let identity = if self.config.scenario.infers_task() {
            TaskIdentity::Inferred
        } else {
            TaskIdentity::Given
        };
        let tests: Vec<&TaskView> = data.iter().map(|k| &k.test).collect();
        let validation: Option<Vec<&TaskView>> =
            data.iter().map(|k| k.validation.as_ref()).collect();
        let row: EvalRow = self.learner.evaluate(&tests, identity);
        let validation_row = validation.map(|v| self.learner.evaluate(&v, identity));
        self.tasks.push(spec);
        self.history.push((row, validation_row));
        let seconds = start.elapsed().as_secs_f64();
        self.history.wall_seconds += seconds;
        let sessions = &mut self.history.sessions;
        // This process's session: the one it began, else a new one from this task on.
        if !self.in_session {
            sessions.push(Session::begin(t, began));
            self.in_session = true;
        }
        sessions
            .last_mut()
            .expect("this process's session")
            .add_task(seconds);
        Ok(())
    }

    /// Test accuracy of every learned task with its task identity given and without it (the
    /// shared head in CL2, the CL3 rule otherwise), and the task inference; `data` holds the
    /// learned tasks' data in order ([`RunState::load_learned_data`]).
    pub fn evaluate(&self, data: &[ClassificationTask]) -> Result<Vec<TaskAccuracy>> {
        let n = self.completed();
        if data.len() != n {
            return Err(Error::config(
                "tasks",
                format!("expected the data of {n} tasks, found {}", data.len()),
            ));
        }
        if n == 0 {
            return Ok(Vec::new());
        }
        let tests: Vec<&TaskView> = data.iter().map(|k| &k.test).collect();
        let given = self.learner.evaluate(&tests, TaskIdentity::Given);
        let inferred = self.learner.evaluate(&tests, TaskIdentity::Inferred);
        Ok((0..n)
            .map(|t| {
                let inf = inferred.inferred.as_ref().map(|rows| &rows[t]);
                TaskAccuracy {
                    task: t,
                    spec: self.tasks[t],
                    with_task_id: given.accuracy[t],
                    without_task_id: inferred.accuracy[t],
                    task_inference: inf.map(|e| e.task_inference_accuracy),
                    picks: inf.map(|e| e.picks.clone()).unwrap_or_default(),
                }
            })
            .collect())
    }

    /// The results of the tasks learned so far.
    pub fn results(&self) -> RunResults {
        summarize(
            &self.config,
            &self.learner.report(),
            &self.history,
            self.tasks.clone(),
        )
    }

    /// [`REPLAY_PICTURE_SAMPLES`] samples of every task the replay model learned (none for a
    /// method without one) as 28×28 digits: PermutedMNIST's permutation and padding undone
    /// through the pixel map of the task in `data`.
    pub fn replay_samples(&self, data: &[ClassificationTask]) -> Vec<Vec<f32>> {
        let samples = self
            .learner
            .replay_samples(REPLAY_PICTURE_SAMPLES, self.config.train.seed);
        samples
            .into_iter()
            .enumerate()
            .map(
                |(k, xs)| match data.get(k).and_then(|t| t.train.pixel_map()) {
                    None => xs,
                    Some(map) => {
                        let dim = xs.len() / REPLAY_PICTURE_SAMPLES;
                        xs.chunks_exact(dim.max(1))
                            .flat_map(|sample| {
                                let mut digit = vec![0.0f32; 28 * 28];
                                for (&m, &v) in map.iter().zip(sample) {
                                    if let Some(d) = digit.get_mut(m as usize) {
                                        *d = v;
                                    }
                                }
                                digit
                            })
                            .collect()
                    }
                },
            )
            .collect()
    }
}

/// A run's results and, for HNET+R and HNET+TIR, samples of what the replay model remembers.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The results.
    pub results: RunResults,
    /// [`RunState::replay_samples`] at the end (empty for the other methods).
    pub replay_samples: Vec<Vec<f32>>,
}

/// Runs `config` from its first task to its last in memory (nothing written): the same loop
/// as a run with a directory, so the results are the same. `on_task_end` gets the task index
/// and its row of the accuracy matrix. No training curve is kept, so none is measured but
/// each task's last point (the curves take no part in the results).
pub fn run(
    config: &ExperimentConfig,
    data: &[ClassificationTask],
    on_progress: &mut dyn FnMut(&Progress),
    on_task_end: &mut dyn FnMut(usize, &[f64]),
) -> Result<RunOutput> {
    let mut state = RunState::new(config)?;
    state.curve_every = usize::MAX;
    state.continue_run(data, None, on_progress, &mut |s| {
        let t = s.completed() - 1;
        on_task_end(t, &s.history.accuracy_matrix[t]);
    })?;
    Ok(RunOutput {
        results: state.results(),
        replay_samples: state.replay_samples(data),
    })
}
