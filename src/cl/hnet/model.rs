//! The state of a hypernetwork continual learner: everything a checkpoint must hold.

use crate::cl::{LearnerState, StateResult};
use crate::engine::tensor::Float;
use crate::nn::{Hnet, HnetInit, Mlp};
use crate::rng::Rng;

/// Target network, hypernetwork, θ (hnet weights and chunk embeddings) and one embedding per
/// task learned so far (the last one may be the task in training).
#[derive(Clone, Debug, PartialEq)]
pub struct HnetModel<F> {
    /// The network that solves the tasks; its weights come from `hnet`.
    pub target: Mlp,
    /// The hypernetwork.
    pub hnet: Hnet,
    /// θ, flat (see `hnet.layout()`).
    pub theta: Vec<F>,
    /// e(t) for every task started so far.
    pub task_embs: Vec<Vec<F>>,
}

impl<F: Float> HnetModel<F> {
    /// A model with θ initialised (Xavier) from `seed` and no tasks yet.
    pub fn new(target: Mlp, hnet: Hnet, seed: u64) -> Self {
        Self::with_init(target, hnet, seed, HnetInit::Xavier)
    }

    /// A model with θ initialised by `init` from `seed` and no tasks yet.
    pub fn with_init(target: Mlp, hnet: Hnet, seed: u64, init: HnetInit) -> Self {
        let mut rng = Rng::derived(seed, "hnet-init", 0);
        let theta = match init {
            HnetInit::Xavier => hnet.init_params(&mut rng),
            HnetInit::Hyperfan => hnet.init_params_hyperfan(&target, &mut rng),
        };
        Self {
            target,
            hnet,
            theta,
            task_embs: Vec::new(),
        }
    }

    /// Adds the embedding of task `task_embs.len()`, drawn from N(0, 1) with a stream derived
    /// from `seed` and the task index (so a resumed run draws the same).
    pub fn add_task(&mut self, seed: u64) -> usize {
        let t = self.task_embs.len();
        let e = self
            .hnet
            .init_task_embedding(&mut Rng::derived(seed, "task-embedding", t as u64));
        self.task_embs.push(e);
        t
    }

    /// The target weights the hypernetwork generates for task `task` (flat, in the order of
    /// `target.layout()`), without recording a tape.
    pub fn generated_weights(&self, task: usize) -> Vec<F> {
        super::regularizer::generate(&self.hnet, &self.theta, &self.task_embs, &[task])
    }

    /// The embeddings of tasks `tasks` as one flat [n × task_emb_dim] buffer.
    pub fn stacked_embeddings(&self, tasks: &[usize]) -> Vec<F> {
        tasks
            .iter()
            .flat_map(|&t| self.task_embs[t].iter().copied())
            .collect()
    }
}

impl HnetModel<f32> {
    /// Stores θ as `{prefix}theta` and embedding k as `{prefix}task_embedding.{k}`.
    pub fn save_state(&self, prefix: &str, state: &mut LearnerState) {
        state.put(format!("{prefix}theta"), &self.theta);
        for (k, e) in self.task_embs.iter().enumerate() {
            state.put(format!("{prefix}task_embedding.{k}"), e);
        }
    }

    /// Takes what [`HnetModel::save_state`] stored for a model with `tasks` embeddings.
    pub fn restore_state(
        &mut self,
        prefix: &str,
        tasks: usize,
        state: &mut LearnerState,
    ) -> StateResult<()> {
        self.theta = state.take(&format!("{prefix}theta"), self.hnet.num_params())?;
        let d = self.hnet.config().task_emb_dim;
        self.task_embs = (0..tasks)
            .map(|k| state.take(&format!("{prefix}task_embedding.{k}"), d))
            .collect::<StateResult<_>>()?;
        Ok(())
    }
}
