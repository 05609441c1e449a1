//! The optimizers: Adam's first step against its closed form, Adam over several steps against
//! a reference written from the formula, the look-ahead Δθ against a real step of a clone
//! (fresh and with history, serial and parallel lengths) with the state untouched, and the
//! gradient-descent look-ahead.

use hypertape::optim::{sgd_delta, Adam};
use hypertape::rng::Rng;
use proptest::prelude::*;

/// Above the length from which the optimizer splits its loops over the cores (2^15).
const PARALLEL_LEN: usize = 40_000;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

fn normals(n: usize, std: f64, rng: &mut Rng) -> Vec<f64> {
    (0..n).map(|_| std * rng.normal()).collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn adam_first_step_matches_closed_form(
        params in prop::collection::vec(-10.0f64..10.0, 1..20),
        grads in prop::collection::vec(prop_oneof![-100.0f64..100.0, -1e-6f64..1e-6], 20),
        lr in 1e-5f64..1.0,
        beta1 in 0.0f64..0.99,
        beta2 in 0.5f64..0.9999,
    ) {
        // t = 1: m = (1−β₁)g, v = (1−β₂)g², m̂ = g, v̂ = g², so Δ = −lr·g / (|g| + ε).
        let n = params.len();
        let g = &grads[..n];
        let mut adam = Adam::<f64>::new(n, lr);
        adam.beta1 = beta1;
        adam.beta2 = beta2;
        let mut p = params.clone();
        adam.step(&mut p, g);
        prop_assert_eq!(adam.steps(), 1);
        let (m, v) = adam.moments();
        for i in 0..n {
            let expected = params[i] - lr * g[i] / (g[i].abs() + 1e-8);
            prop_assert!(close(p[i], expected, 1e-12), "{}: {} vs {}", i, p[i], expected);
            prop_assert!(close(m[i], (1.0 - beta1) * g[i], 1e-15));
            prop_assert!(close(v[i], (1.0 - beta2) * g[i] * g[i], 1e-15));
        }
    }

    #[test]
    fn adam_matches_reference_over_several_steps(seed in any::<u64>(), steps in 1usize..12, lr in 1e-4f64..0.1) {
        let n = 7;
        let mut rng = Rng::new(seed);
        let mut p = normals(n, 1.0, &mut rng);
        let mut reference = p.clone();
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let mut adam = Adam::<f64>::new(n, lr);
        for t in 1..=steps {
            let g = normals(n, 1.0, &mut rng);
            adam.step(&mut p, &g);
            let bc1 = 1.0 - 0.9f64.powi(t as i32);
            let bc2 = 1.0 - 0.999f64.powi(t as i32);
            for i in 0..n {
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
                let mhat = m[i] / bc1;
                let vhat = v[i] / bc2;
                reference[i] -= lr * mhat / (vhat.sqrt() + 1e-8);
            }
        }
        for i in 0..n {
            prop_assert!(close(p[i], reference[i], 1e-12), "{}: {} vs {}", i, p[i], reference[i]);
        }
    }

    #[test]
    fn lookahead_equals_one_real_step(seed in any::<u64>(), history in 0usize..6, lr in 1e-4f64..0.1) {
        check_lookahead(13, seed, history, lr);
    }

    #[test]
    fn sgd_delta_is_minus_lr_times_gradient(
        grads in prop::collection::vec(-1e3f64..1e3, 0..50),
        lr in 0.0f64..10.0,
    ) {
        let mut delta = vec![f64::NAN; grads.len()];
        sgd_delta(lr, &grads, &mut delta);
        for (d, g) in delta.iter().zip(&grads) {
            prop_assert_eq!(*d, -lr * g);
        }
    }
}

/// Takes `history` steps, then checks that `lookahead_delta` for a new gradient is the change
/// one real step of a clone makes, and that it leaves the state as it was.
fn check_lookahead(n: usize, seed: u64, history: usize, lr: f64) {
    let mut rng = Rng::new(seed);
    let mut adam = Adam::<f64>::new(n, lr);
    let mut p = normals(n, 1.0, &mut rng);
    for _ in 0..history {
        let g = normals(n, 1.0, &mut rng);
        adam.step(&mut p, &g);
    }
    let g = normals(n, 2.0, &mut rng);
    let before = adam.clone();
    let mut delta = vec![f64::NAN; n];
    adam.lookahead_delta(&g, &mut delta);
    assert_eq!(adam, before, "lookahead_delta changed the optimizer");
    assert_eq!(adam.steps(), history as u64);
    assert_eq!(adam.moments(), before.moments());

    let mut stepped = adam.clone();
    let mut q = p.clone();
    stepped.step(&mut q, &g);
    assert_eq!(stepped.steps(), history as u64 + 1);
    for i in 0..n {
        let change = q[i] - p[i];
        // q = p + δ is rounded once, so q − p differs from δ by at most an ulp of p.
        assert!(
            (change - delta[i]).abs() <= 1e-12,
            "{i}: step changed by {change}, look-ahead {}",
            delta[i]
        );
    }
    // The look-ahead from the new state is the step after that one (no state leaks).
    let mut delta2 = vec![0.0; n];
    stepped.lookahead_delta(&g, &mut delta2);
    let mut q2 = q.clone();
    stepped.clone().step(&mut q2, &g);
    for i in 0..n {
        assert!((q2[i] - q[i] - delta2[i]).abs() <= 1e-12);
    }
}

#[test]
fn lookahead_equals_one_real_step_at_fresh_state_and_with_history() {
    for history in [0, 1, 5, 40] {
        check_lookahead(9, 11, history, 1e-3);
    }
}

#[test]
fn lookahead_equals_one_real_step_on_the_parallel_path() {
    for history in [0, 3] {
        check_lookahead(PARALLEL_LEN, 12, history, 1e-2);
    }
}

#[test]
fn step_is_the_same_on_serial_and_parallel_lengths() {
    // The first 9 parameters of a long buffer move exactly as a buffer of 9 would.
    let mut rng = Rng::new(5);
    let mut long = normals(PARALLEL_LEN, 1.0, &mut rng);
    let mut short = long[..9].to_vec();
    let (mut a_long, mut a_short) = (Adam::new(PARALLEL_LEN, 0.01), Adam::new(9, 0.01));
    for _ in 0..4 {
        let g = normals(PARALLEL_LEN, 1.0, &mut rng);
        a_long.step(&mut long, &g);
        a_short.step(&mut short, &g[..9]);
    }
    assert_eq!(&long[..9], &short[..]);
}

#[test]
fn lookahead_with_zero_gradient_after_history_is_not_zero() {
    // With history, Adam keeps moving on momentum: the look-ahead must include it.
    let mut adam = Adam::<f64>::new(2, 0.1);
    let mut p = vec![0.0, 0.0];
    adam.step(&mut p, &[1.0, -1.0]);
    let mut delta = vec![0.0; 2];
    adam.lookahead_delta(&[0.0, 0.0], &mut delta);
    assert!(delta[0] < 0.0 && delta[1] > 0.0, "{delta:?}");
}

#[test]
fn lookahead_point_is_params_plus_delta() {
    let n = 70_000; // above the parallel threshold
    let mut adam = Adam::<f32>::new(n, 1e-3);
    let mut params: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
    let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).cos()).collect();
    adam.step(&mut params, &g);
    let mut delta = vec![0.0; n];
    adam.lookahead_delta(&g, &mut delta);
    let mut point = vec![0.0; n];
    adam.lookahead_point(&params, &g, &mut point);
    for i in 0..n {
        assert_eq!(point[i], params[i] + delta[i]);
    }
}
