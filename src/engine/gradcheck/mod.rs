//! Finite-difference audits of gradients, in f64.
//!
//! Scalar functions (a loss):
//! - [`gradcheck`] compares every element of the analytic gradient with a central difference,
//!   input by input (for ops and small models): 2 forward passes per input element.
//! - [`directional_check`] is the check for large models: one random direction t over all
//!   inputs, ⟨t, ∇f⟩ from one backward pass against (f(x + εt) − f(x − εt)) / 2ε from two
//!   forward passes, whatever the size.
//!
//! Their errors are `|a − n| / max(|a|, |n|, 1)`: relative for gradients of magnitude above 1,
//! absolute below, so that elements whose true gradient is 0 are judged by the rounding noise
//! of the difference quotient rather than divided by it.
//!
//! Functions with a tensor output (a layer, a model's logits), with separate absolute and
//! relative tolerances (an entry passes if |a − n| ≤ atol + rtol·|n|, as numpy's `allclose`):
//! - [`jacobian_check`]: the full Jacobian, each output's row by reverse mode against each
//!   input's column by central differences (as PyTorch's `gradcheck`);
//! - [`jacobian_projection_check`]: uᵀJv along random unit vectors u and v (as JAX's
//!   `check_grads`), one backward pass and two forward passes per projection.
//!
//! # The function under check
//!
//! Every check takes the function as a closure `|tape, xs| -> Var` that builds it on the tape
//! it is given from the input vars `xs` (one per input tensor, in order). The checks call it
//! once on a recording tape for the analytic side and once per evaluation on a tape that
//! records nothing, so it must build the same function each time (no state carried between
//! calls). It may borrow data that outlives the check, such as a batch given to
//! [`Tape::constant_ref`] without a copy:
//!
//! ```
//! use hypertape::gradcheck::{gradcheck, GradCheckOptions};
//! use hypertape::Tensor;
//!
//! let data = vec![0.5, -1.0, 2.0, 0.25, 1.0, -0.5]; // a 2×3 batch, borrowed below
//! let w = Tensor::from_vec(&[3, 3], (0..9).map(|i| 0.1 * i as f64 - 0.4).collect());
//! let report = gradcheck(
//!     &[w],
//!     |tape, xs| {
//!         let x = tape.constant_ref(&[2, 3], &data);
//!         let h = tape.matmul(x, xs[0]);
//!         let h = tape.tanh(h);
//!         tape.sum(h)
//!     },
//!     &GradCheckOptions::default(),
//! );
//! assert!(report.passed(), "{report}");
//! ```
//!
//! Pass the closure to the check directly, so that its parameter types are inferred from the
//! check's signature. A closure stored in a variable with its tape annotated as
//! `&mut Tape<'_, f64>` must work for every lifetime of the tape, `'static` included, and so
//! cannot borrow local data ("borrowed value does not live long enough"); put code shared by
//! several checks in a function generic over the lifetime instead:
//!
//! ```
//! use hypertape::gradcheck::{gradcheck, jacobian_check, GradCheckOptions, JacobianOptions};
//! use hypertape::{Tape, Tensor, Var};
//!
//! fn layer<'d>(tape: &mut Tape<'d, f64>, xs: &[Var], batch: &'d [f64]) -> Var {
//!     let x = tape.constant_ref(&[2, 2], batch);
//!     tape.matmul(x, xs[0])
//! }
//!
//! let batch = vec![1.0, 2.0, -1.0, 0.5];
//! let w = [Tensor::from_vec(&[2, 1], vec![0.3, -0.7])];
//! let jacobian = jacobian_check(&w, |t, xs| layer(t, xs, &batch), &JacobianOptions::default());
//! assert!(jacobian.unwrap().passed());
//! let report = gradcheck(
//!     &w,
//!     |t, xs| {
//!         let y = layer(t, xs, &batch);
//!         t.sum(y)
//!     },
//!     &GradCheckOptions::default(),
//! );
//! assert!(report.passed());
//! ```
//!
//! # f32 code
//!
//! The checks run in f64 only. In f32 the rounding error of a central difference is about
//! 6e-8·|f| / ε, so that even the best step (ε around 1e-3 to 1e-2, where the truncation
//! error grows instead) leaves errors of 1e-5 to 1e-3 of the gradient, more for sums of many
//! terms: too coarse to tell a slightly wrong gradient from noise. Write the model once, generic over [`Float`], and check its f64 instance; the f32
//! instance runs the same code. Then compare the f32 forward with the f64 forward on the same
//! inputs (agreement to f32 rounding, about 1e-6 relative per op), as the op catalogue does
//! for every op ([`OpCase::forward`]) and `examples/custom_model.rs` does for a model:
//!
//! ```
//! use hypertape::gradcheck::{gradcheck, GradCheckOptions};
//! use hypertape::{Float, Tape, Tensor, Var};
//!
//! /// Σ softmax(x·W)², one body for f32 and f64.
//! fn model<F: Float>(tape: &mut Tape<'_, F>, xs: &[Var]) -> Var {
//!     let h = tape.matmul(xs[0], xs[1]);
//!     let p = tape.softmax(h);
//!     let p2 = tape.square(p);
//!     tape.sum(p2)
//! }
//!
//! let x = Tensor::from_vec(&[1, 2], vec![0.3, -1.2]);
//! let w = Tensor::from_vec(&[2, 3], vec![0.5, -0.1, 0.7, 1.1, 0.2, -0.6]);
//! // The gradient of the f64 instance...
//! let report = gradcheck(&[x.clone(), w.clone()], model, &GradCheckOptions::default());
//! assert!(report.passed(), "{report}");
//! // ...and the f32 forward against the f64 forward.
//! let forward = |xs: [Tensor<f64>; 2]| -> (f64, f64) {
//!     let mut t64 = Tape::<f64>::no_grad();
//!     let v64: Vec<Var> = xs.iter().map(|t| t64.constant(t.clone())).collect();
//!     let y64 = model(&mut t64, &v64);
//!     let mut t32 = Tape::<f32>::no_grad();
//!     let v32: Vec<Var> = xs.iter().map(|t| t32.constant(t.cast())).collect();
//!     let y32 = model(&mut t32, &v32);
//!     (t64.item(y64), f64::from(t32.item(y32)))
//! };
//! let (wide, narrow) = forward([x, w]);
//! assert!((wide - narrow).abs() <= 1e-6 * wide.abs().max(1.0));
//! ```
//!
//! [`Float`]: crate::engine::tensor::Float

mod catalog;
mod jacobian;

pub use catalog::{audit_ops, op_cases, wide_op_cases, Domain, OpAudit, OpCase, WIDE};
pub use jacobian::{
    jacobian_check, jacobian_compare, jacobian_projection_check, projection_compare, JacobianEntry,
    JacobianError, JacobianOptions, JacobianReport, Projection, ProjectionReport,
};

use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::Tensor;
use crate::rng::Rng;
use std::fmt;

/// Step and tolerance of [`gradcheck`] and [`directional_check`].
///
/// The defaults ([`GradCheckOptions::default`]) are `eps: 1e-6` and `tolerance: 1e-6`. With
/// ε = 1e-6 a central difference in f64 is off by about ε²·|f‴|/6 ≈ 1e-13 (truncation) plus
/// 1e-16·|f|/ε ≈ 1e-10·|f| (rounding), so a correct gradient of a function of moderate size
/// stays orders of magnitude below 1e-6, while a wrong rule (a missing factor, a transposed
/// product) is off by far more. Raise `eps` (1e-4) for large models checked along a direction,
/// whose sums round more; raise `tolerance` for functions of values near 1e4 and above.
///
/// ```
/// use hypertape::gradcheck::GradCheckOptions;
///
/// let options = GradCheckOptions::default();
/// assert_eq!((options.eps, options.tolerance), (1e-6, 1e-6));
/// let coarse = GradCheckOptions { eps: 1e-4, ..GradCheckOptions::default() };
/// # let _ = coarse;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct GradCheckOptions {
    /// Finite-difference step ε (default 1e-6).
    pub eps: f64,
    /// Largest accepted error `|a − n| / max(|a|, |n|, 1)` (default 1e-6).
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
/// recording): 1 backward and 2·(input elements) forward passes. `f` may borrow data (see
/// the [module documentation](self)); for a function with more than one output element use
/// [`jacobian_check`].
///
/// # Panics
/// If `f` returns a var of more than one element (as [`Tape::backward`]).
///
/// ```
/// use hypertape::gradcheck::{gradcheck, GradCheckOptions};
/// use hypertape::Tensor;
///
/// // f(a, b) = Σ a ⊙ b: ∂f/∂a = b, ∂f/∂b = a.
/// let a = Tensor::from_vec(&[3], vec![1.0, -2.0, 0.5]);
/// let b = Tensor::from_vec(&[3], vec![0.3, 0.1, -4.0]);
/// let report = gradcheck(
///     &[a, b],
///     |tape, xs| {
///         let p = tape.mul(xs[0], xs[1]);
///         tape.sum(p)
///     },
///     &GradCheckOptions::default(),
/// );
/// assert!(report.passed(), "{report}");
/// assert_eq!(report.inputs.len(), 2);
/// assert!(report.max_rel_error() < 1e-9);
/// ```
pub fn gradcheck<'d, B>(inputs: &[Tensor<f64>], f: B, options: &GradCheckOptions) -> GradCheckReport
where
    B: Fn(&mut Tape<'d, f64>, &[Var]) -> Var,
{
    let analytic = analytic_gradients(inputs, &f);
    compare_perturbed(&analytic, inputs, |xs| evaluate(xs, &f), options)
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
    compare_perturbed(analytic, inputs, |xs| evaluate(xs), options)
}

/// [`compare_with_differences`] with an `evaluate` that may move the inputs it is given
/// (and must put them back).
fn compare_perturbed<E>(
    analytic: &[Vec<f64>],
    inputs: &[Tensor<f64>],
    mut evaluate: E,
    options: &GradCheckOptions,
) -> GradCheckReport
where
    E: FnMut(&mut [Tensor<f64>]) -> f64,
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
            let up = evaluate(&mut work);
            work[k].data_mut()[i] = x0 - options.eps;
            let down = evaluate(&mut work);
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

/// Checks the gradient of the scalar `f` along one random direction over all inputs (drawn
/// from `seed`): two forward passes and one backward, whatever the number of inputs.
///
/// # Panics
/// If `f` returns a var of more than one element (as [`Tape::backward`]).
///
/// ```
/// use hypertape::gradcheck::{directional_check, GradCheckOptions};
/// use hypertape::Tensor;
///
/// let w = Tensor::from_fn(&[64, 32], |i| ((i * 37 % 101) as f64 - 50.0) / 100.0);
/// let report = directional_check(
///     &[w],
///     |tape, xs| {
///         let h = tape.tanh(xs[0]);
///         tape.sum(h)
///     },
///     7,
///     &GradCheckOptions::default(),
/// );
/// assert!(report.passed, "{report}");
/// ```
pub fn directional_check<'d, B>(
    inputs: &[Tensor<f64>],
    f: B,
    seed: u64,
    options: &GradCheckOptions,
) -> DirectionalReport
where
    B: Fn(&mut Tape<'d, f64>, &[Var]) -> Var,
{
    let analytic = analytic_gradients(inputs, &f);
    directional_compare(
        &analytic,
        inputs,
        |xs| evaluate(&mut xs.to_vec(), &f),
        seed,
        options,
    )
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

/// The gradient of the scalar `f` with respect to each input, by one backward pass.
fn analytic_gradients<'d, B>(inputs: &[Tensor<f64>], f: &B) -> Vec<Vec<f64>>
where
    B: Fn(&mut Tape<'d, f64>, &[Var]) -> Var,
{
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let out = f(&mut tape, &vars);
    let grads = tape.backward(out);
    vars.iter()
        .zip(inputs)
        .map(|(&v, t)| grads.get_or_zeros(v, t.len()))
        .collect()
}

/// The scalar `f(inputs)` on a tape that records nothing.
fn evaluate<'d, B>(inputs: &mut [Tensor<f64>], f: &B) -> f64
where
    B: Fn(&mut Tape<'d, f64>, &[Var]) -> Var,
{
    let mut value = 0.0;
    with_evaluation(inputs, f, |tape, out| value = tape.item(out));
    value
}

/// Runs `f` on `inputs` on a tape that records nothing and hands the tape and its output to
/// `read`. The tape's lifetime is `f`'s (which may borrow data for it), so the inputs cannot
/// be borrowed by it: they are moved into the tape and back out, not copied.
fn with_evaluation<'d, B>(inputs: &mut [Tensor<f64>], f: &B, read: impl FnOnce(&Tape<'d, f64>, Var))
where
    B: Fn(&mut Tape<'d, f64>, &[Var]) -> Var,
{
    let mut tape = Tape::no_grad();
    let vars: Vec<Var> = inputs
        .iter_mut()
        .map(|t| tape.constant(std::mem::replace(t, Tensor::zeros(&[0]))))
        .collect();
    let out = f(&mut tape, &vars);
    read(&tape, out);
    let shapes: Vec<Vec<usize>> = vars.iter().map(|&v| tape.shape(v).to_vec()).collect();
    for ((t, data), shape) in inputs
        .iter_mut()
        .zip(tape.into_leaf_buffers(&vars))
        .zip(shapes)
    {
        *t = Tensor::from_vec(&shape, data);
    }
}
