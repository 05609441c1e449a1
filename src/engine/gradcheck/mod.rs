//! Finite-difference audits of gradients, in f64.
//!
//! [`gradcheck`] compares every element of the analytic gradient of a scalar function with a
//! central difference, input by input (for ops and small layers). [`directional_check`] is the
//! check for large models: one random direction t over all inputs, ⟨t, ∇f⟩ from one backward
//! pass against (f(x + εt) − f(x − εt)) / 2ε from two forward passes, whatever the size.
//!
//! Errors are reported as `|a − n| / max(|a|, |n|, 1)`: relative for gradients of magnitude
//! above 1, absolute below, so that elements whose true gradient is 0 are judged by the
//! rounding noise of the difference quotient rather than divided by it.

mod catalog;

pub use catalog::{audit_ops, op_cases, wide_op_cases, Domain, OpAudit, OpCase, WIDE};

use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::Tensor;
use crate::rng::Rng;
use std::fmt;

/// Step and tolerance of a check.
#[derive(Clone, Copy, Debug)]
pub struct GradCheckOptions {
    /// Finite-difference step ε.
    pub eps: f64,
    /// Largest accepted error `|a − n| / max(|a|, |n|, 1)`.
    pub tolerance: f64,
}

impl Default for GradCheckOptions {
    fn default() -> Self {
        Self {
            eps: 1e-6,
            tolerance: 1e-6,
        }
    }
}

/// The outcome of the check for one input.
#[derive(Clone, Debug)]
pub struct InputReport {
    /// Position of the input in the list given to the check.
    pub input: usize,
    /// Its shape.
    pub shape: Vec<usize>,
    /// max |a − n| over its elements.
    pub max_abs_error: f64,
    /// max |a − n| / max(|a|, |n|, 1) over its elements.
    pub max_rel_error: f64,
    /// The element where the relative error is largest, with its analytic and numeric values.
    pub worst: (usize, f64, f64),
    /// Whether `max_rel_error` is within the tolerance.
    pub passed: bool,
}

/// The outcome of [`gradcheck`]: one report per input.
#[derive(Clone, Debug)]
pub struct GradCheckReport {
    /// Per input.
    pub inputs: Vec<InputReport>,
}

impl GradCheckReport {
    /// True if every input passed.
    pub fn passed(&self) -> bool {
        self.inputs.iter().all(|r| r.passed)
    }

    /// The largest relative error over all inputs.
    pub fn max_rel_error(&self) -> f64 {
        self.inputs
            .iter()
            .map(|r| r.max_rel_error)
            .fold(0.0, f64::max)
    }
}

impl fmt::Display for GradCheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.inputs {
            let (i, a, n) = r.worst;
            writeln!(
                f,
                "input {} {:?}: max abs {:.3e}, max rel {:.3e} at [{i}] (analytic {a:.9e}, numeric {n:.9e}) {}",
                r.input,
                r.shape,
                r.max_abs_error,
                r.max_rel_error,
                if r.passed { "ok" } else { "FAIL" }
            )?;
        }
        Ok(())
    }
}

/// The error measure of this module: `|a − n| / max(|a|, |n|, 1)`.
pub fn error_measure(analytic: f64, numeric: f64) -> f64 {
    (analytic - numeric).abs() / analytic.abs().max(numeric.abs()).max(1.0)
}

/// Builds the scalar `f(inputs)` on a recording tape, backpropagates, and compares each
/// element of each input's gradient with a central difference of `f` (evaluated without
/// recording).
pub fn gradcheck<B>(inputs: &[Tensor<f64>], f: B, options: &GradCheckOptions) -> GradCheckReport
where
    B: Fn(&mut Tape<'_, f64>, &[Var]) -> Var,
{
    let analytic = analytic_gradients(inputs, &f);
    compare_with_differences(&analytic, inputs, |xs| evaluate(xs, &f), options)
}

/// Compares given gradients `analytic` (one per input) of a scalar function `evaluate` with
/// its central differences, element by element: the check for gradients computed by code
/// other than one tape, such as a whole training step.
pub fn compare_with_differences<E>(
    analytic: &[Vec<f64>],
    inputs: &[Tensor<f64>],
    evaluate: E,
    options: &GradCheckOptions,
) -> GradCheckReport
where
    E: Fn(&[Tensor<f64>]) -> f64,
{
    let mut work: Vec<Tensor<f64>> = inputs.to_vec();
    let mut reports = Vec::with_capacity(inputs.len());
    for (k, input) in inputs.iter().enumerate() {
        assert_eq!(analytic[k].len(), input.len(), "gradient {k} length");
        let mut max_abs = 0.0f64;
        let mut max_rel = 0.0f64;
        let mut worst = (0, 0.0, 0.0);
        for (i, (&x0, &a)) in input.data().iter().zip(&analytic[k]).enumerate() {
            work[k].data_mut()[i] = x0 + options.eps;
            let up = evaluate(&work);
            work[k].data_mut()[i] = x0 - options.eps;
            let down = evaluate(&work);
            work[k].data_mut()[i] = x0;
            let numeric = (up - down) / (2.0 * options.eps);
            let rel = error_measure(a, numeric);
            // NaN counts as the worst possible error.
            let rel = if rel.is_nan() { f64::INFINITY } else { rel };
            // Not `f64::max`, which would drop a NaN error.
            let abs = (a - numeric).abs();
            max_abs = if abs.is_nan() {
                f64::INFINITY
            } else {
                max_abs.max(abs)
            };
            if rel > max_rel || i == 0 {
                max_rel = rel;
                worst = (i, a, numeric);
            }
        }
        reports.push(InputReport {
            input: k,
            shape: input.shape().to_vec(),
            max_abs_error: max_abs,
            max_rel_error: max_rel,
            worst,
            passed: max_rel <= options.tolerance,
        });
    }
    GradCheckReport { inputs: reports }
}

/// The outcome of a [`directional_check`].
#[derive(Clone, Copy, Debug)]
pub struct DirectionalReport {
    /// ⟨t, ∇f⟩ from backward.
    pub analytic: f64,
    /// (f(x + εt) − f(x − εt)) / 2ε.
    pub numeric: f64,
    /// [`error_measure`] of the two.
    pub rel_error: f64,
    /// Whether `rel_error` is within the tolerance.
    pub passed: bool,
}

impl fmt::Display for DirectionalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "directional derivative: analytic {:.12e}, numeric {:.12e}, rel error {:.3e} {}",
            self.analytic,
            self.numeric,
            self.rel_error,
            if self.passed { "ok" } else { "FAIL" }
        )
    }
}

/// Checks the gradient of `f` along one random direction over all inputs (drawn from
/// `seed`): two forward passes and one backward, whatever the number of inputs.
pub fn directional_check<B>(
    inputs: &[Tensor<f64>],
    f: B,
    seed: u64,
    options: &GradCheckOptions,
) -> DirectionalReport
where
    B: Fn(&mut Tape<'_, f64>, &[Var]) -> Var,
{
    let analytic = analytic_gradients(inputs, &f);
    directional_compare(&analytic, inputs, |xs| evaluate(xs, &f), seed, options)
}

/// Compares ⟨t, g⟩ for given gradients g with the central difference of `evaluate` along a
/// random unit direction t (normalised N(0, 1) entries drawn from `seed`). A unit direction
/// keeps the step per coordinate tiny for large models, so that the difference quotient does
/// not straddle the kinks of ReLU units.
pub fn directional_compare<E>(
    analytic: &[Vec<f64>],
    inputs: &[Tensor<f64>],
    evaluate: E,
    seed: u64,
    options: &GradCheckOptions,
) -> DirectionalReport
where
    E: Fn(&[Tensor<f64>]) -> f64,
{
    let mut rng = Rng::derived(seed, "directional-check", 0);
    let mut direction: Vec<Vec<f64>> = inputs
        .iter()
        .map(|t| (0..t.len()).map(|_| rng.normal()).collect())
        .collect();
    let norm = direction
        .iter()
        .flatten()
        .map(|v| v * v)
        .sum::<f64>()
        .sqrt();
    direction
        .iter_mut()
        .flatten()
        .for_each(|v| *v /= norm.max(f64::MIN_POSITIVE));
    let projected: f64 = analytic
        .iter()
        .zip(&direction)
        .map(|(g, t)| g.iter().zip(t).map(|(a, b)| a * b).sum::<f64>())
        .sum();
    let shifted = |sign: f64| -> Vec<Tensor<f64>> {
        inputs
            .iter()
            .zip(&direction)
            .map(|(x, t)| {
                let data = x
                    .data()
                    .iter()
                    .zip(t)
                    .map(|(v, d)| v + sign * options.eps * d);
                Tensor::from_vec(x.shape(), data.collect())
            })
            .collect()
    };
    let numeric = (evaluate(&shifted(1.0)) - evaluate(&shifted(-1.0))) / (2.0 * options.eps);
    let rel_error = error_measure(projected, numeric);
    DirectionalReport {
        analytic: projected,
        numeric,
        rel_error,
        passed: rel_error <= options.tolerance,
    }
}

fn analytic_gradients<B>(inputs: &[Tensor<f64>], f: &B) -> Vec<Vec<f64>>
where
    B: Fn(&mut Tape<'_, f64>, &[Var]) -> Var,
{
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| tape.leaf_ref(t.shape(), t.data()))
        .collect();
    let out = f(&mut tape, &vars);
    let grads = tape.backward(out);
    vars.iter()
        .zip(inputs)
        .map(|(&v, t)| grads.get_or_zeros(v, t.len()))
        .collect()
}

fn evaluate<B>(inputs: &[Tensor<f64>], f: &B) -> f64
where
    B: Fn(&mut Tape<'_, f64>, &[Var]) -> Var,
{
    let mut tape = Tape::no_grad();
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| tape.constant_ref(t.shape(), t.data()))
        .collect();
    let out = f(&mut tape, &vars);
    tape.item(out)
}
