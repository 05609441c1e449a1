//! Property tests of every op of the tape: f64 gradient checks over shapes and values, the
//! agreement of recorded, unrecorded, f32 and f64 forwards, and the rules of backward itself
//! (fan-out sums, linearity in the seed, views of views).

use hypertape::gradcheck::{op_cases, GradCheckOptions};
use hypertape::{Tape, Tensor};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_op_passes_the_f64_gradient_check(m in 1usize..8, k in 1usize..8, n in 1usize..8, seed in any::<u64>()) {
        for case in op_cases() {
            let inputs = case.inputs((m, k, n), seed);
            let report = case.check(&inputs, seed, &GradCheckOptions::default());
            prop_assert!(report.passed(), "{} at (m,k,n)=({m},{k},{n}) seed {seed}:\n{report}", case.name);
        }
    }

    #[test]
    fn recorded_and_unrecorded_forwards_are_equal(m in 1usize..8, k in 1usize..8, n in 1usize..8, seed in any::<u64>()) {
        for case in op_cases() {
            let inputs = case.inputs((m, k, n), seed);
            let recorded = case.forward(&inputs, true, case.build_f64);
            let unrecorded = case.forward(&inputs, false, case.build_f64);
            prop_assert_eq!(recorded, unrecorded, "{}", case.name);
        }
    }

    #[test]
    fn f32_and_f64_forwards_agree(m in 1usize..8, k in 1usize..8, n in 1usize..8, seed in any::<u64>()) {
        for case in op_cases() {
            let inputs = case.inputs((m, k, n), seed);
            let wide = case.forward(&inputs, true, case.build_f64);
            let narrow = case.forward(&inputs, true, case.build_f32);
            for (i, (a, b)) in wide.iter().zip(&narrow).enumerate() {
                // f32 rounding of inputs and sums over up to 8 terms: 1e-5 of the scale.
                let err = (a - b).abs() / a.abs().max(1.0);
                prop_assert!(err <= 1e-5, "{} element {i}: f64 {a} vs f32 {b}", case.name);
            }
        }
    }

    #[test]
    fn backward_is_linear_in_the_seed(rows in 1usize..6, cols in 1usize..6, a in -3.0f64..3.0, b in -3.0f64..3.0) {
        let x = Tensor::from_fn(&[rows, cols], |i| (i as f64 * 0.37).sin());
        let mut tape = Tape::new();
        let xv = tape.leaf(x);
        let h = tape.tanh(xv);
        let y = tape.log_softmax(h);
        let n = rows * cols;
        let s1: Vec<f64> = (0..n).map(|i| (i as f64).cos()).collect();
        let s2: Vec<f64> = (0..n).map(|i| (i as f64 * 1.3).sin()).collect();
        let combined: Vec<f64> = s1.iter().zip(&s2).map(|(p, q)| a * p + b * q).collect();
        let g1 = tape.backward_with_seed(y, &s1).get(xv).unwrap().to_vec();
        let g2 = tape.backward_with_seed(y, &s2).get(xv).unwrap().to_vec();
        let g = tape.backward_with_seed(y, &combined).get(xv).unwrap().to_vec();
        for i in 0..n {
            prop_assert!((g[i] - (a * g1[i] + b * g2[i])).abs() < 1e-12);
        }
    }
}

#[test]
fn fan_out_sums_gradients() {
    // y = x + x + x·x + 3x (one node feeding several consumers): dy/dx = 2 + 2x + 3.
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::from_vec(&[3], vec![-1.0f64, 0.5, 2.0]));
    let a = tape.add(x, x);
    let b = tape.mul(x, x);
    let c = tape.scale(x, 3.0);
    let ab = tape.add(a, b);
    let y = tape.add(ab, c);
    let loss = tape.sum(y);
    let g = tape.backward(loss);
    assert_eq!(g.get(x).unwrap(), &[3.0, 6.0, 9.0]);
}

#[test]
fn views_share_storage_and_route_gradients_to_their_base() {
    let mut tape = Tape::new();
    let flat = tape.leaf(Tensor::from_fn(&[10], |i| i as f64));
    let mid = tape.narrow_flat(flat, 2, 6); // elements 2..8
    let m = tape.reshape(mid, &[2, 3]);
    let row = tape.narrow_rows(m, 1, 1); // elements 5..8
    assert_eq!(tape.value(row), &[5.0, 6.0, 7.0]);
    let sq = tape.square(row);
    let loss = tape.sum(sq);
    let g = tape.backward(loss);
    assert_eq!(
        g.get(flat).unwrap(),
        &[0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 12.0, 14.0, 0.0, 0.0]
    );
}

#[test]
fn smoothed_cross_entropy_is_the_soft_target_loss_and_rejects_bad_input() {
    let logits = vec![1.0f64, -2.0, 0.5, 3.0, 3.0, -1.0];
    let labels = [2usize, 0];
    let eps = 0.1;
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::from_vec(&[2, 3], logits.clone()));
    let loss = tape
        .softmax_cross_entropy_smoothed(x, &labels, eps)
        .unwrap();
    // −Σ q log softmax, q = 0.9 on the label and 0.05 on each other class.
    let expected: f64 = logits
        .chunks(3)
        .zip(labels)
        .map(|(r, l)| {
            let lse = r.iter().map(|v| v.exp()).sum::<f64>().ln();
            (0..3)
                .map(|j| if j == l { 0.9 } else { 0.05 } * (lse - r[j]))
                .sum::<f64>()
        })
        .sum::<f64>()
        / 2.0;
    assert!((tape.item(loss) - expected).abs() < 1e-14);
    // The gradient vanishes where softmax equals the soft target: margin ln(0.9/0.1) in 2 classes.
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::from_vec(&[1, 2], vec![(0.9f64 / 0.1).ln(), 0.0]));
    let loss = tape.softmax_cross_entropy_smoothed(x, &[0], 0.1).unwrap();
    let g = tape.backward(loss);
    assert!(g.get(x).unwrap().iter().all(|v| v.abs() < 1e-15));
    // ε = 0 is the one-hot loss.
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::from_vec(&[2, 3], logits));
    let a = tape
        .softmax_cross_entropy_smoothed(x, &labels, 0.0)
        .unwrap();
    let b = tape.softmax_cross_entropy(x, &labels);
    assert_eq!(tape.item(a), tape.item(b));
    // Bad input is an error, not a panic.
    for (labels, eps) in [
        (&[0usize, 3][..], 0.1),
        (&[0][..], 0.1),
        (&[0, 1][..], 1.0),
        (&[0, 1][..], -0.1),
        (&[0, 1][..], f64::NAN),
    ] {
        assert!(
            tape.softmax_cross_entropy_smoothed(x, labels, eps).is_err(),
            "{labels:?} {eps}"
        );
    }
}

#[test]
fn softmax_cross_entropy_matches_log_sum_exp_and_stays_finite() {
    let logits = vec![1.0f64, -2.0, 0.5, 3.0, 3.0, -1.0];
    let labels = [2usize, 0];
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::from_vec(&[2, 3], logits.clone()));
    let loss = tape.softmax_cross_entropy(x, &labels);
    let expected: f64 = logits
        .chunks(3)
        .zip(labels)
        .map(|(r, l)| r.iter().map(|v| v.exp()).sum::<f64>().ln() - r[l])
        .sum::<f64>()
        / 2.0;
    assert!((tape.item(loss) - expected).abs() < 1e-14);

    for scale in [1e4f32, -1e4] {
        let mut tape = Tape::new();
        let x = tape.leaf(Tensor::from_vec(
            &[2, 3],
            vec![scale, -scale, 0.0, 0.0, scale, 2.0 * scale],
        ));
        let loss = tape.softmax_cross_entropy(x, &[1, 2]);
        let value = tape.item(loss);
        assert!(value.is_finite(), "loss {value} at logits ±{scale}");
        let g = tape.backward(loss);
        assert!(g.get(x).unwrap().iter().all(|v| v.is_finite()));
    }
    // The loss of a confident correct row is 0; of a confident wrong row, the logit gap.
    let mut tape = Tape::<f32>::new();
    let x = tape.constant(Tensor::from_vec(&[1, 2], vec![1e4, -1e4]));
    let right = tape.softmax_cross_entropy(x, &[0]);
    let wrong = tape.softmax_cross_entropy(x, &[1]);
    assert_eq!(tape.item(right), 0.0);
    assert_eq!(tape.item(wrong), 2e4);
}

#[test]
fn no_grad_tape_records_no_backward_information() {
    let mut tape = Tape::<f64>::no_grad();
    let x = tape.leaf(Tensor::from_vec(&[2], vec![1.0, 2.0]));
    let y = tape.exp(x);
    assert!(!tape.requires_grad(y));
    assert_eq!(tape.op(y).name(), "leaf");
    let loss = tape.sum(y);
    let g = tape.backward(loss);
    assert!(g.get(x).is_none());
}

#[test]
fn gradients_reach_only_what_requires_them() {
    let mut tape = Tape::new();
    let w = tape.leaf(Tensor::from_vec(&[2, 2], vec![1.0f64, 2.0, 3.0, 4.0]));
    let x = tape.constant(Tensor::from_vec(&[1, 2], vec![1.0, -1.0]));
    let y = tape.linear(x, w, None);
    let loss = tape.sum(y);
    let g = tape.backward(loss);
    assert_eq!(g.get(w).unwrap(), &[1.0, -1.0, 1.0, -1.0]);
    assert!(g.get(x).is_none());
}

#[test]
fn the_tape_prints_and_counts_its_ops() {
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::from_vec(&[1, 2], vec![1.0f64, 2.0]));
    let y = tape.relu(x);
    let _ = tape.sum(y);
    let text = tape.to_string();
    assert!(text.contains("%1 = relu(%0) [1, 2] grad"), "{text}");
    assert_eq!(
        tape.op_counts(),
        vec![("leaf", 1), ("reduce", 1), ("relu", 1)]
    );
}

#[test]
fn the_gradient_check_catches_a_wrong_gradient() {
    // f(x) = Σ x ⊙ stop_gradient(x): the tape sees a constant copy, so its gradient is x while
    // the true derivative is 2x. The check must fail on it.
    let x = Tensor::from_vec(&[3], vec![0.5f64, -1.5, 2.0]);
    let report = hypertape::gradcheck::gradcheck(
        &[x],
        |tape, xs| {
            let frozen = tape.tensor(xs[0]);
            let c = tape.constant(frozen);
            let y = tape.mul(xs[0], c);
            tape.sum(y)
        },
        &GradCheckOptions::default(),
    );
    assert!(!report.passed(), "{report}");
    assert!(report.max_rel_error() > 0.3);
}

proptest! {
    #![proptest_config(config())]

    /// The fused binary cross-entropy on logits equals −y·ln σ(x) − (1 − y)·ln(1 − σ(x))
    /// averaged over the elements, and its logit gradient is (σ(x) − y)/N.
    #[test]
    fn bce_with_logits_matches_its_definition(rows in 1usize..6, cols in 1usize..6, seed in any::<u64>()) {
        let mut rng = hypertape::rng::Rng::new(seed);
        let n = rows * cols;
        let x: Vec<f64> = (0..n).map(|_| rng.uniform_range(-6.0, 6.0)).collect();
        let y: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
        let mut tape = Tape::new();
        let xv = tape.leaf(Tensor::from_vec(&[rows, cols], x.clone()));
        let yv = tape.constant(Tensor::from_vec(&[rows, cols], y.clone()));
        let loss = tape.bce_with_logits(xv, yv);
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        let expected: f64 = x.iter().zip(&y).map(|(&a, &b)| {
            -(b * sig(a).ln() + (1.0 - b) * (1.0 - sig(a)).ln())
        }).sum::<f64>() / n as f64;
        prop_assert!((tape.item(loss) - expected).abs() < 1e-12);
        let grads = tape.backward(loss);
        for (i, g) in grads.get(xv).unwrap().iter().enumerate() {
            prop_assert!((g - (sig(x[i]) - y[i]) / n as f64).abs() < 1e-14);
        }
    }
}

/// At logits of ±1e4 the fused loss stays finite and exact: ≈ 0 when the target agrees with
/// the sign, ≈ |x|/N when it disagrees; gradients are ±1/N, not NaN.
#[test]
fn bce_with_logits_is_stable_at_extreme_logits() {
    for f32_tape in [false, true] {
        let x = [1e4, -1e4, 1e4, -1e4];
        let y = [1.0, 0.0, 0.0, 1.0];
        let (loss, grad) = if f32_tape {
            let mut tape: Tape<'_, f32> = Tape::new();
            let xv = tape.leaf(Tensor::from_vec(
                &[2, 2],
                x.iter().map(|&v| v as f32).collect(),
            ));
            let yv = tape.constant(Tensor::from_vec(
                &[2, 2],
                y.iter().map(|&v| v as f32).collect(),
            ));
            let l = tape.bce_with_logits(xv, yv);
            let g = tape.backward(l);
            (
                f64::from(tape.item(l)),
                g.get(xv)
                    .unwrap()
                    .iter()
                    .map(|&v| f64::from(v))
                    .collect::<Vec<_>>(),
            )
        } else {
            let mut tape: Tape<'_, f64> = Tape::new();
            let xv = tape.leaf(Tensor::from_vec(&[2, 2], x.to_vec()));
            let yv = tape.constant(Tensor::from_vec(&[2, 2], y.to_vec()));
            let l = tape.bce_with_logits(xv, yv);
            let g = tape.backward(l);
            (tape.item(l), g.get(xv).unwrap().to_vec())
        };
        assert!((loss - 2e4 / 4.0).abs() < 1e-3, "{loss}");
        assert_eq!(grad, vec![0.0, 0.0, 0.25, -0.25]);
    }
}
