//! The output regularizer (von Oswald et al. 2020, Eq. 2): while learning task T,
//! (β / |S|) Σ_{t∈S} ‖h(e(t), θ*) − h(e(t), θ + Δθ)‖² over previous tasks S, with θ* the
//! parameters before task T began. All tasks of S go through the hypernetwork as one batch.

use super::HnetModel;
use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::{Float, Tensor};
use crate::nn::Hnet;

/// Where the targets h(e(t), θ*) come from.
#[derive(Clone, Debug, PartialEq)]
pub enum RegTargets<F> {
    /// Computed once before the task: [previous tasks × num_weights], flat (memory grows with
    /// the number of tasks).
    Precomputed(Vec<F>),
    /// Recomputed at every step from a frozen copy of θ*, fused with the distance (memory
    /// does not grow with the tasks; each step runs the output layer a second time).
    Online {
        /// θ*.
        theta_star: Vec<F>,
    },
}

/// The regularizer for one task: the frozen previous embeddings, the targets and β.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputRegularizer<F> {
    beta: f64,
    prev_embs: Vec<Vec<F>>,
    num_weights: usize,
    targets: RegTargets<F>,
}

impl<F: Float> OutputRegularizer<F> {
    /// Captures θ* and the embeddings of tasks 0..`num_prev` of `model` before training the
    /// next task; with `online`, keeps θ* instead of the targets.
    pub fn new(model: &HnetModel<F>, num_prev: usize, beta: f64, online: bool) -> Self {
        let prev_embs = model.task_embs[..num_prev].to_vec();
        let targets = if online {
            RegTargets::Online {
                theta_star: model.theta.clone(),
            }
        } else {
            let all: Vec<usize> = (0..num_prev).collect();
            RegTargets::Precomputed(generate(&model.hnet, &model.theta, &prev_embs, &all))
        };
        Self {
            beta,
            prev_embs,
            num_weights: model.hnet.num_weights(),
            targets,
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

    /// The stored target h(e(t), θ*) of previous task `t` (`None` with online targets).
    pub fn precomputed_target(&self, t: usize) -> Option<&[F]> {
        match &self.targets {
            RegTargets::Precomputed(flat) => {
                Some(&flat[t * self.num_weights..(t + 1) * self.num_weights])
            }
            RegTargets::Online { .. } => None,
        }
    }

    /// (β / |S|) Σ_{t∈S} ‖target(t) − h(e(t), θ)‖² on `tape`, θ being the flat var `theta`
    /// (θ + Δθ for the look-ahead), S = `subset` of the previous tasks, in one batched pass
    /// whose output layer is fused with the distance.
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
        let all_in_order =
            subset.iter().enumerate().all(|(i, &t)| i == t) && subset.len() == self.num_prev();
        let distance = match &self.targets {
            // The common case borrows the stored targets; a subset gathers its rows.
            RegTargets::Precomputed(flat) => {
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
            RegTargets::Online { theta_star } => {
                let theta_star = tape.constant_ref(&[theta_star.len()], theta_star);
                hnet.squared_distance_to_output_of(tape, theta, e, theta_star)
            }
        };
        tape.scale(distance, F::from_f64(self.beta / subset.len() as f64))
    }
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
