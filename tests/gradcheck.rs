//! The gradient checks as a library user calls them: closures that borrow their data, the
//! Jacobian checks of tensor outputs (full and along random projections) on functions whose
//! Jacobians are known in closed form, their detection of wrong backward rules, their errors
//! on misuse, and the reuse of a tape after backward.
//!
//! ```text
//! cargo test --release --test gradcheck
//! ```

use hypertape::gradcheck::{
    directional_check, gradcheck, jacobian_check, jacobian_compare, jacobian_projection_check,
    projection_compare, GradCheckOptions, JacobianError, JacobianOptions,
};
use hypertape::rng::Rng;
use hypertape::{Tape, Tensor, Var};
use proptest::prelude::*;

fn uniform(shape: &[usize], seed: u64) -> Tensor<f64> {
    let mut rng = Rng::new(seed);
    Tensor::from_fn(shape, |_| rng.uniform_range(-1.0, 1.0))
}

fn defaults() -> JacobianOptions {
    JacobianOptions::default()
}

// ---------------------------------------------------------------------------------------------
// Closures that borrow

/// tanh(x·Wᵀ + b) for a batch x borrowed for the tape's lifetime.
fn model<'d>(tape: &mut Tape<'d, f64>, xs: &[Var], batch: &'d [f64]) -> Var {
    let x = tape.constant_ref(&[4, 3], batch);
    let h = tape.linear(x, xs[0], Some(xs[1]));
    tape.tanh(h)
}

/// ‖model − targets‖², the targets borrowed too.
fn loss<'d>(tape: &mut Tape<'d, f64>, xs: &[Var], batch: &'d [f64], targets: &'d [f64]) -> Var {
    let y = model(tape, xs, batch);
    let t = tape.constant_ref(&[4, 2], targets);
    tape.squared_distance(y, t)
}

/// A batch and targets owned by the caller, borrowed (not cloned) by the closures of every
/// check: `constant_ref` inside them takes `&data` for the tape's lifetime.
#[test]
fn checks_take_closures_that_borrow_their_data() {
    let batch: Vec<f64> = (0..12).map(|i| (i as f64 * 0.37).sin()).collect(); // 4×3
    let targets: Vec<f64> = (0..8).map(|i| (i as f64 * 0.91).cos()).collect(); // 4×2
    let inputs = [uniform(&[2, 3], 1), uniform(&[2], 2)];
    let options = GradCheckOptions::default();
    // Closures passed directly: their parameter types are inferred from the check's bound.
    let report = gradcheck(
        &inputs,
        |tape, xs| {
            let x = tape.constant_ref(&[4, 3], &batch);
            let h = tape.linear(x, xs[0], Some(xs[1]));
            let h = tape.tanh(h);
            let t = tape.constant_ref(&[4, 2], &targets);
            tape.squared_distance(h, t)
        },
        &options,
    );
    assert!(report.passed(), "{report}");
    // Functions generic over the tape's lifetime, called from closures.
    let report = gradcheck(&inputs, |t, xs| loss(t, xs, &batch, &targets), &options);
    assert!(report.passed(), "{report}");
    let report = directional_check(&inputs, |t, xs| loss(t, xs, &batch, &targets), 3, &options);
    assert!(report.passed, "{report}");
    let report = jacobian_check(&inputs, |t, xs| model(t, xs, &batch), &defaults()).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.analytic.shape(), &[8, 8]);
    let report =
        jacobian_projection_check(&inputs, |t, xs| model(t, xs, &batch), 4, 9, &defaults())
            .unwrap();
    assert!(report.passed(), "{report}");
}

// ---------------------------------------------------------------------------------------------
// Known Jacobians

/// y = x ⊙ x: J = diag(2x), every off-diagonal entry exactly 0.
#[test]
fn the_jacobian_of_a_square_is_diagonal() {
    let x = Tensor::from_vec(&[3], vec![0.5, -1.5, 2.0]);
    let report = jacobian_check(&[x], |t, v| t.mul(v[0], v[0]), &defaults()).unwrap();
    assert!(report.passed(), "{report}");
    #[rustfmt::skip]
    let expected = [
        1.0, 0.0, 0.0,
        0.0, -3.0, 0.0,
        0.0, 0.0, 4.0,
    ];
    assert_eq!(report.analytic.shape(), &[3, 3]);
    assert_eq!(report.analytic.data(), &expected);
    for (n, e) in report.numeric.data().iter().zip(&expected) {
        assert!((n - e).abs() < 1e-9, "numeric {n} vs {e}");
    }
    assert_eq!(report.failures, 0);
    assert!(report.worst_ratio <= 1.0);
    assert_eq!(report.output_shape, vec![3]);
}

/// y = W·x with both inputs free: ∂yᵢ/∂Wᵢⱼ = xⱼ (0 for other rows), ∂yᵢ/∂xⱼ = Wᵢⱼ. The
/// columns are W's six elements, then x's two.
#[test]
fn the_jacobian_of_a_product_by_both_factors() {
    let w = Tensor::from_vec(&[3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let x = Tensor::from_vec(&[2, 1], vec![0.5, -1.0]);
    let report = jacobian_check(&[w, x], |t, v| t.matmul(v[0], v[1]), &defaults()).unwrap();
    assert!(report.passed(), "{report}");
    #[rustfmt::skip]
    let expected = [
        0.5, -1.0, 0.0, 0.0, 0.0, 0.0,  1.0, 2.0,
        0.0, 0.0, 0.5, -1.0, 0.0, 0.0,  3.0, 4.0,
        0.0, 0.0, 0.0, 0.0, 0.5, -1.0,  5.0, 6.0,
    ];
    assert_eq!(report.analytic.shape(), &[3, 8]);
    assert_eq!(report.analytic.data(), &expected);
    let e = report.entry(2, 1, 1);
    assert_eq!((e.output, e.input, e.element, e.analytic), (2, 1, 1, 6.0));
    assert!((e.numeric - 6.0).abs() < 1e-9);
    let e = report.entry(1, 0, 3);
    assert_eq!(e.analytic, -1.0);
    assert_eq!(report.input_shapes, vec![vec![3, 2], vec![2, 1]]);
}

/// Softmax of one row: J = diag(y) − y yᵀ, at logits [0, ln 3] where y = [1/4, 3/4]:
/// [[3/16, −3/16], [−3/16, 3/16]].
#[test]
fn the_jacobian_of_softmax_is_diag_y_minus_y_y_transposed() {
    let x = Tensor::from_vec(&[1, 2], vec![0.0, 3f64.ln()]);
    let report = jacobian_check(&[x], |t, v| t.softmax(v[0]), &defaults()).unwrap();
    assert!(report.passed(), "{report}");
    let expected = [0.1875, -0.1875, -0.1875, 0.1875];
    for (a, e) in report.analytic.data().iter().zip(&expected) {
        assert!((a - e).abs() < 1e-15, "analytic {a} vs {e}");
    }
}

/// For a scalar function the Jacobian is the gradient of `gradcheck`, one row.
#[test]
fn a_scalar_function_has_its_gradient_as_jacobian() {
    let x = uniform(&[2, 3], 5);
    let f = |t: &mut Tape<'_, f64>, v: &[Var]| {
        let h = t.tanh(v[0]);
        let s = t.square(h);
        t.sum(s)
    };
    let report = jacobian_check(std::slice::from_ref(&x), f, &defaults()).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.analytic.shape(), &[1, 6]);
    // d/dx Σ tanh² x = 2 tanh x (1 − tanh² x).
    for (a, &v) in report.analytic.data().iter().zip(x.data()) {
        let th = v.tanh();
        assert!((a - 2.0 * th * (1.0 - th * th)).abs() < 1e-15);
    }
}

/// uᵀJv of y = A·x with A known: with the vjp written out (uᵀA) the projection check passes,
/// and its analytic value is uᵀAv exactly as computed here.
#[test]
fn projections_of_a_known_linear_map() {
    let a = uniform(&[4, 3], 11);
    let x = uniform(&[3], 12);
    let evaluate = |xs: &[Tensor<f64>]| {
        let y: Vec<f64> = (0..4)
            .map(|i| (0..3).map(|j| a.data()[i * 3 + j] * xs[0].data()[j]).sum())
            .collect();
        Tensor::from_vec(&[4], y)
    };
    let vjp = |u: &[f64]| -> Vec<Vec<f64>> {
        vec![(0..3)
            .map(|j| (0..4).map(|i| u[i] * a.data()[i * 3 + j]).sum::<f64>())
            .collect()]
    };
    let report =
        projection_compare(std::slice::from_ref(&x), vjp, evaluate, 5, 3, &defaults()).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.projections.len(), 5);
    for p in &report.projections {
        assert!((p.analytic - p.numeric).abs() < 1e-9, "{p:?}");
    }
    let full = jacobian_compare(&[x], vjp, evaluate, &defaults()).unwrap();
    assert!(full.passed(), "{full}");
    assert_eq!(full.analytic.data(), a.data());
}

// ---------------------------------------------------------------------------------------------
// Wrong backward rules are caught

/// f(x) = x ⊙ stop_gradient(x): the tape sees a constant copy, so reverse mode gives
/// diag(x) where the true Jacobian is diag(2x). Both modes fail, and the full check names a
/// diagonal entry with its analytic and numeric values.
#[test]
fn both_modes_catch_a_missing_gradient_path() {
    let x = Tensor::from_vec(&[3], vec![0.5, -1.5, 2.0]);
    let detached = |t: &mut Tape<'_, f64>, v: &[Var]| {
        let frozen = t.tensor(v[0]);
        let c = t.constant(frozen);
        t.mul(v[0], c)
    };
    let full = jacobian_check(std::slice::from_ref(&x), detached, &defaults()).unwrap();
    assert!(!full.passed());
    assert_eq!(full.failures, 3, "{full}");
    let w = full.worst;
    assert_eq!((w.output, w.input, w.element), (2, 0, 2), "{full}");
    assert_eq!(w.analytic, 2.0);
    assert!((w.numeric - 4.0).abs() < 1e-8);
    let text = full.to_string();
    assert!(
        text.contains("worst at output 2, input 0 element 2") && text.contains("FAIL"),
        "{text}"
    );
    let projected = jacobian_projection_check(&[x], detached, 3, 0, &defaults()).unwrap();
    assert!(!projected.passed(), "{projected}");
    assert_eq!(projected.failures, 3);
}

/// A hand-written backward of y = A·x that uses A where Aᵀ belongs (a transposed product):
/// for a non-symmetric A both modes fail.
#[test]
fn both_modes_catch_a_transposed_backward() {
    let a = [1.0, 2.0, -3.0, 0.5]; // 2×2, not symmetric
    let x = Tensor::from_vec(&[2], vec![0.3, -0.7]);
    let evaluate = |xs: &[Tensor<f64>]| {
        let v = xs[0].data();
        Tensor::from_vec(
            &[2],
            vec![a[0] * v[0] + a[1] * v[1], a[2] * v[0] + a[3] * v[1]],
        )
    };
    // Correct: uᵀA = [u₀a₀ + u₁a₂, u₀a₁ + u₁a₃]. Wrong: (Au)ᵀ.
    let wrong = |u: &[f64]| vec![vec![a[0] * u[0] + a[1] * u[1], a[2] * u[0] + a[3] * u[1]]];
    let full = jacobian_compare(std::slice::from_ref(&x), wrong, evaluate, &defaults()).unwrap();
    assert!(!full.passed());
    assert_eq!(full.failures, 2, "{full}"); // the two off-diagonal entries
    let w = full.worst;
    assert_eq!((w.output, w.element), (0, 1), "{full}");
    assert_eq!(w.analytic, -3.0);
    assert!((w.numeric - 2.0).abs() < 1e-9);
    let projected = projection_compare(&[x], wrong, evaluate, 4, 1, &defaults()).unwrap();
    assert!(!projected.passed(), "{projected}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Over shapes and matrices: a backward of y = A·x that is off by δ ≥ 1e-4 in one entry
    /// of A fails the full check on exactly that entry, reported as the worst; the exact
    /// backward passes both modes.
    #[test]
    fn the_full_check_finds_the_one_wrong_entry(
        m in 1usize..6, n in 1usize..6, seed in any::<u64>(),
        row in 0usize..6, col in 0usize..6, delta in 1e-4f64..1.0, sign in any::<bool>(),
    ) {
        let (row, col) = (row % m, col % n);
        let a = uniform(&[m, n], seed);
        let x = uniform(&[n], seed ^ 1);
        let evaluate = |xs: &[Tensor<f64>]| {
            let y = (0..m)
                .map(|i| (0..n).map(|j| a.data()[i * n + j] * xs[0].data()[j]).sum())
                .collect();
            Tensor::from_vec(&[m], y)
        };
        let vjp_of = |b: &[f64]| {
            let b = b.to_vec();
            move |u: &[f64]| -> Vec<Vec<f64>> {
                vec![(0..n).map(|j| (0..m).map(|i| u[i] * b[i * n + j]).sum::<f64>()).collect()]
            }
        };
        let exact = jacobian_compare(std::slice::from_ref(&x), vjp_of(a.data()), evaluate, &defaults()).unwrap();
        prop_assert!(exact.passed(), "{}", exact);
        let projected = projection_compare(std::slice::from_ref(&x), vjp_of(a.data()), evaluate, 2, seed, &defaults()).unwrap();
        prop_assert!(projected.passed(), "{}", projected);
        let mut off = a.data().to_vec();
        off[row * n + col] += if sign { delta } else { -delta };
        let wrong = jacobian_compare(&[x], vjp_of(&off), evaluate, &defaults()).unwrap();
        prop_assert_eq!(wrong.failures, 1, "{}", wrong);
        prop_assert_eq!((wrong.worst.output, wrong.worst.element), (row, col));
    }

    /// Over shapes and logits: the Jacobian of row-wise softmax checks out and equals
    /// diag(y) − y yᵀ within each row, 0 across rows.
    #[test]
    fn softmax_jacobians_check_out(rows in 1usize..4, cols in 1usize..5, seed in any::<u64>()) {
        let x = uniform(&[rows, cols], seed);
        let report = jacobian_check(&[x], |t, v| t.softmax(v[0]), &defaults()).unwrap();
        prop_assert!(report.passed(), "{}", report);
        let n = rows * cols;
        // y from the tape, then the closed form.
        let mut tape = Tape::<f64>::no_grad();
        let xv = tape.constant(uniform(&[rows, cols], seed));
        let sv = tape.softmax(xv);
        let s = tape.value(sv).to_vec();
        for i in 0..n {
            for j in 0..n {
                let same_row = i / cols == j / cols;
                let expected = if !same_row { 0.0 } else if i == j { s[i] - s[i] * s[j] } else { -s[i] * s[j] };
                let a = report.analytic.data()[i * n + j];
                prop_assert!((a - expected).abs() < 1e-15, "J[{}, {}] = {} vs {}", i, j, a, expected);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Misuse: clear errors, no panics

#[test]
fn misuse_gives_errors_that_say_what_is_wrong() {
    let id = |t: &mut Tape<'_, f64>, v: &[Var]| t.scale(v[0], 2.0);
    let x = Tensor::from_vec(&[2], vec![1.0, 2.0]);

    let err = jacobian_check(&[], id, &defaults()).unwrap_err();
    assert_eq!(err, JacobianError::NoInputs(0));
    assert!(err.to_string().contains("no input elements"), "{err}");
    let err = jacobian_check(&[Tensor::zeros(&[0, 3])], id, &defaults()).unwrap_err();
    assert_eq!(err, JacobianError::NoInputs(1));
    let err = jacobian_projection_check(&[], id, 2, 0, &defaults()).unwrap_err();
    assert_eq!(err, JacobianError::NoInputs(0));

    let nan_input = Tensor::from_vec(&[2], vec![1.0, f64::NAN]);
    let err = jacobian_check(&[nan_input], id, &defaults()).unwrap_err();
    assert!(
        matches!(
            err,
            JacobianError::NonFiniteInput {
                input: 0,
                element: 1,
                ..
            }
        ),
        "{err}"
    );

    let empty_out = |t: &mut Tape<'_, f64>, v: &[Var]| t.narrow_flat(v[0], 0, 0);
    let err = jacobian_check(std::slice::from_ref(&x), empty_out, &defaults()).unwrap_err();
    assert_eq!(err, JacobianError::EmptyOutput(vec![0]));
    assert!(err.to_string().contains("no elements"), "{err}");

    // ln of a negative number: NaN at the point itself.
    let neg = Tensor::from_vec(&[2], vec![1.0, -1.0]);
    let log = |t: &mut Tape<'_, f64>, v: &[Var]| t.log(v[0]);
    let err = jacobian_check(&[neg], log, &defaults()).unwrap_err();
    assert!(
        matches!(err, JacobianError::NonFiniteOutput { output: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("output element 1 is NaN"), "{err}");

    // ln at 1e-7 with ε = 1e-6: finite at the point, NaN at x − ε.
    let near_pole = Tensor::from_vec(&[2], vec![1.0, 1e-7]);
    let err = jacobian_check(std::slice::from_ref(&near_pole), log, &defaults()).unwrap_err();
    match &err {
        JacobianError::NonFiniteNearby { output, at, .. } => {
            assert_eq!(*output, 1);
            assert!(at.contains("input 0 element 1"), "{at}");
        }
        other => panic!("expected NonFiniteNearby, got {other:?}"),
    }
    let nearer = Tensor::from_vec(&[2], vec![1.0, 1e-13]);
    let err = jacobian_projection_check(&[nearer], log, 1, 0, &defaults()).unwrap_err();
    assert!(
        matches!(err, JacobianError::NonFiniteNearby { .. }),
        "{err}"
    );

    // An output whose size depends on the input's value.
    let jumpy = |t: &mut Tape<'_, f64>, v: &[Var]| {
        let n = if t.value(v[0])[0] > 1.0 { 1 } else { 2 };
        t.narrow_flat(v[0], 0, n)
    };
    let err = jacobian_check(std::slice::from_ref(&x), jumpy, &defaults()).unwrap_err();
    assert!(
        matches!(
            err,
            JacobianError::OutputSizeChanged {
                expected: 2,
                found: 1,
                ..
            }
        ),
        "{err}"
    );

    for options in [
        JacobianOptions {
            eps: 0.0,
            ..defaults()
        },
        JacobianOptions {
            eps: f64::NAN,
            ..defaults()
        },
        JacobianOptions {
            atol: -1.0,
            ..defaults()
        },
        JacobianOptions {
            rtol: f64::INFINITY,
            ..defaults()
        },
    ] {
        let err = jacobian_check(std::slice::from_ref(&x), id, &options).unwrap_err();
        assert!(matches!(err, JacobianError::InvalidOptions(_)), "{err}");
    }
    // A hand-written vjp of the wrong shape.
    let evaluate = |xs: &[Tensor<f64>]| xs[0].clone();
    let short = |_: &[f64]| vec![vec![1.0]];
    let err = jacobian_compare(std::slice::from_ref(&x), short, evaluate, &defaults()).unwrap_err();
    assert_eq!(
        err,
        JacobianError::GradientShape {
            expected: vec![2],
            found: vec![1]
        }
    );
    assert!(
        err.to_string().contains("lengths [1] for inputs of [2]"),
        "{err}"
    );
    let none = |_: &[f64]| Vec::new();
    let err = projection_compare(std::slice::from_ref(&x), none, evaluate, 1, 0, &defaults())
        .unwrap_err();
    assert!(matches!(err, JacobianError::GradientShape { .. }), "{err}");

    let err =
        jacobian_projection_check(std::slice::from_ref(&x), id, 0, 0, &defaults()).unwrap_err();
    assert!(err.to_string().contains("0 projections"), "{err}");
}

/// The tolerance is |a − n| ≤ atol + rtol·|n|, NaN never within it.
#[test]
fn the_tolerance_is_absolute_plus_relative() {
    let o = JacobianOptions {
        eps: 1e-6,
        atol: 1e-3,
        rtol: 1e-2,
    };
    assert!(o.accepts(100.0 + 1.0, 100.0)); // 1 ≤ 1e-3 + 1
    assert!(!o.accepts(100.0 + 1.01, 100.0));
    assert!(o.accepts(0.0009, 0.0));
    assert!(!o.accepts(0.0011, 0.0));
    assert!(!o.accepts(f64::NAN, 1.0));
    assert_eq!(o.ratio(f64::NAN, 1.0), f64::INFINITY);
    let exact = JacobianOptions {
        eps: 1e-6,
        atol: 0.0,
        rtol: 0.0,
    };
    assert_eq!(exact.ratio(2.0, 2.0), 0.0);
    assert_eq!(exact.ratio(2.0, 2.5), f64::INFINITY);
}

// ---------------------------------------------------------------------------------------------
// A tape after backward

/// `backward` leaves the tape intact: backpropagating again gives the same gradients (fresh,
/// not accumulated), and ops recorded afterwards extend it.
#[test]
fn a_tape_is_reusable_after_backward() {
    let mut tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::from_vec(&[2], vec![3.0, -1.0]));
    let y = tape.mul(x, x);
    let loss = tape.sum(y);
    let first = tape.backward(loss).take(x).unwrap();
    let second = tape.backward(loss).take(x).unwrap();
    assert_eq!(first, vec![6.0, -2.0]);
    assert_eq!(second, first);
    // More ops on the same tape, then backward from the new output.
    let z = tape.exp(y);
    let loss2 = tape.sum(z);
    let g = tape.backward(loss2);
    let expected: Vec<f64> = [3.0f64, -1.0]
        .iter()
        .map(|v| 2.0 * v * (v * v).exp())
        .collect();
    assert_eq!(g.get(x).unwrap(), expected.as_slice());
    // And the first loss once more, unchanged.
    assert_eq!(tape.backward(loss).get(x).unwrap(), &[6.0, -2.0]);
}
