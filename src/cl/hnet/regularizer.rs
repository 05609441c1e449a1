//! The output regularizer (von Oswald et al. 2020, Eq. 2): while learning task T,
//! (β / |S|) Σ_{t∈S} ‖h(e(t), θ*) − h(e(t), θ + Δθ)‖² over previous tasks S, with θ* the
//! parameters before task T began. All tasks of S go through the hypernetwork as one batch.
//!
//! Two forms compute it ([`RegularizerForm`]). The *direct* form makes every task's generated
//! weights (its output layer fused with the distance) and compares them with targets stored
//! or recomputed from θ*: each task costs the output layer, O(chunks · chunk size · width).
//! The *factored* form uses that the output layer o = W a + b is linear: with a, a* the last
//! hidden activations of a chunk at θ + Δθ and θ*, W', b' and W*, b* the output layers,
//! δa = a − a*, δW = W' − W*, δb = b' − b*,
//!
//! ```text
//! ‖o' − o*‖² = δaᵀGδa + 2 δaᵀM a* + a*ᵀH a* + 2 δaᵀu + 2 a*ᵀv + ‖δb‖²,
//! G = W'ᵀW', M = W'ᵀδW, H = δWᵀδW, u = W'ᵀδb, v = δWᵀδb
//! ```
//!
//! so G, M, H cost O(chunk size · width²) once per step (W*ᵀW* once per task, kept) and each
//! task O(chunks · width²)
//! ([`Tape::linear_squared_distance_factored`]). It stores a* per task (or recomputes it from
//! θ*) and θ*, not the targets. [`RegularizerCost`] models both from the shapes.
//! [`OutputRegularizer::loss_made`] computes the factored form at θ + Δθ without storing the
//! output layer's weights of θ + Δθ or their gradient apart (the training step's path).

use super::HnetModel;
use crate::cl::train::RegularizerForm;
use crate::engine::kernels::{
    factored_squared_distance_with, LayerPair, MakeRows, PairGrads, TargetGram, Weights,
};
use crate::engine::tape::{BufferPool, DistanceTarget, Tape, Var};
use crate::engine::tensor::{Float, Tensor};
use crate::nn::Hnet;
use serde::Serialize;

/// Where the targets h(e(t), θ*) come from.
#[derive(Clone, Debug, PartialEq)]
pub enum RegTargets<F> {
    /// Computed once before the task: [previous tasks × num_weights], flat (memory grows with
    /// the number of tasks).
    Precomputed(Vec<F>),
    /// Recomputed at every step from a frozen copy of θ*, fused with the distance (memory
    /// does not grow with the tasks; each step runs θ*'s hidden layers and, in the direct form,
    /// its output layer too).
    Online {
        /// θ*.
        theta_star: Vec<F>,
    },
    /// The factors of the targets: θ* (whose output layer is W*, b*) and the last hidden
    /// activations a* of θ* for every chunk of every previous task, computed once before the
    /// task ([previous tasks · chunks × width], task-major; chunks · width values per task).
    Factors {
        /// θ*.
        theta_star: Vec<F>,
        /// a*.
        activations: Vec<F>,
    },
}

/// Multiply-adds of the output layer's part of one step's regularizer over some previous
/// tasks, in each form, from the shapes (the hidden layers cost the same in both and are left
/// out). With n outputs per chunk, width d of the last hidden layer, C chunks per task and P
/// tasks:
///
/// - direct: the output layer on P·C rows, forward and both backward products, 3·P·C·n·d,
///   and 4·P·C·n·d when the targets are made from θ*'s output layer rather than stored;
/// - factored: with G* = W*ᵀW* made once per task, per row of W' the sums K = W*ᵀδW and
///   p = W*ᵀδb (d(d + 1)), H, v, ‖δb‖² ((d + 1)²) and its gradient row [W*_j | δW_j | δb_j]·S
///   ((2d + 1)(d + 1)): (d + 1)(4d + 2)·n once, then per row of the hidden activations its
///   two sums for the gradient and y*, y_δ (6·d²), 6·P·C·d².
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RegularizerCost {
    /// The direct form.
    pub direct: f64,
    /// The factored form.
    pub factored: f64,
}

impl RegularizerCost {
    /// The cost over `tasks` tasks of a hypernetwork whose output layer makes `n` outputs per
    /// chunk from `width` hidden units, `chunks` chunks per task; `stored_targets`: the
    /// direct form reads its targets instead of making them.
    pub fn of_shapes(
        n: usize,
        width: usize,
        chunks: usize,
        tasks: usize,
        stored_targets: bool,
    ) -> Self {
        let (n, d) = (n as f64, width as f64);
        let rows = tasks as f64 * chunks as f64;
        let products = if stored_targets { 3.0 } else { 4.0 };
        Self {
            direct: products * rows * n * d,
            factored: (d + 1.0) * (4.0 * d + 2.0) * n + 6.0 * rows * d * d,
        }
    }

    /// [`RegularizerCost::of_shapes`] for `hnet`.
    pub fn of(hnet: &Hnet, tasks: usize, stored_targets: bool) -> Self {
        let n = hnet.row_stride() / hnet.num_chunks().max(1);
        Self::of_shapes(
            n,
            last_width(hnet),
            hnet.num_chunks(),
            tasks,
            stored_targets,
        )
    }

    /// Whether the factored form is the cheaper.
    pub fn factored_pays_off(&self) -> bool {
        self.factored < self.direct
    }
}

/// Width of the input of `hnet`'s output layer: its last hidden layer, or without hidden
/// layers [e(t), c(i)].
pub fn last_width(hnet: &Hnet) -> usize {
    let c = hnet.config();
    match c.hidden.last() {
        Some(&h) => h,
        None if c.chunk_size.is_some() => c.task_emb_dim + c.chunk_emb_dim,
        None => c.task_emb_dim,
    }
}

/// The regularizer for one task: the frozen previous embeddings, the targets, β and the form.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputRegularizer<F> {
    beta: f64,
    prev_embs: Vec<Vec<F>>,
    num_weights: usize,
    targets: RegTargets<F>,
    form: RegularizerForm,
    /// G* = W*ᵀW* of θ*'s output layer, for the factored form (θ* kept).
    target_gram: Option<TargetGram<F>>,
}

impl<F: Float> OutputRegularizer<F> {
    /// Captures θ* and the embeddings of tasks 0..`num_prev` of `model` before training the
    /// next task; with `online`, keeps θ* instead of the targets. The direct form (see
    /// [`OutputRegularizer::with_form`]).
    pub fn new(model: &HnetModel<F>, num_prev: usize, beta: f64, online: bool) -> Self {
        Self::with_form(model, num_prev, beta, online, RegularizerForm::Direct)
    }

    /// [`OutputRegularizer::new`] computed in `form`. What it stores: the direct form the
    /// targets (with `online`: θ*); the factored form θ* and, unless `online`, a* per task.
    /// The automatic form stores what the factored one does, or, when the direct form with
    /// stored targets is cheaper even over all `num_prev` tasks (one task, typically), the
    /// targets.
    pub fn with_form(
        model: &HnetModel<F>,
        num_prev: usize,
        beta: f64,
        online: bool,
        form: RegularizerForm,
    ) -> Self {
        let prev_embs = model.task_embs[..num_prev].to_vec();
        let hnet = &model.hnet;
        let all: Vec<usize> = (0..num_prev).collect();
        let targets = match form {
            _ if online => RegTargets::Online {
                theta_star: model.theta.clone(),
            },
            RegularizerForm::Auto
                if !RegularizerCost::of(hnet, num_prev, true).factored_pays_off() =>
            {
                RegTargets::Precomputed(generate(hnet, &model.theta, &prev_embs, &all))
            }
            RegularizerForm::Direct => {
                RegTargets::Precomputed(generate(hnet, &model.theta, &prev_embs, &all))
            }
            RegularizerForm::Factored | RegularizerForm::Auto => RegTargets::Factors {
                activations: activations(hnet, &model.theta, &prev_embs),
                theta_star: model.theta.clone(),
            },
        };
        let target_gram = match &targets {
            RegTargets::Precomputed(_) => None,
            RegTargets::Online { theta_star } | RegTargets::Factors { theta_star, .. } => {
                (form != RegularizerForm::Direct).then(|| output_gram(hnet, theta_star))
            }
        };
        Self {
            beta,
            prev_embs,
            num_weights: model.hnet.num_weights(),
            targets,
            form,
            target_gram,
        }
    }

    /// Number of previous tasks it protects.
    pub fn num_prev(&self) -> usize {
        self.prev_embs.len()
    }

    /// β.
    pub fn beta(&self) -> f64 {
        self.beta
    }

    /// The targets.
    pub fn targets(&self) -> &RegTargets<F> {
        &self.targets
    }

    /// The form it was asked for.
    pub fn form(&self) -> RegularizerForm {
        self.form
    }

    /// The form [`OutputRegularizer::loss`] takes over `tasks` previous tasks with `hnet`:
    /// direct or factored (the automatic form decided by [`RegularizerCost`]).
    pub fn form_for(&self, hnet: &Hnet, tasks: usize) -> RegularizerForm {
        match (&self.targets, self.form) {
            (RegTargets::Precomputed(_), _) | (_, RegularizerForm::Direct) => {
                RegularizerForm::Direct
            }
            (_, RegularizerForm::Factored) => RegularizerForm::Factored,
            (_, RegularizerForm::Auto) => {
                if RegularizerCost::of(hnet, tasks, false).factored_pays_off() {
                    RegularizerForm::Factored
                } else {
                    RegularizerForm::Direct
                }
            }
        }
    }

    /// Values it holds besides the embeddings: the targets, θ*, the activations and G*.
    pub fn stored_values(&self) -> usize {
        self.target_gram.as_ref().map_or(0, TargetGram::len)
            + match &self.targets {
                RegTargets::Precomputed(t) => t.len(),
                RegTargets::Online { theta_star } => theta_star.len(),
                RegTargets::Factors {
                    theta_star,
                    activations,
                } => theta_star.len() + activations.len(),
            }
    }

    /// The stored target h(e(t), θ*) of previous task `t` (`None` unless the targets are
    /// stored).
    pub fn precomputed_target(&self, t: usize) -> Option<&[F]> {
        match &self.targets {
            RegTargets::Precomputed(flat) => {
                Some(&flat[t * self.num_weights..(t + 1) * self.num_weights])
            }
            RegTargets::Online { .. } | RegTargets::Factors { .. } => None,
        }
    }

    /// (β / |S|) Σ_{t∈S} ‖target(t) − h(e(t), θ)‖² on `tape`, θ being the flat var `theta`
    /// (θ + Δθ for the look-ahead), S = `subset` of the previous tasks, in one batched pass
    /// in the form [`OutputRegularizer::form_for`] gives for |S| tasks.
    pub fn loss<'a>(
        &'a self,
        tape: &mut Tape<'a, F>,
        hnet: &Hnet,
        theta: Var,
        subset: &[usize],
    ) -> Var {
        assert!(!subset.is_empty(), "regularizer over no task");
        let d = hnet.config().task_emb_dim;
        let n = self.num_weights;
        let embs: Vec<F> = subset
            .iter()
            .flat_map(|&t| self.prev_embs[t].iter().copied())
            .collect();
        let e = tape.constant(Tensor::from_vec(&[subset.len(), d], embs));
        let shape = [subset.len(), n];
        let all_in_order = self.all_in_order(subset);
        let form = self.form_for(hnet, subset.len());
        let distance = match (&self.targets, form) {
            // The common case borrows the stored targets; a subset gathers its rows.
            (RegTargets::Precomputed(flat), _) => {
                let targets = if all_in_order {
                    tape.constant_ref(&shape, flat)
                } else {
                    let rows = subset
                        .iter()
                        .flat_map(|&t| flat[t * n..(t + 1) * n].iter().copied());
                    tape.constant(Tensor::from_vec(&shape, rows.collect()))
                };
                hnet.squared_distance_to(tape, theta, e, targets)
            }
            (RegTargets::Online { theta_star }, RegularizerForm::Direct) => {
                let theta_star = tape.constant_ref(&[theta_star.len()], theta_star);
                hnet.squared_distance_to_output_of(tape, theta, e, theta_star)
            }
            _ => {
                let (ts, a_star) = self.target_layers(tape, hnet, e, subset);
                self.distance_of_layers(tape, hnet, theta, e, ts, a_star, form)
            }
        };
        tape.scale(distance, F::from_f64(self.beta / subset.len() as f64))
    }

    /// Whether `subset` is every previous task in order.
    fn all_in_order(&self, subset: &[usize]) -> bool {
        subset.iter().enumerate().all(|(i, &t)| i == t) && subset.len() == self.num_prev()
    }

    /// θ* (a constant) and the last hidden activations a* [tasks · chunks × width] of the
    /// tasks of `subset`, whose embeddings are the rows of `e`: stored (a subset gathers its
    /// rows) or, for online targets, made from θ*.
    ///
    /// # Panics
    /// If the targets are stored whole (the direct form's).
    fn target_layers<'a>(
        &'a self,
        tape: &mut Tape<'a, F>,
        hnet: &Hnet,
        e: Var,
        subset: &[usize],
    ) -> (Var, Var) {
        match &self.targets {
            RegTargets::Precomputed(_) => unreachable!("stored targets have no layers"),
            RegTargets::Online { theta_star } => {
                let ts = tape.constant_ref(&[theta_star.len()], theta_star);
                (ts, hnet.last_hidden(tape, ts, e))
            }
            RegTargets::Factors {
                theta_star,
                activations,
            } => {
                let ts = tape.constant_ref(&[theta_star.len()], theta_star);
                let width = last_width(hnet);
                let rows = subset.len() * hnet.num_chunks();
                let a_star = if self.all_in_order(subset) {
                    tape.constant_ref(&[rows, width], activations)
                } else {
                    let per_task = hnet.num_chunks() * width;
                    let picked = subset.iter().flat_map(|&t| {
                        activations[t * per_task..(t + 1) * per_task]
                            .iter()
                            .copied()
                    });
                    tape.constant(Tensor::from_vec(&[rows, width], picked.collect()))
                };
                (ts, a_star)
            }
        }
    }

    /// Whether [`OutputRegularizer::loss_made`] computes the regularizer over `tasks` tasks:
    /// when it takes the factored form.
    pub fn fuses(&self, hnet: &Hnet, tasks: usize) -> bool {
        self.form_for(hnet, tasks) == RegularizerForm::Factored
    }

    /// [`OutputRegularizer::loss`] at θ' = θ + Δθ and its gradient, for the factored form
    /// ([`OutputRegularizer::fuses`]), without θ' or the gradient of its output layer's
    /// weights ever stored apart: the one pass over the output layer's rows makes each block
    /// of W' = `point` as it reads it and adds ∂R/∂W' onto `grad` there. The same values as
    /// [`OutputRegularizer::loss`] and a backward pass onto `grad` at a stored θ' (every
    /// element is computed the same way and the gradient's shares are added in the same
    /// order), at two fewer passes over W' (writing θ' and reading it back), two fewer over
    /// its gradient (writing ∂R/∂W' and adding it onto `grad`) and no second θ-sized buffer.
    ///
    /// `grad` [θ's length] holds the gradient the regularizer's is added onto (the task's);
    /// it is returned holding the sum, with R(θ'). `point(start, g, out)` writes
    /// θ'[start..start + out.len()] for `g` the same range of `grad` as it is before the
    /// regularizer's share is added (the look-ahead's gradient); `shifted` [θ's length]
    /// receives θ' except the output layer's weights (left as they were). `pool` lends the
    /// tape its buffers and gets them back.
    ///
    /// # Panics
    /// If the regularizer does not take the factored form over `subset`, `subset` is empty,
    /// or a buffer's length is not θ's.
    pub fn loss_made(
        &self,
        hnet: &Hnet,
        point: &MakeRows<'_, F>,
        mut grad: Vec<F>,
        subset: &[usize],
        shifted: &mut [F],
        pool: &mut BufferPool<F>,
    ) -> (f64, Vec<F>) {
        assert!(!subset.is_empty(), "regularizer over no task");
        assert!(self.fuses(hnet, subset.len()), "loss_made: the direct form");
        let len = hnet.num_params();
        assert!(
            grad.len() == len && shifted.len() == len,
            "loss_made: buffers of θ's length {len}"
        );
        let (w_range, b_range) = hnet.output_ranges();
        // θ' but W', which the pass makes as it reads it.
        point(0, &grad[..w_range.start], &mut shifted[..w_range.start]);
        point(
            w_range.end,
            &grad[w_range.end..],
            &mut shifted[w_range.end..],
        );
        let shifted: &[F] = shifted;
        let d = hnet.config().task_emb_dim;
        let embs: Vec<F> = subset
            .iter()
            .flat_map(|&t| self.prev_embs[t].iter().copied())
            .collect();
        let (m, k) = (subset.len() * hnet.num_chunks(), last_width(hnet));
        let mut gx = pool.take(m * k);
        let mut tape = Tape::with_pool(true, std::mem::take(pool));
        let theta = tape.leaf_ref(&[len], shifted);
        let e = tape.constant(Tensor::from_vec(&[subset.len(), d], embs));
        let a = hnet.last_hidden(&mut tape, theta, e);
        let (ts, a_star) = self.target_layers(&mut tape, hnet, e, subset);
        let (w_star, b_star) = hnet.output_layer(&mut tape, ts);
        let n = b_range.len();
        let factor = F::from_f64(self.beta / subset.len() as f64);
        let total = {
            let (rest, tail) = grad.split_at_mut(w_range.end);
            let gw = &mut rest[w_range.clone()];
            let gb = &mut tail[b_range.start - w_range.end..b_range.end - w_range.end];
            let made =
                |start: usize, g: &[F], rows: &mut [F]| point(w_range.start + start, g, rows);
            let pair = LayerPair {
                m,
                k,
                n,
                x: tape.value(a),
                w: Weights::Made(&made),
                b: Some(&shifted[b_range.clone()]),
                xt: tape.value(a_star),
                wt: tape.value(w_star),
                bt: Some(tape.value(b_star)),
                rows_per_group: hnet.num_chunks(),
                len: self.num_weights,
            };
            let grads = PairGrads {
                x: Some(&mut gx),
                w: Some(gw),
                b: Some(gb),
                add_onto: Some(factor),
                ..PairGrads::default()
            };
            factored_squared_distance_with(pair, self.target_gram.as_ref(), grads)
        };
        // What the op's node gives the tape for an output gradient of β/|S|.
        let value = (F::from_f64(total) * factor).to_f64();
        gx.iter_mut().for_each(|g| *g = factor * *g);
        let mut grads = tape.backward_with_seed_onto(a, &gx, theta, grad);
        let grad = grads
            .take(theta)
            .expect("backward_onto keeps the leaf's buffer");
        *pool = tape.into_pool(Some(grads));
        pool.give(gx);
        (value, grad)
    }

    /// Σ over the tasks of `e` of ‖h(e, θ) − (W* a* + b*)‖², W*, b* the output layer of θ* =
    /// `theta_star` and a* [tasks · chunks × width] its last hidden activations, in `form`.
    #[allow(clippy::too_many_arguments)]
    fn distance_of_layers(
        &self,
        tape: &mut Tape<'_, F>,
        hnet: &Hnet,
        theta: Var,
        e: Var,
        theta_star: Var,
        a_star: Var,
        form: RegularizerForm,
    ) -> Var {
        let tasks = tape.dims(e).0;
        let a = hnet.last_hidden(tape, theta, e);
        let (w, b) = hnet.output_layer(tape, theta);
        let (w_star, b_star) = hnet.output_layer(tape, theta_star);
        let target = DistanceTarget::Dense {
            x: a_star,
            w: w_star,
            b: Some(b_star),
            len: self.num_weights,
        };
        match form {
            RegularizerForm::Factored => tape.linear_squared_distance_factored_with(
                a,
                w,
                Some(b),
                target,
                tasks,
                self.target_gram.as_ref(),
            ),
            _ => tape.linear_squared_distance_to(a, w, Some(b), target, tasks),
        }
    }
}

/// G* = W*ᵀW* of the output layer W* of θ* = `theta_star`, for outputs cut to
/// `hnet.num_weights()` per task.
fn output_gram<F: Float>(hnet: &Hnet, theta_star: &[F]) -> TargetGram<F> {
    let mut tape = Tape::no_grad();
    let th = tape.constant_ref(&[theta_star.len()], theta_star);
    let (w, _) = hnet.output_layer(&mut tape, th);
    let (n, k) = tape.dims(w);
    TargetGram::new(tape.value(w), n, k, hnet.num_weights())
}

/// The last hidden activations of θ = `theta` for every chunk of every task of `embs`, as one
/// flat [tasks · chunks × width] buffer (task-major), without recording.
fn activations<F: Float>(hnet: &Hnet, theta: &[F], embs: &[Vec<F>]) -> Vec<F> {
    if embs.is_empty() {
        return Vec::new();
    }
    let d = hnet.config().task_emb_dim;
    let mut tape = Tape::no_grad();
    let th = tape.constant_ref(&[theta.len()], theta);
    let stacked: Vec<F> = embs.iter().flatten().copied().collect();
    let e = tape.constant(Tensor::from_vec(&[embs.len(), d], stacked));
    let a = hnet.last_hidden(&mut tape, th, e);
    tape.value(a).to_vec()
}

/// h(e(t), θ) for t in `tasks`, as one flat [|tasks| × num_weights] buffer, without recording.
/// One task at a time, so the only buffer that grows with the tasks is the result.
pub(crate) fn generate<F: Float>(
    hnet: &Hnet,
    theta: &[F],
    embs: &[Vec<F>],
    tasks: &[usize],
) -> Vec<F> {
    let d = hnet.config().task_emb_dim;
    let mut weights = Vec::with_capacity(tasks.len() * hnet.num_weights());
    for &t in tasks {
        let mut tape = Tape::no_grad();
        let th = tape.constant_ref(&[theta.len()], theta);
        let e = tape.constant_ref(&[1, d], &embs[t]);
        let out = hnet.forward(&mut tape, th, e);
        let w = hnet.task_weights(&mut tape, out, 0);
        weights.extend_from_slice(tape.value(w));
    }
    weights
}
