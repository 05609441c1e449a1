//! The gradients of one training step:
//!
//! 1. on a tape, L_task(θ, e(T)) for a batch: hnet → target weights (views) → target MLP →
//!    the task's head → softmax cross-entropy; backward gives ∂L_task/∂θ and ∂L_task/∂e(T);
//! 2. the look-ahead Δθ: the change the optimizer would make for that gradient, state untouched;
//! 3. on a second tape, the regularizer at θ + Δθ (Δθ a constant), its gradient added to θ's.
//!    In the factored form the output layer's weights of θ + Δθ are made block by block by the
//!    one pass that reads them, which also adds their gradient onto θ's
//!    ([`OutputRegularizer::loss_made`]): the same values, two passes over them fewer.

use super::{HnetModel, OutputRegularizer};
use crate::cl::train::Lookahead;
use crate::engine::tape::{BufferPool, Tape, Var};
use crate::engine::tensor::Float;
use crate::optim::{sgd_point_at, Adam};

/// One batch of the current task.
#[derive(Clone, Copy, Debug)]
pub struct StepInput<'d, F> {
    /// Inputs, row-major [rows × input_dim].
    pub x: &'d [F],
    /// One label per row, local to the head.
    pub labels: &'d [usize],
    /// The task being learned (its embedding is `task_embs[task]`).
    pub task: usize,
    /// The output head to train.
    pub head: usize,
}

/// Losses and gradients of one step.
#[derive(Clone, Debug)]
pub struct StepGradients<F> {
    /// L_task.
    pub task_loss: f64,
    /// The regularizer's value at θ + Δθ (0 without previous tasks).
    pub reg_loss: f64,
    /// ∂L_task/∂θ + ∂R/∂θ, flat like θ.
    pub theta: Vec<F>,
    /// ∂L_task/∂e(T).
    pub task_emb: Vec<F>,
    /// ∂L_task/∂p for the extra leaves p the task loss registered (see
    /// [`step_gradients_extra`]), in their order; empty otherwise.
    pub extra: Vec<Vec<F>>,
}

/// Buffers kept from one step to the next: the tapes' pool and θ + Δθ (without the output
/// layer's weights when the factored form made them as it read them).
#[derive(Debug, Default)]
pub struct StepWorkspace<F> {
    pool: BufferPool<F>,
    shifted: Vec<F>,
}

impl<F: Float> StepWorkspace<F> {
    /// An empty workspace.
    pub fn new() -> Self {
        Self {
            pool: BufferPool::new(),
            shifted: Vec::new(),
        }
    }

    /// Gives a step's gradient buffers back for the next step.
    pub fn recycle(&mut self, grads: StepGradients<F>) {
        self.pool.give(grads.theta);
        self.pool.give(grads.task_emb);
    }
}

/// L_task on `tape`: the mean softmax cross-entropy of head `head` on the batch `x`, with the
/// target weights generated from θ = `theta` and the embedding `emb` [1 × task_emb_dim].
pub fn task_loss<F: Float>(
    tape: &mut Tape<'_, F>,
    model: &HnetModel<F>,
    theta: Var,
    emb: Var,
    x: Var,
    labels: &[usize],
    head: usize,
) -> Var {
    let out = model.hnet.forward(tape, theta, emb);
    let weights = model.hnet.task_weights(tape, out, 0);
    let logits = model.target.forward(tape, weights, x, head);
    tape.softmax_cross_entropy(logits, labels)
}

/// The gradients of one step. `reg` is the regularizer with the previous tasks to use this
/// step; `theta_opt` is θ's optimizer (read only, for the look-ahead); `workspace` holds the
/// buffers reused between steps.
pub fn step_gradients<F: Float>(
    model: &HnetModel<F>,
    input: StepInput<'_, F>,
    reg: Option<(&OutputRegularizer<F>, &[usize])>,
    lookahead: Lookahead,
    theta_opt: &Adam<F>,
    workspace: &mut StepWorkspace<F>,
) -> StepGradients<F> {
    let rows = input.labels.len();
    step_gradients_with(
        model,
        input.task,
        |tape, weights| {
            let x = tape.constant_ref(&[rows, model.target.input_dim()], input.x);
            let logits = model.target.forward(tape, weights, x, input.head);
            tape.softmax_cross_entropy(logits, input.labels)
        },
        reg,
        lookahead,
        theta_opt,
        workspace,
    )
}

/// [`step_gradients`] with any task loss: `loss` builds L_task on the tape from the target
/// weights generated for task `task` (a flat var); the rest of the step is the same.
pub fn step_gradients_with<'m, F: Float, L>(
    model: &'m HnetModel<F>,
    task: usize,
    loss: L,
    reg: Option<(&OutputRegularizer<F>, &[usize])>,
    lookahead: Lookahead,
    theta_opt: &Adam<F>,
    workspace: &mut StepWorkspace<F>,
) -> StepGradients<F>
where
    L: FnOnce(&mut Tape<'m, F>, Var) -> Var,
{
    step_gradients_extra(
        model,
        task,
        |tape, weights| (loss(tape, weights), Vec::new()),
        reg,
        lookahead,
        theta_opt,
        workspace,
    )
}

/// [`step_gradients_with`] for a task loss with parameters of its own besides the generated
/// weights (a VAE's encoder): `loss` returns L_task and the leaves whose gradients
/// [`StepGradients::extra`] must hold. Only θ is regularized and looked ahead.
pub fn step_gradients_extra<'m, F: Float, L>(
    model: &'m HnetModel<F>,
    task: usize,
    loss: L,
    reg: Option<(&OutputRegularizer<F>, &[usize])>,
    lookahead: Lookahead,
    theta_opt: &Adam<F>,
    workspace: &mut StepWorkspace<F>,
) -> StepGradients<F>
where
    L: FnOnce(&mut Tape<'m, F>, Var) -> (Var, Vec<Var>),
{
    let d = model.hnet.config().task_emb_dim;
    let (task_loss_value, mut grad_theta, grad_emb, extra) = {
        let mut tape: Tape<'m, F> = Tape::with_pool(true, std::mem::take(&mut workspace.pool));
        let theta = tape.leaf_ref(&[model.theta.len()], &model.theta);
        let emb = tape.leaf_ref(&[1, d], &model.task_embs[task]);
        let out = model.hnet.forward(&mut tape, theta, emb);
        let weights = model.hnet.task_weights(&mut tape, out, 0);
        let (loss, extra_leaves) = loss(&mut tape, weights);
        let mut grads = tape.backward(loss);
        let extra: Vec<Vec<F>> = extra_leaves
            .iter()
            .map(|&p| {
                let n = tape.value(p).len();
                grads.take(p).unwrap_or_else(|| vec![F::ZERO; n])
            })
            .collect();
        let gt = grads
            .take(theta)
            .unwrap_or_else(|| vec![F::ZERO; model.theta.len()]);
        let ge = grads.take(emb).unwrap_or_else(|| vec![F::ZERO; d]);
        let value = tape.item(loss).to_f64();
        workspace.pool = tape.into_pool(Some(grads));
        (value, gt, ge, extra)
    };
    let mut reg_loss = 0.0;
    if let Some((reg, subset)) = reg.filter(|(_, s)| !s.is_empty()) {
        let theta = &model.theta;
        // θ + Δθ, elements start.. of it, for g the gradient of those elements.
        let point = |start: usize, g: &[F], out: &mut [F]| match lookahead {
            Lookahead::Off => out.copy_from_slice(&theta[start..start + out.len()]),
            Lookahead::Adam => theta_opt.lookahead_point_at(theta, g, start, out),
            Lookahead::Sgd => sgd_point_at(theta_opt.lr, theta, g, start, out),
        };
        let shifted = &mut workspace.shifted;
        shifted.resize(theta.len(), F::ZERO);
        if reg.fuses(&model.hnet, subset.len()) {
            let (value, total) = reg.loss_made(
                &model.hnet,
                &point,
                std::mem::take(&mut grad_theta),
                subset,
                shifted,
                &mut workspace.pool,
            );
            reg_loss = value;
            grad_theta = total;
        } else {
            match lookahead {
                // The same values as `point`, over the cores.
                Lookahead::Adam => theta_opt.lookahead_point(theta, &grad_theta, shifted),
                Lookahead::Off | Lookahead::Sgd => point(0, &grad_theta, shifted),
            }
            let mut tape = Tape::with_pool(true, std::mem::take(&mut workspace.pool));
            let theta = tape.leaf_ref(&[workspace.shifted.len()], &workspace.shifted);
            let loss = reg.loss(&mut tape, &model.hnet, theta, subset);
            reg_loss = tape.item(loss).to_f64();
            // Δθ is a constant, so ∂R(θ + Δθ)/∂θ is the gradient at the shifted leaf: it is
            // added straight onto the task's gradient of θ.
            let mut grads = tape.backward_onto(loss, theta, std::mem::take(&mut grad_theta));
            grad_theta = grads
                .take(theta)
                .expect("backward_onto keeps the leaf's buffer");
            workspace.pool = tape.into_pool(Some(grads));
        }
    }
    StepGradients {
        task_loss: task_loss_value,
        reg_loss,
        theta: grad_theta,
        task_emb: grad_emb,
        extra,
    }
}
