//! The tape: define-by-run reverse-mode automatic differentiation.
//!
//! A [`Tape`] is a Wengert list: every operation appends a node (its [`Op`], output shape and
//! value) in execution order, and a [`Var`] is the index of a node. Because the list is already
//! in topological order, [`Tape::backward`] is a single reverse loop with no sorting. Each op's
//! forward method and backward rule stand side by side in \[`ops`\].
//!
//! Values are owned buffers, borrowed slices (parameters registered without a copy), or views:
//! a contiguous range of another node's buffer under a new shape. Views are how a
//! hypernetwork's flat output is cut into weight tensors without copies; in backward, a view's
//! gradient is accumulated straight into the matching range of its base's gradient.
//!
//! Intermediate gradients are freed as soon as their node's rule has run; only leaves that
//! require a gradient keep theirs, returned in [`Gradients`].
//!
//! # Reuse after backward
//!
//! [`Tape::backward`] reads the tape and changes nothing on it: every node and value stays.
//! The tape can be backpropagated again, from the same output or another one, any number of
//! times; each call returns fresh [`Gradients`] (never accumulated into earlier ones), and
//! ops recorded after a backward pass extend the same tape. This is how a Jacobian is built
//! row by row ([`Tape::backward_with_seed`] with one seed per output). A tape is not
//! cleared: to compute on new values, record on a new tape (reusing the buffers of the old
//! one with [`Tape::into_pool`] and [`Tape::with_pool`] if allocation matters).
//!
//! # Misuse
//!
//! One convention for every op and accessor: **misuse panics**, and the panic names the op
//! and reports the caller's line (`#[track_caller]`), as an out-of-bounds index does. Misuse
//! is:
//! - shapes that do not fit: elementwise ops ([`Tape::add`], [`Tape::sub`], [`Tape::mul`],
//!   [`Tape::div`]) and the losses over two operands ([`Tape::squared_distance`],
//!   [`Tape::bce_with_logits`]) require *equal shapes*, not merely equal element counts. The
//!   only broadcast is a row (`[n]` or `[1, n]`) added to every row of an `[m, n]` matrix:
//!   [`Tape::add_row`] and the bias of [`Tape::linear`] and its fused forms;
//! - a tensor of rank 3 or more given to an op on matrices (products, concatenations, row
//!   ops, reductions by row or column, (log-)softmax, transpose): a matrix is rank 2, or rank
//!   1 `[n]` as one row, or rank 0 as 1×1 ([`crate::engine::tensor::matrix_dims`]); reshape
//!   first;
//! - an argument out of range: a label for [`Tape::softmax_cross_entropy`] and
//!   [`Tape::softmax_cross_entropy_smoothed`] (and a smoothing ε outside [0, 1)), a row index,
//!   a view past the end of its input;
//! - a [`Var`] of another tape: each tape has a process-wide unique id, carried by its vars
//!   and by its [`Gradients`], and checked on every use (ops, accessors, backward and
//!   gradient look-ups);
//! - a size that overflows `usize` (such as the m×n output of a product of [m×0] and [0×n]).
//!
//! Fallible *constructors* return `Option` or `Result` instead ([`Tensor::new`],
//! [`Tensor::reshaped`]); validate user input there, or before calling an op.
//!
//! Numbers, not misuse, are never refused: NaN propagates (NaN in, NaN out, including
//! through `relu` and the max-based log-softmax), and a reduction over nothing is defined:
//! a sum of no elements is 0, a mean of none is NaN (0/0), which holds for [`Tape::mean`],
//! [`Tape::row_means`] of zero columns, [`Tape::col_means`] of zero rows, and the losses that
//! are means ([`Tape::softmax_cross_entropy`] of zero rows, [`Tape::bce_with_logits`] of zero
//! elements).

mod backward;
mod ops;
mod ops_extra;
mod pool;

use backward::GradBuffers;
pub use backward::Gradients;

pub use ops::{Axis, DistanceSaved, DistanceTarget, Op, Unary};
pub use pool::BufferPool;

use crate::engine::tensor::{checked_shape_len, Float, Tensor};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The id of the next tape: unique within the process, never reused.
static NEXT_TAPE_ID: AtomicU64 = AtomicU64::new(1);

/// A handle to a node of a [`Tape`]: the id of its tape and the node's index on it. Using it
/// on another tape panics (see the module's conventions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var {
    tape: u64,
    index: usize,
}

impl Var {
    /// The node's position on its tape.
    pub fn index(self) -> usize {
        self.index
    }

    /// The id of the tape the node belongs to ([`Tape::id`]).
    pub fn tape_id(self) -> u64 {
        self.tape
    }
}

/// Panics for `v` used on tape `tape`: its message names both tapes.
#[cold]
#[inline(never)]
#[track_caller]
fn foreign_var(v: Var, tape: u64) -> ! {
    panic!(
        "Var %{} belongs to tape #{}, not to tape #{tape} on which it is used",
        v.index, v.tape
    )
}

/// Where a node's value lives.
enum Value<'a, F> {
    Owned(Vec<F>),
    Borrowed(&'a [F]),
    /// `len` elements of node `base`'s buffer from `offset`; `base` is never itself a view.
    View {
        base: usize,
        offset: usize,
    },
}

struct Node<'a, F> {
    op: Op<F>,
    shape: Vec<usize>,
    value: Value<'a, F>,
    requires_grad: bool,
}

/// A define-by-run tape over element type `F`; `'a` is the lifetime of borrowed leaves.
///
/// Leaves are the inputs ([`Tape::leaf`]: a gradient is returned for it; [`Tape::constant`]:
/// none); every op appends a node and returns its [`Var`]; [`Tape::backward`] from a
/// one-element output returns the gradients of the leaves.
///
/// ```
/// use hypertape::{Tape, Tensor};
///
/// // A dense layer and a loss: L = mean(relu(x·Wᵀ + b)).
/// let mut tape = Tape::<f64>::new();
/// let x = tape.constant(Tensor::from_vec(&[2, 3], vec![1.0, 0.0, -1.0, 0.5, 2.0, 1.0]));
/// let w = tape.leaf(Tensor::from_vec(&[2, 3], vec![0.1, 0.2, 0.3, -0.3, 0.2, 0.1]));
/// let b = tape.leaf(Tensor::from_vec(&[2], vec![0.0, 0.1]));
/// let h = tape.linear(x, w, Some(b)); // [2, 2]
/// let h = tape.relu(h);
/// let loss = tape.mean(h);
/// assert!((tape.item(loss) - 0.3).abs() < 1e-12); // relu of [[-0.2, -0.3], [0.75, 0.45]]
///
/// let grads = tape.backward(loss);
/// // Only the units that are active (row 2) pass a gradient: dL/db = [1/4, 1/4].
/// assert_eq!(grads.get(b).unwrap(), &[0.25, 0.25]);
/// assert!(grads.get(x).is_none()); // a constant
///
/// // The tape is intact after backward: backpropagate again, or record more.
/// let again = tape.backward(loss);
/// assert_eq!(again.get(b), grads.get(b));
/// ```
pub struct Tape<'a, F: Float> {
    id: u64,
    nodes: Vec<Node<'a, F>>,
    recording: bool,
    pool: BufferPool<F>,
}

impl<'a, F: Float> Default for Tape<'a, F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a, F: Float> Tape<'a, F> {
    /// A tape that records operations for [`Tape::backward`].
    pub fn new() -> Self {
        Self::with_pool(true, BufferPool::new())
    }

    /// A tape that records nothing: every result is a constant, as for evaluation.
    pub fn no_grad() -> Self {
        Self::with_pool(false, BufferPool::new())
    }

    /// A tape (recording or not) that takes its buffers from `pool` first; get them back
    /// with [`Tape::into_pool`].
    pub fn with_pool(recording: bool, pool: BufferPool<F>) -> Self {
        Self {
            id: NEXT_TAPE_ID.fetch_add(1, Ordering::Relaxed),
            nodes: Vec::new(),
            recording,
            pool,
        }
    }

    /// The tape's id: unique within the process, carried by each of its [`Var`]s.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Every node of the tape, in order.
    pub fn vars(&self) -> impl Iterator<Item = Var> + '_ {
        (0..self.nodes.len()).map(|i| self.var(i))
    }

    /// The handle of node `index` of this tape.
    fn var(&self, index: usize) -> Var {
        Var {
            tape: self.id,
            index,
        }
    }

    /// The node of `v`, after checking that `v` belongs to this tape: the one check every use
    /// of a var goes through (O(1)).
    #[inline]
    #[track_caller]
    fn node(&self, v: Var) -> &Node<'a, F> {
        if v.tape != self.id {
            foreign_var(v, self.id);
        }
        &self.nodes[v.index]
    }

    /// Ends the tape, returning its pool with every buffer the tape owned, and the buffers of
    /// `grads` if given.
    pub fn into_pool(self, grads: Option<Gradients<F>>) -> BufferPool<F> {
        let mut pool = self.pool;
        for node in self.nodes {
            if let Value::Owned(v) = node.value {
                pool.give(v);
            }
            match node.op {
                Op::SoftmaxCrossEntropy { probs, .. } => pool.give(probs),
                Op::LinearSquaredDistance { saved, .. } => {
                    saved.into_buffers().into_iter().for_each(|b| pool.give(b))
                }
                Op::FactoredSquaredDistance { grads, .. } => {
                    grads.into_iter().for_each(|b| pool.give(b))
                }
                _ => {}
            }
        }
        for v in grads.into_iter().flat_map(|g| g.bufs).flatten() {
            pool.give(v);
        }
        pool
    }

    /// Ends the tape, giving back the buffers of the owned leaves `vars` (made by
    /// [`Tape::leaf`] or [`Tape::constant`]) in order: the gradient checks move their inputs
    /// into each evaluation's tape and back out without copying them.
    ///
    /// # Panics
    /// If a var belongs to another tape or is not an owned leaf.
    #[track_caller]
    pub(crate) fn into_leaf_buffers(mut self, vars: &[Var]) -> Vec<Vec<F>> {
        vars.iter()
            .map(|&v| {
                self.node(v);
                let node = &mut self.nodes[v.index];
                assert!(matches!(node.op, Op::Leaf), "%{} is not a leaf", v.index);
                match std::mem::replace(&mut node.value, Value::Owned(Vec::new())) {
                    Value::Owned(d) => d,
                    _ => panic!("%{} is not an owned leaf", v.index),
                }
            })
            .collect()
    }

    /// True if this tape records operations for backward.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// A leaf whose gradient [`Tape::backward`] returns (on a no-grad tape: a constant). The
    /// tape takes the tensor; [`Tape::leaf_ref`] borrows the data instead.
    pub fn leaf(&mut self, t: Tensor<F>) -> Var {
        let shape = t.shape().to_vec();
        let rg = self.recording;
        self.push_value(Op::Leaf, shape, Value::Owned(t.into_data()), rg)
    }

    /// A leaf over borrowed data (no copy); its gradient is returned by backward.
    ///
    /// # Panics
    /// If `shape` does not hold `data.len()` elements.
    #[track_caller]
    pub fn leaf_ref(&mut self, shape: &[usize], data: &'a [F]) -> Var {
        assert_shape(shape, data.len());
        let rg = self.recording;
        self.push_value(Op::Leaf, shape.to_vec(), Value::Borrowed(data), rg)
    }

    /// A constant: no gradient flows to it.
    pub fn constant(&mut self, t: Tensor<F>) -> Var {
        let shape = t.shape().to_vec();
        self.push_value(Op::Leaf, shape, Value::Owned(t.into_data()), false)
    }

    /// A constant over borrowed data (no copy): the data must outlive the tape (`'a`).
    ///
    /// # Panics
    /// If `shape` does not hold `data.len()` elements.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let batch = vec![1.0, 2.0, 3.0, 4.0]; // borrowed for the tape's lifetime
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.constant_ref(&[2, 2], &batch);
    /// let w = tape.leaf(Tensor::from_vec(&[2, 1], vec![0.5, -1.0]));
    /// let y = tape.matmul(x, w);
    /// assert_eq!(tape.value(y), &[-1.5, -2.5]);
    /// ```
    #[track_caller]
    pub fn constant_ref(&mut self, shape: &[usize], data: &'a [F]) -> Var {
        assert_shape(shape, data.len());
        self.push_value(Op::Leaf, shape.to_vec(), Value::Borrowed(data), false)
    }

    /// The shape of `v`.
    #[track_caller]
    pub fn shape(&self, v: Var) -> &[usize] {
        &self.node(v).shape
    }

    /// `v` seen as a matrix (rows, cols): see [`crate::engine::tensor::matrix_dims`].
    #[track_caller]
    pub fn dims(&self, v: Var) -> (usize, usize) {
        crate::engine::tensor::matrix_dims(&self.node(v).shape)
    }

    /// `v` as the matrix operand of op `what`: (rows, cols) of a tensor of rank ≤ 2.
    ///
    /// # Panics
    /// If `v` has rank 3 or more (or belongs to another tape).
    #[track_caller]
    fn matrix(&self, v: Var, what: &str) -> (usize, usize) {
        let shape = &self.node(v).shape;
        if shape.len() > 2 {
            panic!("{what}: expected a matrix (rank 1 or 2), got shape {shape:?}");
        }
        crate::engine::tensor::matrix_dims(shape)
    }

    /// The elements of `v`, row-major.
    #[track_caller]
    pub fn value(&self, v: Var) -> &[F] {
        let node = self.node(v);
        match &node.value {
            Value::Owned(d) => d,
            Value::Borrowed(d) => d,
            Value::View { base, offset } => {
                // In bounds: checked, without overflow, when the view was made.
                let n = checked_shape_len(&node.shape);
                &self.root_data(*base)[*offset..*offset + n]
            }
        }
    }

    /// A copy of `v` as a tensor.
    #[track_caller]
    pub fn tensor(&self, v: Var) -> Tensor<F> {
        Tensor::from_vec(self.shape(v), self.value(v).to_vec())
    }

    /// The value of a one-element `v`.
    #[track_caller]
    pub fn item(&self, v: Var) -> F {
        let d = self.value(v);
        assert_eq!(d.len(), 1, "item() of a node of shape {:?}", self.shape(v));
        d[0]
    }

    /// True if a gradient flows back through `v`.
    #[track_caller]
    pub fn requires_grad(&self, v: Var) -> bool {
        self.node(v).requires_grad
    }

    /// The op that produced `v`.
    #[track_caller]
    pub fn op(&self, v: Var) -> &Op<F> {
        &self.node(v).op
    }

    /// How many nodes of each op kind the tape holds, by name, sorted.
    pub fn op_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for n in &self.nodes {
            let name = n.op.name();
            match counts.iter_mut().find(|(k, _)| *k == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
        counts.sort();
        counts
    }

    fn root_data(&self, i: usize) -> &[F] {
        match &self.nodes[i].value {
            Value::Owned(d) => d,
            Value::Borrowed(d) => d,
            Value::View { .. } => unreachable!("a view's base is never a view"),
        }
    }

    /// (root node, offset) of the buffer that holds `v`'s elements.
    #[track_caller]
    fn storage(&self, v: Var) -> (usize, usize) {
        match &self.node(v).value {
            Value::View { base, offset } => (*base, *offset),
            _ => (v.index, 0),
        }
    }

    fn push_value(&mut self, op: Op<F>, shape: Vec<usize>, value: Value<'a, F>, rg: bool) -> Var {
        self.nodes.push(Node {
            op,
            shape,
            value,
            requires_grad: rg,
        });
        self.var(self.nodes.len() - 1)
    }

    /// Appends the result of an op on `inputs` (vars of this tape, already checked); it is
    /// recorded only if the tape records and some input requires a gradient.
    #[track_caller]
    fn push(&mut self, op: Op<F>, inputs: &[Var], shape: Vec<usize>, data: Vec<F>) -> Var {
        assert_shape(&shape, data.len());
        let rg = self.recording && inputs.iter().any(|&v| self.node(v).requires_grad);
        let op = if rg { op } else { Op::Leaf };
        self.push_value(op, shape, Value::Owned(data), rg)
    }
}

#[track_caller]
fn assert_shape(shape: &[usize], len: usize) {
    assert_eq!(
        checked_shape_len(shape),
        len,
        "shape {shape:?} does not hold {len} elements"
    );
}

impl<F: Float> fmt::Display for Tape<'_, F> {
    /// One line per node: index, op, shape, whether a gradient flows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.nodes.iter().enumerate() {
            let grad = if n.requires_grad { " grad" } else { "" };
            writeln!(f, "%{i} = {:?} {:?}{grad}", n.op, n.shape)?;
        }
        Ok(())
    }
}
