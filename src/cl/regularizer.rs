//! The output regularizer (von Oswald et al. 2020, Eq. 2): while learning task T,
//! (β / |S|) Σ_{t∈S} ‖h(e(t), θ*) − h(e(t), θ + Δθ)‖² over previous tasks S, with θ* the
//! parameters before task T began. All tasks of S go through the hypernetwork as one batch.

use super::HnetModel;
use crate::nn::Hnet;
use crate::tape::{Tape, Var};
use crate::tensor::Float;

/// Where the targets h(e(t), θ*) come from.
#[derive(Clone, Debug, PartialEq)]
pub enum RegTargets<F> {
    /// Computed once before the task, one `num_weights` vector per previous task (memory
    /// grows with the number of tasks).
    Precomputed(Vec<Vec<F>>),
    /// Recomputed when needed from a frozen copy of θ* (constant memory, more compute).
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
            let flat = generate(&model.hnet, &model.theta, &prev_embs, &all);
            let n = model.hnet.num_weights();
            RegTargets::Precomputed(flat.chunks_exact(n).map(<[F]>::to_vec).collect())
        };
        Self {
            beta,
            prev_embs,
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

    /// (β / |S|) Σ_{t∈S} ‖target(t) − h(e(t), θ)‖² on `tape`, θ being the flat var `theta`
    /// (θ + Δθ for the look-ahead), S = `subset` of the previous tasks, in one batched pass.
    pub fn loss<'a>(
        &'a self,
        tape: &mut Tape<'a, F>,
        hnet: &Hnet,
        theta: Var,
        subset: &[usize],
    ) -> Var {
        assert!(!subset.is_empty(), "regularizer over no task");
        let d = hnet.config().task_emb_dim;
        let embs: Vec<F> = subset
            .iter()
            .flat_map(|&t| self.prev_embs[t].iter().copied())
            .collect();
        let online_targets = match &self.targets {
            RegTargets::Online { theta_star } => {
                Some(generate(hnet, theta_star, &self.prev_embs, subset))
            }
            RegTargets::Precomputed(_) => None,
        };
        let e = tape.constant(crate::Tensor::from_vec(&[subset.len(), d], embs));
        let out = hnet.forward(tape, theta, e);
        let n = hnet.num_weights();
        let mut total: Option<Var> = None;
        for (j, &t) in subset.iter().enumerate() {
            let w = hnet.task_weights(tape, out, j);
            let target = match (&self.targets, &online_targets) {
                (RegTargets::Precomputed(ts), _) => tape.constant_ref(&[n], &ts[t]),
                (_, Some(flat)) => tape.constant(crate::Tensor::from_vec(
                    &[n],
                    flat[j * n..(j + 1) * n].to_vec(),
                )),
                (RegTargets::Online { .. }, None) => {
                    unreachable!("online targets are generated above")
                }
            };
            let sq = tape.squared_distance(w, target);
            total = Some(match total {
                Some(acc) => tape.add(acc, sq),
                None => sq,
            });
        }
        let scale = F::from_f64(self.beta / subset.len() as f64);
        tape.scale(total.expect("subset is not empty"), scale)
    }
}

/// h(e(t), θ) for t in `tasks`, as one flat [|tasks| × num_weights] buffer, without recording.
pub(crate) fn generate<F: Float>(
    hnet: &Hnet,
    theta: &[F],
    embs: &[Vec<F>],
    tasks: &[usize],
) -> Vec<F> {
    let mut tape = Tape::no_grad();
    let th = tape.constant_ref(&[theta.len()], theta);
    let flat: Vec<F> = tasks
        .iter()
        .flat_map(|&t| embs[t].iter().copied())
        .collect();
    let e = tape.constant(crate::Tensor::from_vec(
        &[tasks.len(), hnet.config().task_emb_dim],
        flat,
    ));
    let out = hnet.forward(&mut tape, th, e);
    let n = hnet.num_weights();
    let mut weights = Vec::with_capacity(tasks.len() * n);
    for j in 0..tasks.len() {
        let w = hnet.task_weights(&mut tape, out, j);
        weights.extend_from_slice(tape.value(w));
    }
    weights
}
