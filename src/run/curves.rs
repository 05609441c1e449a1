//! Training curves: every `curve_every` steps of a task (and at its last step), the mean task
//! loss and regularizer since the previous point and the accuracy of the network being
//! trained on a held-out set, per task and per training loop.
//!
//! The held-out set of task t is its validation set when the run holds one out
//! (`--validation N`), otherwise the first [`HELD_OUT_TEST_SAMPLES`] samples of its test set
//! (watched only, never used to choose anything). Measuring it reads the learner's parameters
//! through [`Progress::probe`], which consumes no random numbers and changes nothing: the
//! training is the same with or without curves.
//!
//! Files, in the run directory: `curves-task<k>.csv`, task k's rows, written once task k is
//! learned and before the checkpoint that contains it (so a run killed at any point and
//! resumed relearns a task whose curve is missing and rewrites it with the same rows, and
//! never writes a task's rows twice); `curves.csv`, the rows of every learned task in order,
//! and `curves.svg`, their figure, both rebuilt from the per-task files after every save.

use crate::cl::train::{PHASE_CLASSIFIER, PHASE_TASK_INFERENCE, PHASE_VAE};
use crate::cl::{Method, Progress};
use crate::data::{ClassificationTask, TaskView};
use crate::fsio::write_atomic;
use crate::report::curves::CurvePoint;
use crate::report::{curves_svg, CurveSeries};
use crate::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Default steps between two points of a curve (`run --curve-every`).
pub const DEFAULT_CURVE_EVERY: usize = 100;

/// Test samples of a task that form its held-out set when the run holds no validation set.
pub const HELD_OUT_TEST_SAMPLES: usize = 1000;

/// The header of the curve files.
pub const CURVE_HEADER: &str = "task,phase,step,task_loss,regularizer,held_out,held_out_accuracy";

/// Whether the loop `phase` of `method` has a regularizer (its column is empty otherwise):
/// the hypernetwork's output regularizer (`hnet`, `hnet-tir`'s classifier, every VAE
/// decoder), the penalty of EWC, online EWC and SI. Fine-tuning, HNET+R's classifier (its
/// replay term is part of the task loss) and HNET+TIR's task-inference network have none.
pub fn has_regularizer(method: Method, phase: &str) -> bool {
    match phase {
        PHASE_VAE => true,
        PHASE_TASK_INFERENCE => false,
        PHASE_CLASSIFIER => !matches!(method, Method::Finetune | Method::HnetR),
        _ => false,
    }
}

/// The held-out set of `task` and its name in the curve files: `validation-N` (its validation
/// set of N samples) or `test-first-N` (the first N ≤ [`HELD_OUT_TEST_SAMPLES`] samples of its
/// test set).
pub fn held_out_set(task: &ClassificationTask) -> (TaskView, String) {
    match &task.validation {
        Some(v) => (v.clone(), format!("validation-{}", v.len())),
        None => {
            let v = task.test.first(HELD_OUT_TEST_SAMPLES);
            let name = format!("test-first-{}", v.len());
            (v, name)
        }
    }
}

/// One task's curves: one series per training loop, and the name of the held-out set.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskCurve {
    /// The task.
    pub task: usize,
    /// The held-out set ([`held_out_set`]).
    pub held_out: String,
    /// One per loop, in the order they ran.
    pub series: Vec<CurveSeries>,
}

/// Collects a task's curve from the progress reports of its loops.
pub struct CurveRecorder {
    method: Method,
    every: usize,
    held_out: TaskView,
    curve: TaskCurve,
    sums: (f64, f64, usize),
}

impl CurveRecorder {
    /// A recorder for task `t` of `task`'s data, a point every `every` (≥ 1) steps.
    pub fn new(method: Method, t: usize, task: &ClassificationTask, every: usize) -> Self {
        let (held_out, name) = held_out_set(task);
        Self {
            method,
            every: every.max(1),
            held_out,
            curve: TaskCurve {
                task: t,
                held_out: name,
                series: Vec::new(),
            },
            sums: (0.0, 0.0, 0),
        }
    }

    /// Takes one step's report; a loop's first step starts a new series.
    pub fn observe(&mut self, p: &Progress) {
        if p.iteration == 1 || self.curve.series.is_empty() {
            self.curve.series.push(CurveSeries {
                task: self.curve.task,
                phase: p.phase.to_string(),
                points: Vec::new(),
            });
            self.sums = (0.0, 0.0, 0);
        }
        self.sums = (
            self.sums.0 + p.task_loss,
            self.sums.1 + p.reg_loss,
            self.sums.2 + 1,
        );
        if p.iteration.is_multiple_of(self.every) || p.iteration == p.iterations {
            let n = self.sums.2.max(1) as f64;
            let accuracy = p.probe.map(|f| f(&self.held_out));
            let regularizer = has_regularizer(self.method, p.phase).then(|| self.sums.1 / n);
            if let Some(s) = self.curve.series.last_mut() {
                s.points.push(CurvePoint {
                    step: p.iteration,
                    task_loss: self.sums.0 / n,
                    regularizer,
                    accuracy,
                });
            }
            self.sums = (0.0, 0.0, 0);
        }
    }

    /// The curve recorded.
    pub fn finish(self) -> TaskCurve {
        self.curve
    }
}

/// The file of task `t`'s curve in `dir`.
pub fn task_curve_path(dir: &Path, t: usize) -> PathBuf {
    dir.join(format!("curves-task{t}.csv"))
}

/// The rows of `curve` (no header), one line each.
fn rows(curve: &TaskCurve) -> String {
    let mut s = String::new();
    for series in &curve.series {
        for q in &series.points {
            let _ = write!(
                s,
                "{},{},{},{:.6e},",
                curve.task, series.phase, q.step, q.task_loss
            );
            if let Some(r) = q.regularizer {
                let _ = write!(s, "{r:.6e}");
            }
            let _ = write!(s, ",{},", curve.held_out);
            if let Some(a) = q.accuracy {
                let _ = write!(s, "{a:.2}");
            }
            s.push('\n');
        }
    }
    s
}

/// `curve` as a CSV file: [`CURVE_HEADER`] and its rows.
pub fn curve_csv(curve: &TaskCurve) -> String {
    format!("{CURVE_HEADER}\n{}", rows(curve))
}

/// Reads a curve file written by [`curve_csv`]; the error names the file and line.
pub fn read_curve(path: &Path) -> Result<TaskCurve> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text.lines();
    if lines.next() != Some(CURVE_HEADER) {
        return Err(Error::format(
            path,
            format!("expected the header line {CURVE_HEADER}"),
        ));
    }
    let mut curve = TaskCurve {
        task: 0,
        held_out: String::new(),
        series: Vec::new(),
    };
    for (k, line) in lines.enumerate() {
        let bad = |what: &str| Error::format(path, format!("line {}: {what}", k + 2));
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return Err(bad("expected 7 fields"));
        }
        let number = |s: &str| s.parse::<f64>().map_err(|_| bad("expected a number"));
        let optional = |s: &str| -> Result<Option<f64>> {
            if s.is_empty() {
                Ok(None)
            } else {
                number(s).map(Some)
            }
        };
        let task: usize = f[0].parse().map_err(|_| bad("expected a task index"))?;
        let step: usize = f[2].parse().map_err(|_| bad("expected a step"))?;
        curve.task = task;
        curve.held_out = f[5].to_string();
        let point = CurvePoint {
            step,
            task_loss: number(f[3])?,
            regularizer: optional(f[4])?,
            accuracy: optional(f[6])?,
        };
        // A step not after the previous one starts the next loop.
        match curve.series.last_mut() {
            Some(s) if s.phase == f[1] && s.points.last().is_some_and(|q| q.step < step) => {
                s.points.push(point)
            }
            _ => curve.series.push(CurveSeries {
                task,
                phase: f[1].to_string(),
                points: vec![point],
            }),
        }
    }
    Ok(curve)
}

/// Writes task `curve.task`'s file in `dir`.
pub fn write_task_curve(dir: &Path, curve: &TaskCurve) -> Result<()> {
    write_atomic(
        &task_curve_path(dir, curve.task),
        curve_csv(curve).as_bytes(),
    )
}

/// Rebuilds `curves.csv` and `curves.svg` in `dir` from the files of tasks 0..`completed`
/// (a task without one, learned by a release that kept no curves, is left out).
pub fn write_curves(dir: &Path, completed: usize, title: &str) -> Result<()> {
    let mut csv = format!("{CURVE_HEADER}\n");
    let mut series = Vec::new();
    let mut held_out: Vec<String> = Vec::new();
    for t in 0..completed {
        let path = task_curve_path(dir, t);
        if !path.is_file() {
            continue;
        }
        let curve = read_curve(&path)?;
        csv.push_str(&rows(&curve));
        if !held_out.contains(&curve.held_out) {
            held_out.push(curve.held_out.clone());
        }
        series.extend(curve.series);
    }
    write_atomic(&dir.join("curves.csv"), csv.as_bytes())?;
    let held = held_out
        .iter()
        .map(|h| h.replace('-', " "))
        .collect::<Vec<_>>()
        .join(", ");
    let subtitle = "every point: the mean since the previous point of each task's loop; x: the tasks in order, each from its first step to its last; a regularizer of 0 (as on the first task) is not drawn on its log scale";
    write_atomic(
        &dir.join("curves.svg"),
        curves_svg(title, subtitle, &held, &series).as_bytes(),
    )
}

/// The step interval the curve files in `dir` were written with, from the first task's file
/// that exists: the step of the first point of a loop with two points or more, else (every
/// loop had a single point, at its last step) the longest loop, which gives the same points.
/// `None` without a readable curve file.
pub fn stored_curve_every(dir: &Path) -> Option<usize> {
    let path = (0..)
        .take(10_000)
        .map(|t| task_curve_path(dir, t))
        .find(|p| p.is_file())?;
    let curve = read_curve(&path).ok()?;
    let first = |s: &CurveSeries| s.points.first().map(|q| q.step);
    curve
        .series
        .iter()
        .find(|s| s.points.len() > 1)
        .and_then(first)
        .or_else(|| curve.series.iter().filter_map(first).max())
}
