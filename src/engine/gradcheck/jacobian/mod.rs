//! Jacobian checks of functions with a tensor output, in f64.
//!
//! For f: (x₁, …, x_k) ↦ y with m output elements and n input elements in all, J is the m×n
//! matrix ∂yᵢ/∂xⱼ, its columns the inputs' elements in order (input 0's elements, then input
//! 1's, …). Reverse mode gives a row uᵀJ per backward pass (the output's gradient seeded
//! with u); central differences give a column per two forward passes.
//!
//! - [`jacobian_check`]: every entry: m backward passes on one tape (a tape can be
//!   backpropagated any number of times) and 2n forward passes.
//! - [`jacobian_projection_check`]: uᵀJv for random unit vectors u (over the outputs) and v
//!   (over all inputs), one backward pass against (uᵀf(x + εv) − uᵀf(x − εv)) / 2ε per
//!   projection, whatever m and n.
//!
//! An analytic value a passes against its numeric value n if |a − n| ≤ atol + rtol·|n| (numpy's
//! `allclose`, PyTorch's `gradcheck`); NaN never passes. Misuse and points where the check
//! cannot judge (no input elements, an empty or non-finite output, a function that is not
//! finite within ε of the point, its output changing size) are [`JacobianError`]s.

mod projection;

pub use projection::{jacobian_projection_check, projection_compare, Projection, ProjectionReport};

use super::with_evaluation;
use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::Tensor;
use std::fmt;

/// Step and tolerances of the Jacobian checks.
///
/// The defaults are `eps: 1e-6`, `atol: 1e-6`, `rtol: 1e-6`: an entry then passes if
/// |a − n| ≤ 1e-6·(1 + |n|), about the tolerance of [`super::GradCheckOptions::default`]
/// (see there for why ε = 1e-6 suits f64). PyTorch's `gradcheck` defaults to
/// `atol: 1e-5, rtol: 1e-3`.
///
/// ```
/// use hypertape::gradcheck::JacobianOptions;
///
/// let options = JacobianOptions::default();
/// assert_eq!((options.eps, options.atol, options.rtol), (1e-6, 1e-6, 1e-6));
/// let loose = JacobianOptions { atol: 1e-5, rtol: 1e-3, ..JacobianOptions::default() };
/// assert!(loose.accepts(1.0005, 1.0));
/// assert!(!options.accepts(1.0005, 1.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JacobianOptions {
    /// Finite-difference step ε, > 0 (default 1e-6); along a unit vector in the projection
    /// check.
    pub eps: f64,
    /// Absolute tolerance, ≥ 0 (default 1e-6).
    pub atol: f64,
    /// Relative tolerance, ≥ 0, a fraction of the numeric value (default 1e-6).
    pub rtol: f64,
}

impl Default for JacobianOptions {
    fn default() -> Self {
        Self {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-6,
        }
    }
}

impl JacobianOptions {
    /// True if `analytic` passes against `numeric`: |a − n| ≤ atol + rtol·|n|, false if
    /// either is NaN.
    pub fn accepts(&self, analytic: f64, numeric: f64) -> bool {
        (analytic - numeric).abs() <= self.atol + self.rtol * numeric.abs()
    }

    /// |a − n| / (atol + rtol·|n|): at most 1 where [`Self::accepts`] holds; +∞ for NaN.
    pub fn ratio(&self, analytic: f64, numeric: f64) -> f64 {
        let err = (analytic - numeric).abs();
        let allowed = self.atol + self.rtol * numeric.abs();
        let r = if allowed > 0.0 {
            err / allowed
        } else if err == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        if r.is_nan() {
            f64::INFINITY
        } else {
            r
        }
    }

    fn validate(&self) -> Result<(), JacobianError> {
        let bad = |what: &str, v: f64, need: &str| {
            Err(JacobianError::InvalidOptions(format!(
                "{what} is {v}, expected a finite value {need}"
            )))
        };
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("eps", self.eps, "> 0");
        }
        if !(self.atol.is_finite() && self.atol >= 0.0) {
            return bad("atol", self.atol, ">= 0");
        }
        if !(self.rtol.is_finite() && self.rtol >= 0.0) {
            return bad("rtol", self.rtol, ">= 0");
        }
        Ok(())
    }
}

/// Why a Jacobian check could not be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum JacobianError {
    /// No input tensors, or none with an element: there is nothing to differentiate by.
    #[error("no input elements to differentiate by ({0} input tensors, all empty): give at least one input with one element")]
    NoInputs(usize),
    /// An input element is NaN or infinite.
    #[error(
        "input {input} element {element} is {value}: the Jacobian is checked at finite inputs only"
    )]
    NonFiniteInput {
        /// The input's position.
        input: usize,
        /// The element's flat index in it.
        element: usize,
        /// Its value.
        value: f64,
    },
    /// The function's output has no elements.
    #[error("the function's output (shape {0:?}) has no elements: there is no Jacobian to check")]
    EmptyOutput(Vec<usize>),
    /// An output element is NaN or infinite at the inputs given.
    #[error("output element {output} is {value} at the inputs given: the Jacobian of a non-finite output cannot be checked")]
    NonFiniteOutput {
        /// The output element's flat index.
        output: usize,
        /// Its value.
        value: f64,
    },
    /// An output element is NaN or infinite at a point of a central difference: the function
    /// is not finite within ε of the inputs (move them away from its poles, or lower ε).
    #[error("output element {output} is {value} at {at}: the function is not finite within eps of the inputs given")]
    NonFiniteNearby {
        /// The output element's flat index.
        output: usize,
        /// Its value.
        value: f64,
        /// The point: which input element was moved by ±ε, or which projection.
        at: String,
    },
    /// The output changed its number of elements at a point of a central difference.
    #[error("the output has {expected} elements at the inputs given but {found} at {at}")]
    OutputSizeChanged {
        /// Elements at the inputs given.
        expected: usize,
        /// Elements at the perturbed point.
        found: usize,
        /// The point.
        at: String,
    },
    /// A vector-Jacobian product given to [`jacobian_compare`] or [`projection_compare`]
    /// returned gradients that do not match the inputs in number or length.
    #[error("the vjp returned gradients of lengths {found:?} for inputs of {expected:?} elements: it must return one gradient per input, each as long as its input")]
    GradientShape {
        /// The inputs' element counts.
        expected: Vec<usize>,
        /// The gradients' lengths.
        found: Vec<usize>,
    },
    /// A step or tolerance out of range, or no projections asked for.
    #[error("invalid Jacobian check options: {0}")]
    InvalidOptions(String),
}

/// One entry of the Jacobian: ∂ output\[output\] / ∂ input\[input\]\[element\].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JacobianEntry {
    /// Flat index of the output element (the row).
    pub output: usize,
    /// Position of the input tensor.
    pub input: usize,
    /// Flat index of the element in that input.
    pub element: usize,
    /// By reverse mode.
    pub analytic: f64,
    /// By central differences.
    pub numeric: f64,
}

/// The outcome of [`jacobian_check`] or [`jacobian_compare`].
#[derive(Clone, Debug)]
pub struct JacobianReport {
    /// The output's shape (m elements).
    pub output_shape: Vec<usize>,
    /// The inputs' shapes (n elements in all).
    pub input_shapes: Vec<Vec<usize>>,
    /// J by reverse mode, [m, n]: row i is the gradient of output element i, its columns
    /// the inputs' elements in order.
    pub analytic: Tensor<f64>,
    /// J by central differences, [m, n].
    pub numeric: Tensor<f64>,
    /// The entry of largest [`JacobianOptions::ratio`] (the first of them on ties).
    pub worst: JacobianEntry,
    /// Its ratio |a − n| / (atol + rtol·|n|); the check passes if it is at most 1.
    pub worst_ratio: f64,
    /// max |a − n| over all entries (+∞ if one is NaN).
    pub max_abs_error: f64,
    /// Entries outside the tolerance.
    pub failures: usize,
    /// The options checked with.
    pub options: JacobianOptions,
}

impl JacobianReport {
    /// True if every entry is within |a − n| ≤ atol + rtol·|n|.
    pub fn passed(&self) -> bool {
        self.failures == 0
    }

    /// The entry at output element `output` and element `element` of input `input`.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn entry(&self, output: usize, input: usize, element: usize) -> JacobianEntry {
        let m = self.analytic.shape()[0];
        assert!(output < m, "output {output} of {m}");
        let len = self.input_shapes[input].iter().product::<usize>();
        assert!(element < len, "element {element} of input {input}'s {len}");
        let col = self.input_shapes[..input]
            .iter()
            .map(|s| s.iter().product::<usize>())
            .sum::<usize>()
            + element;
        let n = self.analytic.shape()[1];
        JacobianEntry {
            output,
            input,
            element,
            analytic: self.analytic.data()[output * n + col],
            numeric: self.numeric.data()[output * n + col],
        }
    }
}

impl fmt::Display for JacobianReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.worst;
        write!(
            f,
            "Jacobian of an output {:?} by inputs {:?}: {} entries, {} outside |a - n| <= {:e} + {:e}·|n|; \
             worst at output {}, input {} element {}: analytic {:.9e}, numeric {:.9e} \
             (|a - n| {:.3e}, {:.2e} of the tolerance) {}",
            self.output_shape,
            self.input_shapes,
            self.analytic.len(),
            self.failures,
            self.options.atol,
            self.options.rtol,
            w.output,
            w.input,
            w.element,
            w.analytic,
            w.numeric,
            (w.analytic - w.numeric).abs(),
            self.worst_ratio,
            if self.passed() { "ok" } else { "FAIL" }
        )
    }
}

/// Checks the full Jacobian of `f(inputs)`, a function with an output of any shape, entry
/// by entry: the gradient of each output element by reverse mode (one backward pass each,
/// all on one tape) against each input element's central difference (two forward passes
/// each, on tapes that record nothing). `f` is built as for [`super::gradcheck`], and may
/// borrow data likewise.
///
/// # Errors
/// [`JacobianError`] if the options are out of range, there is no input element, an input
/// is not finite, or the output is empty, not finite at the inputs or within ε of them, or
/// changes size.
///
/// ```
/// use hypertape::gradcheck::{jacobian_check, JacobianOptions};
/// use hypertape::Tensor;
///
/// // y = A·x for a constant A: the Jacobian by x is A itself.
/// let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 3×2, borrowed by the closure
/// let x = Tensor::from_vec(&[2, 1], vec![0.5, -1.0]);
/// let report = jacobian_check(
///     &[x],
///     |tape, xs| {
///         let a = tape.constant_ref(&[3, 2], &a);
///         tape.matmul(a, xs[0])
///     },
///     &JacobianOptions::default(),
/// )?;
/// assert!(report.passed(), "{report}");
/// assert_eq!(report.analytic.shape(), &[3, 2]);
/// assert_eq!(report.analytic.data(), &a);
/// let worst = report.worst; // output, input, element, analytic, numeric
/// assert!((worst.analytic - worst.numeric).abs() < 1e-9);
/// # Ok::<(), hypertape::gradcheck::JacobianError>(())
/// ```
pub fn jacobian_check<'d, B>(
    inputs: &[Tensor<f64>],
    f: B,
    options: &JacobianOptions,
) -> Result<JacobianReport, JacobianError>
where
    B: Fn(&mut Tape<'d, f64>, &[Var]) -> Var,
{
    options.validate()?;
    check_inputs(inputs)?;
    let (mut tape, vars, out) = record(inputs, &f);
    jacobian_core(
        inputs,
        |u| vjp(&mut tape, &vars, out, inputs, u),
        |xs| evaluate_tensor(xs, &f),
        options,
    )
}

/// [`jacobian_check`] for a Jacobian computed by code other than one tape: `vjp(u)` returns
/// uᵀJ (the gradient of each input, in order, for the output gradient u), and `evaluate`
/// the function's output at the inputs it is given.
///
/// # Errors
/// As [`jacobian_check`].
///
/// ```
/// use hypertape::gradcheck::{jacobian_compare, JacobianOptions};
/// use hypertape::Tensor;
///
/// // y = (x₀x₁, x₀ + x₁), with a backward written by hand that swaps the two partial
/// // derivatives of the product: the check finds the wrong entry.
/// let x = Tensor::from_vec(&[2], vec![2.0, 3.0]);
/// let evaluate = |xs: &[Tensor<f64>]| {
///     let v = xs[0].data();
///     Tensor::from_vec(&[2], vec![v[0] * v[1], v[0] + v[1]])
/// };
/// let wrong_vjp = |u: &[f64]| vec![vec![u[0] * 2.0 + u[1], u[0] * 3.0 + u[1]]];
/// let report = jacobian_compare(&[x], wrong_vjp, evaluate, &JacobianOptions::default())?;
/// assert!(!report.passed());
/// assert_eq!(report.failures, 2); // both entries of the first row
/// let w = report.worst; // the larger error relative to the tolerance
/// assert_eq!((w.output, w.input, w.element), (0, 0, 1));
/// assert_eq!(w.analytic, 3.0);
/// assert!((w.numeric - 2.0).abs() < 1e-9); // ∂(x₀x₁)/∂x₁ = x₀
/// # Ok::<(), hypertape::gradcheck::JacobianError>(())
/// ```
pub fn jacobian_compare<V, E>(
    inputs: &[Tensor<f64>],
    vjp: V,
    evaluate: E,
    options: &JacobianOptions,
) -> Result<JacobianReport, JacobianError>
where
    V: FnMut(&[f64]) -> Vec<Vec<f64>>,
    E: Fn(&[Tensor<f64>]) -> Tensor<f64>,
{
    options.validate()?;
    check_inputs(inputs)?;
    jacobian_core(inputs, vjp, |xs| evaluate(xs), options)
}

/// At least one input element, and every input element finite.
fn check_inputs(inputs: &[Tensor<f64>]) -> Result<(), JacobianError> {
    if inputs.iter().all(|t| t.is_empty()) {
        return Err(JacobianError::NoInputs(inputs.len()));
    }
    for (input, t) in inputs.iter().enumerate() {
        if let Some((element, &value)) = t.data().iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(JacobianError::NonFiniteInput {
                input,
                element,
                value,
            });
        }
    }
    Ok(())
}

/// `f(inputs)` on a recording tape: the tape, the input leaves and the output.
fn record<'d, B>(inputs: &[Tensor<f64>], f: &B) -> (Tape<'d, f64>, Vec<Var>, Var)
where
    B: Fn(&mut Tape<'d, f64>, &[Var]) -> Var,
{
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let out = f(&mut tape, &vars);
    (tape, vars, out)
}

/// uᵀJ for each input: the gradients of a backward pass from `out` seeded with `u`.
fn vjp(
    tape: &mut Tape<'_, f64>,
    vars: &[Var],
    out: Var,
    inputs: &[Tensor<f64>],
    u: &[f64],
) -> Vec<Vec<f64>> {
    let grads = tape.backward_with_seed(out, u);
    vars.iter()
        .zip(inputs)
        .map(|(&v, t)| grads.get_or_zeros(v, t.len()))
        .collect()
}

/// `f(inputs)` on a tape that records nothing, as a tensor.
fn evaluate_tensor<'d, B>(inputs: &mut [Tensor<f64>], f: &B) -> Tensor<f64>
where
    B: Fn(&mut Tape<'d, f64>, &[Var]) -> Var,
{
    let mut value = None;
    with_evaluation(inputs, f, |tape, out| value = Some(tape.tensor(out)));
    value.expect("read once")
}

/// The output at the inputs given: non-empty and finite.
fn base_output<E>(inputs: &[Tensor<f64>], evaluate: &mut E) -> Result<Tensor<f64>, JacobianError>
where
    E: FnMut(&mut [Tensor<f64>]) -> Tensor<f64>,
{
    let y = evaluate(&mut inputs.to_vec());
    if y.is_empty() {
        return Err(JacobianError::EmptyOutput(y.shape().to_vec()));
    }
    if let Some((output, &value)) = y.data().iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(JacobianError::NonFiniteOutput { output, value });
    }
    Ok(y)
}

/// The output at a perturbed point `at`: of `m` elements and finite.
fn nearby_output(
    y: Tensor<f64>,
    m: usize,
    at: impl Fn() -> String,
) -> Result<Tensor<f64>, JacobianError> {
    if y.len() != m {
        return Err(JacobianError::OutputSizeChanged {
            expected: m,
            found: y.len(),
            at: at(),
        });
    }
    if let Some((output, &value)) = y.data().iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(JacobianError::NonFiniteNearby {
            output,
            value,
            at: at(),
        });
    }
    Ok(y)
}

/// `grads` if it holds one gradient per input, each of its input's length.
fn checked_gradients(
    grads: Vec<Vec<f64>>,
    inputs: &[Tensor<f64>],
) -> Result<Vec<Vec<f64>>, JacobianError> {
    let fits =
        grads.len() == inputs.len() && grads.iter().zip(inputs).all(|(g, t)| g.len() == t.len());
    if fits {
        Ok(grads)
    } else {
        Err(JacobianError::GradientShape {
            expected: inputs.iter().map(Tensor::len).collect(),
            found: grads.iter().map(Vec::len).collect(),
        })
    }
}

/// The `(input, element)` of column `col`.
fn column_owner(inputs: &[Tensor<f64>], mut col: usize) -> (usize, usize) {
    for (k, t) in inputs.iter().enumerate() {
        if col < t.len() {
            return (k, col);
        }
        col -= t.len();
    }
    unreachable!("a column past the inputs")
}

fn jacobian_core<V, E>(
    inputs: &[Tensor<f64>],
    mut vjp: V,
    mut evaluate: E,
    options: &JacobianOptions,
) -> Result<JacobianReport, JacobianError>
where
    V: FnMut(&[f64]) -> Vec<Vec<f64>>,
    E: FnMut(&mut [Tensor<f64>]) -> Tensor<f64>,
{
    let y0 = base_output(inputs, &mut evaluate)?;
    let m = y0.len();
    let n: usize = inputs.iter().map(Tensor::len).sum();
    // Rows by reverse mode.
    let mut analytic = vec![0.0; m * n];
    let mut seed = vec![0.0; m];
    for (i, row) in analytic.chunks_exact_mut(n).enumerate() {
        seed[i] = 1.0;
        let grads = checked_gradients(vjp(&seed), inputs)?;
        seed[i] = 0.0;
        let mut col = 0;
        for g in &grads {
            row[col..col + g.len()].copy_from_slice(g);
            col += g.len();
        }
    }
    // Columns by central differences.
    let mut numeric = vec![0.0; m * n];
    let mut work = inputs.to_vec();
    let mut col = 0;
    for k in 0..inputs.len() {
        for i in 0..inputs[k].len() {
            let x0 = inputs[k].data()[i];
            let at = || format!("input {k} element {i} moved by ±eps");
            work[k].data_mut()[i] = x0 + options.eps;
            let up = nearby_output(evaluate(&mut work), m, at)?;
            work[k].data_mut()[i] = x0 - options.eps;
            let down = nearby_output(evaluate(&mut work), m, at)?;
            work[k].data_mut()[i] = x0;
            for (o, (u, d)) in up.data().iter().zip(down.data()).enumerate() {
                numeric[o * n + col] = (u - d) / (2.0 * options.eps);
            }
            col += 1;
        }
    }
    // The comparison.
    let mut worst = (0, f64::NEG_INFINITY);
    let mut max_abs = 0.0f64;
    let mut failures = 0;
    for (j, (&a, &num)) in analytic.iter().zip(&numeric).enumerate() {
        let ratio = options.ratio(a, num);
        if ratio > worst.1 {
            worst = (j, ratio);
        }
        let abs = (a - num).abs();
        max_abs = if abs.is_nan() {
            f64::INFINITY
        } else {
            max_abs.max(abs)
        };
        failures += usize::from(!options.accepts(a, num));
    }
    let (output, col) = (worst.0 / n, worst.0 % n);
    let (input, element) = column_owner(inputs, col);
    Ok(JacobianReport {
        output_shape: y0.shape().to_vec(),
        input_shapes: inputs.iter().map(|t| t.shape().to_vec()).collect(),
        worst: JacobianEntry {
            output,
            input,
            element,
            analytic: analytic[worst.0],
            numeric: numeric[worst.0],
        },
        worst_ratio: worst.1,
        max_abs_error: max_abs,
        failures,
        analytic: Tensor::from_vec(&[m, n], analytic),
        numeric: Tensor::from_vec(&[m, n], numeric),
        options: *options,
    })
}
