//! A small model defined with the engine and checked as a library user checks numerics:
//!
//! 1. its loss's gradient against central differences, element by element (`gradcheck`),
//!    with the data borrowed by the closure rather than copied into it;
//! 2. the Jacobian of its output probabilities by all parameters, in full and along random
//!    projections (`jacobian_check`, `jacobian_projection_check`);
//! 3. a property over random batches, labels and parameters with proptest: every row of the
//!    output is a probability distribution, the f32 forward agrees with the f64 forward, and
//!    the gradient check passes.
//!
//! The model is a two-layer perceptron with a softmax output, a Brier-score loss (the squared
//! distance of the probabilities to the one-hot labels) and two penalties on the weights, an
//! L2 norm ‖W₁‖ and an L1 sum Σ|W₂|; it is written once, generic over the float type.
//!
//!     cargo run --release --example custom_model
//!
//! `tests/examples.rs` runs the same checks, so that this program cannot fall behind the
//! library.

use hypertape::gradcheck::{
    gradcheck, jacobian_check, jacobian_projection_check, GradCheckOptions, JacobianOptions,
};
use hypertape::rng::Rng;
use hypertape::{Float, Tape, Tensor, Var};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRng, TestRunner};

/// Inputs per example.
pub const INPUTS: usize = 4;
/// Hidden units.
pub const HIDDEN: usize = 5;
/// Classes.
pub const CLASSES: usize = 3;
/// Examples per batch.
pub const BATCH: usize = 6;

/// The shapes of the parameters: W₁, b₁, W₂, b₂.
pub fn parameter_shapes() -> [Vec<usize>; 4] {
    [
        vec![HIDDEN, INPUTS],
        vec![HIDDEN],
        vec![CLASSES, HIDDEN],
        vec![CLASSES],
    ]
}

/// Parameters drawn from `seed`: uniform in ±1/√fan-in.
pub fn init_parameters(seed: u64) -> Vec<Tensor<f64>> {
    let mut rng = Rng::new(seed);
    parameter_shapes()
        .iter()
        .map(|shape| {
            let fan_in = if shape.len() == 2 { shape[1] } else { HIDDEN };
            let bound = 1.0 / (fan_in as f64).sqrt();
            Tensor::from_fn(shape, |_| rng.uniform_range(-bound, bound))
        })
        .collect()
}

/// softmax(tanh(x·W₁ᵀ + b₁)·W₂ᵀ + b₂): the class probabilities of each row of x.
pub fn probabilities<F: Float>(tape: &mut Tape<'_, F>, params: &[Var], x: Var) -> Var {
    let h = tape.linear(x, params[0], Some(params[1]));
    let h = tape.tanh(h);
    let logits = tape.linear(h, params[2], Some(params[3]));
    tape.softmax(logits)
}

/// [`probabilities`] of a batch `x` [BATCH × INPUTS] borrowed for the tape's lifetime `'d`.
pub fn batch_probabilities<'d, F: Float>(
    tape: &mut Tape<'d, F>,
    params: &[Var],
    x: &'d [F],
) -> Var {
    let x = tape.constant_ref(&[BATCH, INPUTS], x);
    probabilities(tape, params, x)
}

/// Brier score (1/B)·Σ‖p − onehot‖² plus 0.01·‖W₁‖ (√ of Σ W₁²) plus 0.001·Σ|W₂|.
pub fn loss<'d, F: Float>(
    tape: &mut Tape<'d, F>,
    params: &[Var],
    x: &'d [F],
    onehot: &'d [F],
) -> Var {
    let p = batch_probabilities(tape, params, x);
    let targets = tape.constant_ref(&[BATCH, CLASSES], onehot);
    let brier = tape.squared_distance(p, targets);
    let brier = tape.scale(brier, F::from_f64(1.0 / BATCH as f64));
    let w1_squared = tape.pow(params[0], 2.0);
    let w1_sum = tape.sum(w1_squared);
    let w1_norm = tape.sqrt(w1_sum);
    let l2 = tape.scale(w1_norm, F::from_f64(0.01));
    let w2_abs = tape.abs(params[2]);
    let w2_sum = tape.sum(w2_abs);
    let l1 = tape.scale(w2_sum, F::from_f64(0.001));
    let total = tape.add(brier, l2);
    tape.add(total, l1)
}

/// One-hot rows for `labels`.
pub fn one_hot(labels: &[usize]) -> Vec<f64> {
    let mut t = vec![0.0; labels.len() * CLASSES];
    for (row, &c) in labels.iter().enumerate() {
        t[row * CLASSES + c] = 1.0;
    }
    t
}

/// What the checks found.
#[derive(Debug)]
pub struct Summary {
    /// Parameter elements checked.
    pub parameters: usize,
    /// Largest |a − n| / max(|a|, |n|, 1) of the loss's gradient.
    pub gradient_max_rel_error: f64,
    /// Entries of the full Jacobian of the probabilities (outputs × parameters).
    pub jacobian_entries: usize,
    /// Its largest |a − n| / (atol + rtol·|n|) (at most 1 passes).
    pub jacobian_worst_ratio: f64,
    /// Random projections checked, and their largest ratio.
    pub projections: (usize, f64),
    /// Cases of the property that passed.
    pub property_cases: u32,
}

/// Largest |a − b| / max(|a|, 1) of the f32 forward of the loss against its f64 forward.
fn f32_vs_f64(params: &[Tensor<f64>], x: &[f64], onehot: &[f64]) -> f64 {
    let mut wide = Tape::<f64>::no_grad();
    let vars: Vec<Var> = params.iter().map(|t| wide.constant(t.clone())).collect();
    let l64 = loss(&mut wide, &vars, x, onehot);
    let (x32, t32): (Vec<f32>, Vec<f32>) = (
        x.iter().map(|&v| v as f32).collect(),
        onehot.iter().map(|&v| v as f32).collect(),
    );
    let mut narrow = Tape::<f32>::no_grad();
    let vars: Vec<Var> = params.iter().map(|t| narrow.constant(t.cast())).collect();
    let l32 = loss(&mut narrow, &vars, &x32, &t32);
    let (a, b) = (wide.item(l64), f64::from(narrow.item(l32)));
    (a - b).abs() / a.abs().max(1.0)
}

/// Runs the three checks, writing what each checked to `out`; an error names the check
/// that failed, with its report.
pub fn run(out: &mut impl std::io::Write) -> Result<Summary, String> {
    let mut rng = Rng::new(7);
    let x: Vec<f64> = (0..BATCH * INPUTS)
        .map(|_| rng.uniform_range(-2.0, 2.0))
        .collect();
    let labels: Vec<usize> = (0..BATCH).map(|_| rng.below(CLASSES)).collect();
    let onehot = one_hot(&labels);
    let params = init_parameters(42);
    let parameters: usize = params.iter().map(Tensor::len).sum();
    let say = |out: &mut dyn std::io::Write, line: String| {
        writeln!(out, "{line}").map_err(|e| e.to_string())
    };

    // 1. The loss's gradient by every parameter element; the closure borrows x and onehot.
    let report = gradcheck(
        &params,
        |tape, ps| loss(tape, ps, &x, &onehot),
        &GradCheckOptions::default(),
    );
    if !report.passed() {
        return Err(format!("gradient check failed:\n{report}"));
    }
    say(
        out,
        format!(
            "gradient check of the loss: {} parameters in {} tensors, 2 × {parameters} forward passes, \
             max error {:.2e} (tolerance 1e-6): ok",
            parameters,
            params.len(),
            report.max_rel_error()
        ),
    )?;

    // 2. The Jacobian of the probabilities [BATCH, CLASSES] by the parameters.
    // (A closure stored in a variable and annotated `&mut Tape<'_, f64>` would have to work
    // for every tape lifetime, so it could borrow only 'static data: pass closures directly,
    // as here, and put shared code in functions generic over the lifetime.)
    let options = JacobianOptions::default();
    let full = jacobian_check(&params, |t, ps| batch_probabilities(t, ps, &x), &options)
        .map_err(|e| e.to_string())?;
    if !full.passed() {
        return Err(format!("Jacobian check failed: {full}"));
    }
    let w = full.worst;
    say(
        out,
        format!(
            "full Jacobian of the probabilities {:?}: {} × {} entries, worst at output {} by \
             input {} element {} (analytic {:.6e}, numeric {:.6e}), {:.2e} of the tolerance \
             1e-6 + 1e-6·|n|: ok",
            full.output_shape,
            BATCH * CLASSES,
            parameters,
            w.output,
            w.input,
            w.element,
            w.analytic,
            w.numeric,
            full.worst_ratio
        ),
    )?;
    let projected = jacobian_projection_check(
        &params,
        |t, ps| batch_probabilities(t, ps, &x),
        8,
        1,
        &options,
    )
    .map_err(|e| e.to_string())?;
    if !projected.passed() {
        return Err(format!("projection check failed: {projected}"));
    }
    say(
        out,
        format!(
            "random projections uᵀJv: {} pairs of unit vectors, worst {:.2e} of the tolerance: ok",
            projected.projections.len(),
            projected.worst_ratio
        ),
    )?;

    // 3. A property over random batches, labels and parameters.
    let cases = 48;
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::deterministic_rng(Config::default().rng_algorithm),
    );
    let strategy = (
        prop::collection::vec(-3.0f64..3.0, BATCH * INPUTS),
        prop::collection::vec(0..CLASSES, BATCH),
        any::<u64>(),
    );
    runner
        .run(&strategy, |(x, labels, seed)| {
            let onehot = one_hot(&labels);
            let params = init_parameters(seed);
            // Rows of probabilities: in [0, 1], summing to 1.
            let mut tape = Tape::<f64>::no_grad();
            let vars: Vec<Var> = params.iter().map(|t| tape.constant(t.clone())).collect();
            let p = batch_probabilities(&mut tape, &vars, &x);
            for row in tape.value(p).chunks(CLASSES) {
                prop_assert!(row.iter().all(|v| (0.0..=1.0).contains(v)), "{:?}", row);
                let total: f64 = row.iter().sum();
                prop_assert!((total - 1.0).abs() < 1e-12, "a row sums to {}", total);
            }
            // The f32 model computes what the f64 model does, to f32 rounding.
            let err = f32_vs_f64(&params, &x, &onehot);
            prop_assert!(err < 1e-5, "f32 vs f64 loss: relative error {}", err);
            // And its gradient checks out here too.
            let report = gradcheck(
                &params,
                |tape, ps| loss(tape, ps, &x, &onehot),
                &GradCheckOptions::default(),
            );
            prop_assert!(report.passed(), "{}", report);
            Ok(())
        })
        .map_err(|e| format!("property failed: {e}"))?;
    say(
        out,
        format!(
            "property over {cases} random batches, labels and parameters (proptest): \
             probabilities in [0, 1] summing to 1, f32 loss within 1e-5 of the f64 loss, \
             gradient check passed: ok"
        ),
    )?;

    Ok(Summary {
        parameters,
        gradient_max_rel_error: report.max_rel_error(),
        jacobian_entries: full.analytic.len(),
        jacobian_worst_ratio: full.worst_ratio,
        projections: (projected.projections.len(), projected.worst_ratio),
        property_cases: cases,
    })
}

fn main() {
    match run(&mut std::io::stdout()) {
        Ok(_) => println!("all checks passed"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
