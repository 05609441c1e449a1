//! The end-to-end gradient audit of a training step, in f64: the gradient the trainer uses,
//! ∂/∂(θ, e(T)) of L_task(θ, e(T)) + R(θ + Δθ) with Δθ the (detached) look-ahead, against
//! central finite differences of that same objective. The trainer's regularizer may be in any
//! form ([`RegularizerForm`]); the objective always evaluates R by its definition (the direct
//! form with stored targets), so the audit of the factored form also checks that it is R.

use super::{
    step_gradients, task_loss, HnetModel, Lookahead, OutputRegularizer, RegularizerForm, StepInput,
    StepWorkspace,
};
use crate::engine::gradcheck::{
    compare_with_differences, directional_compare, DirectionalReport, GradCheckOptions,
    GradCheckReport,
};
use crate::engine::tape::Tape;
use crate::nn::{Activation, Hnet, HnetConfig, Mlp};
use crate::optim::{sgd_delta, Adam};
use crate::rng::Rng;
use crate::Tensor;

/// A model, a batch, a regularizer over `num_prev` previous tasks and an Adam state with some
/// history: everything one step reads.
pub struct AuditSetup {
    /// The model (θ, embeddings of the previous tasks and the current one).
    pub model: HnetModel<f64>,
    /// The trainer's regularizer over the previous tasks (in the form audited).
    pub reg: OutputRegularizer<f64>,
    /// R by its definition: the direct form with the targets stored, which the objective
    /// evaluates.
    pub reference: OutputRegularizer<f64>,
    /// θ's optimizer, after a few steps (so Δθ is not the trivial first step).
    pub theta_opt: Adam<f64>,
    /// Batch inputs.
    pub x: Vec<f64>,
    /// Batch labels.
    pub labels: Vec<usize>,
    /// The current task.
    pub task: usize,
    /// β.
    pub beta: f64,
}

impl AuditSetup {
    /// A setup on `target` and `hnet`, with `num_prev` previous tasks, a batch of `batch` rows
    /// and random state drawn from `seed`; the trainer's regularizer in the direct form.
    pub fn new(
        target: Mlp,
        hnet_config: &HnetConfig,
        num_prev: usize,
        batch: usize,
        seed: u64,
    ) -> Self {
        Self::with_form(
            target,
            hnet_config,
            num_prev,
            batch,
            seed,
            RegularizerForm::Direct,
            false,
        )
    }

    /// [`AuditSetup::new`] with the trainer's regularizer in `form`, with online targets if
    /// `online`.
    pub fn with_form(
        target: Mlp,
        hnet_config: &HnetConfig,
        num_prev: usize,
        batch: usize,
        seed: u64,
        form: RegularizerForm,
        online: bool,
    ) -> Self {
        let hnet = Hnet::new(hnet_config, target.num_weights());
        let mut model = HnetModel::new(target, hnet, seed);
        for _ in 0..num_prev {
            model.add_task(seed);
        }
        // Move θ away from its initialisation so previous targets differ from h(θ).
        let mut rng = Rng::derived(seed, "audit", 0);
        let targets_theta = model.theta.clone();
        // A random β weights the two terms of the objective differently in every audit.
        let beta = rng.uniform_range(0.25, 2.0);
        let reg_model = HnetModel {
            theta: targets_theta,
            ..model.clone()
        };
        let reg = OutputRegularizer::with_form(&reg_model, num_prev, beta, online, form);
        let reference = OutputRegularizer::new(&reg_model, num_prev, beta, false);
        model
            .theta
            .iter_mut()
            .for_each(|v| *v += 0.05 * rng.normal());
        let task = model.add_task(seed);
        let mut theta_opt = Adam::new(model.theta.len(), 0.01);
        let mut scratch = model.theta.clone();
        for _ in 0..3 {
            let g: Vec<f64> = (0..model.theta.len()).map(|_| rng.normal()).collect();
            theta_opt.step(&mut scratch, &g);
        }
        let input_dim = model.target.input_dim();
        let x = (0..batch * input_dim).map(|_| rng.uniform()).collect();
        let labels = (0..batch)
            .map(|_| rng.below(model.target.head_dim()))
            .collect();
        Self {
            model,
            reg,
            reference,
            theta_opt,
            x,
            labels,
            task,
            beta,
        }
    }

    /// The tiny configuration of the audit: target 5-4-3 with a head per task, a chunked
    /// hypernetwork with ELU (its last chunk partial), two previous tasks; the trainer's
    /// regularizer in the direct form.
    pub fn tiny(seed: u64) -> Self {
        Self::tiny_with_form(seed, RegularizerForm::Direct, false)
    }

    /// [`AuditSetup::tiny`] with the trainer's regularizer in `form` (online targets if
    /// `online`).
    pub fn tiny_with_form(seed: u64, form: RegularizerForm, online: bool) -> Self {
        let target = Mlp::new(5, &[4], 3, 3);
        let hnet = HnetConfig {
            task_emb_dim: 3,
            hidden: vec![6, 5],
            activation: Activation::Elu,
            chunk_size: Some(17),
            chunk_emb_dim: 2,
        };
        Self::with_form(target, &hnet, 2, 4, seed, form, online)
    }

    fn input(&self) -> StepInput<'_, f64> {
        StepInput {
            x: &self.x,
            labels: &self.labels,
            task: self.task,
            head: self.task,
        }
    }

    /// The trainer's gradient of the step: (∂/∂θ, ∂/∂e(T)), and Δθ (the look-ahead of the
    /// task's gradient alone, as the step makes it).
    pub fn step_gradients(&self, lookahead: Lookahead) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let subset: Vec<usize> = (0..self.reg.num_prev()).collect();
        let mut workspace = StepWorkspace::new();
        let task_only = step_gradients(
            &self.model,
            self.input(),
            None,
            lookahead,
            &self.theta_opt,
            &mut workspace,
        );
        let mut delta = vec![0.0; self.model.theta.len()];
        match lookahead {
            Lookahead::Off => {}
            Lookahead::Adam => self.theta_opt.lookahead_delta(&task_only.theta, &mut delta),
            Lookahead::Sgd => sgd_delta(self.theta_opt.lr, &task_only.theta, &mut delta),
        }
        let g = step_gradients(
            &self.model,
            self.input(),
            Some((&self.reg, &subset)),
            lookahead,
            &self.theta_opt,
            &mut workspace,
        );
        (g.theta, g.task_emb, delta)
    }

    /// L_task(θ, e) + R(θ + Δθ) with Δθ fixed, evaluated without recording (R by its
    /// definition, [`AuditSetup::reference`]).
    pub fn objective(&self, theta: &[f64], emb: &[f64], delta: &[f64]) -> f64 {
        let mut model = HnetModel {
            theta: theta.to_vec(),
            ..self.model.clone()
        };
        model.task_embs[self.task] = emb.to_vec();
        let mut tape = Tape::no_grad();
        let th = tape.constant_ref(&[theta.len()], &model.theta);
        let e = tape.constant_ref(&[1, emb.len()], &model.task_embs[self.task]);
        let x = tape.constant_ref(&[self.labels.len(), model.target.input_dim()], &self.x);
        let lt = task_loss(&mut tape, &model, th, e, x, &self.labels, self.task);
        let shifted: Vec<f64> = theta.iter().zip(delta).map(|(t, d)| t + d).collect();
        let sh = tape.constant_ref(&[shifted.len()], &shifted);
        let subset: Vec<usize> = (0..self.reg.num_prev()).collect();
        let r = self.reference.loss(&mut tape, &model.hnet, sh, &subset);
        tape.item(lt) + tape.item(r)
    }

    fn inputs(&self) -> [Tensor<f64>; 2] {
        let th = Tensor::from_vec(&[self.model.theta.len()], self.model.theta.clone());
        let e = self.model.task_embs[self.task].clone();
        [th, Tensor::from_vec(&[e.len()], e)]
    }

    /// Element-by-element audit (input 0: θ incl. chunk embeddings, input 1: e(T)).
    pub fn audit(&self, lookahead: Lookahead, options: &GradCheckOptions) -> GradCheckReport {
        let (gt, ge, delta) = self.step_gradients(lookahead);
        compare_with_differences(
            &[gt, ge],
            &self.inputs(),
            |xs| self.objective(xs[0].data(), xs[1].data(), &delta),
            options,
        )
    }

    /// Projected audit along one random direction: two forwards and one backward whatever
    /// the size.
    pub fn directional_audit(
        &self,
        lookahead: Lookahead,
        seed: u64,
        options: &GradCheckOptions,
    ) -> DirectionalReport {
        let (gt, ge, delta) = self.step_gradients(lookahead);
        directional_compare(
            &[gt, ge],
            &self.inputs(),
            |xs| self.objective(xs[0].data(), xs[1].data(), &delta),
            seed,
            options,
        )
    }
}
