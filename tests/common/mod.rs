//! Fixtures shared by the integration tests (each test file that uses them says `mod common;`):
//!
//! - data: the bundled MNIST directory, one loaded copy of MNIST per test binary, and the
//!   first SplitMNIST tasks cut from it;
//! - configurations: SplitMNIST experiments on the bundled data, and tiny ones;
//! - engine: random tensors from a seed, a weighted sum that sends a different gradient to
//!   every element, the f64 finite-difference check with its report on failure, and the check
//!   of an op against forward values and gradients worked out by hand.
//!
//! Every test binary compiles its own copy of this module and uses only some of it.
#![allow(dead_code)]

use hypertape::cl::{Method, Scenario};
use hypertape::data::{load_mnist, ClassificationTask, Mnist, TaskSpec};
use hypertape::gradcheck::{gradcheck, GradCheckOptions, GradCheckReport};
use hypertape::rng::Rng;
use hypertape::run::{Benchmark, ExperimentConfig};
use hypertape::{Tape, Tensor, Var};
use std::path::PathBuf;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// Data

/// The MNIST files bundled with the repository (`data/mnist`).
pub fn mnist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

/// The bundled MNIST, loaded once per test binary.
pub fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| load_mnist(&mnist_dir()).expect("MNIST in data/mnist"))
}

/// The tasks of `specs` (no validation sets), cut from the shared copy of MNIST.
pub fn tasks(specs: &[TaskSpec]) -> Vec<ClassificationTask> {
    specs
        .iter()
        .map(|s| s.load(mnist(), 0).expect("a task of MNIST"))
        .collect()
}

/// SplitMNIST tasks kept loaded by [`split_tasks`].
pub const SPLIT_TASKS: usize = 3;

/// The first `n` (at most [`SPLIT_TASKS`]) SplitMNIST tasks, digits {0, 1}, {2, 3}, …, without
/// validation sets: what `ExperimentConfig::load_tasks` gives for them, loaded once per test
/// binary.
pub fn split_tasks(n: usize) -> &'static [ClassificationTask] {
    static TASKS: OnceLock<Vec<ClassificationTask>> = OnceLock::new();
    assert!(
        n <= SPLIT_TASKS,
        "{n} SplitMNIST tasks asked, {SPLIT_TASKS} kept"
    );
    let all = TASKS.get_or_init(|| {
        let mut c = ExperimentConfig::paper_defaults(Benchmark::SplitMnist);
        c.num_tasks = SPLIT_TASKS;
        tasks(&c.task_specs())
    });
    &all[..n]
}

// ---------------------------------------------------------------------------------------------
// Configurations

/// A SplitMNIST experiment of `method` in `scenario` over the first `num_tasks` tasks of the
/// bundled MNIST, with the paper's settings (and the method's and scenario's defaults)
/// otherwise.
pub fn split_config(method: Method, scenario: Scenario, num_tasks: usize) -> ExperimentConfig {
    let mut c = ExperimentConfig::paper_defaults(Benchmark::SplitMnist);
    c.set_method_and_scenario(method, scenario);
    c.num_tasks = num_tasks;
    c.data_dir = mnist_dir();
    c
}

/// The sizes of a tiny SplitMNIST experiment.
#[derive(Clone, Copy, Debug)]
pub struct TinySplit {
    /// Tasks.
    pub tasks: usize,
    /// Units of the target network's one hidden layer.
    pub hidden: usize,
    /// The hypernetwork's chunk size.
    pub chunk_size: usize,
    /// Training steps per task.
    pub iterations: usize,
}

impl TinySplit {
    /// [`split_config`] with these sizes.
    pub fn config(self, method: Method, scenario: Scenario) -> ExperimentConfig {
        let mut c = split_config(method, scenario, self.tasks);
        c.target_hidden = vec![self.hidden];
        c.hnet.chunk_size = Some(self.chunk_size);
        c.train.iterations = self.iterations;
        c
    }
}

// ---------------------------------------------------------------------------------------------
// Engine

/// `len` values uniform in (−1, 1) from `Rng::new(seed)`.
pub fn uniform_values(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
}

/// A tensor of `shape` holding [`uniform_values`].
pub fn uniform_tensor(shape: &[usize], seed: u64) -> Tensor<f64> {
    let len = shape.iter().product();
    Tensor::from_vec(shape, uniform_values(len, seed))
}

/// A tensor of `shape` of N(0, std²) values drawn from `rng`.
pub fn normal_tensor(shape: &[usize], std: f64, rng: &mut Rng) -> Tensor<f64> {
    Tensor::from_fn(shape, |_| std * rng.normal())
}

/// Σ c ⊙ y for a constant c of y's shape drawn from `seed`: a scalar whose gradient reaches
/// every element of y with a different weight.
pub fn weighted_sum(tape: &mut Tape<'_, f64>, y: Var, seed: u64) -> Var {
    let shape = tape.shape(y).to_vec();
    let mut rng = Rng::derived(seed, "weighted-sum", 0);
    let c = tape.constant(normal_tensor(&shape, 1.0, &mut rng));
    let p = tape.mul(y, c);
    tape.sum(p)
}

/// The f64 finite-difference check of the scalar `f(inputs)` with the default step and
/// tolerance; panics with the report if an input fails.
pub fn assert_gradcheck<B>(inputs: &[Tensor<f64>], f: B) -> GradCheckReport
where
    B: Fn(&mut Tape<'_, f64>, &[Var]) -> Var,
{
    let report = gradcheck(inputs, f, &GradCheckOptions::default());
    assert!(report.passed(), "finite-difference check failed:\n{report}");
    report
}

/// Asserts `|a − e| ≤ tol · max(|e|, 1)` element by element.
pub fn assert_close(actual: &[f64], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * e.abs().max(1.0),
            "{what}[{i}]: {a} but {e} by hand\n  got      {actual:?}\n  by hand  {expected:?}"
        );
    }
}

/// Checks `f` on leaves holding `inputs` against values worked out by hand: its output against
/// `value`, then the gradient of every input for the output gradient `seed` against `grads`
/// (one literal per input, in order), then the same gradients against central differences
/// (the f64 check of ⟨seed, f(inputs)⟩).
pub fn check_by_hand<B>(inputs: &[Tensor<f64>], f: B, seed: &[f64], value: &[f64], grads: &[&[f64]])
where
    B: Fn(&mut Tape<'_, f64>, &[Var]) -> Var,
{
    const TOL: f64 = 1e-12;
    assert_eq!(grads.len(), inputs.len(), "one gradient per input");
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let y = f(&mut tape, &vars);
    let shape = tape.shape(y).to_vec();
    assert_close(tape.value(y), value, TOL, "value");
    let computed = tape.backward_with_seed(y, seed);
    for (k, (&v, expected)) in vars.iter().zip(grads).enumerate() {
        let g = computed.get_or_zeros(v, inputs[k].len());
        assert_close(&g, expected, TOL, &format!("gradient of input {k}"));
    }
    let seed = Tensor::from_vec(&shape, seed.to_vec());
    assert_gradcheck(inputs, |tape, xs| {
        let y = f(tape, xs);
        let s = tape.constant(seed.clone());
        let p = tape.mul(y, s);
        tape.sum(p)
    });
}

/// The seed of [`hnet_model`].
pub const HNET_SEED: u64 = 17;

/// A small hypernetwork model (target 3 → 2 → 2 with 3 heads; task embeddings of 2, chunk
/// embeddings of 2, tanh hidden layers `hidden`, chunks of `chunk_size`) with `tasks` task
/// embeddings and θ moved by N(0, 0.3²) so that every bias is non-zero.
pub fn hnet_model(
    chunk_size: Option<usize>,
    hidden: Vec<usize>,
    tasks: usize,
) -> hypertape::cl::hnet::HnetModel<f64> {
    use hypertape::nn::{Activation, Hnet, HnetConfig, Mlp};
    let target = Mlp::new(3, &[2], 2, 3);
    let config = HnetConfig {
        task_emb_dim: 2,
        hidden,
        activation: Activation::Tanh,
        chunk_size,
        chunk_emb_dim: 2,
    };
    let hnet = Hnet::new(&config, target.num_weights());
    let mut m = hypertape::cl::hnet::HnetModel::new(target, hnet, HNET_SEED);
    for _ in 0..tasks {
        m.add_task(HNET_SEED);
    }
    let mut rng = Rng::new(HNET_SEED);
    m.theta.iter_mut().for_each(|v| *v += 0.3 * rng.normal());
    m
}

/// `theta` moved by N(0, 0.2²) noise drawn from `seed`.
pub fn moved(theta: &[f64], seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    theta.iter().map(|v| v + 0.2 * rng.normal()).collect()
}
