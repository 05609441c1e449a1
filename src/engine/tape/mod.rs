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

mod ops;
mod pool;

pub use ops::{Axis, DistanceSaved, DistanceTarget, Op, Unary};
pub use pool::BufferPool;

use crate::engine::tensor::{Float, Tensor};
use std::fmt;

/// A handle to a node of a [`Tape`]: the node's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub(crate) usize);

impl Var {
    /// The node's position on its tape.
    pub fn index(self) -> usize {
        self.0
    }
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
pub struct Tape<'a, F: Float> {
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
            nodes: Vec::new(),
            recording,
            pool,
        }
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
                _ => {}
            }
        }
        for v in grads.into_iter().flat_map(|g| g.bufs).flatten() {
            pool.give(v);
        }
        pool
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

    /// A leaf whose gradient [`Tape::backward`] returns (on a no-grad tape: a constant).
    pub fn leaf(&mut self, t: Tensor<F>) -> Var {
        let shape = t.shape().to_vec();
        let rg = self.recording;
        self.push_value(Op::Leaf, shape, Value::Owned(t.into_data()), rg)
    }

    /// A leaf over borrowed data (no copy); its gradient is returned by backward.
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

    /// A constant over borrowed data (no copy).
    pub fn constant_ref(&mut self, shape: &[usize], data: &'a [F]) -> Var {
        assert_shape(shape, data.len());
        self.push_value(Op::Leaf, shape.to_vec(), Value::Borrowed(data), false)
    }

    /// The shape of `v`.
    pub fn shape(&self, v: Var) -> &[usize] {
        &self.nodes[v.0].shape
    }

    /// `v` seen as a matrix (rows, cols): see [`crate::engine::tensor::matrix_dims`].
    pub fn dims(&self, v: Var) -> (usize, usize) {
        crate::engine::tensor::matrix_dims(&self.nodes[v.0].shape)
    }

    /// The elements of `v`, row-major.
    pub fn value(&self, v: Var) -> &[F] {
        let n: usize = self.nodes[v.0].shape.iter().product();
        match &self.nodes[v.0].value {
            Value::Owned(d) => d,
            Value::Borrowed(d) => d,
            Value::View { base, offset } => &self.root_data(*base)[*offset..*offset + n],
        }
    }

    /// A copy of `v` as a tensor.
    pub fn tensor(&self, v: Var) -> Tensor<F> {
        Tensor::from_vec(self.shape(v), self.value(v).to_vec())
    }

    /// The value of a one-element `v`.
    pub fn item(&self, v: Var) -> F {
        let d = self.value(v);
        assert_eq!(d.len(), 1, "item() of a node of shape {:?}", self.shape(v));
        d[0]
    }

    /// True if a gradient flows back through `v`.
    pub fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.0].requires_grad
    }

    /// The op that produced `v`.
    pub fn op(&self, v: Var) -> &Op<F> {
        &self.nodes[v.0].op
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
    fn storage(&self, v: Var) -> (usize, usize) {
        match &self.nodes[v.0].value {
            Value::View { base, offset } => (*base, *offset),
            _ => (v.0, 0),
        }
    }

    fn push_value(&mut self, op: Op<F>, shape: Vec<usize>, value: Value<'a, F>, rg: bool) -> Var {
        self.nodes.push(Node {
            op,
            shape,
            value,
            requires_grad: rg,
        });
        Var(self.nodes.len() - 1)
    }

    /// Appends the result of an op on `inputs`; it is recorded only if the tape records and
    /// some input requires a gradient.
    fn push(&mut self, op: Op<F>, inputs: &[Var], shape: Vec<usize>, data: Vec<F>) -> Var {
        assert_shape(&shape, data.len());
        let rg = self.recording && inputs.iter().any(|&v| self.nodes[v.0].requires_grad);
        let op = if rg { op } else { Op::Leaf };
        self.push_value(op, shape, Value::Owned(data), rg)
    }

    /// Reverse pass from a one-element `loss` (seed 1).
    pub fn backward(&mut self, loss: Var) -> Gradients<F> {
        assert_eq!(
            self.value(loss).len(),
            1,
            "backward() needs a one-element loss, got shape {:?}; use backward_with_seed",
            self.shape(loss)
        );
        self.backward_with_seed(loss, &[F::ONE])
    }

    /// Reverse pass from `output` with the gradient `seed` (same element count as `output`):
    /// returns seedᵀ·∂output/∂leaf for every leaf that requires a gradient.
    pub fn backward_with_seed(&mut self, output: Var, seed: &[F]) -> Gradients<F> {
        assert_eq!(seed.len(), self.value(output).len(), "seed length");
        let mut grads = GradBuffers {
            bufs: (0..self.nodes.len()).map(|_| None).collect(),
            pool: std::mem::take(&mut self.pool),
        };
        if self.nodes[output.0].requires_grad {
            self.reverse_pass(output, seed, &mut grads);
        }
        self.pool = grads.pool;
        Gradients { bufs: grads.bufs }
    }

    fn reverse_pass(&self, output: Var, seed: &[F], grads: &mut GradBuffers<F>) {
        crate::engine::kernels::add_assign(grads.slot(self, output), seed);
        for i in (0..=output.0).rev() {
            let node = &self.nodes[i];
            if !node.requires_grad || matches!(node.value, Value::View { .. }) {
                continue; // a view's gradient already sits in its base's buffer
            }
            if matches!(node.op, Op::Leaf) {
                continue; // keep: returned to the caller
            }
            let Some(g) = grads.bufs[i].take() else {
                continue; // nothing flowed here
            };
            self.backward_op(Var(i), &g, grads);
            grads.pool.give(g);
        }
    }
}

/// Gradient buffers during a reverse pass, one per root node, allocated on first use.
struct GradBuffers<F> {
    bufs: Vec<Option<Vec<F>>>,
    pool: BufferPool<F>,
}

impl<F: Float> GradBuffers<F> {
    /// The gradient of `v` (a range of its root's buffer for a view), zeroed on first use.
    fn slot<'t>(&'t mut self, tape: &Tape<'_, F>, v: Var) -> &'t mut [F] {
        let (root, offset) = tape.storage(v);
        let len = tape.value(v).len();
        &mut self.root_buffer(tape, root)[offset..offset + len]
    }

    /// The gradient buffer of root node `root`, zeroed on first use.
    fn root_buffer(&mut self, tape: &Tape<'_, F>, root: usize) -> &mut Vec<F> {
        let root_len = tape.root_data(root).len();
        let pool = &mut self.pool;
        self.bufs[root].get_or_insert_with(|| pool.take_zeroed(root_len))
    }

    /// The gradient slots of several vars at once (`None` where the var is `None`), zeroed on
    /// first use; `None` if two of them share storage (take them one at a time then).
    fn disjoint_slots<'t, const N: usize>(
        &'t mut self,
        tape: &Tape<'_, F>,
        vars: [Option<Var>; N],
    ) -> Option<[Option<&'t mut [F]>; N]> {
        let ranges = vars.map(|v| {
            v.map(|v| {
                let (root, offset) = tape.storage(v);
                (root, offset, tape.value(v).len())
            })
        });
        for (i, a) in ranges.iter().enumerate() {
            for b in ranges[i + 1..].iter() {
                if let (Some(a), Some(b)) = (a, b) {
                    if a.0 == b.0 && a.1 < b.1 + b.2 && b.1 < a.1 + a.2 {
                        return None;
                    }
                }
            }
        }
        let mut roots: Vec<(usize, *mut F)> = Vec::with_capacity(N);
        for &(root, _, _) in ranges.iter().flatten() {
            if roots.iter().all(|&(r, _)| r != root) {
                roots.push((root, self.root_buffer(tape, root).as_mut_ptr()));
            }
        }
        Some(ranges.map(|r| {
            r.map(|(root, offset, len)| {
                let base = roots
                    .iter()
                    .find(|&&(r, _)| r == root)
                    .expect("listed above")
                    .1;
                // SAFETY: each range lies inside its root's buffer (a view never exceeds its
                // base), the ranges were checked pairwise disjoint, and the buffers are
                // neither moved nor resized while the slices borrow `self`.
                unsafe { std::slice::from_raw_parts_mut(base.add(offset), len) }
            })
        }))
    }
}

/// Gradients of the leaves that require one, by [`Var`].
pub struct Gradients<F> {
    bufs: Vec<Option<Vec<F>>>,
}

impl<F: Float> Gradients<F> {
    /// The gradient of leaf `v`, or `None` if no gradient reached it.
    pub fn get(&self, v: Var) -> Option<&[F]> {
        self.bufs.get(v.0).and_then(|b| b.as_deref())
    }

    /// Takes the gradient of leaf `v` out.
    pub fn take(&mut self, v: Var) -> Option<Vec<F>> {
        self.bufs.get_mut(v.0).and_then(Option::take)
    }

    /// The gradient of leaf `v`, zeros of length `len` if none reached it.
    pub fn get_or_zeros(&self, v: Var, len: usize) -> Vec<F> {
        self.get(v)
            .map_or_else(|| vec![F::ZERO; len], <[F]>::to_vec)
    }
}

fn assert_shape(shape: &[usize], len: usize) {
    assert_eq!(
        shape.iter().product::<usize>(),
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
