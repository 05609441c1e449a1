//! The 1-D toy regression of von Oswald et al. (2020), Fig. 2 : three tasks
//! learned in sequence by a task-conditioned hypernetwork, by fine-tuning and by EWC, the
//! test mean squared error of every task after the last, and an SVG of the fitted curves.
//!
//! Settings of the official code: target MLP 1-10-10-1 with sigmoid hidden units; hypernetwork
//! unchunked, hidden [10, 10] sigmoid, task embedding of 2; β = 0.005; MSE loss; Adam lr 1e-2;
//! batch 32; 4001 steps per task. The hypernetwork's regularizer looks ahead with Adam, as in
//! the MNIST runs. The baselines train the same target MLP directly (PyTorch's default
//! init), one function for all tasks; EWC's Fisher is the mean squared gradient of the
//! Gaussian negative log-likelihood ½(f(x) − y)² over the task's 100 training points (true
//! targets: a regression model's own prediction has zero gradient); its λ is this crate's
//! choice, not a published value.

use crate::cl::baselines::diagonal_fisher;
use crate::cl::baselines::{BaselineConfig, DirectLearner};
use crate::cl::hnet::{HnetModel, Lookahead, RegularizerForm, TaskSession};
use crate::cl::train::BatchSampler;
use crate::cl::{Method, TrainConfig};
use crate::data::{toy_regression, RegressionTask};
use crate::engine::tape::Tape;
use crate::nn::{Activation, Hnet, HnetConfig, Mlp};
use crate::optim::Adam;
use crate::rng::Rng;
use crate::{Error, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Instant;

/// Settings of the toy run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyConfig {
    /// Steps per task.
    pub iterations: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Adam learning rate (θ, embeddings, baseline weights).
    pub lr: f64,
    /// β of the output regularizer.
    pub beta: f64,
    /// λ of EWC.
    pub ewc_lambda: f64,
    /// Seed of data, initialisation and batches.
    pub seed: u64,
}

impl Default for ToyConfig {
    fn default() -> Self {
        Self {
            iterations: 4001,
            batch_size: 32,
            lr: 1e-2,
            beta: 0.005,
            ewc_lambda: 100.0,
            seed: 42,
        }
    }
}

impl ToyConfig {
    /// Checks every field; the error names the flag and what is allowed.
    pub fn validate(&self) -> Result<()> {
        /// Largest batch: the toy's buffers for it stay below a few hundred MB.
        const MAX_BATCH: usize = 1 << 20;
        if self.iterations == 0 {
            return Err(Error::config("--iterations", "must be at least 1"));
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Err(Error::config(
                "--batch-size",
                format!("must be 1 to {MAX_BATCH}, got {}", self.batch_size),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config(
                "--lr",
                format!("must be a positive finite number, got {}", self.lr),
            ));
        }
        for (flag, v) in [("--beta", self.beta), ("--ewc-lambda", self.ewc_lambda)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(
                    flag,
                    format!("must be finite and >= 0, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// One method's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyMethodResult {
    /// The method.
    pub method: Method,
    /// Test MSE of each task after all tasks.
    pub mse: Vec<f64>,
    /// Test MSE of each task right after its own training.
    pub mse_during: Vec<f64>,
    /// Per task: (x, f(x)) on a grid, the task's own function (hnet: its embedding) over its
    /// domain widened by 0.5 on each side.
    pub curves: Vec<Vec<(f64, f64)>>,
}

/// The whole toy run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToyResults {
    /// Settings.
    pub config: ToyConfig,
    /// One per method.
    pub methods: Vec<ToyMethodResult>,
    /// Seconds for all methods.
    pub wall_seconds: f64,
}

fn target() -> Mlp {
    Mlp::new(1, &[10, 10], 1, 1).with_activation(Activation::Sigmoid)
}

fn hnet_config() -> HnetConfig {
    HnetConfig {
        task_emb_dim: 2,
        hidden: vec![10, 10],
        activation: Activation::Sigmoid,
        chunk_size: None,
        chunk_emb_dim: 0,
    }
}

/// f(x) for every x of `xs` with target weights `weights`.
fn evaluate(target: &Mlp, weights: &[f32], xs: &[f64]) -> Vec<f64> {
    let x: Vec<f32> = xs.iter().map(|&v| v as f32).collect();
    let mut tape = Tape::no_grad();
    let w = tape.constant_ref(&[weights.len()], weights);
    let xv = tape.constant_ref(&[x.len(), 1], &x);
    let out = target.forward(&mut tape, w, xv, 0);
    tape.value(out).iter().map(|&v| f64::from(v)).collect()
}

fn mse(pred: &[f64], y: &[f64]) -> f64 {
    pred.iter()
        .zip(y)
        .map(|(p, t)| (p - t).powi(2))
        .sum::<f64>()
        / y.len().max(1) as f64
}

fn grid(task: &RegressionTask) -> Vec<f64> {
    let (lo, hi) = (task.domain.0 - 0.5, task.domain.1 + 0.5);
    (0..=100)
        .map(|i| lo + (hi - lo) * i as f64 / 100.0)
        .collect()
}

/// Batches of (x, y) from a task's training points.
struct ToyBatches {
    sampler: BatchSampler,
    idx: Vec<usize>,
    x: Vec<f32>,
    y: Vec<f32>,
}

impl ToyBatches {
    fn new(task: &RegressionTask, t: usize, seed: u64) -> Self {
        Self {
            sampler: BatchSampler::new(
                task.train_x.len(),
                Rng::derived(seed, "toy-batches", t as u64),
            ),
            idx: Vec::new(),
            x: Vec::new(),
            y: Vec::new(),
        }
    }

    fn next(&mut self, task: &RegressionTask, batch: usize) {
        self.sampler.next_batch(batch, &mut self.idx);
        self.x.clear();
        self.y.clear();
        self.x
            .extend(self.idx.iter().map(|&i| task.train_x[i] as f32));
        self.y
            .extend(self.idx.iter().map(|&i| task.train_y[i] as f32));
    }
}

fn run_hnet(config: &ToyConfig, tasks: &[RegressionTask]) -> Result<ToyMethodResult> {
    let target = target();
    let hnet = Hnet::new(&hnet_config(), target.num_weights());
    let mut model = HnetModel::<f32>::new(target, hnet, config.seed);
    let train = TrainConfig {
        iterations: config.iterations,
        batch_size: config.batch_size,
        lr: config.lr,
        emb_lr: config.lr,
        beta: config.beta,
        lookahead: Lookahead::Adam,
        reg_batch: None,
        online_targets: false,
        regularizer: RegularizerForm::Auto,
        label_smoothing: 0.0,
        seed: config.seed,
    };
    let mut mse_during = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        let mut session = TaskSession::begin(&mut model, t, 0, &train);
        let prev: Vec<usize> = (0..t).collect();
        let mut batches = ToyBatches::new(task, t, config.seed);
        for it in 0..config.iterations {
            batches.next(task, config.batch_size);
            session
                .step_regression(&mut model, &batches.x, &batches.y, &prev)
                .map_err(|e| Error::NonFinite(format!("toy hnet, iteration {it}: {e}")))?;
        }
        session.finish(&model)?;
        let w = model.generated_weights(t);
        mse_during.push(mse(
            &evaluate(&model.target, &w, &task.test_x),
            &task.test_y,
        ));
    }
    let mut mse_final = Vec::new();
    let mut curves = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        let w = model.generated_weights(t);
        mse_final.push(mse(
            &evaluate(&model.target, &w, &task.test_x),
            &task.test_y,
        ));
        let xs = grid(task);
        let ys = evaluate(&model.target, &w, &xs);
        curves.push(xs.into_iter().zip(ys).collect());
    }
    Ok(ToyMethodResult {
        method: Method::Hnet,
        mse: mse_final,
        mse_during,
        curves,
    })
}

fn run_direct(
    method: Method,
    config: &ToyConfig,
    tasks: &[RegressionTask],
) -> Result<ToyMethodResult> {
    let baseline = BaselineConfig {
        ewc_lambda: config.ewc_lambda,
        ..BaselineConfig::default()
    };
    let mut learner = DirectLearner::new(target(), method, &baseline, config.seed);
    let target = learner.target.clone();
    let mut mse_during = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        let mut opt = Adam::new(learner.weights.len(), config.lr);
        let w0 = learner.weights.clone();
        learner.consolidation.begin_task(&w0);
        let mut batches = ToyBatches::new(task, t, config.seed);
        for it in 0..config.iterations {
            batches.next(task, config.batch_size);
            let (x, y) = (&batches.x, &batches.y);
            let rows = x.len();
            learner
                .step(&mut opt, &mut |tape, w| {
                    let xv = tape.constant(Tensor::from_vec(&[rows, 1], x.clone()));
                    let yv = tape.constant(Tensor::from_vec(&[rows, 1], y.clone()));
                    let out = target.forward(tape, w, xv, 0);
                    let sq = tape.squared_distance(out, yv);
                    tape.scale(sq, 1.0 / rows as f32)
                })
                .map_err(|e| {
                    Error::NonFinite(format!("toy {}, iteration {it}: {e}", method.name()))
                })?;
        }
        let fisher = learner.consolidation.needs_fisher().then(|| {
            let samples: Vec<usize> = (0..task.train_x.len()).collect();
            diagonal_fisher(&learner.weights, &samples, |tape, w, s| {
                let xv = tape.constant(Tensor::from_vec(&[1, 1], vec![task.train_x[s] as f32]));
                let yv = tape.constant(Tensor::from_vec(&[1, 1], vec![task.train_y[s] as f32]));
                let out = target.forward(tape, w, xv, 0);
                let sq = tape.squared_distance(out, yv);
                tape.scale(sq, 0.5)
            })
        });
        let w = learner.weights.clone();
        learner.consolidation.end_task(&w, fisher);
        mse_during.push(mse(&evaluate(&target, &w, &task.test_x), &task.test_y));
    }
    let w = &learner.weights;
    Ok(ToyMethodResult {
        method,
        mse: tasks
            .iter()
            .map(|task| mse(&evaluate(&target, w, &task.test_x), &task.test_y))
            .collect(),
        mse_during,
        curves: tasks
            .iter()
            .map(|task| {
                let xs = grid(task);
                let ys = evaluate(&target, w, &xs);
                xs.into_iter().zip(ys).collect()
            })
            .collect(),
    })
}

/// Runs `methods` (hnet, finetune, ewc, online-ewc or si) on the three toy tasks of
/// `toy_regression(config.seed)`.
pub fn run_toy(
    config: &ToyConfig,
    methods: &[Method],
) -> Result<(ToyResults, Vec<RegressionTask>)> {
    config.validate()?;
    let tasks = toy_regression(config.seed);
    let start = Instant::now();
    let mut out = Vec::new();
    for &m in methods {
        out.push(match m {
            Method::Hnet => run_hnet(config, &tasks)?,
            other => run_direct(other, config, &tasks)?,
        });
    }
    Ok((
        ToyResults {
            config: config.clone(),
            methods: out,
            wall_seconds: start.elapsed().as_secs_f64(),
        },
        tasks,
    ))
}

/// The table: one row per method, the final test MSE of each task.
pub fn mse_table(results: &ToyResults) -> String {
    let mut s = String::from("method        task 0 MSE   task 1 MSE   task 2 MSE\n");
    for m in &results.methods {
        let _ = write!(s, "{:<12}", m.method.name());
        for v in &m.mse {
            let _ = write!(s, "  {v:>11.5}");
        }
        s.push('\n');
    }
    s
}

const COLORS: [&str; 3] = ["#1f77b4", "#d62728", "#2ca02c"];

/// One panel per method: the training points of every task, the true functions (grey) and
/// the fitted curves (the task's colour), with axis labels (x, y), each panel's final test
/// MSE per task, and a legend naming the tasks and the marks.
pub fn svg(results: &ToyResults, tasks: &[RegressionTask]) -> String {
    use crate::report::svg::{Anchor, Svg};
    let (pw, ph, left, top) = (300.0, 240.0, 60.0, 84.0);
    let gap = 70.0;
    let (x_lo, x_hi, y_lo, y_hi) = (-4.5, 4.5, -1.6, 1.6);
    let n = results.methods.len().max(1);
    let width = left + n as f64 * (pw + gap);
    let height = top + ph + 120.0;
    let mut s = Svg::new(width, height);
    s.bold(
        20.0,
        24.0,
        16.0,
        Anchor::Start,
        &format!(
            "1-D toy regression, 3 tasks learned in order · {} steps per task · seed {}",
            results.config.iterations, results.config.seed
        ),
    );
    s.text(
        20.0,
        48.0,
        12.0,
        Anchor::Start,
        "each method's fit of every task after the last task; MSE: final test mean squared error of tasks 0 / 1 / 2",
    );
    for (p, m) in results.methods.iter().enumerate() {
        let ox = left + p as f64 * (pw + gap);
        let sx = |x: f64| ox + (x.clamp(x_lo, x_hi) - x_lo) / (x_hi - x_lo) * pw;
        let sy = |y: f64| top + (y_hi - y.clamp(y_lo, y_hi)) / (y_hi - y_lo) * ph;
        for x in [-4.0, -2.0, 0.0, 2.0, 4.0] {
            s.line(sx(x), top, sx(x), top + ph, "#eeeeee", 1.0);
            s.text(
                sx(x),
                top + ph + 12.0,
                11.0,
                Anchor::Middle,
                &format!("{x}"),
            );
        }
        for y in [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5] {
            s.line(ox, sy(y), ox + pw, sy(y), "#eeeeee", 1.0);
            s.text(ox - 5.0, sy(y), 11.0, Anchor::End, &format!("{y}"));
        }
        s.rect(ox, top, pw, ph, "none", "#444");
        s.text(ox + pw / 2.0, top + ph + 32.0, 12.0, Anchor::Middle, "x");
        s.vertical_text(ox - 38.0, top + ph / 2.0, 12.0, "y");
        let mses: Vec<String> = m.mse.iter().map(|v| format!("{v:.4}")).collect();
        s.bold(
            ox + pw / 2.0,
            top - 14.0,
            12.0,
            Anchor::Middle,
            &format!("{}: MSE {}", m.method.name(), mses.join(" / ")),
        );
        for (t, task) in tasks.iter().enumerate() {
            let color = COLORS[t % COLORS.len()];
            let truth: Vec<(f64, f64)> = task
                .test_x
                .iter()
                .zip(&task.test_y)
                .map(|(&x, &y)| (sx(x), sy(y)))
                .collect();
            s.raw(&format!(
                "<g stroke-opacity=\"0.5\">{}</g>",
                polyline_markup(&truth, "#999", 3.0)
            ));
            for (&x, &y) in task.train_x.iter().zip(&task.train_y) {
                s.raw(&format!(
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.5\" fill=\"{color}\" fill-opacity=\"0.5\"/>",
                    sx(x),
                    sy(y)
                ));
            }
            if let Some(curve) = m.curves.get(t) {
                let pts: Vec<(f64, f64)> = curve.iter().map(|&(x, y)| (sx(x), sy(y))).collect();
                s.polyline(&pts, color, 1.5);
            }
        }
    }
    // Legend: the tasks, then the marks.
    let ly = top + ph + 62.0;
    let mut x = left;
    for (t, task) in tasks.iter().enumerate() {
        let color = COLORS[t % COLORS.len()];
        s.line(x, ly, x + 22.0, ly, color, 2.0);
        let label = format!(
            "task {t}: y = {} on [{}, {}]",
            task.name, task.domain.0, task.domain.1
        );
        s.text(x + 28.0, ly, 12.0, Anchor::Start, &label);
        x += 60.0 + crate::report::svg::text_width(&label, 12.0);
    }
    let ly = ly + 24.0;
    s.raw(&format!(
        "<g stroke-opacity=\"0.5\">{}</g>",
        polyline_markup(&[(left, ly), (left + 22.0, ly)], "#999", 3.0)
    ));
    s.text(left + 28.0, ly, 12.0, Anchor::Start, "true function");
    s.circle(left + 170.0, ly, 2.0, "#555", "none");
    s.text(
        left + 180.0,
        ly,
        12.0,
        Anchor::Start,
        "training points (the task's colour)",
    );
    s.line(left + 430.0, ly, left + 452.0, ly, "#555", 1.5);
    s.text(
        left + 458.0,
        ly,
        12.0,
        Anchor::Start,
        "the method's fit (the task's colour)",
    );
    s.finish()
}

fn polyline_markup(points: &[(f64, f64)], colour: &str, width: f64) -> String {
    let path: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"{width}\"/>",
        path.join(" ")
    )
}
