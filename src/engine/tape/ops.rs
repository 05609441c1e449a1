//! Every op of the tape: its record ([`Op`]), its forward method and, right beside it, its
//! backward rule. The dispatch in [`Tape::backward_op`] is one line per op.
//!
//! Conventions: matrices are row-major; a rank-1 tensor `[n]` is one row; `g` is the gradient
//! of the op's output, and a backward rule *adds* into its inputs' gradients (a node may feed
//! several consumers). Inputs that need no gradient are skipped.
//!
//! Every public op checks its operands before it computes anything, in O(1) per operand (their
//! tape, shapes, and sizes without overflow), and panics on misuse at the caller's line (see
//! the module documentation of the tape); the backward rules rely on these checks.

use super::{GradBuffers, Tape, Var};
use crate::engine::kernels::{self, gemm};
use crate::engine::tensor::{checked_shape_len, shape_len, Float};
use rayon::prelude::*;
use std::fmt;

/// An elementwise function of one input, with its derivative beside it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// max(x, 0), NaN for NaN; d/dx = 1 if x > 0, NaN if x is NaN, else 0.
    Relu,
    /// x if x > 0 else α(eˣ − 1); d/dx = 1 if x > 0 else y + α.
    Elu(f64),
    /// tanh x; d/dx = 1 − y².
    Tanh,
    /// 1 / (1 + e⁻ˣ); d/dx = y(1 − y).
    Sigmoid,
    /// eˣ; d/dx = y.
    Exp,
    /// ln x; d/dx = 1/x.
    Log,
    /// x²; d/dx = 2x.
    Square,
}

impl Unary {
    /// y = f(x).
    #[inline]
    pub fn apply<F: Float>(self, x: F) -> F {
        match self {
            // Not `x.max(0)`, which maps NaN to 0 and so hides it from training.
            Unary::Relu => {
                if x > F::ZERO || x.is_nan() {
                    x
                } else {
                    F::ZERO
                }
            }
            Unary::Elu(a) => {
                if x > F::ZERO {
                    x
                } else {
                    F::from_f64(a) * x.exp_m1()
                }
            }
            Unary::Tanh => x.tanh(),
            Unary::Sigmoid => {
                // Two branches keep e^(±x) from overflowing.
                if x >= F::ZERO {
                    F::ONE / (F::ONE + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (F::ONE + e)
                }
            }
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Square => x * x,
        }
    }

    /// dy/dx from the input x and the output y.
    #[inline]
    pub fn derivative<F: Float>(self, x: F, y: F) -> F {
        match self {
            Unary::Relu => {
                if x > F::ZERO {
                    F::ONE
                } else if x.is_nan() {
                    x
                } else {
                    F::ZERO
                }
            }
            Unary::Elu(a) => {
                if x > F::ZERO {
                    F::ONE
                } else {
                    y + F::from_f64(a)
                }
            }
            Unary::Tanh => F::ONE - y * y,
            Unary::Sigmoid => y * (F::ONE - y),
            Unary::Exp => y,
            Unary::Log => F::ONE / x,
            Unary::Square => (F::ONE + F::ONE) * x,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Unary::Relu => "relu",
            Unary::Elu(_) => "elu",
            Unary::Tanh => "tanh",
            Unary::Sigmoid => "sigmoid",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Square => "square",
        }
    }
}

/// gx[i] += g[i] · d(x[i], y[i]) over equal-length slices, in parallel blocks when long
/// (each element is computed alone, so the result does not depend on the threads).
#[inline(always)]
fn add_derivative<F: Float>(gx: &mut [F], g: &[F], x: &[F], y: &[F], d: impl Fn(F, F) -> F + Sync) {
    let run = |gx: &mut [F], g: &[F], x: &[F], y: &[F]| {
        for (((o, &g), &x), &y) in gx.iter_mut().zip(g).zip(x).zip(y) {
            *o += g * d(x, y);
        }
    };
    if gx.len() >= kernels::PARALLEL_MIN_LEN {
        const B: usize = 1 << 13;
        gx.par_chunks_mut(B)
            .zip(g.par_chunks(B))
            .zip(x.par_chunks(B).zip(y.par_chunks(B)))
            .for_each(|((gx, g), (x, y))| run(gx, g, x, y));
    } else {
        run(gx, g, x, y);
    }
}

/// What a reduction sums over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Every element: a scalar.
    All,
    /// Within each row: one value per row, shape `[rows]`.
    Row,
    /// Within each column: one value per column, shape `[cols]`.
    Col,
}

/// The record of one node: which op made it from which inputs, and what its backward rule
/// needs beyond the input and output values (which stay on the tape).
pub enum Op<F> {
    /// An input: a parameter (gradient returned) or a constant.
    Leaf,
    /// op(A)·op(B), with transposes by strides.
    MatMul {
        a: Var,
        b: Var,
        trans_a: bool,
        trans_b: bool,
    },
    /// x·Wᵀ + b (a dense layer, W stored out×in).
    Linear { x: Var, w: Var, b: Option<Var> },
    /// a + b.
    Add(Var, Var),
    /// a − b.
    Sub(Var, Var),
    /// a ⊙ b.
    Mul(Var, Var),
    /// a ⊘ b.
    Div(Var, Var),
    /// x + r with the row r added to every row of x.
    AddRow { x: Var, row: Var },
    /// s·x.
    Scale(Var, F),
    /// Sum (or mean, with `mean`) over an axis.
    Reduce { x: Var, axis: Axis, mean: bool },
    /// An elementwise function.
    Unary(Var, Unary),
    /// Inputs stacked vertically.
    ConcatRows(Vec<Var>),
    /// Inputs side by side.
    ConcatCols(Vec<Var>),
    /// A contiguous range of x's buffer under a new shape (narrow, reshape): no copy.
    View(Var),
    /// Rows of x picked by index (an embedding lookup).
    GatherRows { x: Var, indices: Vec<usize> },
    /// x stacked `times` times vertically.
    RepeatRows { x: Var, times: usize },
    /// Row-wise log-softmax.
    LogSoftmax(Var),
    /// xᵀ (\[`ops_extra`\], as the four below).
    Transpose(Var),
    /// Row-wise softmax.
    Softmax(Var),
    /// √x.
    Sqrt(Var),
    /// x^p for a constant p.
    Pow(Var, f64),
    /// |x|.
    Abs(Var),
    /// Mean over rows of −Σ_c q_c log softmax(logits)_c with q = 1 − ε on the label and
    /// ε/(n − 1) on every other class (ε = `smoothing`, 0: the one-hot target); keeps the
    /// softmax for backward.
    SoftmaxCrossEntropy {
        logits: Var,
        labels: Vec<usize>,
        smoothing: f64,
        probs: Vec<F>,
    },
    /// Σ (a − b)².
    SquaredDistance(Var, Var),
    /// Mean over all elements of softplus(x) − x·y (binary cross-entropy on logits x).
    BceWithLogits { logits: Var, targets: Var },
    /// Σ over groups of ‖first len elements of the group of rows of x·Wᵀ + b − target‖².
    LinearSquaredDistance {
        x: Var,
        w: Var,
        b: Option<Var>,
        target: DistanceTarget,
        groups: usize,
        saved: DistanceSaved<F>,
    },
    /// [`Op::LinearSquaredDistance`] to a [`DistanceTarget::Dense`] target of the same shape,
    /// computed from k×k Gram matrices ([`kernels::factored_squared_distance`]); keeps the
    /// gradients of its inputs (in the order of [`Op::inputs`]) for an output gradient of 1.
    FactoredSquaredDistance {
        x: Var,
        w: Var,
        b: Option<Var>,
        target: DistanceTarget,
        groups: usize,
        grads: Vec<Vec<F>>,
    },
}

/// The target of [`Tape::linear_squared_distance_to`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistanceTarget {
    /// Given values [groups × len]: the first len elements of each group are compared.
    Values(Var),
    /// The output of another dense layer, x_t·W_tᵀ + b_t (x_t [m×k_t], W_t [n×k_t], b_t \[n\]),
    /// read in the same groups, the first `len` elements of each compared. On the panel path
    /// it is made panel by panel beside y and never stored.
    Dense {
        /// x_t.
        x: Var,
        /// W_t.
        w: Var,
        /// b_t.
        b: Option<Var>,
        /// Elements of each group compared.
        len: usize,
    },
}

impl DistanceTarget {
    /// The nodes the target reads.
    fn vars(self) -> Vec<Var> {
        match self {
            DistanceTarget::Values(t) => vec![t],
            DistanceTarget::Dense { x, w, b, .. } => {
                [Some(x), Some(w), b].into_iter().flatten().collect()
            }
        }
    }
}

/// What [`Op::LinearSquaredDistance`] keeps for its backward.
#[derive(Debug)]
pub enum DistanceSaved<F> {
    /// The masked difference y − t [m×n].
    Diff(Vec<F>),
    /// The gradients of x, W and b for an output gradient of 1, computed in the forward pass
    /// panel by panel (empty where no gradient flows); y − t is never stored.
    Grads {
        /// ∂/∂x.
        x: Vec<F>,
        /// ∂/∂W.
        w: Vec<F>,
        /// ∂/∂b.
        b: Vec<F>,
    },
}

impl<F> DistanceSaved<F> {
    /// The buffers it holds.
    pub(crate) fn into_buffers(self) -> Vec<Vec<F>> {
        match self {
            DistanceSaved::Diff(d) => vec![d],
            DistanceSaved::Grads { x, w, b } => vec![x, w, b],
        }
    }
}

impl<F> Op<F> {
    /// The op's name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Leaf => "leaf",
            Op::MatMul { .. } => "matmul",
            Op::Linear { .. } => "linear",
            Op::Add(..) => "add",
            Op::Sub(..) => "sub",
            Op::Mul(..) => "mul",
            Op::Div(..) => "div",
            Op::AddRow { .. } => "add_row",
            Op::Scale(..) => "scale",
            Op::Reduce { .. } => "reduce",
            Op::Unary(_, u) => u.name(),
            Op::ConcatRows(_) => "concat_rows",
            Op::ConcatCols(_) => "concat_cols",
            Op::View(_) => "view",
            Op::GatherRows { .. } => "gather_rows",
            Op::RepeatRows { .. } => "repeat_rows",
            Op::LogSoftmax(_) => "log_softmax",
            Op::Transpose(_) => "transpose",
            Op::Softmax(_) => "softmax",
            Op::Sqrt(_) => "sqrt",
            Op::Pow(..) => "pow",
            Op::Abs(_) => "abs",
            Op::SoftmaxCrossEntropy { .. } => "softmax_cross_entropy",
            Op::SquaredDistance(..) => "squared_distance",
            Op::BceWithLogits { .. } => "bce_with_logits",
            Op::LinearSquaredDistance { .. } => "linear_squared_distance",
            Op::FactoredSquaredDistance { .. } => "linear_squared_distance_factored",
        }
    }

    /// The nodes this op reads.
    pub fn inputs(&self) -> Vec<Var> {
        match self {
            Op::Leaf => vec![],
            Op::MatMul { a, b, .. } => vec![*a, *b],
            Op::Linear { x, w, b } => [Some(*x), Some(*w), *b].into_iter().flatten().collect(),
            Op::Add(a, b) | Op::Sub(a, b) | Op::Mul(a, b) | Op::Div(a, b) => vec![*a, *b],
            Op::SquaredDistance(a, b) => vec![*a, *b],
            Op::BceWithLogits { logits, targets } => vec![*logits, *targets],
            Op::LinearSquaredDistance {
                x, w, b, target, ..
            }
            | Op::FactoredSquaredDistance {
                x, w, b, target, ..
            } => [Some(*x), Some(*w), *b]
                .into_iter()
                .flatten()
                .chain(target.vars())
                .collect(),
            Op::AddRow { x, row } => vec![*x, *row],
            Op::Scale(x, _) | Op::Unary(x, _) | Op::View(x) | Op::LogSoftmax(x) => vec![*x],
            Op::Transpose(x) | Op::Softmax(x) | Op::Sqrt(x) | Op::Pow(x, _) | Op::Abs(x) => {
                vec![*x]
            }
            Op::Reduce { x, .. } | Op::GatherRows { x, .. } | Op::RepeatRows { x, .. } => {
                vec![*x]
            }
            Op::ConcatRows(v) | Op::ConcatCols(v) => v.clone(),
            Op::SoftmaxCrossEntropy { logits, .. } => vec![*logits],
        }
    }
}

impl<F> fmt::Debug for Op<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ins: Vec<String> = self
            .inputs()
            .iter()
            .map(|v| format!("%{}", v.index()))
            .collect();
        write!(f, "{}({})", self.name(), ins.join(", "))
    }
}

impl<'a, F: Float> Tape<'a, F> {
    /// Runs the backward rule of node `v` with output gradient `g`.
    pub(super) fn backward_op(&self, v: Var, g: &[F], grads: &mut GradBuffers<F>) {
        match &self.nodes[v.index()].op {
            Op::Leaf | Op::View(_) => {}
            Op::MatMul {
                a,
                b,
                trans_a,
                trans_b,
            } => self.matmul_backward(*a, *b, *trans_a, *trans_b, g, grads),
            Op::Linear { x, w, b } => self.linear_backward(*x, *w, *b, g, grads),
            Op::Add(a, b) => self.add_backward(*a, *b, g, grads),
            Op::Sub(a, b) => self.sub_backward(*a, *b, g, grads),
            Op::Mul(a, b) => self.mul_backward(*a, *b, g, grads),
            Op::Div(a, b) => self.div_backward(*a, *b, g, grads),
            Op::AddRow { x, row } => self.add_row_backward(*x, *row, g, grads),
            Op::Scale(x, s) => self.scale_backward(*x, *s, g, grads),
            Op::Reduce { x, axis, mean } => self.reduce_backward(*x, *axis, *mean, g, grads),
            Op::Unary(x, u) => self.unary_backward(*x, v, *u, g, grads),
            Op::ConcatRows(xs) => self.concat_rows_backward(xs, g, grads),
            Op::ConcatCols(xs) => self.concat_cols_backward(xs, g, grads),
            Op::GatherRows { x, indices } => self.gather_rows_backward(*x, indices, g, grads),
            Op::RepeatRows { x, times } => self.repeat_rows_backward(*x, *times, g, grads),
            Op::LogSoftmax(x) => self.log_softmax_backward(*x, v, g, grads),
            Op::Transpose(_) | Op::Softmax(_) | Op::Sqrt(_) | Op::Pow(..) | Op::Abs(_) => {
                self.extra_backward(v, g, grads)
            }
            Op::SoftmaxCrossEntropy {
                logits,
                labels,
                smoothing,
                probs,
            } => self.softmax_cross_entropy_backward(*logits, labels, *smoothing, probs, g, grads),
            Op::SquaredDistance(a, b) => self.squared_distance_backward(*a, *b, g, grads),
            Op::BceWithLogits { logits, targets } => {
                self.bce_with_logits_backward(*logits, *targets, g, grads)
            }
            Op::LinearSquaredDistance {
                x,
                w,
                b,
                target,
                groups,
                saved,
            } => {
                self.linear_squared_distance_backward(*x, *w, *b, *target, *groups, saved, g, grads)
            }
            Op::FactoredSquaredDistance { grads: saved, .. } => {
                let inputs = self.nodes[v.index()].op.inputs();
                self.factored_squared_distance_backward(&inputs, saved, g, grads)
            }
        }
    }

    /// The gradient slot of `v` if a gradient must flow to it.
    pub(super) fn grad_of<'g>(&self, v: Var, grads: &'g mut GradBuffers<F>) -> Option<&'g mut [F]> {
        self.requires_grad(v).then(|| grads.slot(self, v))
    }

    /// Checks that `row` is a row of `n` elements (shape `[n]` or `[1, n]`): the one
    /// broadcast of the ops, a bias added to every row.
    #[track_caller]
    fn check_row(&self, row: Var, n: usize, what: &str, name: &str) {
        let shape = self.shape(row);
        if !(shape == [n] || shape == [1, n]) {
            panic!("{what}: {name} of shape {shape:?}, expected [{n}] or [1, {n}]");
        }
    }

    /// Checks the operands of a dense layer x·Wᵀ + b of op `what`: x [m×k] and W [n×k]
    /// matrices, b a row of n, and m·n within `usize`; returns (m, k, n).
    #[track_caller]
    fn check_dense(&self, x: Var, w: Var, b: Option<Var>, what: &str) -> (usize, usize, usize) {
        let (m, k) = self.matrix(x, what);
        let (n, k2) = self.matrix(w, what);
        if k != k2 {
            panic!(
                "{what}: input of shape {:?} (width {k}) but weight of shape {:?} (width {k2})",
                self.shape(x),
                self.shape(w)
            );
        }
        if let Some(b) = b {
            self.check_row(b, n, what, "bias");
        }
        output_len(what, m, n);
        (m, k, n)
    }
}

/// Elements of the [rows × cols] output of op `what`.
///
/// # Panics
/// If they overflow `usize` (a product of [m×0] and [0×n] matrices of large m and n, say).
#[track_caller]
fn output_len(what: &str, rows: usize, cols: usize) -> usize {
    // `match`, not `unwrap_or_else`: a closure would report its own line, not the caller's.
    match rows.checked_mul(cols) {
        Some(n) => n,
        None => panic!("{what}: an output of {rows}×{cols} elements overflows usize"),
    }
}

// ---------------------------------------------------------------------------------------------
// Matrix products

impl<'a, F: Float> Tape<'a, F> {
    /// C = A·B for A [m×k], B [k×n]: [m×n] (a rank-1 `[k]` is one row).
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let a = tape.leaf(Tensor::from_vec(&[1, 2], vec![1.0, 2.0]));
    /// let b = tape.leaf(Tensor::from_vec(&[2, 2], vec![3.0, 4.0, 5.0, 6.0]));
    /// let c = tape.matmul(a, b);
    /// assert_eq!(tape.value(c), &[13.0, 16.0]);
    /// let loss = tape.sum(c);
    /// let grads = tape.backward(loss);
    /// assert_eq!(grads.get(a).unwrap(), &[7.0, 11.0]); // dA = G·Bᵀ, G all ones
    /// assert_eq!(grads.get(b).unwrap(), &[1.0, 1.0, 2.0, 2.0]); // dB = Aᵀ·G
    /// ```
    #[track_caller]
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        self.matmul_t(a, b, false, false)
    }

    /// C = op(A)·op(B) where op transposes when asked (by strides, never by copying).
    #[track_caller]
    pub fn matmul_t(&mut self, a: Var, b: Var, trans_a: bool, trans_b: bool) -> Var {
        let (ar, ac) = self.matrix(a, "matmul");
        let (br, bc) = self.matrix(b, "matmul");
        let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
        let (k2, n) = if trans_b { (bc, br) } else { (br, bc) };
        if k != k2 {
            panic!(
                "matmul: inner dimensions {k} and {k2} differ (shapes {:?}{} and {:?}{})",
                self.shape(a),
                if trans_a { "ᵀ" } else { "" },
                self.shape(b),
                if trans_b { "ᵀ" } else { "" },
            );
        }
        let mut out = self.pool.take(output_len("matmul", m, n));
        gemm(
            m,
            n,
            k,
            F::ONE,
            self.value(a),
            trans_a,
            self.value(b),
            trans_b,
            F::ZERO,
            &mut out,
        );
        let op = Op::MatMul {
            a,
            b,
            trans_a,
            trans_b,
        };
        self.push(op, &[a, b], vec![m, n], out)
    }

    /// dA = g·op(B)ᵀ (stored transposed if A is), dB = op(A)ᵀ·g (likewise); both with β = 1.
    fn matmul_backward(
        &self,
        a: Var,
        b: Var,
        trans_a: bool,
        trans_b: bool,
        g: &[F],
        grads: &mut GradBuffers<F>,
    ) {
        let (ar, ac) = self.dims(a);
        let (br, bc) = self.dims(b);
        let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
        let n = if trans_b { br } else { bc };
        let (av, bv) = (self.value(a), self.value(b));
        if let Some(ga) = self.grad_of(a, grads) {
            if trans_a {
                gemm(k, m, n, F::ONE, bv, trans_b, g, true, F::ONE, ga);
            } else {
                gemm(m, k, n, F::ONE, g, false, bv, !trans_b, F::ONE, ga);
            }
        }
        if let Some(gb) = self.grad_of(b, grads) {
            if trans_b {
                gemm(n, k, m, F::ONE, g, true, av, trans_a, F::ONE, gb);
            } else {
                gemm(k, n, m, F::ONE, av, !trans_a, g, false, F::ONE, gb);
            }
        }
    }

    /// y = x·Wᵀ + b for x [m×in], W [out×in], b \[out\] (or [1×out]): a dense layer in one
    /// node.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.constant(Tensor::from_vec(&[1, 2], vec![1.0, -1.0]));
    /// let w = tape.leaf(Tensor::from_vec(&[3, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]));
    /// let b = tape.leaf(Tensor::from_vec(&[3], vec![0.5, 0.5, 0.5]));
    /// let y = tape.linear(x, w, Some(b));
    /// assert_eq!(tape.shape(y), &[1, 3]);
    /// assert_eq!(tape.value(y), &[1.5, -0.5, 0.5]);
    /// ```
    #[track_caller]
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Var {
        let (m, n, out) = self.dense_forward(x, w, b, "linear");
        let inputs: Vec<Var> = [Some(x), Some(w), b].into_iter().flatten().collect();
        self.push(Op::Linear { x, w, b }, &inputs, vec![m, n], out)
    }

    /// dx = g·W, dW = gᵀ·x, db = column sums of g.
    fn linear_backward(&self, x: Var, w: Var, b: Option<Var>, g: &[F], grads: &mut GradBuffers<F>) {
        self.dense_backward(x, w, b, F::ONE, g, grads);
    }

    /// (m, n, x·Wᵀ + b) in a pooled buffer, the operands checked: the forward of
    /// [`Tape::linear`] and of the fused ops built on it.
    #[track_caller]
    fn dense_forward(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        what: &str,
    ) -> (usize, usize, Vec<F>) {
        let (m, k, n) = self.check_dense(x, w, b, what);
        let mut out = self.pool.take(m * n);
        let beta = if let Some(b) = b {
            let bv = self.value(b);
            out.chunks_exact_mut(n.max(1))
                .for_each(|row| row.copy_from_slice(bv));
            F::ONE
        } else {
            F::ZERO
        };
        gemm(
            m,
            n,
            k,
            F::ONE,
            self.value(x),
            false,
            self.value(w),
            true,
            beta,
            &mut out,
        );
        (m, n, out)
    }

    /// The backward of a dense layer whose output gradient is α·g: dx += α·g·W,
    /// dW += α·gᵀ·x, db += α·column sums of g.
    fn dense_backward(
        &self,
        x: Var,
        w: Var,
        b: Option<Var>,
        alpha: F,
        g: &[F],
        grads: &mut GradBuffers<F>,
    ) {
        let (m, k) = self.dims(x);
        let (n, _) = self.dims(w);
        if kernels::panels_pay_off(m, n, k) {
            let wants = |v: Var| self.requires_grad(v).then_some(v);
            let vars = [wants(x), wants(w), b.and_then(wants)];
            let mut scratch =
                grads
                    .pool
                    .take(kernels::panel_scratch_len(m, n, k, vars[0].is_some()));
            if let Some([gx, gw, gb]) = grads.disjoint_slots(self, vars) {
                let copy_panel = |j0: usize, panel: &mut [F]| {
                    kernels::copy_panel(g, n, alpha, j0, panel);
                    0.0
                };
                let (xv, wv) = (self.value(x), self.value(w));
                let sinks = kernels::DenseGrads {
                    x: gx,
                    w: gw,
                    b: gb,
                };
                kernels::dense_backward_panels(m, n, k, xv, wv, copy_panel, sinks, &mut scratch);
                grads.pool.give(scratch);
                return;
            }
            grads.pool.give(scratch);
        }
        if let Some(gx) = self.grad_of(x, grads) {
            gemm(m, k, n, alpha, g, false, self.value(w), false, F::ONE, gx);
        }
        if let Some(gw) = self.grad_of(w, grads) {
            gemm(n, k, m, alpha, g, true, self.value(x), false, F::ONE, gw);
        }
        if let Some(b) = b.filter(|&b| self.requires_grad(b)) {
            if alpha == F::ONE {
                add_col_sums(g, n, grads.slot(self, b));
            } else {
                let mut sums = grads.pool.take_zeroed(n);
                add_col_sums(g, n, &mut sums);
                kernels::update(grads.slot(self, b), &sums, |d, c| d + alpha * c);
                grads.pool.give(sums);
            }
        }
    }
}

/// acc[j] += Σᵢ g[i, j] for g with `cols` columns, split over column blocks (deterministic).
fn add_col_sums<F: Float>(g: &[F], cols: usize, acc: &mut [F]) {
    if cols == 0 {
        return;
    }
    let rows = g.len() / cols;
    let col_block = |(j0, acc): (usize, &mut [F])| {
        for r in 0..rows {
            let row = &g[r * cols + j0..r * cols + j0 + acc.len()];
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
        }
    };
    const COLS_PER_TASK: usize = 4096;
    if g.len() >= kernels::PARALLEL_MIN_LEN && cols > COLS_PER_TASK {
        acc.par_chunks_mut(COLS_PER_TASK)
            .enumerate()
            .map(|(i, a)| (i * COLS_PER_TASK, a))
            .for_each(col_block);
    } else {
        col_block((0, acc));
    }
}

// ---------------------------------------------------------------------------------------------
// Elementwise arithmetic

impl<'a, F: Float> Tape<'a, F> {
    /// The common shape of the operands of an elementwise op `what`: they must have equal
    /// shapes, not merely equal element counts ([2, 3] and [3, 2] are refused).
    #[track_caller]
    fn binary_shape(&self, a: Var, b: Var, what: &str) -> Vec<usize> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa != sb {
            panic!("{what}: shapes {sa:?} and {sb:?} differ");
        }
        sa.to_vec()
    }

    #[track_caller]
    fn binary(&mut self, a: Var, b: Var, op: Op<F>, f: impl Fn(F, F) -> F + Sync) -> Var {
        let shape = self.binary_shape(a, b, op.name());
        let mut out = self.pool.take(self.value(a).len());
        kernels::zip_map(self.value(a), self.value(b), &mut out, f);
        self.push(op, &[a, b], shape, out)
    }

    /// a + b (equal shapes).
    #[track_caller]
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        self.binary(a, b, Op::Add(a, b), |x, y| x + y)
    }

    /// da = g, db = g.
    fn add_backward(&self, a: Var, b: Var, g: &[F], grads: &mut GradBuffers<F>) {
        if let Some(ga) = self.grad_of(a, grads) {
            kernels::add_assign(ga, g);
        }
        if let Some(gb) = self.grad_of(b, grads) {
            kernels::add_assign(gb, g);
        }
    }

    /// a − b (equal shapes).
    #[track_caller]
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        self.binary(a, b, Op::Sub(a, b), |x, y| x - y)
    }

    /// da = g, db = −g.
    fn sub_backward(&self, a: Var, b: Var, g: &[F], grads: &mut GradBuffers<F>) {
        if let Some(ga) = self.grad_of(a, grads) {
            kernels::add_assign(ga, g);
        }
        if let Some(gb) = self.grad_of(b, grads) {
            kernels::update(gb, g, |d, g| d - g);
        }
    }

    /// a ⊙ b (equal shapes).
    #[track_caller]
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        self.binary(a, b, Op::Mul(a, b), |x, y| x * y)
    }

    /// da = g ⊙ b, db = g ⊙ a.
    fn mul_backward(&self, a: Var, b: Var, g: &[F], grads: &mut GradBuffers<F>) {
        if let Some(ga) = self.grad_of(a, grads) {
            kernels::update2(ga, g, self.value(b), |d, g, y| d + g * y);
        }
        if let Some(gb) = self.grad_of(b, grads) {
            kernels::update2(gb, g, self.value(a), |d, g, x| d + g * x);
        }
    }

    /// a ⊘ b (equal shapes).
    #[track_caller]
    pub fn div(&mut self, a: Var, b: Var) -> Var {
        self.binary(a, b, Op::Div(a, b), |x, y| x / y)
    }

    /// da = g ⊘ b, db = −g ⊙ a ⊘ b².
    fn div_backward(&self, a: Var, b: Var, g: &[F], grads: &mut GradBuffers<F>) {
        let (av, bv) = (self.value(a), self.value(b));
        if let Some(ga) = self.grad_of(a, grads) {
            kernels::update2(ga, g, bv, |d, g, y| d + g / y);
        }
        if let Some(gb) = self.grad_of(b, grads) {
            for ((d, &g), (&x, &y)) in gb.iter_mut().zip(g).zip(av.iter().zip(bv)) {
                *d -= g * x / (y * y);
            }
        }
    }

    /// x + r, the row vector r (`[n]` or `[1×n]`) added to every row of x [m×n] (a bias): the
    /// one broadcast of the elementwise ops.
    #[track_caller]
    pub fn add_row(&mut self, x: Var, row: Var) -> Var {
        let (_, n) = self.matrix(x, "add_row");
        self.check_row(row, n, "add_row", "row");
        let mut out = self.pool.take(self.value(x).len());
        out.copy_from_slice(self.value(x));
        let rv = self.value(row);
        if n > 0 {
            out.chunks_exact_mut(n)
                .for_each(|r| kernels::add_assign(r, rv));
        }
        let shape = self.shape(x).to_vec();
        self.push(Op::AddRow { x, row }, &[x, row], shape, out)
    }

    /// dx = g, dr = column sums of g.
    fn add_row_backward(&self, x: Var, row: Var, g: &[F], grads: &mut GradBuffers<F>) {
        if let Some(gx) = self.grad_of(x, grads) {
            kernels::add_assign(gx, g);
        }
        let (_, n) = self.dims(x);
        if let Some(gr) = self.grad_of(row, grads) {
            add_col_sums(g, n, gr);
        }
    }

    /// s·x.
    #[track_caller]
    pub fn scale(&mut self, x: Var, s: F) -> Var {
        let mut out = self.pool.take(self.value(x).len());
        kernels::map(self.value(x), &mut out, |v| s * v);
        let shape = self.shape(x).to_vec();
        self.push(Op::Scale(x, s), &[x], shape, out)
    }

    /// −x.
    #[track_caller]
    pub fn neg(&mut self, x: Var) -> Var {
        self.scale(x, -F::ONE)
    }

    /// dx = s·g.
    fn scale_backward(&self, x: Var, s: F, g: &[F], grads: &mut GradBuffers<F>) {
        if let Some(gx) = self.grad_of(x, grads) {
            kernels::update(gx, g, |d, g| d + s * g);
        }
    }

    /// f(x) elementwise (see [`Unary`] for each f and its derivative).
    #[track_caller]
    pub fn unary(&mut self, x: Var, f: Unary) -> Var {
        let mut out = self.pool.take(self.value(x).len());
        let xv = self.value(x);
        // One loop per function with the function fixed in it, so that it compiles to
        // straight vector code instead of a branch on `f` per element.
        match f {
            Unary::Relu => kernels::map(xv, &mut out, |v| Unary::Relu.apply(v)),
            Unary::Elu(a) => kernels::map(xv, &mut out, |v| Unary::Elu(a).apply(v)),
            Unary::Tanh => kernels::map(xv, &mut out, |v| Unary::Tanh.apply(v)),
            Unary::Sigmoid => kernels::map(xv, &mut out, |v| Unary::Sigmoid.apply(v)),
            Unary::Exp => kernels::map(xv, &mut out, |v| Unary::Exp.apply(v)),
            Unary::Log => kernels::map(xv, &mut out, |v| Unary::Log.apply(v)),
            Unary::Square => kernels::map(xv, &mut out, |v| Unary::Square.apply(v)),
        }
        let shape = self.shape(x).to_vec();
        self.push(Op::Unary(x, f), &[x], shape, out)
    }

    /// dx = g ⊙ f′(x, y).
    fn unary_backward(&self, x: Var, y: Var, f: Unary, g: &[F], grads: &mut GradBuffers<F>) {
        let (xv, yv) = (self.value(x), self.value(y));
        if let Some(gx) = self.grad_of(x, grads) {
            // As in `unary`: one loop per function.
            let (g, xv, yv) = (&g[..gx.len()], &xv[..gx.len()], &yv[..gx.len()]);
            match f {
                Unary::Relu => add_derivative(gx, g, xv, yv, |x, y| Unary::Relu.derivative(x, y)),
                Unary::Elu(a) => {
                    add_derivative(gx, g, xv, yv, |x, y| Unary::Elu(a).derivative(x, y))
                }
                Unary::Tanh => add_derivative(gx, g, xv, yv, |x, y| Unary::Tanh.derivative(x, y)),
                Unary::Sigmoid => {
                    add_derivative(gx, g, xv, yv, |x, y| Unary::Sigmoid.derivative(x, y))
                }
                Unary::Exp => add_derivative(gx, g, xv, yv, |x, y| Unary::Exp.derivative(x, y)),
                Unary::Log => add_derivative(gx, g, xv, yv, |x, y| Unary::Log.derivative(x, y)),
                Unary::Square => {
                    add_derivative(gx, g, xv, yv, |x, y| Unary::Square.derivative(x, y))
                }
            }
        }
    }

    /// max(x, 0); NaN stays NaN.
    #[track_caller]
    pub fn relu(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Relu)
    }
    /// ELU with α.
    #[track_caller]
    pub fn elu(&mut self, x: Var, alpha: f64) -> Var {
        self.unary(x, Unary::Elu(alpha))
    }
    /// tanh x.
    #[track_caller]
    pub fn tanh(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Tanh)
    }
    /// 1 / (1 + e⁻ˣ).
    #[track_caller]
    pub fn sigmoid(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Sigmoid)
    }
    /// eˣ.
    #[track_caller]
    pub fn exp(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Exp)
    }
    /// ln x.
    #[track_caller]
    pub fn log(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Log)
    }
    /// x².
    #[track_caller]
    pub fn square(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Square)
    }
}

// ---------------------------------------------------------------------------------------------
// Reductions

impl<'a, F: Float> Tape<'a, F> {
    /// Σ over `axis` (mean if `mean`): a scalar (x of any shape), one value per row `[rows]`,
    /// or per column `[cols]` (x a matrix). A sum of no elements is 0, a mean of none NaN.
    #[track_caller]
    pub fn reduce(&mut self, x: Var, axis: Axis, mean: bool) -> Var {
        let (m, n) = match axis {
            Axis::All => self.dims(x),
            Axis::Row | Axis::Col => self.matrix(x, "reduce"),
        };
        let xv = self.value(x);
        let (shape, out) = match axis {
            Axis::All => {
                let s = kernels::sum(xv);
                // A mean of nothing is 0/0 = NaN.
                let s = if mean { s / xv.len() as f64 } else { s };
                (vec![], vec![F::from_f64(s)])
            }
            Axis::Row => {
                let d = if mean { n as f64 } else { 1.0 };
                let out = (0..m)
                    .map(|i| F::from_f64(kernels::sum(&xv[i * n..(i + 1) * n]) / d))
                    .collect();
                (vec![m], out)
            }
            Axis::Col => {
                let mut acc = vec![F::ZERO; n];
                add_col_sums(xv, n, &mut acc);
                if mean {
                    let d = F::from_f64(m as f64);
                    acc.iter_mut().for_each(|a| *a /= d);
                }
                (vec![n], acc)
            }
        };
        self.push(Op::Reduce { x, axis, mean }, &[x], shape, out)
    }

    /// dx[i, j] = g (All), g[i] (Row) or g[j] (Col), divided by the count for a mean.
    fn reduce_backward(&self, x: Var, axis: Axis, mean: bool, g: &[F], grads: &mut GradBuffers<F>) {
        let (m, n) = self.dims(x);
        let Some(gx) = self.grad_of(x, grads) else {
            return;
        };
        let count = match axis {
            Axis::All => m * n,
            Axis::Row => n,
            Axis::Col => m,
        };
        let scale = if mean {
            F::ONE / F::from_f64(count.max(1) as f64)
        } else {
            F::ONE
        };
        match axis {
            Axis::All => {
                let d = g[0] * scale;
                gx.iter_mut().for_each(|v| *v += d);
            }
            Axis::Row => {
                for (i, row) in gx.chunks_exact_mut(n.max(1)).enumerate() {
                    let d = g[i] * scale;
                    row.iter_mut().for_each(|v| *v += d);
                }
            }
            Axis::Col => {
                for row in gx.chunks_exact_mut(n.max(1)) {
                    row.iter_mut().zip(g).for_each(|(v, &gj)| *v += gj * scale);
                }
            }
        }
    }

    /// Σ of all elements (a scalar).
    #[track_caller]
    pub fn sum(&mut self, x: Var) -> Var {
        self.reduce(x, Axis::All, false)
    }
    /// Mean of all elements (a scalar); NaN for no elements.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 6.0]));
    /// let m = tape.mean(x);
    /// assert_eq!(tape.item(m), 3.0);
    /// assert_eq!(tape.backward(m).get(x).unwrap(), &[0.25; 4]);
    /// ```
    #[track_caller]
    pub fn mean(&mut self, x: Var) -> Var {
        self.reduce(x, Axis::All, true)
    }
    /// Σ within each row: `[rows]`.
    #[track_caller]
    pub fn row_sums(&mut self, x: Var) -> Var {
        self.reduce(x, Axis::Row, false)
    }
    /// Mean within each row: `[rows]` (NaN for rows of no columns).
    #[track_caller]
    pub fn row_means(&mut self, x: Var) -> Var {
        self.reduce(x, Axis::Row, true)
    }
    /// Σ within each column: `[cols]`.
    #[track_caller]
    pub fn col_sums(&mut self, x: Var) -> Var {
        self.reduce(x, Axis::Col, false)
    }
    /// Mean within each column: `[cols]` (NaN for columns of no rows).
    #[track_caller]
    pub fn col_means(&mut self, x: Var) -> Var {
        self.reduce(x, Axis::Col, true)
    }
}

// ---------------------------------------------------------------------------------------------
// Shape: concatenation, views, gathers, repeats

impl<'a, F: Float> Tape<'a, F> {
    /// Matrices with equal column counts stacked vertically.
    #[track_caller]
    pub fn concat_rows(&mut self, xs: &[Var]) -> Var {
        assert!(!xs.is_empty(), "concat_rows of nothing");
        let n = self.matrix(xs[0], "concat_rows").1;
        let mut m = 0usize;
        for &x in xs {
            let (r, c) = self.matrix(x, "concat_rows");
            if c != n {
                panic!(
                    "concat_rows: column counts {n} and {c} differ (shapes {:?} and {:?})",
                    self.shape(xs[0]),
                    self.shape(x)
                );
            }
            let Some(rows) = m.checked_add(r) else {
                panic!("concat_rows: the row count overflows usize");
            };
            m = rows;
        }
        let mut out = self.pool.take(output_len("concat_rows", m, n));
        out.clear();
        for &x in xs {
            out.extend_from_slice(self.value(x));
        }
        self.push(Op::ConcatRows(xs.to_vec()), xs, vec![m, n], out)
    }

    /// Each input gets its block of rows of g.
    fn concat_rows_backward(&self, xs: &[Var], g: &[F], grads: &mut GradBuffers<F>) {
        let mut offset = 0;
        for &x in xs {
            let len = self.value(x).len();
            if let Some(gx) = self.grad_of(x, grads) {
                kernels::add_assign(gx, &g[offset..offset + len]);
            }
            offset += len;
        }
    }

    /// Matrices with equal row counts side by side.
    #[track_caller]
    pub fn concat_cols(&mut self, xs: &[Var]) -> Var {
        assert!(!xs.is_empty(), "concat_cols of nothing");
        let m = self.matrix(xs[0], "concat_cols").0;
        let mut widths = Vec::with_capacity(xs.len());
        let mut n = 0usize;
        for &x in xs {
            let (r, c) = self.matrix(x, "concat_cols");
            if r != m {
                panic!(
                    "concat_cols: row counts {m} and {r} differ (shapes {:?} and {:?})",
                    self.shape(xs[0]),
                    self.shape(x)
                );
            }
            widths.push(c);
            let Some(cols) = n.checked_add(c) else {
                panic!("concat_cols: the column count overflows usize");
            };
            n = cols;
        }
        let mut out = self.pool.take(output_len("concat_cols", m, n));
        out.clear();
        for i in 0..m {
            for (&x, &w) in xs.iter().zip(&widths) {
                out.extend_from_slice(&self.value(x)[i * w..(i + 1) * w]);
            }
        }
        self.push(Op::ConcatCols(xs.to_vec()), xs, vec![m, n], out)
    }

    /// Each input gets its block of columns of g.
    fn concat_cols_backward(&self, xs: &[Var], g: &[F], grads: &mut GradBuffers<F>) {
        let widths: Vec<usize> = xs.iter().map(|&x| self.dims(x).1).collect();
        let n: usize = widths.iter().sum();
        let mut col = 0;
        for (&x, &w) in xs.iter().zip(&widths) {
            if let Some(gx) = self.grad_of(x, grads) {
                for (i, row) in gx.chunks_exact_mut(w.max(1)).enumerate() {
                    kernels::add_assign(row, &g[i * n + col..i * n + col + w]);
                }
            }
            col += w;
        }
    }

    /// The `len(shape)` elements of x's buffer from `offset`, under `shape`: a view, no copy.
    #[track_caller]
    pub fn view(&mut self, x: Var, offset: usize, shape: &[usize]) -> Var {
        let xlen = self.value(x).len();
        let len = checked_shape_len(shape);
        if offset.checked_add(len).is_none_or(|end| end > xlen) {
            panic!(
                "view of {shape:?} ({len} elements) at {offset} exceeds the {xlen} elements of \
                 shape {:?}",
                self.shape(x)
            );
        }
        let (base, base_offset) = self.storage(x);
        let rg = self.recording && self.requires_grad(x);
        let value = super::Value::View {
            base,
            offset: base_offset + offset,
        };
        self.push_value(Op::View(x), shape.to_vec(), value, rg)
    }

    /// x under another shape with the same element count: a view.
    #[track_caller]
    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Var {
        let xlen = self.value(x).len();
        if shape_len(shape) != Some(xlen) {
            panic!(
                "reshape of {:?} ({xlen} elements) to {shape:?}",
                self.shape(x)
            );
        }
        self.view(x, 0, shape)
    }

    /// Rows start..start+len of a matrix: a view.
    #[track_caller]
    pub fn narrow_rows(&mut self, x: Var, start: usize, len: usize) -> Var {
        let (m, n) = self.matrix(x, "narrow_rows");
        if start.checked_add(len).is_none_or(|end| end > m) {
            panic!("narrow_rows: rows {start}+{len} of {m} rows");
        }
        self.view(x, start * n, &[len, n])
    }

    /// The flat elements start..start+len: a view of shape `[len]`.
    #[track_caller]
    pub fn narrow_flat(&mut self, x: Var, start: usize, len: usize) -> Var {
        self.view(x, start, &[len])
    }

    /// Rows of x [m×n] picked by `indices` (an embedding lookup): [indices.len()×n].
    #[track_caller]
    pub fn gather_rows(&mut self, x: Var, indices: &[usize]) -> Var {
        let (m, n) = self.matrix(x, "gather_rows");
        if let Some(&i) = indices.iter().find(|&&i| i >= m) {
            panic!("gather_rows: index {i} of {m} rows");
        }
        let mut out = self.pool.take(output_len("gather_rows", indices.len(), n));
        out.clear();
        let xv = self.value(x);
        for &i in indices {
            out.extend_from_slice(&xv[i * n..(i + 1) * n]);
        }
        let op = Op::GatherRows {
            x,
            indices: indices.to_vec(),
        };
        self.push(op, &[x], vec![indices.len(), n], out)
    }

    /// dx[indices[r]] += g[r] (scatter-add, in order).
    fn gather_rows_backward(&self, x: Var, idx: &[usize], g: &[F], grads: &mut GradBuffers<F>) {
        let (_, n) = self.dims(x);
        if let Some(gx) = self.grad_of(x, grads) {
            for (r, &i) in idx.iter().enumerate() {
                kernels::add_assign(&mut gx[i * n..(i + 1) * n], &g[r * n..(r + 1) * n]);
            }
        }
    }

    /// x [m×n] stacked `times` times: [times·m × n] (one task embedding beside every chunk
    /// embedding is `repeat_rows` of a row).
    #[track_caller]
    pub fn repeat_rows(&mut self, x: Var, times: usize) -> Var {
        let (m, n) = self.matrix(x, "repeat_rows");
        let Some(rows) = times.checked_mul(m) else {
            panic!("repeat_rows: {times}×{m} rows overflow usize");
        };
        let mut out = self.pool.take(output_len("repeat_rows", rows, n));
        let xv = self.value(x);
        out.chunks_exact_mut((m * n).max(1))
            .for_each(|c| c.copy_from_slice(xv));
        self.push(Op::RepeatRows { x, times }, &[x], vec![rows, n], out)
    }

    /// dx = Σ over the copies of their block of g.
    fn repeat_rows_backward(&self, x: Var, times: usize, g: &[F], grads: &mut GradBuffers<F>) {
        let len = self.value(x).len();
        if let Some(gx) = self.grad_of(x, grads) {
            for t in 0..times {
                kernels::add_assign(gx, &g[t * len..(t + 1) * len]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Losses

/// Shifts a row of logits by its maximum in place, x ← z = x − max, and returns ln Σ e^z:
/// then log softmax(x) = z − ln Σ e^z. The log-sum-exp max + ln Σ e^z is never formed: at
/// large logits (1e8 in f32, 1e16 in f64) adding the max back rounds ln Σ e^z away, and
/// x − (max + ln Σ e^z) loses the whole log-probability.
///
/// NaN propagates: a NaN logit makes ln Σ NaN (the max ignores it, its e^z does not), and so
/// the whole row; an infinite logit likewise gives NaN (∞ − ∞).
fn shift_by_max<F: Float>(row: &mut [F]) -> F {
    let mx = row
        .iter()
        .fold(F::from_f64(f64::NEG_INFINITY), |a, &b| a.max(b));
    row.iter_mut().for_each(|v| *v -= mx);
    let s: F = row.iter().map(|&z| z.exp()).sum();
    s.ln()
}

impl<'a, F: Float> Tape<'a, F> {
    /// y = (x − max) − ln Σ e^(x − max), row-wise: log softmax, stable at any logit.
    #[track_caller]
    pub fn log_softmax(&mut self, x: Var) -> Var {
        let (_, n) = self.matrix(x, "log_softmax");
        let mut out = self.pool.take(self.value(x).len());
        out.copy_from_slice(self.value(x));
        for row in out.chunks_exact_mut(n.max(1)) {
            let log_sum = shift_by_max(row);
            row.iter_mut().for_each(|z| *z -= log_sum);
        }
        let shape = self.shape(x).to_vec();
        self.push(Op::LogSoftmax(x), &[x], shape, out)
    }

    /// dx = g − softmax(x)·Σⱼ gⱼ, row-wise (softmax = e^y).
    fn log_softmax_backward(&self, x: Var, y: Var, g: &[F], grads: &mut GradBuffers<F>) {
        let (_, n) = self.dims(x);
        let yv = self.value(y);
        if let Some(gx) = self.grad_of(x, grads) {
            for ((gx, gr), yr) in gx
                .chunks_exact_mut(n.max(1))
                .zip(g.chunks_exact(n.max(1)))
                .zip(yv.chunks_exact(n.max(1)))
            {
                let total: F = gr.iter().copied().sum();
                for ((d, &gj), &yj) in gx.iter_mut().zip(gr).zip(yr) {
                    *d += gj - yj.exp() * total;
                }
            }
        }
    }

    /// Mean over rows of −log softmax(logits)ᵢ\[labelᵢ\] = ln Σⱼ e^(zᵢⱼ) − zᵢ\[labelᵢ\] with
    /// z = logits − row max: fused, and exact at logits of any size. NaN for zero rows (a mean
    /// of nothing).
    ///
    /// # Panics
    /// If the label count differs from the row count or a label is out of range.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// // Two rows of logits, labels 2 and 0; the gradient is (softmax − one-hot) / rows.
    /// let mut tape = Tape::<f64>::new();
    /// let logits = tape.leaf(Tensor::from_vec(&[2, 3], vec![0.0, 0.0, 0.0, 1e4, 0.0, 0.0]));
    /// let loss = tape.softmax_cross_entropy(logits, &[2, 0]);
    /// // Row 1: ln 3 (uniform); row 2: 0 (certain and right, exactly, at a logit of 1e4).
    /// assert!((tape.item(loss) - 3f64.ln() / 2.0).abs() < 1e-15);
    /// let g = tape.backward(loss).take(logits).unwrap();
    /// let third = 1.0 / 6.0;
    /// let expected = [third, third, third - 0.5, 0.0, 0.0, 0.0];
    /// assert!(g.iter().zip(&expected).all(|(a, e)| (a - e).abs() < 1e-15));
    /// ```
    #[track_caller]
    pub fn softmax_cross_entropy(&mut self, logits: Var, labels: &[usize]) -> Var {
        self.check_labels(logits, labels, "softmax_cross_entropy");
        self.push_softmax_cross_entropy(logits, labels, 0.0)
    }

    /// Mean over rows of −Σ_c qᵢ_c log softmax(logits)ᵢ_c, the soft target qᵢ being 1 − ε on
    /// labelᵢ and ε/(n − 1) on each of the other n − 1 classes (label smoothing as the official
    /// code's `--soft_targets` with ε = 0.05; a single class keeps q = 1). Fused and stable
    /// like [`Self::softmax_cross_entropy`], which is ε = 0.
    ///
    /// # Panics
    /// Like [`Self::softmax_cross_entropy`], and if ε is not in [0, 1).
    #[track_caller]
    pub fn softmax_cross_entropy_smoothed(
        &mut self,
        logits: Var,
        labels: &[usize],
        smoothing: f64,
    ) -> Var {
        let what = "softmax_cross_entropy_smoothed";
        self.check_labels(logits, labels, what);
        if !(0.0..1.0).contains(&smoothing) {
            panic!("{what}: a smoothing ε of {smoothing}, expected one in [0, 1)");
        }
        self.push_softmax_cross_entropy(logits, labels, smoothing)
    }

    /// Checks that `logits` is a matrix with one label per row, each below its column count.
    #[track_caller]
    fn check_labels(&self, logits: Var, labels: &[usize], what: &str) {
        let (m, n) = self.matrix(logits, what);
        if labels.len() != m {
            panic!(
                "{what}: {} labels for {m} rows (logits of shape {:?})",
                labels.len(),
                self.shape(logits)
            );
        }
        if let Some(&label) = labels.iter().find(|&&l| l >= n) {
            panic!("{what}: label {label} for {n} classes");
        }
    }

    /// The loss Σ_c q_c (ln Σ e^z − z_c) of each row, z = logits − row max (q summing to 1;
    /// one-hot: ln Σ e^z − z_label), and the softmax e^z / Σ e^z kept for backward.
    fn push_softmax_cross_entropy(&mut self, logits: Var, labels: &[usize], smoothing: f64) -> Var {
        let (m, n) = self.dims(logits);
        let mut probs = self.pool.take(self.value(logits).len());
        probs.copy_from_slice(self.value(logits));
        let mut total = 0.0f64;
        for (row, &label) in probs.chunks_exact_mut(n.max(1)).zip(labels) {
            let log_sum = shift_by_max(row);
            total += if smoothing == 0.0 {
                (log_sum - row[label]).to_f64()
            } else {
                row.iter()
                    .enumerate()
                    .map(|(j, &z)| soft_target(j, label, n, smoothing) * (log_sum - z).to_f64())
                    .sum::<f64>()
            };
            row.iter_mut().for_each(|z| *z = (*z - log_sum).exp());
        }
        // A mean over no rows is 0/0 = NaN.
        let loss = F::from_f64(total / m as f64);
        let op = Op::SoftmaxCrossEntropy {
            logits,
            labels: labels.to_vec(),
            smoothing,
            probs: if self.recording { probs } else { Vec::new() },
        };
        self.push(op, &[logits], vec![], vec![loss])
    }

    /// dlogits = g·(softmax − q) / rows, q the (smoothed) target of each row.
    fn softmax_cross_entropy_backward(
        &self,
        logits: Var,
        labels: &[usize],
        smoothing: f64,
        probs: &[F],
        g: &[F],
        grads: &mut GradBuffers<F>,
    ) {
        let (m, n) = self.dims(logits);
        let s = g[0] / F::from_f64(m.max(1) as f64);
        if let Some(gx) = self.grad_of(logits, grads) {
            for ((gr, pr), &label) in gx
                .chunks_exact_mut(n)
                .zip(probs.chunks_exact(n))
                .zip(labels)
            {
                for (j, (d, &p)) in gr.iter_mut().zip(pr).enumerate() {
                    let q = F::from_f64(soft_target(j, label, n, smoothing));
                    *d += s * (p - q);
                }
            }
        }
    }

    /// Σ (a − b)² over all elements of a and b of equal shapes (b is typically a constant
    /// target).
    #[track_caller]
    pub fn squared_distance(&mut self, a: Var, b: Var) -> Var {
        self.binary_shape(a, b, "squared_distance");
        let s = kernels::sum_zip(self.value(a), self.value(b), |x, y| {
            let d = (x - y).to_f64();
            d * d
        });
        self.push(
            Op::SquaredDistance(a, b),
            &[a, b],
            vec![],
            vec![F::from_f64(s)],
        )
    }

    /// da = 2g(a − b), db = −2g(a − b).
    fn squared_distance_backward(&self, a: Var, b: Var, g: &[F], grads: &mut GradBuffers<F>) {
        let two_g = (F::ONE + F::ONE) * g[0];
        let (av, bv) = (self.value(a), self.value(b));
        if let Some(ga) = self.grad_of(a, grads) {
            kernels::update2(ga, av, bv, |d, x, y| d + two_g * (x - y));
        }
        if let Some(gb) = self.grad_of(b, grads) {
            kernels::update2(gb, av, bv, |d, x, y| d - two_g * (x - y));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Binary cross-entropy on logits

/// softplus(x) = ln(1 + eˣ), written so that it neither overflows nor loses x for large |x|.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

impl<'a, F: Float> Tape<'a, F> {
    /// (1/N) Σ softplus(x) − x·y over the N elements: the mean of −y·ln σ(x) − (1 − y)·ln(1 − σ(x)),
    /// fused so that it stays finite at logits of ±1e4 (targets y usually in [0, 1], of the
    /// logits' shape). NaN for no elements (a mean of nothing).
    #[track_caller]
    pub fn bce_with_logits(&mut self, logits: Var, targets: Var) -> Var {
        self.binary_shape(logits, targets, "bce_with_logits");
        let n = self.value(logits).len() as f64;
        let s = kernels::sum_zip(self.value(logits), self.value(targets), |x, y| {
            let (x, y) = (x.to_f64(), y.to_f64());
            softplus(x) - x * y
        });
        self.push(
            Op::BceWithLogits { logits, targets },
            &[logits, targets],
            vec![],
            vec![F::from_f64(s / n)],
        )
    }

    /// dx = g·(σ(x) − y)/N, dy = −g·x/N.
    fn bce_with_logits_backward(
        &self,
        logits: Var,
        targets: Var,
        g: &[F],
        grads: &mut GradBuffers<F>,
    ) {
        let (xv, yv) = (self.value(logits), self.value(targets));
        let s = g[0] / F::from_f64(xv.len().max(1) as f64);
        if let Some(gx) = self.grad_of(logits, grads) {
            kernels::update2(gx, xv, yv, |d, x, y| d + s * (Unary::Sigmoid.apply(x) - y));
        }
        if let Some(gy) = self.grad_of(targets, grads) {
            kernels::update(gy, xv, |d, x| d - s * x);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fused: a dense layer followed by the squared distance of its output to a target

impl<'a, F: Float> Tape<'a, F> {
    /// Σⱼ Σ_{p<len} (yⱼ\[p\] − tⱼ\[p\])² with y = x·Wᵀ + b: the rows of y [m×n] form `groups`
    /// equal groups, each read as one flat vector yⱼ of (m/groups)·n elements, and the target
    /// t [groups × len] (len ≤ (m/groups)·n) covers the first len elements of each (the rest
    /// of a group is ignored). This is a hypernetwork's output layer and the regularizer's
    /// distance in one node. For a wide output layer (see [`kernels::panels_pay_off`]) y is
    /// made panel by panel and, on a recording tape, turned into the gradients of x, W and b
    /// at once, while in cache (the op is the end of a loss, so backward always follows);
    /// otherwise y − t is kept for backward.
    ///
    /// # Panics
    /// If the shapes do not fit: x [m×k], W [n×k], b a row of n, `groups` dividing m, and the
    /// target a [groups × len] matrix (a row `[len]` for one group) with len ≤ (m/groups)·n.
    #[track_caller]
    pub fn linear_squared_distance(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        target: Var,
        groups: usize,
    ) -> Var {
        self.linear_squared_distance_to(x, w, b, DistanceTarget::Values(target), groups)
    }

    /// [`Tape::linear_squared_distance`] with the target given as values or as the output of
    /// another dense layer (the regularizer's h(e, θ*) recomputed from θ*: on the panel path
    /// no [m×n] buffer is made for it). A dense target's layer must produce y's shape,
    /// [m×n], and its `len` stand for the target's row length.
    #[track_caller]
    pub fn linear_squared_distance_to(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        target: DistanceTarget,
        groups: usize,
    ) -> Var {
        const WHAT: &str = "linear_squared_distance";
        let (m, k, n) = self.check_dense(x, w, b, WHAT);
        if groups == 0 || m % groups != 0 {
            panic!("{WHAT}: {m} rows do not form {groups} groups");
        }
        let group_len = m / groups * n;
        let len = self.distance_target_len(target, m, n, groups);
        if len > group_len {
            panic!("{WHAT}: target rows of {len} exceed groups of {group_len}");
        }
        let target_grad = self.recording && target.vars().iter().any(|&v| self.requires_grad(v));
        let (total, saved) = if kernels::panels_pay_off(m, n, k) && !target_grad {
            self.squared_distance_by_panels(x, w, b, target, groups, len)
        } else {
            let (_, _, mut diff) = self.dense_forward(x, w, b, "linear_squared_distance");
            // The target's values and the stride of its groups: a dense target is made whole.
            let made = match target {
                DistanceTarget::Dense { x, w, b, .. } => {
                    Some(self.dense_forward(x, w, b, "linear_squared_distance").2)
                }
                DistanceTarget::Values(_) => None,
            };
            let (tv, stride) = match (&made, target) {
                (Some(made), _) => (&made[..], group_len),
                (None, DistanceTarget::Values(t)) => (self.value(t), len),
                (None, DistanceTarget::Dense { .. }) => unreachable!("made above"),
            };
            let mut total = 0.0;
            for (j, group) in diff.chunks_exact_mut(group_len.max(1)).enumerate() {
                let (head, tail) = group.split_at_mut(len);
                total += kernels::sub_assign_sum_squares(head, &tv[j * stride..j * stride + len]);
                kernels::fill(tail, F::ZERO);
            }
            if let Some(made) = made {
                self.pool.give(made);
            }
            if !self.recording {
                self.pool.give(diff);
                diff = Vec::new();
            }
            (total, DistanceSaved::Diff(diff))
        };
        let inputs: Vec<Var> = [Some(x), Some(w), b]
            .into_iter()
            .flatten()
            .chain(target.vars())
            .collect();
        let op = Op::LinearSquaredDistance {
            x,
            w,
            b,
            target,
            groups,
            saved,
        };
        self.push(op, &inputs, vec![], vec![F::from_f64(total)])
    }

    /// Elements of each of the `groups` groups of y [m×n] that `target` covers, its shapes
    /// checked.
    #[track_caller]
    fn distance_target_len(
        &self,
        target: DistanceTarget,
        m: usize,
        n: usize,
        groups: usize,
    ) -> usize {
        const WHAT: &str = "linear_squared_distance";
        match target {
            DistanceTarget::Values(t) => {
                let (rows, len) = self.matrix(t, WHAT);
                if rows != groups {
                    panic!(
                        "{WHAT}: a target of shape {:?} for {groups} groups (expected \
                         [{groups}, len])",
                        self.shape(t)
                    );
                }
                len
            }
            DistanceTarget::Dense { x, w, b, len } => {
                let (mt, _, nt) = self.check_dense(x, w, b, WHAT);
                if (mt, nt) != (m, n) {
                    panic!("{WHAT}: the target layer's output is {mt}×{nt}, not {m}×{n}");
                }
                len
            }
        }
    }

    /// The value of [`Tape::linear_squared_distance_to`] and, on a recording tape, the
    /// gradients of x, W and b for an output gradient of 1, over panels of y's columns: each
    /// panel of y = x·Wᵀ + b is made, the target's panel subtracted (for a dense target, its
    /// product accumulated into the same panel with factor −1) and turned into D = 2(y − t)
    /// (masked), whose dW, db and dx parts [`kernels::dense_backward_panels`] takes while it
    /// is in cache.
    fn squared_distance_by_panels(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        target: DistanceTarget,
        groups: usize,
        len: usize,
    ) -> (f64, DistanceSaved<F>) {
        let (m, k) = self.dims(x);
        let n = self.dims(w).0;
        let rows_per_group = m / groups;
        let wants = |v: Var| self.recording && self.requires_grad(v);
        let (want_x, want_w, want_b) = (wants(x), wants(w), b.is_some_and(wants));
        let mut take = |wanted: bool, len: usize| {
            if wanted {
                self.pool.take_zeroed(len)
            } else {
                Vec::new()
            }
        };
        let (mut gx, mut gw, mut gb) = (take(want_x, m * k), take(want_w, n * k), take(want_b, n));
        let mut scratch = self.pool.take(kernels::panel_scratch_len(m, n, k, want_x));
        let (xv, wv) = (self.value(x), self.value(w));
        let bv = b.map(|b| self.value(b));
        // The target: stored values, or the layer (x_t, W_t, b_t, k_t) whose output it is.
        let (stored, layer) = match target {
            DistanceTarget::Values(t) => (Some(self.value(t)), None),
            DistanceTarget::Dense { x, w, b, .. } => {
                let kt = self.dims(x).1;
                let layer = (self.value(x), self.value(w), b.map(|b| self.value(b)), kt);
                (None, Some(layer))
            }
        };
        let two = F::ONE + F::ONE;
        let panel_distance = |j0: usize, panel: &mut [F]| {
            let cols = panel.len() / m;
            let bias_t = layer.and_then(|l| l.2);
            // Each row starts as b_J − b_t,J (either may be absent).
            let beta = if bv.is_none() && bias_t.is_none() {
                F::ZERO
            } else {
                for row in panel.chunks_exact_mut(cols) {
                    match bv {
                        Some(b) => row.copy_from_slice(&b[j0..j0 + cols]),
                        None => row.fill(F::ZERO),
                    }
                    if let Some(bt) = bias_t {
                        row.iter_mut()
                            .zip(&bt[j0..j0 + cols])
                            .for_each(|(r, &q)| *r -= q);
                    }
                }
                F::ONE
            };
            let w_j = &wv[j0 * k..(j0 + cols) * k];
            kernels::gemm_serial(m, cols, k, F::ONE, xv, false, w_j, true, beta, panel);
            if let Some((xt, wt, _, kt)) = layer {
                let wt_j = &wt[j0 * kt..(j0 + cols) * kt];
                kernels::gemm_serial(m, cols, kt, -F::ONE, xt, false, wt_j, true, F::ONE, panel);
            }
            let mut total = 0.0;
            for (i, row) in panel.chunks_exact_mut(cols).enumerate() {
                // Row i is row i % rows_per_group of group i / rows_per_group; its columns
                // j0.. sit at `start` in the group's flat vector, compared up to len.
                let (group, r) = (i / rows_per_group, i % rows_per_group);
                let start = r * n + j0;
                let valid = len.saturating_sub(start).min(cols);
                let (compared, ignored) = row.split_at_mut(valid);
                if valid > 0 {
                    let t = stored.map(|tv| &tv[group * len + start..group * len + start + valid]);
                    total += kernels::sub_scale_sum_squares(compared, t, two);
                }
                ignored.fill(F::ZERO);
            }
            total
        };
        let sinks = kernels::DenseGrads {
            x: want_x.then_some(&mut gx[..]),
            w: want_w.then_some(&mut gw[..]),
            b: want_b.then_some(&mut gb[..]),
        };
        let total =
            kernels::dense_backward_panels(m, n, k, xv, wv, panel_distance, sinks, &mut scratch);
        self.pool.give(scratch);
        (
            total,
            DistanceSaved::Grads {
                x: gx,
                w: gw,
                b: gb,
            },
        )
    }

    /// With D = y − t masked to the compared elements and s = 2g: dx = s·D·W, dW = s·Dᵀ·x,
    /// db = s·column sums of D, and for the target dt = −s·D (values) or the dense layer's
    /// backward with −s·D (dense); from saved gradients (for g = 1): g times them.
    #[allow(clippy::too_many_arguments)]
    fn linear_squared_distance_backward(
        &self,
        x: Var,
        w: Var,
        b: Option<Var>,
        target: DistanceTarget,
        groups: usize,
        saved: &DistanceSaved<F>,
        g: &[F],
        grads: &mut GradBuffers<F>,
    ) {
        let diff = match saved {
            DistanceSaved::Diff(diff) => diff,
            DistanceSaved::Grads {
                x: gx,
                w: gw,
                b: gb,
            } => {
                let g = g[0];
                for (v, saved) in [(Some(x), gx), (Some(w), gw), (b, gb)] {
                    if let Some(slot) = v.and_then(|v| self.grad_of(v, grads)) {
                        kernels::update(slot, saved, |acc, d| acc + g * d);
                    }
                }
                return;
            }
        };
        let (m, n) = (self.dims(x).0, self.dims(w).0);
        let s = (F::ONE + F::ONE) * g[0];
        self.dense_backward(x, w, b, s, diff, grads);
        match target {
            DistanceTarget::Values(t) => {
                if let Some(gt) = self.grad_of(t, grads) {
                    let group_len = m / groups * n;
                    let len = gt.len() / groups;
                    for (j, gt) in gt.chunks_exact_mut(len.max(1)).enumerate() {
                        let d = &diff[j * group_len..j * group_len + len];
                        kernels::update(gt, d, |acc, v| acc - s * v);
                    }
                }
            }
            DistanceTarget::Dense { x, w, b, .. } => self.dense_backward(x, w, b, -s, diff, grads),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fused and factored: the squared distance between two dense layers' outputs from Gram matrices

impl<'a, F: Float> Tape<'a, F> {
    /// [`Tape::linear_squared_distance_to`] with a dense target of the same shape, computed
    /// without either output: with δx = x − x_t, D = W − W_t, e = b − b_t, row i's difference
    /// is r_i = W δx_i + D x_t,i + e, and
    /// ‖r_i‖² = δxᵀGδx + 2 δxᵀM x_t + x_tᵀH x_t + 2 δxᵀu + 2 x_tᵀv + ‖e‖²
    /// with G = WᵀW, M = WᵀD, H = DᵀD, u = Wᵀe, v = Dᵀe: O(n·k²) for the layer, O(k²) per row
    /// instead of O(n·k) (see [`kernels::factored_squared_distance`]; the sums over W's rows
    /// are kept apart where a group's `len` cuts a row). For a hypernetwork's output
    /// regularizer: x the last hidden layer at θ, x_t at θ*, one group per task. On a recording
    /// tape the gradients of every input that needs one are made in the same pass.
    ///
    /// # Panics
    /// If the target is not [`DistanceTarget::Dense`], or the shapes do not fit: x and x_t
    /// [m×k], W and W_t [n×k], b and b_t rows of n, `groups` dividing m, len ≤ (m/groups)·n.
    #[track_caller]
    pub fn linear_squared_distance_factored(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        target: DistanceTarget,
        groups: usize,
    ) -> Var {
        self.linear_squared_distance_factored_with(x, w, b, target, groups, None)
    }

    /// [`Tape::linear_squared_distance_factored`] with G* = W_tᵀW_t of the target's weights
    /// taken from `target_gram` ([`kernels::TargetGram::new`] of the same W_t and the target's
    /// `len`) instead of computed in the call: for a target that stays the same over many
    /// calls (θ* during a task), O(n·k²) saved per call.
    ///
    /// # Panics
    /// As [`Tape::linear_squared_distance_factored`], and if `target_gram` was made for
    /// another shape or `len`.
    #[track_caller]
    pub fn linear_squared_distance_factored_with(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        target: DistanceTarget,
        groups: usize,
        target_gram: Option<&kernels::TargetGram<F>>,
    ) -> Var {
        const WHAT: &str = "linear_squared_distance_factored";
        let (m, k, n) = self.check_dense(x, w, b, WHAT);
        let DistanceTarget::Dense {
            x: xt,
            w: wt,
            b: bt,
            len,
        } = target
        else {
            panic!("{WHAT}: the target must be a dense layer (DistanceTarget::Dense)");
        };
        let (mt, kt, nt) = self.check_dense(xt, wt, bt, WHAT);
        if (mt, kt, nt) != (m, k, n) {
            panic!(
                "{WHAT}: the target layer reads {mt}×{kt} and makes {nt} outputs, not {m}×{k} and {n}"
            );
        }
        if groups == 0 || m % groups != 0 {
            panic!("{WHAT}: {m} rows do not form {groups} groups");
        }
        let group_len = output_len(WHAT, m / groups, n);
        if len > group_len {
            panic!("{WHAT}: target rows of {len} exceed groups of {group_len}");
        }
        let vars: [Option<Var>; 6] = [Some(x), Some(w), b, Some(xt), Some(wt), bt];
        let lens: Vec<Option<usize>> = vars
            .iter()
            .map(|v| {
                v.filter(|&v| self.recording && self.requires_grad(v))
                    .map(|v| self.value(v).len())
            })
            .collect();
        let mut bufs: Vec<Option<Vec<F>>> = lens
            .into_iter()
            .map(|l| l.map(|l| self.pool.take(l)))
            .collect();
        let total = {
            let [gx, gw, gb, gxt, gwt, gbt]: [Option<&mut [F]>; 6] = bufs
                .iter_mut()
                .map(|b| b.as_deref_mut())
                .collect::<Vec<_>>()
                .try_into()
                .unwrap_or_else(|_| unreachable!("six inputs"));
            let grads = kernels::PairGrads {
                x: gx,
                w: gw,
                b: gb,
                xt: gxt,
                wt: gwt,
                bt: gbt,
                add_onto: None,
            };
            let pair = kernels::LayerPair {
                m,
                k,
                n,
                x: self.value(x),
                w: kernels::Weights::Stored(self.value(w)),
                b: b.map(|b| self.value(b)),
                xt: self.value(xt),
                wt: self.value(wt),
                bt: bt.map(|b| self.value(b)),
                rows_per_group: m / groups,
                len,
            };
            kernels::factored_squared_distance_with(pair, target_gram, grads)
        };
        // One saved gradient per input, in the order of `Op::inputs` (empty: none needed).
        let grads: Vec<Vec<F>> = vars
            .iter()
            .zip(bufs)
            .filter(|(v, _)| v.is_some())
            .map(|(_, g)| g.unwrap_or_default())
            .collect();
        let inputs: Vec<Var> = vars.iter().flatten().copied().collect();
        let op = Op::FactoredSquaredDistance {
            x,
            w,
            b,
            target,
            groups,
            grads,
        };
        self.push(op, &inputs, vec![], vec![F::from_f64(total)])
    }

    /// Each input's gradient is g times the one the forward pass made for an output gradient
    /// of 1.
    fn factored_squared_distance_backward(
        &self,
        inputs: &[Var],
        saved: &[Vec<F>],
        g: &[F],
        grads: &mut GradBuffers<F>,
    ) {
        let g = g[0];
        for (&v, saved) in inputs.iter().zip(saved) {
            if saved.is_empty() {
                continue;
            }
            if let Some(slot) = self.grad_of(v, grads) {
                kernels::update(slot, saved, |acc, d| acc + g * d);
            }
        }
    }
}

/// The soft target of class `j` for a row labelled `label` of `n` classes with label
/// smoothing ε: 1 − ε on the label (1 if it is the only class), ε/(n − 1) elsewhere.
fn soft_target(j: usize, label: usize, n: usize, smoothing: f64) -> f64 {
    match (j == label, n) {
        (true, 1) => 1.0,
        (true, _) => 1.0 - smoothing,
        (false, _) => smoothing / (n - 1) as f64,
    }
}
