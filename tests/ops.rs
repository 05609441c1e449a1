//! The ops of the tape, one module per op family, so that a family runs by name:
//!
//! ```text
//! cargo test --release --test ops matmul
//! ```
//!
//! Families: `elementwise` (add, sub, mul, div, add_row, scale, neg), `unary` (relu, elu, tanh,
//! sigmoid, exp, log, square, sqrt, pow, abs), `matmul` (matmul with transposes, linear, the
//! fused linear_squared_distance and the wide panel paths), `reduce` (sum, mean, row and column
//! sums and means), `shape` (views, concatenations, gather_rows, repeat_rows, transpose) and
//! `losses` (log_softmax, softmax, softmax cross-entropy with and without label smoothing,
//! squared_distance, bce_with_logits). Each family holds:
//!
//! - a literal test: small inputs whose forward values and gradients are worked out by hand
//!   (the derivative in a comment beside them), checked on the tape and then against central
//!   differences (`common::check_by_hand`);
//! - the catalogue's checks of every op of the family (`hypertape::gradcheck::op_cases`) over
//!   shapes and values: the f64 finite-difference check, recorded against unrecorded forwards,
//!   f32 against f64 forwards;
//! - a property of its own over shapes and values.
//!
//! `tape` holds the rules of backward itself (fan-out sums, linearity in the seed, no-grad
//! tapes, gradients only where required) and checks that every catalogued op is in exactly one
//! family.

mod common;

use common::{check_by_hand, uniform_values};
use hypertape::gradcheck::{op_cases, GradCheckOptions, OpCase};
use hypertape::{Tape, Tensor, Var};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    }
}

/// The catalogued cases named in `names`, which must all be in the catalogue.
fn family_cases(names: &[&str]) -> Vec<OpCase> {
    let cases: Vec<OpCase> = op_cases()
        .into_iter()
        .filter(|c| names.contains(&c.name))
        .collect();
    assert_eq!(
        cases.len(),
        names.len(),
        "some of {names:?} are not in the catalogue"
    );
    cases
}

/// The f64 finite-difference check of each named case at dimensions (m, k, n).
fn gradient_checks(
    names: &[&str],
    (m, k, n): (usize, usize, usize),
    seed: u64,
) -> Result<(), TestCaseError> {
    for case in family_cases(names) {
        let inputs = case.inputs((m, k, n), seed);
        let report = case.check(&inputs, seed, &GradCheckOptions::default());
        prop_assert!(
            report.passed(),
            "{} at (m,k,n)=({m},{k},{n}) seed {seed}:\n{report}",
            case.name
        );
    }
    Ok(())
}

/// Each named case's forward is the same on recording and non-recording tapes.
fn recorded_equals_unrecorded(
    names: &[&str],
    dims: (usize, usize, usize),
    seed: u64,
) -> Result<(), TestCaseError> {
    for case in family_cases(names) {
        let inputs = case.inputs(dims, seed);
        let recorded = case.forward(&inputs, true, case.build_f64);
        let unrecorded = case.forward(&inputs, false, case.build_f64);
        prop_assert_eq!(recorded, unrecorded, "{}", case.name);
    }
    Ok(())
}

/// Each named case's f32 forward is within f32 rounding of its f64 forward.
fn f32_agrees_with_f64(
    names: &[&str],
    dims: (usize, usize, usize),
    seed: u64,
) -> Result<(), TestCaseError> {
    for case in family_cases(names) {
        let inputs = case.inputs(dims, seed);
        let wide = case.forward(&inputs, true, case.build_f64);
        let narrow = case.forward(&inputs, true, case.build_f32);
        prop_assert_eq!(wide.len(), narrow.len());
        for (i, (a, b)) in wide.iter().zip(&narrow).enumerate() {
            // f32 rounding of inputs and sums over up to 8 terms: 1e-5 of the scale.
            let err = (a - b).abs() / a.abs().max(1.0);
            prop_assert!(err <= 1e-5, "{} element {i}: f64 {a} vs f32 {b}", case.name);
        }
    }
    Ok(())
}

/// Asserts `|a − e| ≤ tol · max(|e|, 1)` element by element, inside a property test.
fn prop_close(actual: &[f64], expected: &[f64], tol: f64, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.len(), expected.len(), "{}: lengths", what);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        prop_assert!(
            (a - e).abs() <= tol * e.abs().max(1.0),
            "{what}[{i}]: {a} vs {e}"
        );
    }
    Ok(())
}

/// The gradients of `inputs` (leaves) for `f`'s output gradient `seed`, with the output.
fn value_and_grads(
    inputs: &[Tensor<f64>],
    f: impl FnOnce(&mut Tape<'_, f64>, &[Var]) -> Var,
    seed: &[f64],
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|t| tape.leaf(t.clone())).collect();
    let y = f(&mut tape, &vars);
    let value = tape.value(y).to_vec();
    let grads = tape.backward_with_seed(y, seed);
    let grads = vars
        .iter()
        .zip(inputs)
        .map(|(&v, t)| grads.get_or_zeros(v, t.len()))
        .collect();
    (value, grads)
}

/// The catalogue's checks of the family whose case names are `$ops`, over shapes (m, k, n)
/// and values (seed).
macro_rules! catalogue_checks {
    ($ops:expr) => {
        proptest! {
            #![proptest_config(crate::config())]

            /// Every op of the family passes the f64 finite-difference check.
            #[test]
            fn ops_pass_the_f64_gradient_check(
                m in 1usize..8, k in 1usize..8, n in 1usize..8, seed in any::<u64>(),
            ) {
                crate::gradient_checks($ops, (m, k, n), seed)?;
            }

            #[test]
            fn recorded_and_unrecorded_forwards_are_equal(
                m in 1usize..8, k in 1usize..8, n in 1usize..8, seed in any::<u64>(),
            ) {
                crate::recorded_equals_unrecorded($ops, (m, k, n), seed)?;
            }

            #[test]
            fn f32_and_f64_forwards_agree(
                m in 1usize..8, k in 1usize..8, n in 1usize..8, seed in any::<u64>(),
            ) {
                crate::f32_agrees_with_f64($ops, (m, k, n), seed)?;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------

/// Elementwise binary ops (add, sub, mul, div), the row broadcast add_row, and scale/neg.
mod elementwise {
    use super::*;

    pub const OPS: &[&str] = &[
        "add",
        "sub",
        "mul",
        "mul (x*x)",
        "div",
        "add_row",
        "scale",
        "neg",
    ];

    catalogue_checks!(OPS);

    /// a = [1, −2, 3], b = [4, 0.5, −2], output gradient g = [1, 2, −1].
    #[test]
    fn add_sub_mul_div_by_hand() {
        let a = Tensor::from_vec(&[3], vec![1.0, -2.0, 3.0]);
        let b = Tensor::from_vec(&[3], vec![4.0, 0.5, -2.0]);
        let ab = [a.clone(), b];
        let g = [1.0, 2.0, -1.0];
        // d(a + b)/da = 1, d(a + b)/db = 1: both gradients are g.
        check_by_hand(
            &ab,
            |t, x| t.add(x[0], x[1]),
            &g,
            &[5.0, -1.5, 1.0],
            &[&[1.0, 2.0, -1.0], &[1.0, 2.0, -1.0]],
        );
        // d(a − b)/da = 1, d(a − b)/db = −1.
        check_by_hand(
            &ab,
            |t, x| t.sub(x[0], x[1]),
            &g,
            &[-3.0, -2.5, 5.0],
            &[&[1.0, 2.0, -1.0], &[-1.0, -2.0, 1.0]],
        );
        // d(a·b)/da = b, d(a·b)/db = a: da = g·b, db = g·a.
        check_by_hand(
            &ab,
            |t, x| t.mul(x[0], x[1]),
            &g,
            &[4.0, -1.0, -6.0],
            &[&[4.0, 1.0, 2.0], &[1.0, -4.0, -3.0]],
        );
        // d(a/b)/da = 1/b, d(a/b)/db = −a/b²: da = g/b, db = −g·a/b².
        check_by_hand(
            &ab,
            |t, x| t.div(x[0], x[1]),
            &g,
            &[0.25, -4.0, -1.5],
            &[&[0.25, 4.0, 0.5], &[-0.0625, 16.0, 0.75]],
        );
        // One node on both sides: d(a·a)/da = 2a.
        check_by_hand(
            &[a],
            |t, x| t.mul(x[0], x[0]),
            &g,
            &[1.0, 4.0, 9.0],
            &[&[2.0, -8.0, -6.0]],
        );
    }

    #[test]
    fn add_row_scale_and_neg_by_hand() {
        // (x + r)[i, j] = x[i, j] + r[j]: dx = g, dr[j] = Σᵢ g[i, j] (column sums).
        check_by_hand(
            &[
                Tensor::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
                Tensor::from_vec(&[3], vec![10.0, 20.0, 30.0]),
            ],
            |t, x| t.add_row(x[0], x[1]),
            &[1.0, 0.0, 2.0, -1.0, 3.0, 1.0],
            &[11.0, 22.0, 33.0, 14.0, 25.0, 36.0],
            &[&[1.0, 0.0, 2.0, -1.0, 3.0, 1.0], &[0.0, 3.0, 3.0]],
        );
        let x = [Tensor::from_vec(&[2], vec![2.0, -4.0])];
        // d(s·x)/dx = s, here s = −1.5.
        check_by_hand(
            &x,
            |t, x| t.scale(x[0], -1.5),
            &[1.0, 2.0],
            &[-3.0, 6.0],
            &[&[-1.5, -3.0]],
        );
        // d(−x)/dx = −1.
        check_by_hand(
            &x,
            |t, x| t.neg(x[0]),
            &[1.0, 2.0],
            &[-2.0, 4.0],
            &[&[-1.0, -2.0]],
        );
    }

    proptest! {
        #![proptest_config(config())]

        /// Over shapes and values: da, db of a ∘ b for the output gradient g follow the sum,
        /// difference, product and quotient rules, and add_row's row gets g's column sums.
        #[test]
        fn gradients_follow_the_sum_product_and_quotient_rules(
            rows in 1usize..6, cols in 1usize..6, seed in any::<u64>(),
        ) {
            let n = rows * cols;
            let a = uniform_values(n, seed);
            // b away from the pole of a/b.
            let b: Vec<f64> = uniform_values(n, seed ^ 1)
                .iter()
                .map(|v| v.signum() * (0.5 + v.abs()))
                .collect();
            let g = uniform_values(n, seed ^ 2);
            let inputs = [
                Tensor::from_vec(&[rows, cols], a.clone()),
                Tensor::from_vec(&[rows, cols], b.clone()),
            ];
            type Rule = fn(f64, f64, f64) -> (f64, f64, f64);
            type Binary = fn(&mut Tape<'_, f64>, Var, Var) -> Var;
            let rules: [(&str, Binary, Rule); 4] = [
                ("add", |t, a, b| t.add(a, b), |a, b, g| (a + b, g, g)),
                ("sub", |t, a, b| t.sub(a, b), |a, b, g| (a - b, g, -g)),
                ("mul", |t, a, b| t.mul(a, b), |a, b, g| (a * b, g * b, g * a)),
                ("div", |t, a, b| t.div(a, b), |a, b, g| (a / b, g / b, -g * a / (b * b))),
            ];
            for (name, op, rule) in rules {
                let (value, grads) = value_and_grads(&inputs, |t, x| op(t, x[0], x[1]), &g);
                let expected: Vec<(f64, f64, f64)> =
                    (0..n).map(|i| rule(a[i], b[i], g[i])).collect();
                let pick =
                    |f: fn(&(f64, f64, f64)) -> f64| expected.iter().map(f).collect::<Vec<_>>();
                prop_close(&value, &pick(|e| e.0), 1e-14, &format!("{name} value"))?;
                prop_close(&grads[0], &pick(|e| e.1), 1e-14, &format!("{name} da"))?;
                prop_close(&grads[1], &pick(|e| e.2), 1e-12, &format!("{name} db"))?;
            }
            // add_row: dx = g, dr = column sums of g.
            let with_row = [inputs[0].clone(), Tensor::from_vec(&[cols], b[..cols].to_vec())];
            let (_, grads) = value_and_grads(&with_row, |t, x| t.add_row(x[0], x[1]), &g);
            let col_sums: Vec<f64> =
                (0..cols).map(|j| (0..rows).map(|i| g[i * cols + j]).sum()).collect();
            prop_close(&grads[0], &g, 0.0, "add_row dx")?;
            prop_close(&grads[1], &col_sums, 1e-14, "add_row dr")?;
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Elementwise functions of one input: the activations, exp, log, square.
mod unary {
    use super::*;
    use std::f64::consts::LN_2;

    pub const OPS: &[&str] = &[
        "relu",
        "elu",
        "tanh",
        "sigmoid",
        "exp",
        "log",
        "square",
        "sqrt",
        "pow (x^2.5)",
        "pow (x^-1.5)",
        "pow (x^3, any sign)",
        "abs",
    ];

    catalogue_checks!(OPS);

    /// sqrt, pow and abs with output gradient 1: each gradient is the derivative itself.
    #[test]
    fn powers_and_abs_by_hand() {
        let positive = [Tensor::from_vec(&[3], vec![0.25, 1.0, 4.0])];
        let signed = [Tensor::from_vec(&[3], vec![-0.5, 0.5, 2.0])];
        let ones = [1.0; 3];
        // √x; d/dx = 1/(2√x): 1/(2·0.5) = 1, 1/2, 1/(2·2) = 1/4.
        check_by_hand(
            &positive,
            |t, v| t.sqrt(v[0]),
            &ones,
            &[0.5, 1.0, 2.0],
            &[&[1.0, 0.5, 0.25]],
        );
        // x^2.5; d/dx = 2.5·x^1.5: 0.25^2.5 = 1/32, 0.25^1.5 = 1/8, 4^2.5 = 32, 4^1.5 = 8.
        check_by_hand(
            &positive,
            |t, v| t.pow(v[0], 2.5),
            &ones,
            &[0.03125, 1.0, 32.0],
            &[&[0.3125, 2.5, 20.0]],
        );
        // x^−1; d/dx = −x^−2.
        check_by_hand(
            &positive,
            |t, v| t.pow(v[0], -1.0),
            &ones,
            &[4.0, 1.0, 0.25],
            &[&[-16.0, -1.0, -0.0625]],
        );
        // x³ at negative x too; d/dx = 3x².
        check_by_hand(
            &signed,
            |t, v| t.pow(v[0], 3.0),
            &ones,
            &[-0.125, 0.125, 8.0],
            &[&[0.75, 0.75, 12.0]],
        );
        // |x|; d/dx = sign x.
        check_by_hand(
            &signed,
            |t, v| t.abs(v[0]),
            &ones,
            &[0.5, 0.5, 2.0],
            &[&[-1.0, 1.0, 1.0]],
        );
    }

    /// The documented choices at the edges of the domains: abs takes the sub-gradient 0 at
    /// 0; √ has derivative +∞ at 0 and is NaN below; x^0 has derivative 0 even at 0; a
    /// non-integer power of a negative number is NaN; NaN propagates through abs.
    #[test]
    fn powers_and_abs_at_the_edges_of_their_domains() {
        let x = [Tensor::from_vec(&[3], vec![0.0, -4.0, f64::NAN])];
        let ones = [1.0; 3];
        let (value, grads) = value_and_grads(&x, |t, v| t.abs(v[0]), &ones);
        assert_eq!(&value[..2], &[0.0, 4.0]);
        assert_eq!(&grads[0][..2], &[0.0, -1.0]);
        assert!(value[2].is_nan() && grads[0][2].is_nan());
        let (value, grads) = value_and_grads(&x, |t, v| t.sqrt(v[0]), &ones);
        assert_eq!(value[0], 0.0);
        assert_eq!(grads[0][0], f64::INFINITY);
        assert!(value[1].is_nan() && grads[0][1].is_nan());
        let (value, grads) = value_and_grads(&x, |t, v| t.pow(v[0], 0.0), &ones);
        assert_eq!(&value[..2], &[1.0, 1.0]);
        assert_eq!(&grads[0][..2], &[0.0, 0.0]);
        let (value, grads) = value_and_grads(&x, |t, v| t.pow(v[0], 1.0), &ones);
        assert_eq!(&value[..2], &[0.0, -4.0]);
        assert_eq!(&grads[0][..2], &[1.0, 1.0]);
        let (value, grads) = value_and_grads(&x, |t, v| t.pow(v[0], 0.5), &ones);
        assert_eq!(grads[0][0], f64::INFINITY);
        assert!(value[1].is_nan() && grads[0][1].is_nan());
    }

    proptest! {
        #![proptest_config(config())]

        /// Over shapes, values and exponents: √, x^p and |x| and their gradients match closed
        /// forms computed another way (x^p as e^(p ln x) for a real p, by repeated
        /// multiplication for an integer p).
        #[test]
        fn powers_and_abs_match_their_closed_forms(
            rows in 1usize..5, cols in 1usize..6, p in -3.0f64..3.0, q in -3i32..5,
            seed in any::<u64>(),
        ) {
            let n = rows * cols;
            let x: Vec<f64> = uniform_values(n, seed).iter().map(|v| 4.0 * v).collect();
            let positive: Vec<f64> = x.iter().map(|v| v.abs() + 0.1).collect();
            let g = uniform_values(n, seed ^ 1);
            let run = |xs: &[f64], build: &dyn Fn(&mut Tape<'_, f64>, Var) -> Var| {
                let input = [Tensor::from_vec(&[rows, cols], xs.to_vec())];
                value_and_grads(&input, |t, v| build(t, v[0]), &g)
            };
            let scaled = |xs: &[f64], df: &dyn Fn(f64) -> f64| -> Vec<f64> {
                xs.iter().zip(&g).map(|(&v, &gi)| gi * df(v)).collect()
            };
            let (value, grads) = run(&positive, &|t, x| t.sqrt(x));
            let expected: Vec<f64> = positive.iter().map(|v| (0.5 * v.ln()).exp()).collect();
            prop_close(&value, &expected, 1e-13, "sqrt value")?;
            prop_close(&grads[0], &scaled(&positive, &|v| 0.5 / v.sqrt()), 1e-13, "sqrt gradient")?;
            let (value, grads) = run(&positive, &|t, x| t.pow(x, p));
            let expected: Vec<f64> = positive.iter().map(|v| (p * v.ln()).exp()).collect();
            prop_close(&value, &expected, 1e-12, "pow value")?;
            let df = |v: f64| p * ((p - 1.0) * v.ln()).exp();
            prop_close(&grads[0], &scaled(&positive, &df), 1e-12, "pow gradient")?;
            // An integer exponent at any sign (x ≠ 0 almost surely).
            let int_pow = |v: f64, k: i32| -> f64 {
                let m: f64 = (0..k.abs()).map(|_| v).product();
                if k < 0 { 1.0 / m } else { m }
            };
            let (value, grads) = run(&x, &|t, x| t.pow(x, f64::from(q)));
            let expected: Vec<f64> = x.iter().map(|&v| int_pow(v, q)).collect();
            prop_close(&value, &expected, 1e-12, "integer pow value")?;
            let df = |v: f64| if q == 0 { 0.0 } else { f64::from(q) * int_pow(v, q - 1) };
            prop_close(&grads[0], &scaled(&x, &df), 1e-12, "integer pow gradient")?;
            let (value, grads) = run(&x, &|t, x| t.abs(x));
            let expected: Vec<f64> = x.iter().map(|v| if *v < 0.0 { -v } else { *v }).collect();
            prop_close(&value, &expected, 0.0, "abs value")?;
            let df = |v: f64| if v > 0.0 { 1.0 } else if v < 0.0 { -1.0 } else { 0.0 };
            prop_close(&grads[0], &scaled(&x, &df), 0.0, "abs gradient")?;
        }
    }

    /// x = [−0.5, 0.5, 2] (log: [0.5, 1, 4]) with output gradient 1: each gradient is the
    /// derivative itself. Values to 17 digits.
    #[test]
    fn activations_by_hand() {
        let x = [Tensor::from_vec(&[3], vec![-0.5, 0.5, 2.0])];
        let ones = [1.0; 3];
        // relu x = max(x, 0); d/dx = 1 if x > 0 else 0.
        check_by_hand(
            &x,
            |t, v| t.relu(v[0]),
            &ones,
            &[0.0, 0.5, 2.0],
            &[&[0.0, 1.0, 1.0]],
        );
        // elu x = x if x > 0 else α(eˣ − 1), α = 1; d/dx = 1 if x > 0 else αeˣ = y + α.
        // e^−0.5 − 1 = −0.39346934028736658, e^−0.5 = 0.60653065971263342.
        check_by_hand(
            &x,
            |t, v| t.elu(v[0], 1.0),
            &ones,
            &[-0.3934693402873666, 0.5, 2.0],
            &[&[0.6065306597126334, 1.0, 1.0]],
        );
        // d/dx tanh x = 1 − tanh² x: tanh 0.5 = 0.46211715726000974, 1 − tanh² 0.5 =
        // 0.78644773296592741; tanh 2 = 0.96402758007581690, 1 − tanh² 2 = 0.070650824853164.
        check_by_hand(
            &x,
            |t, v| t.tanh(v[0]),
            &ones,
            &[
                -0.46211715726000974,
                0.46211715726000974,
                0.9640275800758169,
            ],
            &[&[0.7864477329659274, 0.7864477329659274, 0.07065082485316443]],
        );
        // σ(x) = 1/(1 + e⁻ˣ); d/dx σ = σ(1 − σ): σ(±0.5) = 0.5 ± 0.12245933120185456,
        // σ(0.5)·σ(−0.5) = 0.23500371220159449; σ(2) = 0.88079707797788244,
        // σ(2)(1 − σ(2)) = 0.10499358540350662.
        check_by_hand(
            &x,
            |t, v| t.sigmoid(v[0]),
            &ones,
            &[0.3775406687981454, 0.6224593312018546, 0.8807970779778823],
            &[&[0.2350037122015945, 0.2350037122015945, 0.10499358540350662]],
        );
        // d/dx eˣ = eˣ.
        let e = [0.6065306597126334, 1.6487212707001282, 7.38905609893065];
        check_by_hand(&x, |t, v| t.exp(v[0]), &ones, &e, &[&e]);
        // d/dx x² = 2x.
        check_by_hand(
            &x,
            |t, v| t.square(v[0]),
            &ones,
            &[0.25, 0.25, 4.0],
            &[&[-1.0, 1.0, 4.0]],
        );
        // d/dx ln x = 1/x: ln 0.5 = −ln 2 = −0.69314718055994531, ln 4 = 2 ln 2.
        check_by_hand(
            &[Tensor::from_vec(&[3], vec![0.5, 1.0, 4.0])],
            |t, v| t.log(v[0]),
            &ones,
            &[-LN_2, 0.0, 2.0 * LN_2],
            &[&[2.0, 1.0, 0.25]],
        );
    }

    proptest! {
        #![proptest_config(config())]

        /// Over shapes and values: each function's value and gradient (output gradient g)
        /// match its closed form written out here, independently of the engine's `Unary`.
        #[test]
        fn derivatives_match_their_closed_forms(
            rows in 1usize..5, cols in 1usize..6, seed in any::<u64>(),
        ) {
            let n = rows * cols;
            let x: Vec<f64> = uniform_values(n, seed).iter().map(|v| 4.0 * v).collect();
            let positive: Vec<f64> = x.iter().map(|v| v.abs() + 0.1).collect();
            let g = uniform_values(n, seed ^ 1);
            type Closed = fn(f64) -> f64;
            type Build = fn(&mut Tape<'_, f64>, Var) -> Var;
            let table: [(&str, Build, Closed, Closed); 7] = [
                ("relu", |t, x| t.relu(x), |x| x.max(0.0), |x| if x > 0.0 { 1.0 } else { 0.0 }),
                (
                    "elu",
                    |t, x| t.elu(x, 0.7),
                    |x| if x > 0.0 { x } else { 0.7 * (x.exp() - 1.0) },
                    |x| if x > 0.0 { 1.0 } else { 0.7 * x.exp() },
                ),
                ("tanh", |t, x| t.tanh(x), f64::tanh, |x| 1.0 - x.tanh().powi(2)),
                (
                    "sigmoid",
                    |t, x| t.sigmoid(x),
                    |x| 1.0 / (1.0 + (-x).exp()),
                    |x| {
                        let s = 1.0 / (1.0 + (-x).exp());
                        s * (1.0 - s)
                    },
                ),
                ("exp", |t, x| t.exp(x), f64::exp, f64::exp),
                ("log", |t, x| t.log(x), f64::ln, |x| 1.0 / x),
                ("square", |t, x| t.square(x), |x| x * x, |x| 2.0 * x),
            ];
            for (name, build, f, df) in table {
                let xs = if name == "log" { &positive } else { &x };
                let input = [Tensor::from_vec(&[rows, cols], xs.clone())];
                let (value, grads) = value_and_grads(&input, |t, v| build(t, v[0]), &g);
                let fx: Vec<f64> = xs.iter().map(|&v| f(v)).collect();
                let dx: Vec<f64> = xs.iter().zip(&g).map(|(&v, &gi)| gi * df(v)).collect();
                // expm1 (engine) and exp − 1 (here) differ by rounding near 0.
                prop_close(&value, &fx, 1e-13, &format!("{name} value"))?;
                prop_close(&grads[0], &dx, 1e-13, &format!("{name} gradient"))?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Matrix products: matmul (with transposes by strides), linear, the fused
/// linear_squared_distance, and the wide (panel) paths of dense layers.
mod matmul {
    use super::*;
    use crate::common::weighted_sum;
    use hypertape::gradcheck::{directional_check, wide_op_cases};

    pub const OPS: &[&str] = &[
        "matmul",
        "matmul A^T",
        "matmul B^T",
        "matmul A^T B^T",
        "linear",
        "linear (no bias)",
        "linear_squared_distance (2 groups)",
        "linear_squared_distance (to dense)",
        "linear_squared_distance_factored",
        "linear_squared_distance_factored (no biases, half of each group)",
    ];

    catalogue_checks!(OPS);

    /// Row-major transpose of a [rows×cols] matrix.
    fn transpose(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
        (0..cols)
            .flat_map(|j| (0..rows).map(move |i| v[i * cols + j]))
            .collect()
    }

    #[test]
    fn products_by_hand() {
        // C = A·B, A [2×3], B [3×2], output gradient G [2×2]: dA = G·Bᵀ, dB = Aᵀ·G.
        // C = [[1 − 2 + 1.5, 0 + 4 + 3], [4 − 5 + 3, 0 + 10 + 6]];
        // dA = [[1, −1, 0.5] + 2·[0, 2, 1], −[0, 2, 1]];
        // dB rows i: A[0, i]·[1, 2] + A[1, i]·[0, −1].
        let a = Tensor::from_vec(&[2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = Tensor::from_vec(&[3, 2], vec![1.0, 0.0, -1.0, 2.0, 0.5, 1.0]);
        let g = [1.0, 2.0, 0.0, -1.0];
        let c = [0.5, 7.0, 2.0, 16.0];
        let da = [1.0, 3.0, 2.5, 0.0, -2.0, -1.0];
        let db = [1.0, -2.0, 2.0, -1.0, 3.0, 0.0];
        check_by_hand(
            &[a.clone(), b.clone()],
            |t, x| t.matmul(x[0], x[1]),
            &g,
            &c,
            &[&da, &db],
        );
        // The same product from Aᵀ and Bᵀ as stored, transposed by strides: the same C, and
        // each gradient stored like its operand, dAᵀ and dBᵀ.
        let at = Tensor::from_vec(&[3, 2], transpose(a.data(), 2, 3));
        let bt = Tensor::from_vec(&[2, 3], transpose(b.data(), 3, 2));
        check_by_hand(
            &[at, bt],
            |t, x| t.matmul_t(x[0], x[1], true, true),
            &g,
            &c,
            &[
                &[1.0, 0.0, 3.0, -2.0, 2.5, -1.0],
                &[1.0, 2.0, 3.0, -2.0, -1.0, 0.0],
            ],
        );
        // y = x·Wᵀ + b for x [1×2], W [3×2], b [3]: dx = g·W, dW = gᵀ·x, db = g.
        // y = [1 + 0.5, 2 − 1, 1 − 2 + 2]; dx = [1, 0] − [0, 1] + 2·[1, −1].
        check_by_hand(
            &[
                Tensor::from_vec(&[1, 2], vec![1.0, 2.0]),
                Tensor::from_vec(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, -1.0]),
                Tensor::from_vec(&[3], vec![0.5, -1.0, 2.0]),
            ],
            |t, x| t.linear(x[0], x[1], Some(x[2])),
            &[1.0, -1.0, 2.0],
            &[1.5, 1.0, 1.0],
            &[
                &[3.0, -3.0],
                &[1.0, 2.0, -1.0, -2.0, 2.0, 4.0],
                &[1.0, -1.0, 2.0],
            ],
        );
    }

    #[test]
    fn fused_distance_by_hand() {
        // L = Σ_{p<3} (y[p] − t[p])², y = x·Wᵀ + b read flat, one group, the 4th element not
        // compared. x = I₂, W = [[1, 2], [3, 4]], b = [0, 1]: y = [[1, 4], [2, 5]],
        // t = [0, 3, 2]: y − t = [1, 1, 0] (masked: D = [[1, 1], [0, 0]]), L = 2.
        // dL/dy = 2D: dx = 2D·W = [[8, 12], [0, 0]], dW = 2Dᵀ·x = [[2, 0], [2, 0]],
        // db = column sums of 2D = [2, 2], dt = −2(y − t) = [−2, −2, 0].
        check_by_hand(
            &[
                Tensor::from_vec(&[2, 2], vec![1.0, 0.0, 0.0, 1.0]),
                Tensor::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]),
                Tensor::from_vec(&[2], vec![0.0, 1.0]),
                Tensor::from_vec(&[1, 3], vec![0.0, 3.0, 2.0]),
            ],
            |t, x| t.linear_squared_distance(x[0], x[1], Some(x[2]), x[3], 1),
            &[1.0],
            &[2.0],
            &[
                &[8.0, 12.0, 0.0, 0.0],
                &[2.0, 0.0, 2.0, 0.0],
                &[2.0, 2.0],
                &[-2.0, -2.0, 0.0],
            ],
        );
    }

    /// The wide cases' panel paths along one random direction (two forwards and one backward
    /// each); `tests/wide.rs` runs their full element-by-element check.
    #[test]
    fn wide_ops_pass_the_directional_check() {
        for case in wide_op_cases() {
            let inputs = case.inputs((1, 1, 1), 7);
            let build = case.build_f64;
            let report = directional_check(
                &inputs,
                |t, x| {
                    let y = build(t, x);
                    weighted_sum(t, y, 3)
                },
                11,
                &GradCheckOptions::default(),
            );
            assert!(report.passed, "{}: {report}", case.name);
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// op(A)·op(B) from operands stored transposed equals A·B from plain copies, and
        /// each operand's gradient is the plain one, stored the same way.
        #[test]
        fn transposed_operands_equal_plain_copies(
            m in 1usize..6, k in 1usize..6, n in 1usize..6,
            trans_a in any::<bool>(), trans_b in any::<bool>(), seed in any::<u64>(),
        ) {
            let a = uniform_values(m * k, seed);
            let b = uniform_values(k * n, seed ^ 1);
            let g = uniform_values(m * n, seed ^ 2);
            let plain = [
                Tensor::from_vec(&[m, k], a.clone()),
                Tensor::from_vec(&[k, n], b.clone()),
            ];
            let (c, grads) = value_and_grads(&plain, |t, x| t.matmul(x[0], x[1]), &g);
            let stored = [
                match trans_a {
                    true => Tensor::from_vec(&[k, m], transpose(&a, m, k)),
                    false => plain[0].clone(),
                },
                match trans_b {
                    true => Tensor::from_vec(&[n, k], transpose(&b, k, n)),
                    false => plain[1].clone(),
                },
            ];
            let (ct, grads_t) =
                value_and_grads(&stored, |t, x| t.matmul_t(x[0], x[1], trans_a, trans_b), &g);
            prop_close(&ct, &c, 1e-14, "C")?;
            let da = if trans_a { transpose(&grads[0], m, k) } else { grads[0].clone() };
            let db = if trans_b { transpose(&grads[1], k, n) } else { grads[1].clone() };
            prop_close(&grads_t[0], &da, 1e-14, "dA")?;
            prop_close(&grads_t[1], &db, 1e-14, "dB")?;
        }

        /// linear(x, W, b) is matmul_t(x, W, false, true) then add_row(b), and the fused
        /// distance is that layer's output, reshaped into groups, then squared_distance:
        /// values and every gradient.
        #[test]
        fn linear_and_fused_distance_equal_their_unfused_forms(
            rows_per_group in 1usize..4, groups in 1usize..4, k in 1usize..5, n in 1usize..5,
            seed in any::<u64>(),
        ) {
            let m = rows_per_group * groups;
            let inputs = [
                Tensor::from_vec(&[m, k], uniform_values(m * k, seed)),
                Tensor::from_vec(&[n, k], uniform_values(n * k, seed ^ 1)),
                Tensor::from_vec(&[n], uniform_values(n, seed ^ 2)),
                Tensor::from_vec(&[groups, m / groups * n], uniform_values(m * n, seed ^ 3)),
            ];
            let g = uniform_values(m * n, seed ^ 4);
            let (fused, fused_grads) =
                value_and_grads(&inputs[..3], |t, x| t.linear(x[0], x[1], Some(x[2])), &g);
            let (plain, plain_grads) = value_and_grads(&inputs[..3], |t, x| {
                let xw = t.matmul_t(x[0], x[1], false, true);
                t.add_row(xw, x[2])
            }, &g);
            prop_close(&fused, &plain, 1e-14, "linear")?;
            for (i, (f, p)) in fused_grads.iter().zip(&plain_grads).enumerate() {
                prop_close(f, p, 1e-13, &format!("linear gradient {i}"))?;
            }
            let (fused, fused_grads) = value_and_grads(&inputs, |t, x| {
                t.linear_squared_distance(x[0], x[1], Some(x[2]), x[3], groups)
            }, &[1.5]);
            let (plain, plain_grads) = value_and_grads(&inputs, |t, x| {
                let y = t.linear(x[0], x[1], Some(x[2]));
                let y = t.reshape(y, &[groups, m / groups * n]);
                t.squared_distance(y, x[3])
            }, &[1.5]);
            prop_close(&fused, &plain, 1e-13, "fused distance")?;
            for (i, (f, p)) in fused_grads.iter().zip(&plain_grads).enumerate() {
                prop_close(f, p, 1e-13, &format!("fused distance gradient {i}"))?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Sums and means over all elements, rows or columns.
mod reduce {
    use super::*;

    pub const OPS: &[&str] = &[
        "sum",
        "mean",
        "row_sums",
        "row_means",
        "col_sums",
        "col_means",
    ];

    catalogue_checks!(OPS);

    /// x = [[1, 2, 3], [4, 5, 6]].
    #[test]
    fn sums_and_means_by_hand() {
        let x = [Tensor::from_vec(
            &[2, 3],
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        )];
        // ∂(Σᵢⱼ x)/∂x[i, j] = 1: dx = g everywhere.
        check_by_hand(&x, |t, v| t.sum(v[0]), &[2.0], &[21.0], &[&[2.0; 6]]);
        // ∂(Σᵢⱼ x / 6)/∂x[i, j] = 1/6: dx = g/6 = 3/6.
        check_by_hand(&x, |t, v| t.mean(v[0]), &[3.0], &[3.5], &[&[0.5; 6]]);
        // ∂(Σⱼ x[i, j])/∂x[i, j] = 1: dx[i, j] = g[i].
        check_by_hand(
            &x,
            |t, v| t.row_sums(v[0]),
            &[1.0, -2.0],
            &[6.0, 15.0],
            &[&[1.0, 1.0, 1.0, -2.0, -2.0, -2.0]],
        );
        // Row means over 3 columns: dx[i, j] = g[i]/3.
        check_by_hand(
            &x,
            |t, v| t.row_means(v[0]),
            &[3.0, 6.0],
            &[2.0, 5.0],
            &[&[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]],
        );
        // ∂(Σᵢ x[i, j])/∂x[i, j] = 1: dx[i, j] = g[j].
        check_by_hand(
            &x,
            |t, v| t.col_sums(v[0]),
            &[1.0, 2.0, 3.0],
            &[5.0, 7.0, 9.0],
            &[&[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]],
        );
        // Column means over 2 rows: dx[i, j] = g[j]/2.
        check_by_hand(
            &x,
            |t, v| t.col_means(v[0]),
            &[2.0, 0.0, -4.0],
            &[2.5, 3.5, 4.5],
            &[&[1.0, 0.0, -2.0, 1.0, 0.0, -2.0]],
        );
    }

    proptest! {
        #![proptest_config(config())]

        /// Over shapes and values: every reduction's value is the sum (or mean) written out
        /// here, and its gradient spreads g over the reduced elements (divided by their count
        /// for a mean).
        #[test]
        fn every_axis_sums_and_spreads_its_gradient(
            rows in 1usize..7, cols in 1usize..7, seed in any::<u64>(),
        ) {
            let x = uniform_values(rows * cols, seed);
            let input = [Tensor::from_vec(&[rows, cols], x.clone())];
            let at = |i: usize, j: usize| x[i * cols + j];
            let row_sums: Vec<f64> = (0..rows).map(|i| (0..cols).map(|j| at(i, j)).sum()).collect();
            let col_sums: Vec<f64> = (0..cols).map(|j| (0..rows).map(|i| at(i, j)).sum()).collect();
            let total: f64 = x.iter().sum();
            let (r, c, rc) = (rows as f64, cols as f64, (rows * cols) as f64);
            type Build = fn(&mut Tape<'_, f64>, Var) -> Var;
            type Pick = fn(&[f64], usize, usize) -> f64;
            let (all, row, col): (Pick, Pick, Pick) =
                (|g, _, _| g[0], |g, i, _| g[i], |g, _, j| g[j]);
            // (name, op, value, the element of g that reaches x[i, j], the count it is divided by)
            let table: [(&str, Build, Vec<f64>, Pick, f64); 6] = [
                ("sum", |t, x| t.sum(x), vec![total], all, 1.0),
                ("mean", |t, x| t.mean(x), vec![total / rc], all, rc),
                ("row_sums", |t, x| t.row_sums(x), row_sums.clone(), row, 1.0),
                (
                    "row_means",
                    |t, x| t.row_means(x),
                    row_sums.iter().map(|s| s / c).collect(),
                    row,
                    c,
                ),
                ("col_sums", |t, x| t.col_sums(x), col_sums.clone(), col, 1.0),
                (
                    "col_means",
                    |t, x| t.col_means(x),
                    col_sums.iter().map(|s| s / r).collect(),
                    col,
                    r,
                ),
            ];
            for (name, build, expected, pick, count) in table {
                let g = uniform_values(expected.len(), seed ^ 1);
                let (value, grads) = value_and_grads(&input, |t, v| build(t, v[0]), &g);
                prop_close(&value, &expected, 1e-13, &format!("{name} value"))?;
                let dx: Vec<f64> =
                    (0..rows * cols).map(|p| pick(&g, p / cols, p % cols) / count).collect();
                prop_close(&grads[0], &dx, 1e-14, &format!("{name} gradient"))?;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// Views (reshape, narrow_rows, narrow_flat), concatenations, gather_rows and repeat_rows.
mod shape {
    use super::*;

    pub const OPS: &[&str] = &[
        "concat_rows",
        "concat_cols",
        "view (narrow_flat + reshape)",
        "narrow_rows (two views of one buffer)",
        "gather_rows",
        "repeat_rows",
        "transpose",
        "transpose (of a product)",
    ];

    catalogue_checks!(OPS);

    /// Xᵀ moves x[i, j] to y[j, i]; its gradient moves g[j, i] back to x[i, j].
    #[test]
    fn transpose_by_hand() {
        let x = [Tensor::from_vec(
            &[2, 3],
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        )];
        // y = [[1, 4], [2, 5], [3, 6]]; g = [[g00, g01], [g10, g11], [g20, g21]] gives
        // dx = gᵀ = [[g00, g10, g20], [g01, g11, g21]].
        check_by_hand(
            &x,
            |t, v| t.transpose(v[0]),
            &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0],
            &[&[0.1, 0.3, 0.5, 0.2, 0.4, 0.6]],
        );
        // A row [n] becomes the column [n, 1].
        let mut tape = Tape::<f64>::new();
        let r = tape.leaf(Tensor::from_vec(&[3], vec![1.0, 2.0, 3.0]));
        let c = tape.transpose(r);
        assert_eq!(tape.shape(c), &[3, 1]);
        assert_eq!(tape.value(c), &[1.0, 2.0, 3.0]);
    }

    /// A rank-3 tensor is not a matrix: transpose and softmax refuse it, naming themselves.
    #[test]
    fn transpose_and_softmax_refuse_a_tensor_of_rank_3() {
        type Build = fn(&mut Tape<'static, f64>, Var) -> Var;
        for (name, op) in [
            ("transpose", Tape::transpose as Build),
            ("softmax", Tape::softmax as Build),
        ] {
            let refused = std::panic::catch_unwind(|| {
                let mut tape = Tape::<f64>::new();
                let x = tape.leaf(Tensor::zeros(&[2, 2, 2]));
                op(&mut tape, x);
            })
            .unwrap_err();
            let message = refused
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default();
            assert_eq!(
                message,
                format!("{name}: expected a matrix (rank 1 or 2), got shape [2, 2, 2]")
            );
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// Over shapes (past the 32×32 tiles): (Xᵀ)ᵀ = X exactly, y[j, i] = x[i, j], the
        /// gradient of ⟨G, Xᵀ⟩ is Gᵀ, and (A·B)ᵀ equals Bᵀ·Aᵀ.
        #[test]
        fn transpose_moves_elements_and_gradients(
            rows in 1usize..40, cols in 1usize..40, k in 1usize..5, seed in any::<u64>(),
        ) {
            let x = uniform_values(rows * cols, seed);
            let input = [Tensor::from_vec(&[rows, cols], x.clone())];
            let g = uniform_values(rows * cols, seed ^ 1);
            let (value, grads) = value_and_grads(&input, |t, v| t.transpose(v[0]), &g);
            for i in 0..rows {
                for j in 0..cols {
                    prop_assert_eq!(value[j * rows + i], x[i * cols + j]);
                    prop_assert_eq!(grads[0][i * cols + j], g[j * rows + i]);
                }
            }
            let (twice, _) = value_and_grads(&input, |t, v| {
                let y = t.transpose(v[0]);
                t.transpose(y)
            }, &g);
            prop_assert_eq!(&twice, &x);
            let ab = [
                Tensor::from_vec(&[rows, k], uniform_values(rows * k, seed ^ 2)),
                Tensor::from_vec(&[k, cols], uniform_values(k * cols, seed ^ 3)),
            ];
            let (left, _) = value_and_grads(&ab, |t, v| {
                let p = t.matmul(v[0], v[1]);
                t.transpose(p)
            }, &g);
            let (right, _) = value_and_grads(&ab, |t, v| t.matmul_t(v[1], v[0], true, true), &g);
            prop_close(&left, &right, 1e-14, "(AB)ᵀ vs BᵀAᵀ")?;
        }
    }

    /// Each op moves elements without arithmetic: its gradient sends every element of g back
    /// to the element it came from (∂y[p]/∂x[q] = 1 if y[p] is x[q], else 0), adding where an
    /// element was copied more than once.
    #[test]
    fn copies_and_views_by_hand() {
        let x32 = [Tensor::from_vec(
            &[3, 2],
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        )];
        // Rows of a [1×2] over rows of b [2×2]: da = g's first row, db = the rest.
        check_by_hand(
            &[
                Tensor::from_vec(&[1, 2], vec![1.0, 2.0]),
                Tensor::from_vec(&[2, 2], vec![3.0, 4.0, 5.0, 6.0]),
            ],
            |t, x| t.concat_rows(x),
            &[10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &[&[10.0, 20.0], &[30.0, 40.0, 50.0, 60.0]],
        );
        // a [2×1] beside b [2×2]: [[1, 3, 4], [2, 5, 6]]; da = g's first column.
        check_by_hand(
            &[
                Tensor::from_vec(&[2, 1], vec![1.0, 2.0]),
                Tensor::from_vec(&[2, 2], vec![3.0, 4.0, 5.0, 6.0]),
            ],
            |t, x| t.concat_cols(x),
            &[10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
            &[1.0, 3.0, 4.0, 2.0, 5.0, 6.0],
            &[&[10.0, 40.0], &[20.0, 30.0, 50.0, 60.0]],
        );
        // Rows [2, 0, 2] of x: dx[0] = g[1], dx[1] = 0, dx[2] = g[0] + g[2].
        check_by_hand(
            &x32,
            |t, x| t.gather_rows(x[0], &[2, 0, 2]),
            &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
            &[5.0, 6.0, 1.0, 2.0, 5.0, 6.0],
            &[&[2.0, 2.0, 0.0, 0.0, 4.0, 4.0]],
        );
        // [7, 8] three times: dx = the sum of g's three rows.
        check_by_hand(
            &[Tensor::from_vec(&[1, 2], vec![7.0, 8.0])],
            |t, x| t.repeat_rows(x[0], 3),
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            &[7.0, 8.0, 7.0, 8.0, 7.0, 8.0],
            &[&[9.0, 12.0]],
        );
        // Rows 1..3 reshaped to [4]: g lands on elements 2..6 of x, zero elsewhere.
        check_by_hand(
            &x32,
            |t, x| {
                let rows = t.narrow_rows(x[0], 1, 2);
                t.reshape(rows, &[4])
            },
            &[1.0, 2.0, 3.0, 4.0],
            &[3.0, 4.0, 5.0, 6.0],
            &[&[0.0, 0.0, 1.0, 2.0, 3.0, 4.0]],
        );
        // Flat elements 1..4.
        check_by_hand(
            &x32,
            |t, x| t.narrow_flat(x[0], 1, 3),
            &[1.0, -1.0, 2.0],
            &[2.0, 3.0, 4.0],
            &[&[0.0, 1.0, -1.0, 2.0, 0.0, 0.0]],
        );
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

    proptest! {
        #![proptest_config(config())]

        /// Over sizes and cut points: x cut into row views and concatenated back is x, and
        /// g comes back to x unchanged; x beside itself sends each element the sum of its two
        /// copies' gradients.
        #[test]
        fn row_views_concatenate_back_and_route_gradients_back(
            rows in 2usize..7, cols in 1usize..5, cut in 1usize..6, seed in any::<u64>(),
        ) {
            let cut = cut.min(rows - 1);
            let x = uniform_values(rows * cols, seed);
            let input = [Tensor::from_vec(&[rows, cols], x.clone())];
            let g = uniform_values(rows * cols, seed ^ 1);
            let (value, grads) = value_and_grads(&input, |t, v| {
                let top = t.narrow_rows(v[0], 0, cut);
                let bottom = t.narrow_rows(v[0], cut, rows - cut);
                t.concat_rows(&[top, bottom])
            }, &g);
            prop_close(&value, &x, 0.0, "concat_rows of row views")?;
            prop_close(&grads[0], &g, 0.0, "gradient through the views")?;
            let g2 = uniform_values(2 * rows * cols, seed ^ 2);
            let (value, grads) = value_and_grads(&input, |t, v| t.concat_cols(&[v[0], v[0]]), &g2);
            let twice: Vec<f64> = x.chunks(cols).flat_map(|r| r.iter().chain(r)).copied().collect();
            prop_close(&value, &twice, 0.0, "x beside x")?;
            let summed: Vec<f64> = g2.chunks(2 * cols)
                .flat_map(|r| (0..cols).map(move |j| r[j] + r[cols + j]))
                .collect();
            prop_close(&grads[0], &summed, 1e-15, "gradient of x beside x")?;
        }

        /// Over sizes and index lists: gather_rows scatters g back by index (adding repeats),
        /// repeat_rows adds up the gradients of its copies.
        #[test]
        fn gather_and_repeat_add_up_the_gradients_of_their_copies(
            rows in 1usize..6, cols in 1usize..4,
            picks in proptest::collection::vec(0usize..100, 1..10), times in 1usize..4,
            seed in any::<u64>(),
        ) {
            let indices: Vec<usize> = picks.iter().map(|p| p % rows).collect();
            let x = uniform_values(rows * cols, seed);
            let input = [Tensor::from_vec(&[rows, cols], x.clone())];
            let g = uniform_values(indices.len() * cols, seed ^ 1);
            let (value, grads) = value_and_grads(&input, |t, v| t.gather_rows(v[0], &indices), &g);
            let gathered: Vec<f64> =
                indices.iter().flat_map(|&r| x[r * cols..(r + 1) * cols].iter().copied()).collect();
            prop_close(&value, &gathered, 0.0, "gather_rows")?;
            let mut scattered = vec![0.0; rows * cols];
            for (p, &r) in indices.iter().enumerate() {
                for j in 0..cols {
                    scattered[r * cols + j] += g[p * cols + j];
                }
            }
            prop_close(&grads[0], &scattered, 1e-15, "gather_rows gradient")?;
            let g = uniform_values(times * rows * cols, seed ^ 2);
            let (value, grads) = value_and_grads(&input, |t, v| t.repeat_rows(v[0], times), &g);
            prop_close(&value, &x.repeat(times), 0.0, "repeat_rows")?;
            let summed: Vec<f64> = (0..rows * cols)
                .map(|q| (0..times).map(|c| g[c * rows * cols + q]).sum())
                .collect();
            prop_close(&grads[0], &summed, 1e-15, "repeat_rows gradient")?;
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// log_softmax, softmax and the loss ops: softmax cross-entropy (one-hot and smoothed
/// targets), squared_distance, bce_with_logits.
mod losses {
    use super::*;
    use hypertape::rng::Rng;

    /// Rows [0, ln 3] and [1, 1]: softmax [1/4, 3/4] and [1/2, 1/2]. With g = [[1, 0],
    /// [2, −1]], dx = y ⊙ (g − ⟨g, y⟩): ⟨g, y⟩ = 1/4 and 1/2, so dx = [3/16, −3/16] and
    /// [3/4, −3/4].
    #[test]
    fn softmax_by_hand() {
        let x = [Tensor::from_vec(&[2, 2], vec![0.0, 3f64.ln(), 1.0, 1.0])];
        check_by_hand(
            &x,
            |t, v| t.softmax(v[0]),
            &[1.0, 0.0, 2.0, -1.0],
            &[0.25, 0.75, 0.5, 0.5],
            &[&[0.1875, -0.1875, 0.75, -0.75]],
        );
        // At logits whose exponentials overflow, and with an underflowing one.
        let mut tape = Tape::<f64>::new();
        let x = tape.leaf(Tensor::from_vec(&[1, 3], vec![1000.0, 1000.0, -1000.0]));
        let y = tape.softmax(x);
        assert_eq!(tape.value(y), &[0.5, 0.5, 0.0]);
    }

    proptest! {
        #![proptest_config(config())]

        /// Over shapes and logits: each row of softmax sums to 1, equals e^log_softmax, is
        /// unchanged by adding 1000 to its row (where e^x overflows), and its gradient is
        /// y ⊙ (g − ⟨g, y⟩) row by row.
        #[test]
        fn softmax_is_a_stable_distribution_with_its_gradient(
            rows in 1usize..5, cols in 1usize..7, scale in 0.1f64..30.0, seed in any::<u64>(),
        ) {
            let x: Vec<f64> = uniform_values(rows * cols, seed).iter().map(|v| scale * v).collect();
            let g = uniform_values(rows * cols, seed ^ 1);
            let input = [Tensor::from_vec(&[rows, cols], x.clone())];
            let (y, grads) = value_and_grads(&input, |t, v| t.softmax(v[0]), &g);
            let (logy, _) = value_and_grads(&input, |t, v| t.log_softmax(v[0]), &g);
            let shifted: Vec<f64> = x.iter().map(|v| v + 1000.0).collect();
            let (ys, _) = value_and_grads(
                &[Tensor::from_vec(&[rows, cols], shifted)], |t, v| t.softmax(v[0]), &g,
            );
            let exp_log: Vec<f64> = logy.iter().map(|v| v.exp()).collect();
            prop_close(&y, &exp_log, 1e-14, "softmax vs e^log_softmax")?;
            prop_close(&ys, &y, 1e-10, "softmax of logits + 1000")?;
            let mut expected = vec![0.0; rows * cols];
            for r in 0..rows {
                let row = r * cols..(r + 1) * cols;
                let total: f64 = y[row.clone()].iter().sum();
                prop_assert!((total - 1.0).abs() < 1e-14, "row {} sums to {}", r, total);
                let dot: f64 = g[row.clone()].iter().zip(&y[row.clone()]).map(|(a, b)| a * b).sum();
                for j in row {
                    expected[j] = y[j] * (g[j] - dot);
                }
            }
            prop_close(&grads[0], &expected, 1e-14, "softmax gradient")?;
        }
    }

    pub const OPS: &[&str] = &[
        "log_softmax",
        "softmax",
        "softmax_cross_entropy",
        "softmax_cross_entropy (label smoothing 0.1)",
        "squared_distance",
        "bce_with_logits",
    ];

    catalogue_checks!(OPS);

    /// Logits [0, 1, 2]: logΣexp = ln(1 + e + e²) = 2.4076059644443801 and
    /// softmax p = [0.090030573170380, 0.24472847105479767, 0.66524095577482199].
    #[test]
    fn log_softmax_and_cross_entropies_by_hand() {
        let row = [Tensor::from_vec(&[1, 3], vec![0.0, 1.0, 2.0])];
        // y = x − logΣexp(x); dx = g − p·Σⱼgⱼ: for g = [1, 0, 0], dx = [1 − p₀, −p₁, −p₂].
        check_by_hand(
            &row,
            |t, x| t.log_softmax(x[0]),
            &[1.0, 0.0, 0.0],
            &[-2.40760596444438, -1.4076059644443801, -0.40760596444438013],
            &[&[0.9099694268296196, -0.2447284710547977, -0.665240955774822]],
        );
        // Mean over rows of logΣexp(x) − x[label]; dx = (p − onehot)/rows. Row 0: [0, 1, 2],
        // label 2: 2.4076 − 2; row 1: [0, 0, 0], label 0: ln 3 = 1.0986122886681098, p = ⅓.
        check_by_hand(
            &[Tensor::from_vec(
                &[2, 3],
                vec![0.0, 1.0, 2.0, 0.0, 0.0, 0.0],
            )],
            |t, x| t.softmax_cross_entropy(x[0], &[2, 0]),
            &[1.0],
            &[0.753109126556245],
            &[&[
                0.04501528658519024,
                0.12236423552739885,
                -0.167379522112589,
                -1.0 / 3.0,
                1.0 / 6.0,
                1.0 / 6.0,
            ]],
        );
        // Smoothed, ε = 0.1 over 3 classes, label 2: q = [0.05, 0.05, 0.9];
        // L = −Σ q log p = logΣexp(x) − Σ q·x = 2.4076 − 1.85; dx = p − q.
        check_by_hand(
            &row,
            |t, x| t.softmax_cross_entropy_smoothed(x[0], &[2], 0.1),
            &[1.0],
            &[0.55760596444438],
            &[&[
                0.04003057317038047,
                0.19472847105479768,
                -0.23475904422517802,
            ]],
        );
        // Σ (a − b)²: da = 2(a − b), db = −2(a − b).
        check_by_hand(
            &[
                Tensor::from_vec(&[3], vec![1.0, 2.0, 3.0]),
                Tensor::from_vec(&[3], vec![0.0, 4.0, 3.0]),
            ],
            |t, x| t.squared_distance(x[0], x[1]),
            &[1.0],
            &[5.0],
            &[&[2.0, -4.0, 0.0], &[-2.0, 4.0, 0.0]],
        );
        // (1/N) Σ softplus(x) − x·y for x = [0, 2], y = [1, 0]: (ln 2 + ln(1 + e²))/2 with
        // ln(1 + e²) = 2.1269280110429727; dx = (σ(x) − y)/N = [(½ − 1)/2, σ(2)/2],
        // dy = −x/N = [0, −1].
        check_by_hand(
            &[
                Tensor::from_vec(&[2], vec![0.0, 2.0]),
                Tensor::from_vec(&[2], vec![1.0, 0.0]),
            ],
            |t, x| t.bce_with_logits(x[0], x[1]),
            &[1.0],
            &[1.410037595801459],
            &[&[-0.25, 0.44039853898894116], &[0.0, -1.0]],
        );
    }

    #[test]
    fn smoothed_cross_entropy_is_the_soft_target_loss_and_rejects_bad_input() {
        let logits = vec![1.0f64, -2.0, 0.5, 3.0, 3.0, -1.0];
        let labels = [2usize, 0];
        let eps = 0.1;
        let mut tape = Tape::new();
        let x = tape.leaf(Tensor::from_vec(&[2, 3], logits.clone()));
        let loss = tape.softmax_cross_entropy_smoothed(x, &labels, eps);
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
        // The gradient vanishes where softmax equals the soft target: margin ln(0.9/0.1) in 2
        // classes.
        let mut tape = Tape::new();
        let x = tape.leaf(Tensor::from_vec(&[1, 2], vec![(0.9f64 / 0.1).ln(), 0.0]));
        let loss = tape.softmax_cross_entropy_smoothed(x, &[0], 0.1);
        let g = tape.backward(loss);
        assert!(g.get(x).unwrap().iter().all(|v| v.abs() < 1e-15));
        // ε = 0 is the one-hot loss.
        let mut tape = Tape::new();
        let x = tape.leaf(Tensor::from_vec(&[2, 3], logits));
        let a = tape.softmax_cross_entropy_smoothed(x, &labels, 0.0);
        let b = tape.softmax_cross_entropy(x, &labels);
        assert_eq!(tape.item(a), tape.item(b));
        // Bad input is misuse: a label out of range, a label count other than the row count,
        // ε outside [0, 1) panic (at the caller's line).
        for (labels, eps) in [
            (&[0usize, 3][..], 0.1),
            (&[0][..], 0.1),
            (&[0, 1][..], 1.0),
            (&[0, 1][..], -0.1),
            (&[0, 1][..], f64::NAN),
        ] {
            let refused = std::panic::catch_unwind(|| {
                let mut tape = Tape::new();
                let x = tape.leaf(Tensor::from_vec(&[2, 3], vec![0.0f64; 6]));
                tape.softmax_cross_entropy_smoothed(x, labels, eps);
            });
            assert!(refused.is_err(), "{labels:?} {eps}");
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

    /// At logits of ±1e4 the fused loss stays finite and exact: ≈ 0 when the target agrees
    /// with the sign, ≈ |x|/N when it disagrees; gradients are ±1/N, not NaN.
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

    proptest! {
        #![proptest_config(config())]

        /// The fused binary cross-entropy on logits equals −y·ln σ(x) − (1 − y)·ln(1 − σ(x))
        /// averaged over the elements, and its logit gradient is (σ(x) − y)/N.
        #[test]
        fn bce_with_logits_matches_its_definition(rows in 1usize..6, cols in 1usize..6, seed in any::<u64>()) {
            let mut rng = Rng::new(seed);
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

        /// Over shapes, logits, labels and smoothing ε: log_softmax is x − logΣexp(x) row by
        /// row, and the (smoothed) cross-entropy is the mean over rows of
        /// logΣexp(x) − Σ_c q_c x_c with gradient (softmax − q)/rows, q = 1 − ε on the label
        /// and ε/(n − 1) elsewhere.
        #[test]
        fn cross_entropy_gradient_is_softmax_minus_the_soft_target(
            rows in 1usize..5, cols in 2usize..6, eps in 0.0f64..0.5, seed in any::<u64>(),
        ) {
            let mut rng = Rng::new(seed);
            let x: Vec<f64> = (0..rows * cols).map(|_| rng.uniform_range(-3.0, 3.0)).collect();
            let labels: Vec<usize> = (0..rows).map(|_| rng.below(cols)).collect();
            let lse: Vec<f64> =
                x.chunks(cols).map(|r| r.iter().map(|v| v.exp()).sum::<f64>().ln()).collect();
            let q = |i: usize, c: usize| {
                if c == labels[i] { 1.0 - eps } else { eps / (cols - 1) as f64 }
            };
            let input = [Tensor::from_vec(&[rows, cols], x.clone())];
            let g = uniform_values(rows * cols, seed ^ 1);
            let (value, _) = value_and_grads(&input, |t, v| t.log_softmax(v[0]), &g);
            let expected: Vec<f64> = (0..rows * cols).map(|p| x[p] - lse[p / cols]).collect();
            prop_close(&value, &expected, 1e-13, "log_softmax")?;
            let (value, grads) = value_and_grads(&input, |t, v| {
                t.softmax_cross_entropy_smoothed(v[0], &labels, eps)
            }, &[1.0]);
            let loss = (0..rows)
                .map(|i| lse[i] - (0..cols).map(|c| q(i, c) * x[i * cols + c]).sum::<f64>())
                .sum::<f64>() / rows as f64;
            prop_close(&value, &[loss], 1e-13, "cross-entropy")?;
            let dx: Vec<f64> = (0..rows * cols)
                .map(|p| {
                    let (i, c) = (p / cols, p % cols);
                    ((x[p] - lse[i]).exp() - q(i, c)) / rows as f64
                })
                .collect();
            prop_close(&grads[0], &dx, 1e-13, "cross-entropy gradient")?;
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The rules of backward itself, whatever the op, and the catalogue's split into families.
mod tape {
    use super::*;
    use hypertape::gradcheck::gradcheck;

    #[test]
    fn every_catalogued_op_is_in_exactly_one_family() {
        let families = [
            ("elementwise", super::elementwise::OPS),
            ("unary", super::unary::OPS),
            ("matmul", super::matmul::OPS),
            ("reduce", super::reduce::OPS),
            ("shape", super::shape::OPS),
            ("losses", super::losses::OPS),
        ];
        for case in op_cases() {
            let homes: Vec<&str> = families
                .iter()
                .filter(|(_, ops)| ops.contains(&case.name))
                .map(|(family, _)| *family)
                .collect();
            assert_eq!(
                homes.len(),
                1,
                "op case '{}' is in families {homes:?}: add it to one family's OPS in tests/ops.rs",
                case.name
            );
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
        // f(x) = Σ x ⊙ stop_gradient(x): the tape sees a constant copy, so its gradient is x
        // while the true derivative is 2x. The check must fail on it.
        let x = Tensor::from_vec(&[3], vec![0.5f64, -1.5, 2.0]);
        let report = gradcheck(
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
}

/// `backward_onto` adds a leaf's gradient onto a given buffer: the sum of the buffer and what
/// `backward` gives, the other leaves' gradients unchanged.
#[test]
fn backward_onto_adds_a_leafs_gradient_onto_the_given_buffer() {
    let mut tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::from_vec(&[4], vec![1.0, -2.0, 3.0, 0.5]));
    let y = tape.leaf(Tensor::from_vec(&[2], vec![2.0, -1.0]));
    let head = tape.narrow_flat(x, 0, 2);
    let tail = tape.narrow_flat(x, 2, 2);
    let a = tape.mul(head, y);
    let b = tape.mul(tail, head);
    let c = tape.add(a, b);
    let loss = tape.sum(c);
    let plain = tape.backward(loss);
    let (gx, gy) = (
        plain.get(x).unwrap().to_vec(),
        plain.get(y).unwrap().to_vec(),
    );
    let start = vec![0.25, -8.0, 16.0, 1.0];
    let mut onto = tape.backward_onto(loss, x, start.clone());
    let want: Vec<f64> = start.iter().zip(&gx).map(|(s, g)| s + g).collect();
    assert_eq!(onto.take(x).unwrap(), want);
    assert_eq!(onto.get(y).unwrap(), &gy[..]);

    // No gradient reaches the leaf: the buffer comes back as given.
    let z = tape.leaf(Tensor::from_vec(&[3], vec![1.0; 3]));
    let only_y = tape.sum(y);
    let mut grads = tape.backward_onto(only_y, z, vec![7.0, 8.0, 9.0]);
    assert_eq!(grads.take(z).unwrap(), vec![7.0, 8.0, 9.0]);
}

#[test]
#[should_panic(expected = "not a leaf")]
fn backward_onto_refuses_a_view() {
    let mut tape = Tape::<f64>::new();
    let x = tape.leaf(Tensor::from_vec(&[2], vec![1.0, 2.0]));
    let v = tape.narrow_flat(x, 0, 1);
    let loss = tape.sum(x);
    let _ = tape.backward_onto(loss, v, vec![0.0]);
}
