//! The reverse pass: [`Tape::backward`] and its variants walk the tape once from the output
//! back, each op adding its share into its inputs' gradient buffers ([`Gradients`]).

use super::{foreign_var, BufferPool, Op, Tape, Value, Var};
use crate::engine::tensor::Float;

impl<'a, F: Float> Tape<'a, F> {
    /// Reverse pass from a one-element `loss` (seed 1): the gradient of `loss` by every leaf
    /// that requires one. The tape is left unchanged and can be backpropagated again or
    /// extended (see the module documentation); each call returns new gradients.
    ///
    /// # Panics
    /// If `loss` has more than one element (use [`Tape::backward_with_seed`]) or belongs to
    /// another tape.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(&[2], vec![3.0, -1.0]));
    /// let y = tape.square(x);
    /// let loss = tape.sum(y);
    /// let mut grads = tape.backward(loss);
    /// assert_eq!(grads.take(x).unwrap(), vec![6.0, -2.0]); // 2x
    /// // Again, with more ops recorded after the first pass: fresh gradients each time.
    /// let z = tape.scale(loss, 10.0);
    /// assert_eq!(tape.backward(z).get(x).unwrap(), &[60.0, -20.0]);
    /// assert_eq!(tape.backward(loss).get(x).unwrap(), &[6.0, -2.0]);
    /// ```
    #[track_caller]
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
    /// returns seedᵀ·∂output/∂leaf for every leaf that requires a gradient (a
    /// vector-Jacobian product; a one-hot seed gives one row of the Jacobian).
    ///
    /// # Panics
    /// If the seed's length differs from `output`'s element count, or `output` belongs to
    /// another tape.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// // y = (x₀x₁, x₀ + x₁): the rows of its Jacobian, one backward pass each.
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(&[2], vec![2.0, 5.0]));
    /// let x0 = tape.narrow_flat(x, 0, 1);
    /// let x1 = tape.narrow_flat(x, 1, 1);
    /// let p = tape.mul(x0, x1);
    /// let s = tape.add(x0, x1);
    /// let y = tape.concat_cols(&[p, s]);
    /// assert_eq!(tape.backward_with_seed(y, &[1.0, 0.0]).get(x).unwrap(), &[5.0, 2.0]);
    /// assert_eq!(tape.backward_with_seed(y, &[0.0, 1.0]).get(x).unwrap(), &[1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn backward_with_seed(&mut self, output: Var, seed: &[F]) -> Gradients<F> {
        let len = self.value(output).len();
        assert_eq!(
            seed.len(),
            len,
            "backward_with_seed: a seed of {} elements for an output of shape {:?}",
            seed.len(),
            self.shape(output)
        );
        self.backward_from(output, seed, None)
    }

    /// The reverse pass from `output` with `seed`, the gradient buffer of `onto`'s leaf (if
    /// any) starting as the given buffer.
    fn backward_from(
        &mut self,
        output: Var,
        seed: &[F],
        onto: Option<(Var, Vec<F>)>,
    ) -> Gradients<F> {
        let mut grads = GradBuffers {
            bufs: (0..self.nodes.len()).map(|_| None).collect(),
            pool: std::mem::take(&mut self.pool),
        };
        if let Some((leaf, start)) = onto {
            grads.bufs[leaf.index] = Some(start);
        }
        if self.node(output).requires_grad {
            self.reverse_pass(output, seed, &mut grads);
        }
        self.pool = grads.pool;
        Gradients {
            tape: self.id,
            bufs: grads.bufs,
        }
    }

    /// [`Tape::backward`] with the gradient of the leaf `leaf` added onto `start` instead of
    /// a zeroed buffer: `take(leaf)` on the result gives `start` + ∂loss/∂leaf, in the buffer
    /// `start` was (no copy, no zeroing, no second pass to add the two). Every op adds its
    /// share into a leaf's gradient, so the result is the sum of `start` and the shares, added
    /// in the order of the reverse pass; `start` comes back unchanged if no gradient reaches
    /// the leaf (a constant, or one the loss does not read). The other leaves' gradients are
    /// as from [`Tape::backward`].
    ///
    /// # Panics
    /// As [`Tape::backward`], and if `leaf` is not a leaf of this tape that requires a
    /// gradient (a constant, a view or an op's result), or `start` does not hold its element
    /// count.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(&[2], vec![3.0, -1.0]));
    /// let y = tape.square(x);
    /// let loss = tape.sum(y);
    /// let mut grads = tape.backward_onto(loss, x, vec![10.0, 20.0]);
    /// assert_eq!(grads.take(x).unwrap(), vec![16.0, 18.0]); // start + 2x
    /// ```
    #[track_caller]
    pub fn backward_onto(&mut self, loss: Var, leaf: Var, start: Vec<F>) -> Gradients<F> {
        assert_eq!(
            self.value(loss).len(),
            1,
            "backward_onto() needs a one-element loss, got shape {:?}",
            self.shape(loss)
        );
        self.backward_with_seed_onto(loss, &[F::ONE], leaf, start)
    }

    /// [`Tape::backward_with_seed`] with the gradient of the leaf `leaf` added onto `start`,
    /// as [`Tape::backward_onto`] does: seedᵀ·∂output/∂leaf + `start`, in `start`'s buffer.
    /// For an output whose gradient was made outside the tape (an op computed by hand).
    ///
    /// # Panics
    /// If the seed's length differs from `output`'s element count, `leaf` is not a leaf of
    /// this tape that requires a gradient (a constant, a view or an op's result), `start` does
    /// not hold its element count, or `output` belongs to another tape.
    ///
    /// ```
    /// use hypertape::{Tape, Tensor};
    ///
    /// let mut tape = Tape::<f64>::new();
    /// let x = tape.leaf(Tensor::from_vec(&[2], vec![3.0, -1.0]));
    /// let y = tape.square(x);
    /// let mut grads = tape.backward_with_seed_onto(y, &[1.0, 0.5], x, vec![10.0, 20.0]);
    /// assert_eq!(grads.take(x).unwrap(), vec![16.0, 19.0]); // start + seed ⊙ 2x
    /// ```
    #[track_caller]
    pub fn backward_with_seed_onto(
        &mut self,
        output: Var,
        seed: &[F],
        leaf: Var,
        start: Vec<F>,
    ) -> Gradients<F> {
        assert_eq!(
            seed.len(),
            self.value(output).len(),
            "backward_with_seed_onto: a seed of {} elements for an output of shape {:?}",
            seed.len(),
            self.shape(output)
        );
        let node = self.node(leaf);
        assert!(
            matches!(node.op, Op::Leaf)
                && node.requires_grad
                && !matches!(node.value, Value::View { .. }),
            "backward_with_seed_onto: var {} is not a leaf that requires a gradient",
            leaf.index
        );
        assert_eq!(
            start.len(),
            self.value(leaf).len(),
            "backward_with_seed_onto: a start of {} elements for a leaf of shape {:?}",
            start.len(),
            self.shape(leaf)
        );
        self.backward_from(output, seed, Some((leaf, start)))
    }

    fn reverse_pass(&self, output: Var, seed: &[F], grads: &mut GradBuffers<F>) {
        crate::engine::kernels::add_assign(grads.slot(self, output), seed);
        for i in (0..=output.index).rev() {
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
            self.backward_op(self.var(i), &g, grads);
            grads.pool.give(g);
        }
    }
}

/// Gradient buffers during a reverse pass, one per root node, allocated on first use.
pub(super) struct GradBuffers<F> {
    pub(super) bufs: Vec<Option<Vec<F>>>,
    pub(super) pool: BufferPool<F>,
}

impl<F: Float> GradBuffers<F> {
    /// The gradient of `v` (a range of its root's buffer for a view), zeroed on first use.
    pub(super) fn slot<'t>(&'t mut self, tape: &Tape<'_, F>, v: Var) -> &'t mut [F] {
        let (root, offset) = tape.storage(v);
        let len = tape.value(v).len();
        &mut self.root_buffer(tape, root)[offset..offset + len]
    }

    /// The gradient buffer of root node `root`, zeroed on first use.
    pub(super) fn root_buffer(&mut self, tape: &Tape<'_, F>, root: usize) -> &mut Vec<F> {
        let root_len = tape.root_data(root).len();
        let pool = &mut self.pool;
        self.bufs[root].get_or_insert_with(|| pool.take_zeroed(root_len))
    }

    /// The gradient slots of several vars at once (`None` where the var is `None`), zeroed on
    /// first use; `None` if two of them share storage (take them one at a time then).
    pub(super) fn disjoint_slots<'t, const N: usize>(
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

/// Gradients of the leaves that require one, by [`Var`] of the tape they were computed on
/// (a var of another tape panics). A leaf no gradient reached (it does not influence the
/// output, or it is a constant) has none: [`Gradients::get`] gives `None`,
/// [`Gradients::get_or_zeros`] zeros.
///
/// ```
/// use hypertape::{Tape, Tensor};
///
/// let mut tape = Tape::<f64>::new();
/// let a = tape.leaf(Tensor::from_vec(&[2], vec![1.0, 2.0]));
/// let unused = tape.leaf(Tensor::from_vec(&[3], vec![0.0; 3]));
/// let loss = tape.sum(a);
/// let mut grads = tape.backward(loss);
/// assert_eq!(grads.get(a), Some(&[1.0, 1.0][..]));
/// assert_eq!(grads.get(unused), None);
/// assert_eq!(grads.get_or_zeros(unused, 3), vec![0.0; 3]);
/// let owned: Vec<f64> = grads.take(a).unwrap(); // moved out, no copy
/// assert_eq!(owned, vec![1.0, 1.0]);
/// assert_eq!(grads.get(a), None);
/// ```
pub struct Gradients<F> {
    tape: u64,
    pub(super) bufs: Vec<Option<Vec<F>>>,
}

impl<F: Float> Gradients<F> {
    /// The index of `v`, after checking that it belongs to the tape of these gradients.
    #[inline]
    #[track_caller]
    fn index(&self, v: Var) -> usize {
        if v.tape != self.tape {
            foreign_var(v, self.tape);
        }
        v.index
    }

    /// The gradient of leaf `v`, or `None` if no gradient reached it.
    #[track_caller]
    pub fn get(&self, v: Var) -> Option<&[F]> {
        self.bufs.get(self.index(v)).and_then(|b| b.as_deref())
    }

    /// Takes the gradient of leaf `v` out.
    #[track_caller]
    pub fn take(&mut self, v: Var) -> Option<Vec<F>> {
        let i = self.index(v);
        self.bufs.get_mut(i).and_then(Option::take)
    }

    /// The gradient of leaf `v`, zeros of length `len` if none reached it.
    #[track_caller]
    pub fn get_or_zeros(&self, v: Var, len: usize) -> Vec<F> {
        self.get(v)
            .map_or_else(|| vec![F::ZERO; len], <[F]>::to_vec)
    }
}
