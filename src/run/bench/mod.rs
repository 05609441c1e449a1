//! Timing of one training step and of the matrix product it is built on.
//!
//! The step is by default the PermutedMNIST-10 configuration of the official code (the step
//! compared against a PyTorch implementation of it): target MLP 1024-1000-1000 with 10 heads
//! of 10, chunked hypernetwork [e(t) (24), c(i) (8)] → 25 → 25 → 78 000 with ELU, batch 128,
//! Adam with lr 1e-4 on θ and on the current task embedding, Adam look-ahead, and the output
//! regularizer over every previous task with precomputed targets, in the form training picks
//! ([`RegularizerForm::Auto`]). [`BenchSetup`] picks the SplitMNIST or the PermutedMNIST-100
//! configuration (hypernetwork [128 + 12] → 200 → 250 → 350 → 7500, ReLU), online targets or
//! a fixed form of the regularizer instead.
//!
//! Speed is reported as achieved matmul GFLOP/s: the matrix-product FLOPs of one step, counted
//! from the shapes by [`step_matmul_flops`], divided by the measured time. Set beside the
//! GFLOP/s of a bare `matrixmultiply::sgemm` at 1024² measured in the same run
//! ([`sgemm_gflops`]), it says how much of the machine's matmul speed a step gets; everything
//! that is not a matrix product (elementwise ops, Adam, the regularizer's distances, copies,
//! allocation) counts as overhead in this measure.

use super::config::{Benchmark, ExperimentConfig};
use crate::cl::hnet::{HnetModel, RegularizerForm, TaskSession};
use crate::engine::tape::Tape;
use crate::nn::Hnet;
use crate::rng::Rng;
use serde::Serialize;
use std::time::Instant;

mod flops;
use flops::product;
pub use flops::{resolved_form, step_matmul_flops, step_matmul_flops_for};

/// Batch size of the step (the paper's and the reference's).
pub const BATCH: usize = 128;
/// Warm-up steps before timing starts.
pub const WARMUP_STEPS: usize = 3;
/// Side of the square product of the sgemm and engine yardsticks.
pub const YARDSTICK_N: usize = 1024;
/// Timed repetitions of the yardstick products.
pub const YARDSTICK_REPS: usize = 10;

/// Which step is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BenchSetup {
    /// The benchmark whose paper configuration the step uses.
    pub benchmark: Benchmark,
    /// The length of the task sequence whose paper configuration is used
    /// ([`ExperimentConfig::paper_defaults_for`]): PermutedMNIST 10, or 100 for
    /// PermutedMNIST-100's hypernetwork.
    pub sequence: usize,
    /// Regularizer targets recomputed from θ* in every step instead of precomputed.
    pub online_targets: bool,
    /// How the regularizer is computed.
    pub regularizer: RegularizerForm,
    /// Output heads of the target network (`None`: the benchmark's task count, or one per
    /// task when more are timed; a count below either is raised to it). With a count for the
    /// longest sequence timed, every line times the same network, as one run of that many
    /// tasks trains it from its first task.
    pub heads: Option<usize>,
}

impl Default for BenchSetup {
    /// The PyTorch reference's step: PermutedMNIST-10, precomputed targets, the regularizer
    /// in the form training picks.
    fn default() -> Self {
        Self {
            benchmark: Benchmark::PermutedMnist,
            sequence: 10,
            online_targets: false,
            regularizer: RegularizerForm::Auto,
            heads: None,
        }
    }
}

impl BenchSetup {
    /// The configuration's name: `split-mnist`, `permuted-mnist` (10 tasks) or
    /// `permuted-mnist-100`.
    pub fn name(&self) -> String {
        match self.benchmark {
            Benchmark::PermutedMnist if self.sequence >= super::config::LONG_SEQUENCE_TASKS => {
                format!("{}-{}", self.benchmark.name(), self.sequence)
            }
            b => b.name().to_string(),
        }
    }
}

/// The paper configuration of `setup`'s benchmark and sequence, with enough heads for
/// `previous_tasks` + 1 tasks (at least `setup.heads`).
pub fn bench_config(setup: BenchSetup, previous_tasks: usize) -> ExperimentConfig {
    let mut c = ExperimentConfig::paper_defaults_for(setup.benchmark, setup.sequence);
    c.num_tasks = c.num_tasks.max(previous_tasks + 1);
    c.heads = setup.heads.map(|h| h.max(c.num_tasks));
    c.train.online_targets = setup.online_targets;
    c.train.regularizer = setup.regularizer;
    c
}

/// Everything one training step needs, built once: the model with `previous_tasks` learned
/// embeddings and the current one, the regularizer over the previous tasks, both optimizers
/// and one random batch (reused by every step).
pub struct StepFixture {
    /// Target net, hypernetwork, θ and embeddings.
    pub model: HnetModel<f32>,
    session: TaskSession,
    x: Vec<f32>,
    labels: Vec<usize>,
    subset: Vec<usize>,
}

/// The fixture of `setup`'s step with `previous_tasks` tasks already learned (the current task
/// is task `previous_tasks`, trained on head `previous_tasks`). θ and the embeddings are
/// initialised as in a run with `seed`; the batch is 128 inputs uniform in [0, 1) with labels
/// uniform over a head's classes, drawn from `seed` too.
pub fn step_fixture(setup: BenchSetup, previous_tasks: usize, seed: u64) -> StepFixture {
    let config = bench_config(setup, previous_tasks);
    let train = &config.train;
    let target = config.target();
    let hnet = Hnet::new(&config.hnet, target.num_weights());
    let mut model = HnetModel::<f32>::new(target, hnet, seed);
    for _ in 0..previous_tasks {
        model.add_task(seed);
    }
    let task = previous_tasks;
    let session = TaskSession::begin(&mut model, task, task, train);
    let mut rng = Rng::derived(seed, "bench-batch", task as u64);
    let input_dim = model.target.input_dim();
    let x: Vec<f32> = (0..BATCH * input_dim)
        .map(|_| rng.uniform() as f32)
        .collect();
    let head_dim = model.target.head_dim();
    let labels: Vec<usize> = (0..BATCH).map(|_| rng.below(head_dim)).collect();
    StepFixture {
        model,
        session,
        x,
        labels,
        subset: (0..task).collect(),
    }
}

impl StepFixture {
    /// Number of previous tasks the regularizer protects.
    pub fn previous_tasks(&self) -> usize {
        self.subset.len()
    }

    /// The form the regularizer takes over the previous tasks (`None` without any).
    pub fn regularizer_form(&self) -> Option<RegularizerForm> {
        let reg = self.session.regularizer()?;
        Some(reg.form_for(&self.model.hnet, self.subset.len()))
    }

    /// Bytes the regularizer keeps (stored targets, θ*, activations of θ*).
    pub fn regularizer_bytes(&self) -> usize {
        self.session
            .regularizer()
            .map_or(0, |r| r.stored_values() * std::mem::size_of::<f32>())
    }

    /// One training step as `cl::trainer::train_task` takes it: the gradients (task loss,
    /// Adam look-ahead, regularizer over all previous tasks), then the Adam steps on θ and on
    /// the current embedding. Returns (task loss, regularizer).
    pub fn step(&mut self) -> (f64, f64) {
        self.session
            .step(&mut self.model, &self.x, &self.labels, &self.subset)
            .expect("the benchmark's losses stay finite")
    }
}

/// A deterministic n×n matrix with entries in [−1, 1).
fn square_matrix(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::derived(seed, "bench-matrix", n as u64);
    (0..n * n)
        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
        .collect()
}

/// Median seconds of `reps` runs of `f` (reps ≥ 1), after one untimed run.
fn median_seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    median(&mut times)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// GFLOP/s of `matrixmultiply::sgemm` on an n×n by n×n product (row-major, β = 0): 2n³
/// over the median of `reps` timed calls after one warm-up call.
///
/// # Panics
/// If n·n overflows `usize` or does not fit in an `isize` stride.
pub fn sgemm_gflops(n: usize, reps: usize) -> f64 {
    let len = n
        .checked_mul(n)
        .filter(|&l| isize::try_from(l).is_ok())
        .unwrap_or_else(|| panic!("sgemm_gflops: an {n}×{n} matrix overflows usize"));
    let a = square_matrix(n, 1);
    let b = square_matrix(n, 2);
    let mut c = vec![0.0f32; len];
    assert!(a.len() == len && b.len() == len);
    let s = median_seconds(reps, || {
        // SAFETY: a, b and c hold n·n elements each (checked above), addressed row-major with these strides;
        // c is a unique borrow, disjoint from a and b.
        unsafe {
            matrixmultiply::sgemm(
                n,
                n,
                n,
                1.0,
                a.as_ptr(),
                n as isize,
                1,
                b.as_ptr(),
                n as isize,
                1,
                0.0,
                c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        std::hint::black_box(&mut c);
    });
    product(n, n, n) / s / 1e9
}

/// GFLOP/s of the same n×n product through the engine: `Tape::matmul` of two borrowed
/// constants on a no-grad tape (the output buffer is allocated and zeroed each call, as on
/// every tape), 2n³ over the median of `reps` calls after one warm-up call.
pub fn engine_matmul_gflops(n: usize, reps: usize) -> f64 {
    let a = square_matrix(n, 1);
    let b = square_matrix(n, 2);
    let s = median_seconds(reps, || {
        let mut tape = Tape::<f32>::no_grad();
        let av = tape.constant_ref(&[n, n], &a);
        let bv = tape.constant_ref(&[n, n], &b);
        let c = tape.matmul(av, bv);
        std::hint::black_box(tape.value(c));
    });
    product(n, n, n) / s / 1e9
}

/// The timing of the step at one number of previous tasks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepTiming {
    /// Tasks the regularizer protects.
    pub previous_tasks: usize,
    /// Output heads of the target network.
    pub heads: usize,
    /// The form the regularizer took (`None` without previous tasks).
    pub form: Option<RegularizerForm>,
    /// Bytes the regularizer keeps for its targets (stored targets, or θ* and the activations
    /// of θ*).
    pub regularizer_bytes: usize,
    /// Median milliseconds per step.
    pub ms_per_step: f64,
    /// The fastest step's milliseconds: on a machine whose other work only ever adds time to
    /// a step, the steadiest figure to compare between lines.
    pub fastest_ms: f64,
    /// Median on-CPU milliseconds per step over all threads ([`process_cpu_ms`]).
    pub cpu_ms_per_step: Option<f64>,
    /// Achieved matmul GFLOP/s: [`step_matmul_flops`] over the median step time.
    pub gflops: f64,
}

/// What `hypertape bench` measures, all in one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    /// The step timed.
    pub setup: BenchSetup,
    /// One timing per number of previous tasks, in the order asked.
    pub steps: Vec<StepTiming>,
    /// Bare `matrixmultiply::sgemm` at 1024², GFLOP/s.
    pub sgemm_gflops: f64,
    /// The same product through `Tape::matmul`, GFLOP/s.
    pub engine_gflops: f64,
}

impl BenchReport {
    /// A step's matmul GFLOP/s as a fraction of the bare sgemm's.
    pub fn sgemm_fraction(&self, timing: &StepTiming) -> f64 {
        timing.gflops / self.sgemm_gflops
    }

    /// A step's matmul GFLOP/s as a fraction of the engine's 1024² product on all threads
    /// (the rate the step's own products could reach at best).
    pub fn engine_fraction(&self, timing: &StepTiming) -> f64 {
        timing.gflops / self.engine_gflops
    }
}

/// The times of a fixture's steps.
#[derive(Clone, Copy, Debug)]
pub struct StepTimes {
    /// Median wall-clock milliseconds.
    pub median_ms: f64,
    /// Fastest step, wall-clock milliseconds.
    pub fastest_ms: f64,
    /// Median on-CPU milliseconds over the process's threads.
    pub cpu_ms: Option<f64>,
}

/// Times `steps` steps (at least 1) of `fixture` after [`WARMUP_STEPS`] warm-up steps: the
/// median and fastest wall clock, and the median on-CPU milliseconds summed over the
/// process's threads ([`process_cpu_ms`]; `None` where it cannot be read).
pub fn time_steps(fixture: &mut StepFixture, steps: usize) -> StepTimes {
    for _ in 0..WARMUP_STEPS {
        std::hint::black_box(fixture.step());
    }
    let mut cpu = Some(Vec::new());
    let mut ms: Vec<f64> = (0..steps.max(1))
        .map(|_| {
            let c = process_cpu_ms();
            let t = Instant::now();
            std::hint::black_box(fixture.step());
            let wall = t.elapsed().as_secs_f64() * 1e3;
            match (c, process_cpu_ms(), cpu.as_mut()) {
                (Some(a), Some(b), Some(v)) => v.push(b - a),
                _ => cpu = None,
            }
            wall
        })
        .collect();
    let fastest_ms = ms.iter().copied().fold(f64::INFINITY, f64::min);
    StepTimes {
        median_ms: median(&mut ms),
        fastest_ms,
        cpu_ms: cpu.map(|mut v| median(&mut v)),
    }
}

/// Milliseconds the threads of this process have run on a core so far: the sum of the first
/// field of every `/proc/self/task/*/schedstat` (Linux; `None` elsewhere). Time spent waiting
/// for a core does not count, so on a machine shared with other work it is steadier than the
/// wall clock (threads that spin while waiting for work do count).
pub fn process_cpu_ms() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may end between the listing and the read: it no longer counts.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        ns += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-6)
}

/// Times the step at each count of `previous` tasks (median of `steps` after
/// [`WARMUP_STEPS`] warm-up steps; one fixture at a time), then the sgemm and engine
/// yardsticks at [`YARDSTICK_N`]².
pub fn run_bench(setup: BenchSetup, previous: &[usize], steps: usize) -> BenchReport {
    let steps = previous
        .iter()
        .map(|&p| {
            let mut fixture = step_fixture(setup, p, 42);
            let times = time_steps(&mut fixture, steps);
            let (ms, cpu) = (times.median_ms, times.cpu_ms);
            StepTiming {
                previous_tasks: p,
                heads: fixture.model.target.num_heads(),
                form: fixture.regularizer_form(),
                regularizer_bytes: fixture.regularizer_bytes(),
                ms_per_step: ms,
                fastest_ms: times.fastest_ms,
                cpu_ms_per_step: cpu,
                gflops: step_matmul_flops(setup, p) / (ms * 1e-3) / 1e9,
            }
        })
        .collect();
    BenchReport {
        setup,
        steps,
        sgemm_gflops: sgemm_gflops(YARDSTICK_N, YARDSTICK_REPS),
        engine_gflops: engine_matmul_gflops(YARDSTICK_N, YARDSTICK_REPS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cl::hnet::{task_loss, OutputRegularizer};
    use crate::engine::tape::Op;
    use crate::nn::{Activation, HnetConfig, Mlp};

    /// Matmul FLOPs the tape would spend on a forward + backward, read off its nodes: every
    /// recorded product costs its forward plus one product per input that needs a gradient.
    fn brute_flops(tape: &Tape<'_, f64>) -> (f64, usize) {
        let mut flops = 0.0;
        let mut products = 0;
        for v in tape.vars() {
            let (m, k, n, ins) = match tape.op(v) {
                Op::Linear { x, w, .. } | Op::LinearSquaredDistance { x, w, .. } => {
                    let (m, k) = tape.dims(*x);
                    let (n, _) = tape.dims(*w);
                    (m, k, n, [*x, *w])
                }
                Op::MatMul { .. } => panic!("the step uses linear only"),
                _ => continue,
            };
            products += 1;
            let grads = ins.iter().filter(|&&u| tape.requires_grad(u)).count();
            flops += product(m, n, k) * (1 + grads) as f64;
        }
        (flops, products)
    }

    fn tiny(chunked: bool) -> (Mlp, Hnet) {
        let target = Mlp::new(6, &[5, 4], 3, 3);
        let config = HnetConfig {
            task_emb_dim: 3,
            hidden: vec![4, 3],
            activation: Activation::Elu,
            chunk_size: chunked.then_some(17),
            chunk_emb_dim: 2,
        };
        let hnet = Hnet::new(&config, target.num_weights());
        (target, hnet)
    }

    #[test]
    fn flop_count_matches_the_tapes_of_a_tiny_step() {
        for chunked in [true, false] {
            let (target, hnet) = tiny(chunked);
            let prev = 2;
            let batch = 7;
            let mut model = HnetModel::<f64>::new(target.clone(), hnet.clone(), 3);
            for _ in 0..=prev {
                model.add_task(3);
            }
            let reg = OutputRegularizer::new(&model, prev, 0.1, false);
            let x = vec![0.5f64; batch * target.input_dim()];
            let labels = vec![1usize; batch];
            // The two tapes step_gradients builds.
            let d = hnet.config().task_emb_dim;
            let mut tape = Tape::new();
            let theta = tape.leaf_ref(&[model.theta.len()], &model.theta);
            let emb = tape.leaf_ref(&[1, d], &model.task_embs[prev]);
            let xv = tape.constant_ref(&[batch, target.input_dim()], &x);
            task_loss(&mut tape, &model, theta, emb, xv, &labels, prev);
            let (task_flops, task_products) = brute_flops(&tape);
            let mut tape = Tape::new();
            let theta = tape.leaf_ref(&[model.theta.len()], &model.theta);
            let subset: Vec<usize> = (0..prev).collect();
            reg.loss(&mut tape, &model.hnet, theta, &subset);
            let (reg_flops, reg_products) = brute_flops(&tape);
            assert_eq!(task_products, 6, "3 hnet + 3 target layers");
            assert_eq!(reg_products, 3, "3 hnet layers");
            let direct = RegularizerForm::Direct;
            assert_eq!(
                step_matmul_flops_for(&target, &hnet, batch, prev, false, direct),
                task_flops + reg_flops,
                "chunked {chunked}"
            );
            assert_eq!(
                step_matmul_flops_for(&target, &hnet, batch, 0, false, direct),
                task_flops,
                "chunked {chunked}"
            );
        }
    }

    #[test]
    fn flop_count_of_the_paper_step() {
        // Hypernetwork: 28 chunks; per task 2·28·(25·32 + 25·25 + 78000·25) FLOPs forward.
        let hnet_fwd = 2.0 * 28.0 * (25.0 * 32.0 + 25.0 * 25.0 + 78_000.0 * 25.0);
        let target =
            2.0 * 128.0 * (2.0 * 1000.0 * 1024.0 + 3.0 * 1000.0 * 1000.0 + 3.0 * 10.0 * 1000.0);
        let setup = BenchSetup {
            regularizer: RegularizerForm::Direct,
            ..BenchSetup::default()
        };
        assert_eq!(step_matmul_flops(setup, 0), 3.0 * hnet_fwd + target);
        assert_eq!(step_matmul_flops(setup, 9), 30.0 * hnet_fwd + target);
        let online = BenchSetup {
            online_targets: true,
            ..setup
        };
        assert_eq!(step_matmul_flops(online, 0), 3.0 * hnet_fwd + target);
        assert_eq!(step_matmul_flops(online, 9), 39.0 * hnet_fwd + target);
        // Factored (the automatic form from 2 previous tasks): the output layer's 3 products
        // per task give way to (d + 1)(4d + 2)·n + 6·rows·d² multiply-adds; hidden layers as
        // before.
        let hidden_fwd = 2.0 * 28.0 * (25.0 * 32.0 + 25.0 * 25.0);
        let factored = |tasks: f64| {
            3.0 * hnet_fwd
                + target
                + tasks * 3.0 * hidden_fwd
                + 2.0 * (26.0 * 102.0 * 78_000.0 + 6.0 * tasks * 28.0 * 625.0)
        };
        let auto = BenchSetup::default();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b;
        assert!(close(step_matmul_flops(auto, 9), factored(9.0)));
        assert!(close(step_matmul_flops(auto, 2), factored(2.0)));
        assert_eq!(step_matmul_flops(auto, 1), step_matmul_flops(setup, 1));
        let auto_online = BenchSetup {
            online_targets: true,
            ..auto
        };
        assert!(close(
            step_matmul_flops(auto_online, 9),
            factored(9.0) + 9.0 * hidden_fwd
        ));
    }

    #[test]
    fn heads_put_every_line_on_one_network() {
        let by_default = BenchSetup::default();
        assert_eq!(bench_config(by_default, 0).num_heads(), 10);
        assert_eq!(bench_config(by_default, 99).num_heads(), 100);
        let fixed = BenchSetup {
            heads: Some(100),
            ..by_default
        };
        for p in [0, 9, 99] {
            assert_eq!(
                bench_config(fixed, p).num_heads(),
                100,
                "{p} previous tasks"
            );
        }
        assert_eq!(
            bench_config(fixed, 150).num_heads(),
            151,
            "a head per task at least"
        );
        assert!(step_matmul_flops(fixed, 0) > step_matmul_flops(by_default, 0));
        assert_eq!(
            step_matmul_flops(fixed, 99),
            step_matmul_flops(by_default, 99)
        );
    }

    #[test]
    fn fixture_steps_and_learns_its_batch() {
        let mut f = step_fixture(BenchSetup::default(), 0, 5);
        let (first, reg) = f.step();
        assert_eq!(reg, 0.0, "no previous task, no regularizer");
        let last = (0..4).map(|_| f.step().0).last().unwrap();
        assert!(last < first, "task loss {first} -> {last}");
        let times = time_steps(&mut f, 3);
        assert!(times.fastest_ms > 0.0 && times.fastest_ms <= times.median_ms);
        for benchmark in [Benchmark::PermutedMnist, Benchmark::SplitMnist] {
            for online_targets in [false, true] {
                for regularizer in [RegularizerForm::Direct, RegularizerForm::Factored] {
                    let setup = BenchSetup {
                        benchmark,
                        online_targets,
                        regularizer,
                        ..BenchSetup::default()
                    };
                    let mut f = step_fixture(setup, 2, 5);
                    assert_eq!(f.regularizer_form(), Some(regularizer));
                    let (task, reg) = f.step();
                    assert!(
                        task.is_finite() && reg > 0.0,
                        "{setup:?}: look-ahead moves θ off the targets: {reg}"
                    );
                }
            }
        }
    }
}
