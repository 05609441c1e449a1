//! The random-projection mode of the Jacobian check: uᵀJv by reverse mode against a central
//! difference of uᵀf along v, for random unit vectors u and v (as JAX's `check_grads`).

use super::{
    base_output, check_inputs, checked_gradients, evaluate_tensor, nearby_output, record, vjp,
    JacobianError, JacobianOptions,
};
use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::Tensor;
use crate::rng::Rng;
use std::fmt;

/// One projection uᵀJv.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Projection {
    /// Its position (the random vectors of projection p derive from the seed and p).
    pub index: usize,
    /// uᵀJv: the gradient seeded with u, by reverse mode, dotted with v.
    pub analytic: f64,
    /// (uᵀf(x + εv) − uᵀf(x − εv)) / 2ε.
    pub numeric: f64,
}

/// The outcome of [`jacobian_projection_check`] or [`projection_compare`].
#[derive(Clone, Debug)]
pub struct ProjectionReport {
    /// Every projection, in order.
    pub projections: Vec<Projection>,
    /// The projection of largest [`JacobianOptions::ratio`] (the first of them on ties).
    pub worst: Projection,
    /// Its ratio |a − n| / (atol + rtol·|n|); the check passes if it is at most 1.
    pub worst_ratio: f64,
    /// Projections outside the tolerance.
    pub failures: usize,
    /// The options checked with.
    pub options: JacobianOptions,
}

impl ProjectionReport {
    /// True if every projection is within |a − n| ≤ atol + rtol·|n|.
    pub fn passed(&self) -> bool {
        self.failures == 0
    }
}

impl fmt::Display for ProjectionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = &self.worst;
        write!(
            f,
            "{} random projections uᵀJv, {} outside |a - n| <= {:e} + {:e}·|n|; worst: \
             projection {}: analytic {:.9e}, numeric {:.9e} (|a - n| {:.3e}, {:.2e} of the tolerance) {}",
            self.projections.len(),
            self.failures,
            self.options.atol,
            self.options.rtol,
            w.index,
            w.analytic,
            w.numeric,
            (w.analytic - w.numeric).abs(),
            self.worst_ratio,
            if self.passed() { "ok" } else { "FAIL" }
        )
    }
}

/// Checks the Jacobian of `f(inputs)` along `projections` pairs of random unit vectors u
/// (over the output's elements) and v (over all inputs' elements), drawn from `seed`: uᵀJv by
/// one backward pass (the gradient seeded with u, dotted with v) against the central
/// difference (uᵀf(x + εv) − uᵀf(x − εv)) / 2ε, whatever the sizes. A wrong entry of J is
/// missed only if u and v are both near-orthogonal to it; several projections make that
/// unlikely.
///
/// # Errors
/// As [`jacobian_check`](super::jacobian_check), and if `projections` is 0.
///
/// ```
/// use hypertape::gradcheck::{jacobian_projection_check, JacobianOptions};
/// use hypertape::Tensor;
///
/// // Row-wise softmax of a 4×5 matrix of logits: a 20×20 Jacobian, checked along 3 pairs of
/// // directions (3 backward and 6 forward passes instead of 20 and 40).
/// let x = Tensor::from_fn(&[4, 5], |i| (i as f64 * 0.7).sin());
/// let report = jacobian_projection_check(
///     &[x],
///     |tape, xs| tape.softmax(xs[0]),
///     3,
///     42,
///     &JacobianOptions::default(),
/// )?;
/// assert!(report.passed(), "{report}");
/// assert_eq!(report.projections.len(), 3);
/// # Ok::<(), hypertape::gradcheck::JacobianError>(())
/// ```
pub fn jacobian_projection_check<'d, B>(
    inputs: &[Tensor<f64>],
    f: B,
    projections: usize,
    seed: u64,
    options: &JacobianOptions,
) -> Result<ProjectionReport, JacobianError>
where
    B: Fn(&mut Tape<'d, f64>, &[Var]) -> Var,
{
    options.validate()?;
    check_projections(projections)?;
    check_inputs(inputs)?;
    let (mut tape, vars, out) = record(inputs, &f);
    projection_core(
        inputs,
        |u| vjp(&mut tape, &vars, out, inputs, u),
        |xs| evaluate_tensor(xs, &f),
        projections,
        seed,
        options,
    )
}

/// [`jacobian_projection_check`] for a Jacobian computed by code other than one tape, with
/// `vjp` and `evaluate` as for [`jacobian_compare`](super::jacobian_compare).
///
/// # Errors
/// As [`jacobian_projection_check`].
pub fn projection_compare<V, E>(
    inputs: &[Tensor<f64>],
    vjp: V,
    evaluate: E,
    projections: usize,
    seed: u64,
    options: &JacobianOptions,
) -> Result<ProjectionReport, JacobianError>
where
    V: FnMut(&[f64]) -> Vec<Vec<f64>>,
    E: Fn(&[Tensor<f64>]) -> Tensor<f64>,
{
    options.validate()?;
    check_projections(projections)?;
    check_inputs(inputs)?;
    projection_core(inputs, vjp, |xs| evaluate(xs), projections, seed, options)
}

fn check_projections(projections: usize) -> Result<(), JacobianError> {
    if projections == 0 {
        return Err(JacobianError::InvalidOptions(
            "0 projections: ask for at least one".into(),
        ));
    }
    Ok(())
}

/// A random unit vector of `len` elements (normalised N(0, 1) entries).
fn unit_vector(rng: &mut Rng, len: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..len).map(|_| rng.normal()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm.max(f64::MIN_POSITIVE));
    v
}

fn projection_core<V, E>(
    inputs: &[Tensor<f64>],
    mut vjp: V,
    mut evaluate: E,
    projections: usize,
    seed: u64,
    options: &JacobianOptions,
) -> Result<ProjectionReport, JacobianError>
where
    V: FnMut(&[f64]) -> Vec<Vec<f64>>,
    E: FnMut(&mut [Tensor<f64>]) -> Tensor<f64>,
{
    let m = base_output(inputs, &mut evaluate)?.len();
    let n: usize = inputs.iter().map(Tensor::len).sum();
    let mut found = Vec::with_capacity(projections);
    for p in 0..projections {
        let mut rng = Rng::derived(seed, "jacobian-projection", p as u64);
        let u = unit_vector(&mut rng, m);
        let v = unit_vector(&mut rng, n);
        let grads = checked_gradients(vjp(&u), inputs)?;
        let analytic: f64 = grads.iter().flatten().zip(&v).map(|(g, d)| g * d).sum();
        let at = || format!("the point of projection {p}, moved by ±eps along v");
        let shifted = |sign: f64| -> Vec<Tensor<f64>> {
            let mut offset = 0;
            inputs
                .iter()
                .map(|x| {
                    let dir = &v[offset..offset + x.len()];
                    offset += x.len();
                    let data = x
                        .data()
                        .iter()
                        .zip(dir)
                        .map(|(a, d)| a + sign * options.eps * d);
                    Tensor::from_vec(x.shape(), data.collect())
                })
                .collect()
        };
        let up = nearby_output(evaluate(&mut shifted(1.0)), m, at)?;
        let down = nearby_output(evaluate(&mut shifted(-1.0)), m, at)?;
        let dot = |y: &Tensor<f64>| y.data().iter().zip(&u).map(|(a, b)| a * b).sum::<f64>();
        let numeric = (dot(&up) - dot(&down)) / (2.0 * options.eps);
        found.push(Projection {
            index: p,
            analytic,
            numeric,
        });
    }
    let mut worst = (0, f64::NEG_INFINITY);
    for (p, pr) in found.iter().enumerate() {
        let ratio = options.ratio(pr.analytic, pr.numeric);
        if ratio > worst.1 {
            worst = (p, ratio);
        }
    }
    let failures = found
        .iter()
        .filter(|p| !options.accepts(p.analytic, p.numeric))
        .count();
    Ok(ProjectionReport {
        worst: found[worst.0],
        worst_ratio: worst.1,
        failures,
        projections: found,
        options: *options,
    })
}
