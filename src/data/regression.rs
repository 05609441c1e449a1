//! The 1-D toy regression of von Oswald et al. (2020), Fig. 2: three polynomial tasks on
//! disjoint input domains.
//!
//! As in the official hypercl code (`toy_example`), training inputs are drawn uniformly
//! from the domain and their targets get Gaussian noise (std 0.05), while test inputs are
//! an equidistant grid over the domain (both ends included) with noise-free targets.
//! Unlike the official code, which reuses one seed for every task, each task draws from
//! its own stream `Rng::derived(seed, "regression", task)`.

use crate::rng::Rng;

/// Training points per task.
pub const NUM_TRAIN: usize = 100;
/// Test points per task.
pub const NUM_TEST: usize = 50;
/// Standard deviation of the noise on training targets.
pub const TRAIN_NOISE_STD: f64 = 0.05;

/// A task's name, input domain and target function.
type TaskSpec = (&'static str, (f64, f64), fn(f64) -> f64);

const TASKS: [TaskSpec; 3] = [
    ("x+3", (-4.0, -2.0), |x| x + 3.0),
    ("2x^2-1", (-1.0, 1.0), |x| 2.0 * x * x - 1.0),
    ("(x-3)^3", (2.0, 4.0), |x| (x - 3.0).powi(3)),
];

/// One 1-D regression task.
#[derive(Clone, Debug, PartialEq)]
pub struct RegressionTask {
    pub name: String,
    pub domain: (f64, f64),
    pub train_x: Vec<f64>,
    pub train_y: Vec<f64>,
    pub test_x: Vec<f64>,
    pub test_y: Vec<f64>,
}

/// The three tasks y = x + 3 on \[-4, -2\], y = 2x² - 1 on \[-1, 1\], y = (x - 3)³ on \[2, 4\].
pub fn toy_regression(seed: u64) -> Vec<RegressionTask> {
    TASKS
        .iter()
        .enumerate()
        .map(|(k, &(name, (lo, hi), f))| {
            let mut rng = Rng::derived(seed, "regression", k as u64);
            let train_x: Vec<f64> = (0..NUM_TRAIN).map(|_| rng.uniform_range(lo, hi)).collect();
            let train_y = train_x
                .iter()
                .map(|&x| f(x) + TRAIN_NOISE_STD * rng.normal())
                .collect();
            // Scaling before dividing makes the grid end exactly at `hi`, as numpy's linspace.
            let last = (NUM_TEST - 1) as f64;
            let test_x: Vec<f64> = (0..NUM_TEST)
                .map(|i| lo + (hi - lo) * i as f64 / last)
                .collect();
            let test_y = test_x.iter().map(|&x| f(x)).collect();
            RegressionTask {
                name: name.to_string(),
                domain: (lo, hi),
                train_x,
                train_y,
                test_x,
                test_y,
            }
        })
        .collect()
}
