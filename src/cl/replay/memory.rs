//! The replay model of HNET+R and HNET+TIR with what it carries between tasks.

use super::{ReplayConfig, Vae};
use crate::cl::{LearnerState, Progress, StateResult, TrainConfig};
use crate::data::TaskView;
use crate::Result;

/// The VAE that replays earlier tasks, which learns every task but the last of the run
/// (nothing replays the last), and its mean reconstruction loss and KL term per task.
///
/// State: the VAE's `vae.…` ([`Vae::save_state`]) and the scalars `vae.losses`
/// (reconstruction and KL of each task it learned, one pair after another).
#[derive(Clone, Debug)]
pub struct ReplayModel {
    /// The VAE.
    pub vae: Vae,
    num_tasks: usize,
    losses: Vec<(f64, f64)>,
}

impl ReplayModel {
    /// A VAE of `config` on inputs of `input_dim`, conditioned on `num_tasks` tasks, from
    /// `seed`.
    pub fn new(config: &ReplayConfig, input_dim: usize, num_tasks: usize, seed: u64) -> Self {
        Self {
            vae: Vae::new(config, input_dim, num_tasks, seed),
            num_tasks,
            losses: Vec::new(),
        }
    }

    /// The tasks the run's replay model can be conditioned on.
    pub fn num_tasks(&self) -> usize {
        self.num_tasks
    }

    /// Learns task `t` on `data` unless it is the run's last task.
    pub fn learn(
        &mut self,
        t: usize,
        data: &TaskView,
        train: &TrainConfig,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        if t + 1 < self.num_tasks {
            let losses = self.vae.learn_task(t, data, train, on_progress)?;
            self.losses.push(losses);
        }
        Ok(())
    }

    /// Tasks the VAE has learned after `completed` tasks of the run.
    pub fn tasks_after(&self, completed: usize) -> usize {
        completed.min(self.num_tasks.saturating_sub(1))
    }

    /// Mean reconstruction loss and KL of every task learned.
    pub fn losses(&self) -> &[(f64, f64)] {
        &self.losses
    }

    /// Stores the VAE and its losses.
    pub fn save(&self, state: &mut LearnerState) {
        self.vae.save_state("vae.", state);
        let flat: Vec<f64> = self.losses.iter().flat_map(|&(r, k)| [r, k]).collect();
        state.put_scalars("vae.losses", &flat);
    }

    /// Takes what [`ReplayModel::save`] stored after the VAE learned `vae_tasks` tasks.
    pub fn restore(&mut self, vae_tasks: usize, state: &mut LearnerState) -> StateResult<()> {
        self.vae.restore_state("vae.", vae_tasks, state)?;
        let v = state.take_scalars("vae.losses", 2 * vae_tasks)?;
        self.losses = v.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        Ok(())
    }
}
