//! The catalogue of op audits: every op of the tape with the input shapes it takes for given
//! dimensions (m, k, n), the range its inputs are drawn from, and how to build it. Used by
//! `hypertape gradcheck` and by the property tests, in f64 (gradients) and f32 (forwards).

use super::{gradcheck, GradCheckOptions, GradCheckReport};
use crate::engine::tape::{DistanceTarget, Tape, Var};
use crate::engine::tensor::{Float, Tensor};
use crate::rng::Rng;

/// Where an op's inputs are drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// Uniform in (−2, 2).
    Any,
    /// Uniform in (0.2, 2): for log and the like.
    Positive,
    /// Uniform in (−0.2, 0.2): for sums of thousands of squares, whose central differences
    /// would otherwise lose the gradient in the rounding of the sum.
    Small,
    /// |x| uniform in (0.2, 2), random sign: away from the kinks of relu and elu and from the
    /// pole of division.
    AwayFromZero,
}

impl Domain {
    fn sample(self, rng: &mut Rng) -> f64 {
        match self {
            Domain::Any => rng.uniform_range(-2.0, 2.0),
            Domain::Positive => rng.uniform_range(0.2, 2.0),
            Domain::Small => rng.uniform_range(-0.2, 0.2),
            Domain::AwayFromZero => {
                let m = rng.uniform_range(0.2, 2.0);
                if rng.below(2) == 0 {
                    m
                } else {
                    -m
                }
            }
        }
    }
}

type Build<F> = fn(&mut Tape<'_, F>, &[Var]) -> Var;

/// One op under audit.
pub struct OpCase {
    /// The op (and variant) audited.
    pub name: &'static str,
    /// The input shapes for dimensions (m, k, n).
    pub shapes: fn(usize, usize, usize) -> Vec<Vec<usize>>,
    /// Where inputs are drawn from.
    pub domain: Domain,
    /// The op on an f64 tape.
    pub build_f64: Build<f64>,
    /// The same op on an f32 tape.
    pub build_f32: Build<f32>,
}

impl OpCase {
    /// Random inputs for dimensions (m, k, n).
    pub fn inputs(&self, dims: (usize, usize, usize), seed: u64) -> Vec<Tensor<f64>> {
        let mut rng = Rng::derived(seed, self.name, 0);
        (self.shapes)(dims.0, dims.1, dims.2)
            .iter()
            .map(|s| Tensor::from_fn(s, |_| self.domain.sample(&mut rng)))
            .collect()
    }

    /// The f64 gradient check of ⟨w, op(inputs)⟩ for a random weighting w (so that the
    /// gradient arriving at the op is not all ones).
    pub fn check(
        &self,
        inputs: &[Tensor<f64>],
        seed: u64,
        options: &GradCheckOptions,
    ) -> GradCheckReport {
        let build = self.build_f64;
        let weights = self.output_weights(inputs, seed);
        gradcheck(
            inputs,
            |tape, xs| {
                let y = build(tape, xs);
                let shape = tape.shape(y).to_vec();
                let w = tape.constant_ref(&shape, &weights);
                let wy = tape.mul(y, w);
                tape.sum(wy)
            },
            options,
        )
    }

    fn output_weights(&self, inputs: &[Tensor<f64>], seed: u64) -> Vec<f64> {
        let mut tape = Tape::no_grad();
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| tape.constant_ref(t.shape(), t.data()))
            .collect();
        let y = (self.build_f64)(&mut tape, &vars);
        let mut rng = Rng::derived(seed, "output-weights", 0);
        (0..tape.value(y).len())
            .map(|_| rng.uniform_range(-1.0, 1.0))
            .collect()
    }

    /// The op's output on a tape of `F` (recording or not), as f64.
    pub fn forward<F: Float>(
        &self,
        inputs: &[Tensor<f64>],
        recording: bool,
        build: Build<F>,
    ) -> Vec<f64> {
        let cast: Vec<Tensor<F>> = inputs.iter().map(Tensor::cast).collect();
        let mut tape = if recording {
            Tape::new()
        } else {
            Tape::no_grad()
        };
        let vars: Vec<Var> = cast
            .iter()
            .map(|t| tape.leaf_ref(t.shape(), t.data()))
            .collect();
        let y = build(&mut tape, &vars);
        tape.value(y).iter().map(|v| v.to_f64()).collect()
    }
}

/// Builds an [`OpCase`] whose body is written once for both element types.
macro_rules! case {
    ($name:literal, $domain:ident, |$m:ident, $k:ident, $n:ident| $shapes:expr, |$t:ident, $x:ident| $body:expr) => {
        OpCase {
            name: $name,
            shapes: |$m, $k, $n| {
                let _ = ($m, $k, $n);
                $shapes
            },
            domain: Domain::$domain,
            build_f64: |$t: &mut Tape<'_, f64>, $x: &[Var]| $body,
            build_f32: |$t: &mut Tape<'_, f32>, $x: &[Var]| $body,
        }
    };
}

/// Labels for softmax cross-entropy: a fixed pattern over the classes.
fn pattern_labels(rows: usize, classes: usize) -> Vec<usize> {
    (0..rows).map(|i| (i * 7 + 3) % classes).collect()
}

/// Every op of the tape, as audits.
pub fn op_cases() -> Vec<OpCase> {
    vec![
        case!(
            "matmul",
            Any,
            |m, k, n| vec![vec![m, k], vec![k, n]],
            |t, x| t.matmul(x[0], x[1])
        ),
        case!(
            "matmul A^T",
            Any,
            |m, k, n| vec![vec![k, m], vec![k, n]],
            |t, x| t.matmul_t(x[0], x[1], true, false)
        ),
        case!(
            "matmul B^T",
            Any,
            |m, k, n| vec![vec![m, k], vec![n, k]],
            |t, x| t.matmul_t(x[0], x[1], false, true)
        ),
        case!(
            "matmul A^T B^T",
            Any,
            |m, k, n| vec![vec![k, m], vec![n, k]],
            |t, x| t.matmul_t(x[0], x[1], true, true)
        ),
        case!(
            "linear",
            Any,
            |m, k, n| vec![vec![m, k], vec![n, k], vec![n]],
            |t, x| t.linear(x[0], x[1], Some(x[2]))
        ),
        case!(
            "linear (no bias)",
            Any,
            |m, k, n| vec![vec![m, k], vec![n, k]],
            |t, x| t.linear(x[0], x[1], None)
        ),
        case!(
            "add",
            Any,
            |m, k, n| vec![vec![m, n], vec![m, n]],
            |t, x| t.add(x[0], x[1])
        ),
        case!(
            "sub",
            Any,
            |m, k, n| vec![vec![m, n], vec![m, n]],
            |t, x| t.sub(x[0], x[1])
        ),
        case!(
            "mul",
            Any,
            |m, k, n| vec![vec![m, n], vec![m, n]],
            |t, x| t.mul(x[0], x[1])
        ),
        case!("mul (x*x)", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .mul(x[0], x[0])),
        case!(
            "div",
            AwayFromZero,
            |m, k, n| vec![vec![m, n], vec![m, n]],
            |t, x| t.div(x[0], x[1])
        ),
        case!(
            "add_row",
            Any,
            |m, k, n| vec![vec![m, n], vec![n]],
            |t, x| t.add_row(x[0], x[1])
        ),
        case!("scale", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .scale(x[0], Float::from_f64(-1.7))),
        case!("neg", Any, |m, k, n| vec![vec![m, n]], |t, x| t.neg(x[0])),
        case!("sum", Any, |m, k, n| vec![vec![m, n]], |t, x| t.sum(x[0])),
        case!("mean", Any, |m, k, n| vec![vec![m, n]], |t, x| t.mean(x[0])),
        case!("row_sums", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .row_sums(x[0])),
        case!("row_means", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .row_means(x[0])),
        case!("col_sums", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .col_sums(x[0])),
        case!("col_means", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .col_means(x[0])),
        case!("relu", AwayFromZero, |m, k, n| vec![vec![m, n]], |t, x| t
            .relu(x[0])),
        case!("elu", AwayFromZero, |m, k, n| vec![vec![m, n]], |t, x| t
            .elu(x[0], 1.0)),
        case!("tanh", Any, |m, k, n| vec![vec![m, n]], |t, x| t.tanh(x[0])),
        case!("sigmoid", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .sigmoid(x[0])),
        case!("exp", Any, |m, k, n| vec![vec![m, n]], |t, x| t.exp(x[0])),
        case!("log", Positive, |m, k, n| vec![vec![m, n]], |t, x| t
            .log(x[0])),
        case!("square", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .square(x[0])),
        case!("sqrt", Positive, |m, k, n| vec![vec![m, n]], |t, x| t
            .sqrt(x[0])),
        case!(
            "pow (x^2.5)",
            Positive,
            |m, k, n| vec![vec![m, n]],
            |t, x| t.pow(x[0], 2.5)
        ),
        case!(
            "pow (x^-1.5)",
            Positive,
            |m, k, n| vec![vec![m, n]],
            |t, x| t.pow(x[0], -1.5)
        ),
        case!(
            "pow (x^3, any sign)",
            Any,
            |m, k, n| vec![vec![m, n]],
            |t, x| t.pow(x[0], 3.0)
        ),
        case!("abs", AwayFromZero, |m, k, n| vec![vec![m, n]], |t, x| t
            .abs(x[0])),
        case!("transpose", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .transpose(x[0])),
        case!(
            "transpose (of a product)",
            Any,
            |m, k, n| vec![vec![m, k], vec![k, n]],
            |t, x| {
                let y = t.matmul(x[0], x[1]);
                t.transpose(y)
            }
        ),
        case!(
            "concat_rows",
            Any,
            |m, k, n| vec![vec![m, n], vec![k, n], vec![1, n]],
            |t, x| t.concat_rows(x)
        ),
        case!(
            "concat_cols",
            Any,
            |m, k, n| vec![vec![m, n], vec![m, k]],
            |t, x| t.concat_cols(x)
        ),
        case!(
            "view (narrow_flat + reshape)",
            Any,
            |m, k, n| vec![vec![m + 1, n]],
            |t, x| {
                let (r, c) = t.dims(x[0]);
                let flat = t.narrow_flat(x[0], c, (r - 1) * c);
                let y = t.reshape(flat, &[c, r - 1]);
                t.square(y)
            }
        ),
        case!(
            "narrow_rows (two views of one buffer)",
            Any,
            |m, k, n| vec![vec![2 * m, n]],
            |t, x| {
                let (r, _) = t.dims(x[0]);
                let a = t.narrow_rows(x[0], 0, r / 2);
                let b = t.narrow_rows(x[0], r / 2, r / 2);
                t.mul(a, b)
            }
        ),
        case!("gather_rows", Any, |m, k, n| vec![vec![m, n]], |t, x| {
            let (r, _) = t.dims(x[0]);
            t.gather_rows(x[0], &[r - 1, 0, r - 1, r / 2])
        }),
        case!("repeat_rows", Any, |m, k, n| vec![vec![1, n]], |t, x| t
            .repeat_rows(x[0], 3)),
        case!("log_softmax", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .log_softmax(x[0])),
        case!("softmax", Any, |m, k, n| vec![vec![m, n]], |t, x| t
            .softmax(x[0])),
        case!(
            "softmax_cross_entropy",
            Any,
            |m, k, n| vec![vec![m, n]],
            |t, x| {
                let (r, c) = t.dims(x[0]);
                t.softmax_cross_entropy(x[0], &pattern_labels(r, c))
            }
        ),
        case!(
            "softmax_cross_entropy (label smoothing 0.1)",
            Any,
            |m, k, n| vec![vec![m, n]],
            |t, x| {
                let (r, c) = t.dims(x[0]);
                t.softmax_cross_entropy_smoothed(x[0], &pattern_labels(r, c), 0.1)
            }
        ),
        case!(
            "squared_distance",
            Any,
            |m, k, n| vec![vec![m, n], vec![m, n]],
            |t, x| t.squared_distance(x[0], x[1])
        ),
        case!(
            "bce_with_logits",
            Any,
            |m, k, n| vec![vec![m, n], vec![m, n]],
            |t, x| t.bce_with_logits(x[0], x[1])
        ),
        case!(
            "linear_squared_distance (2 groups)",
            Any,
            |m, k, n| vec![
                vec![2 * m, k],
                vec![n, k],
                vec![n],
                vec![2, (m * n).saturating_sub(1).max(1)]
            ],
            |t, x| t.linear_squared_distance(x[0], x[1], Some(x[2]), x[3], 2)
        ),
        case!(
            "linear_squared_distance (to dense)",
            Any,
            |m, k, n| vec![
                vec![2 * m, k],
                vec![n, k],
                vec![n],
                vec![2 * m, k + 1],
                vec![n, k + 1],
                vec![n]
            ],
            |t, x| {
                let group_len = t.dims(x[0]).0 / 2 * t.dims(x[1]).0;
                let target = DistanceTarget::Dense {
                    x: x[3],
                    w: x[4],
                    b: Some(x[5]),
                    len: group_len.saturating_sub(1).max(1),
                };
                t.linear_squared_distance_to(x[0], x[1], Some(x[2]), target, 2)
            }
        ),
        case!(
            "linear_squared_distance_factored",
            Any,
            |m, k, n| vec![
                vec![2 * m, k],
                vec![n, k],
                vec![n],
                vec![2 * m, k],
                vec![n, k],
                vec![n]
            ],
            |t, x| {
                // All but the last output of each group of m rows: its last row is cut.
                let group_len = t.dims(x[0]).0 / 2 * t.dims(x[1]).0;
                let target = DistanceTarget::Dense {
                    x: x[3],
                    w: x[4],
                    b: Some(x[5]),
                    len: group_len.saturating_sub(1).max(1),
                };
                t.linear_squared_distance_factored(x[0], x[1], Some(x[2]), target, 2)
            }
        ),
        case!(
            "linear_squared_distance_factored (no biases, half of each group)",
            Any,
            |m, k, n| vec![vec![3 * m, k], vec![n, k], vec![3 * m, k], vec![n, k]],
            |t, x| {
                // Rows compared whole, one cut, the rest not compared.
                let group_len = t.dims(x[0]).0 / 3 * t.dims(x[1]).0;
                let target = DistanceTarget::Dense {
                    x: x[2],
                    w: x[3],
                    b: None,
                    len: group_len / 2 + 1,
                };
                t.linear_squared_distance_factored(x[0], x[1], None, target, 3)
            }
        ),
    ]
}

/// Outputs of the wide cases: enough for the panel code paths of dense layers
/// ([`crate::engine::kernels::panels_pay_off`]).
pub const WIDE: usize = 8200;

/// The ops whose wide shapes take other code paths (panels over output columns), at fixed
/// shapes: a full check is thousands of evaluations, too many for every property-test case.
pub fn wide_op_cases() -> Vec<OpCase> {
    vec![
        case!(
            "linear (wide: panel backward)",
            Any,
            |m, k, n| vec![vec![3, 2], vec![WIDE, 2], vec![WIDE]],
            |t, x| t.linear(x[0], x[1], Some(x[2]))
        ),
        case!(
            "linear_squared_distance (wide: panels)",
            Small,
            |m, k, n| vec![vec![4, 2], vec![WIDE, 2], vec![WIDE]],
            |t, x| {
                // A constant target (as the regularizer's), covering all but the last 5
                // outputs of each group of two rows.
                let len = 2 * WIDE - 5;
                let target = Tensor::from_fn(&[2, len], |i| {
                    Float::from_f64((i * 7919 % 1000) as f64 / 2500.0 - 0.2)
                });
                let target = t.constant(target);
                t.linear_squared_distance(x[0], x[1], Some(x[2]), target, 2)
            }
        ),
        case!(
            "linear_squared_distance (wide, to dense)",
            Small,
            |m, k, n| vec![vec![4, 2], vec![WIDE, 2], vec![WIDE]],
            |t, x| {
                // A constant layer (as the regularizer's θ*), covering all but the last 5
                // outputs of each group of two rows.
                let value = |i: usize, s: usize| {
                    Float::from_f64(((i * 7919 + s * 104_729) % 1000) as f64 / 2500.0 - 0.2)
                };
                let xt = t.constant(Tensor::from_fn(&[4, 3], |i| value(i, 1)));
                let wt = t.constant(Tensor::from_fn(&[WIDE, 3], |i| value(i, 2)));
                let bt = t.constant(Tensor::from_fn(&[WIDE], |i| value(i, 3)));
                let target = DistanceTarget::Dense {
                    x: xt,
                    w: wt,
                    b: Some(bt),
                    len: 2 * WIDE - 5,
                };
                t.linear_squared_distance_to(x[0], x[1], Some(x[2]), target, 2)
            }
        ),
        case!(
            "linear_squared_distance_factored (wide: blocks and lanes)",
            Small,
            |m, k, n| vec![
                vec![4, 2],
                vec![WIDE, 2],
                vec![WIDE],
                vec![4, 2],
                vec![WIDE, 2],
                vec![WIDE]
            ],
            |t, x| {
                // All but the last 5 outputs of each group of two rows: W's rows are summed
                // in blocks over several lanes, apart before and after the cut.
                let target = DistanceTarget::Dense {
                    x: x[3],
                    w: x[4],
                    b: Some(x[5]),
                    len: 2 * WIDE - 5,
                };
                t.linear_squared_distance_factored(x[0], x[1], Some(x[2]), target, 2)
            }
        ),
    ]
}

/// One row of the op audit: the op, its input shapes, and its check.
pub struct OpAudit {
    /// The op (and variant).
    pub name: &'static str,
    /// Its input shapes.
    pub shapes: Vec<Vec<usize>>,
    /// The gradient check.
    pub report: GradCheckReport,
}

/// Audits every op on random inputs of dimensions (m, k, n) drawn from `seed`, then the wide
/// cases at their fixed shapes.
pub fn audit_ops(
    dims: (usize, usize, usize),
    seed: u64,
    options: &GradCheckOptions,
) -> Vec<OpAudit> {
    op_cases()
        .iter()
        .chain(&wide_op_cases())
        .map(|case| {
            let inputs = case.inputs(dims, seed);
            OpAudit {
                name: case.name,
                shapes: inputs.iter().map(|t| t.shape().to_vec()).collect(),
                report: case.check(&inputs, seed, options),
            }
        })
        .collect()
}
