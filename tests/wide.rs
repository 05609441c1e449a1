//! The wide code paths of dense layers (panels over output columns, see `kernels::dense`):
//! full f64 gradient checks at fixed shapes, and agreement with the narrow code paths.

mod common;

use common::uniform_values;
use hypertape::gradcheck::{wide_op_cases, GradCheckOptions};

#[test]
fn wide_ops_pass_the_f64_gradient_check() {
    for case in wide_op_cases() {
        let inputs = case.inputs((1, 1, 1), 7);
        let report = case.check(&inputs, 7, &GradCheckOptions::default());
        assert!(report.passed(), "{}:\n{report}", case.name);
    }
}

use hypertape::engine::tape::DistanceTarget;
use hypertape::gradcheck::WIDE;
use hypertape::{Tape, Tensor};
use proptest::prelude::*;

/// 0.75 · Σ (x·Wᵀ + b − t)² over `groups` for x [m×k], W [n×k], b [n] leaves drawn from
/// `seed` and the target `make_target` puts on the tape: the value and the gradients of x, W
/// and b.
fn distance_value_and_grads(
    (m, k, n, groups): (usize, usize, usize, usize),
    seed: u64,
    make_target: impl FnOnce(&mut Tape<'static, f64>) -> DistanceTarget,
) -> (f64, Vec<Vec<f64>>) {
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::from_vec(&[m, k], uniform_values(m * k, seed)));
    let w = tape.leaf(Tensor::from_vec(
        &[n, k],
        uniform_values(n * k, seed.wrapping_add(1)),
    ));
    let b = tape.leaf(Tensor::from_vec(
        &[n],
        uniform_values(n, seed.wrapping_add(2)),
    ));
    let target = make_target(&mut tape);
    let d = tape.linear_squared_distance_to(x, w, Some(b), target, groups);
    let loss = tape.scale(d, 0.75);
    let value = tape.item(loss);
    let grads = tape.backward(loss);
    let g = [x, w, b].map(|v| grads.get(v).unwrap().to_vec()).to_vec();
    (value, g)
}

/// Gradients of x, W, b for Σ (x·Wᵀ + b − t)² over `groups`, with the target a constant (the
/// panel path) or a leaf (the path that keeps y − t).
fn distance_grads(
    (m, k, n, groups, len): (usize, usize, usize, usize, usize),
    seed: u64,
    target_is_leaf: bool,
) -> (f64, Vec<Vec<f64>>) {
    distance_value_and_grads((m, k, n, groups), seed, |tape| {
        let t = Tensor::from_vec(
            &[groups, len],
            uniform_values(groups * len, seed.wrapping_add(3)),
        );
        DistanceTarget::Values(if target_is_leaf {
            tape.leaf(t)
        } else {
            tape.constant(t)
        })
    })
}

/// How the target of a distance to a dense layer's output x_t·W_tᵀ + b_t is given.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TargetLayer {
    /// As the layer, its inputs constants: the panel path.
    Constants,
    /// As the layer, its inputs leaves: the path that keeps y − t (and differentiates the
    /// layer too).
    Leaves,
    /// As values: the layer's output computed first, its first len elements per group.
    Values,
}

/// Gradients of x, W, b for Σ (x·Wᵀ + b − (x_t·W_tᵀ + b_t))² over `groups`, the first `len`
/// elements of each group compared, with the target given as `how` says.
fn dense_target_grads(
    (m, k, n, groups, len): (usize, usize, usize, usize, usize),
    seed: u64,
    how: TargetLayer,
) -> (f64, Vec<Vec<f64>>) {
    let kt = k + 1;
    let layer = [
        Tensor::from_vec(&[m, kt], uniform_values(m * kt, seed.wrapping_add(4))),
        Tensor::from_vec(&[n, kt], uniform_values(n * kt, seed.wrapping_add(5))),
        Tensor::from_vec(&[n], uniform_values(n, seed.wrapping_add(6))),
    ];
    distance_value_and_grads((m, k, n, groups), seed, |tape| match how {
        TargetLayer::Values => {
            let mut plain = Tape::no_grad();
            let [xt, wt, bt] = layer.map(|t| plain.constant(t));
            let y = plain.linear(xt, wt, Some(bt));
            let group_len = m / groups * n;
            let rows: Vec<f64> = plain
                .value(y)
                .chunks(group_len)
                .flat_map(|g| g[..len].iter().copied())
                .collect();
            DistanceTarget::Values(tape.constant(Tensor::from_vec(&[groups, len], rows)))
        }
        TargetLayer::Constants | TargetLayer::Leaves => {
            let [xt, wt, bt] = layer.map(|t| {
                if how == TargetLayer::Leaves {
                    tape.leaf(t)
                } else {
                    tape.constant(t)
                }
            });
            DistanceTarget::Dense {
                x: xt,
                w: wt,
                b: Some(bt),
                len,
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn fused_distance_agrees_on_every_path(
        rows_per_group in 1usize..4, groups in 1usize..4, k in 1usize..6,
        extra in 0usize..200, cut in 0usize..300, seed in any::<u64>(),
    ) {
        let n = WIDE + extra;
        let m = rows_per_group * groups;
        let len = rows_per_group * n - cut.min(rows_per_group * n - 1);
        let dims = (m, k, n, groups, len);
        // Stored targets: the panel path against the one that keeps y − t.
        let same = |(v1, g1): (f64, Vec<Vec<f64>>), (v2, g2): (f64, Vec<Vec<f64>>), what: &str| {
            prop_assert!((v1 - v2).abs() <= 1e-9 * v2.abs().max(1.0), "{what}: {v1} vs {v2}");
            for (a, b) in g1.iter().flatten().zip(g2.iter().flatten()) {
                prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{what}: {a} vs {b}");
            }
            Ok(())
        };
        same(distance_grads(dims, seed, false), distance_grads(dims, seed, true), "stored")?;
        // A dense layer's output as target, on both paths, against its values stored.
        let stored = dense_target_grads(dims, seed, TargetLayer::Values);
        for how in [TargetLayer::Constants, TargetLayer::Leaves] {
            same(dense_target_grads(dims, seed, how), stored.clone(), &format!("{how:?}"))?;
        }
    }

    #[test]
    fn wide_linear_agrees_with_matmul_and_add_row(
        m in 1usize..6, k in 1usize..6, extra in 0usize..200, seed in any::<u64>(),
    ) {
        let n = WIDE + extra;
        let seeds = uniform_values(m * n, seed.wrapping_add(9));
        let run = |fused: bool| {
            let mut tape = Tape::new();
            let x = tape.leaf(Tensor::from_vec(&[m, k], uniform_values(m * k, seed)));
            let w = tape.leaf(Tensor::from_vec(&[n, k], uniform_values(n * k, seed.wrapping_add(1))));
            let b = tape.leaf(Tensor::from_vec(&[n], uniform_values(n, seed.wrapping_add(2))));
            let y = if fused {
                tape.linear(x, w, Some(b))
            } else {
                let xw = tape.matmul_t(x, w, false, true);
                tape.add_row(xw, b)
            };
            let grads = tape.backward_with_seed(y, &seeds);
            [x, w, b].map(|v| grads.get(v).unwrap().to_vec())
        };
        let (panel, plain) = (run(true), run(false));
        for (a, b) in panel.iter().flatten().zip(plain.iter().flatten()) {
            prop_assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
