//! HNET+R as a [`Learner`].

use super::{ReplayClassifier, ReplayConfig, ReplayModel, ReplayReadouts, ReplayTargets};
use crate::cl::eval::{direct_readout, evaluate_direct};
use crate::cl::{
    EvalRow, Learner, LearnerReport, LearnerState, Progress, Readout, Scenario, StateResult,
    TaskIdentity, TrainConfig,
};
use crate::data::{ClassificationTask, TaskView};
use crate::nn::Mlp;
use crate::Result;

/// HNET+R: a classifier trained directly on current and replayed data (soft targets from its
/// copy before the task), and the VAE whose decoder a hypernetwork generates, learned on
/// every task but the last (nothing replays it).
///
/// State ([`Learner::save`]): the classifier's `classifier.weights`, the VAE's `vae.…`
/// ([`Vae::save_state`](super::vae::Vae::save_state)) and the scalars `vae.losses` (reconstruction and KL per VAE task).
#[derive(Clone, Debug)]
pub struct HnetR {
    classifier: ReplayClassifier,
    replay: ReplayModel,
    scenario: Scenario,
    train: TrainConfig,
}

impl HnetR {
    /// The classifier `target` (weights from `train.seed`) and a VAE of `replay` on inputs of
    /// `input_dim` conditioned on `num_tasks` tasks.
    pub fn new(
        target: Mlp,
        replay: &ReplayConfig,
        input_dim: usize,
        num_tasks: usize,
        scenario: Scenario,
        train: &TrainConfig,
    ) -> Self {
        let seed = train.seed;
        Self {
            classifier: ReplayClassifier::new(
                target,
                ReplayTargets::Distill {
                    temperature: replay.temperature,
                    unseen: replay.unseen_classes,
                },
                replay.replay_weight,
                seed,
            ),
            replay: ReplayModel::new(replay, input_dim, num_tasks, seed),
            scenario,
            train: train.clone(),
        }
    }
}

impl Learner for HnetR {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let scenario = self.scenario;
        let current = direct_readout(scenario, t, self.classifier.learner.target.head_dim());
        // A replayed sample of task k is read where task k was (CL1: head k; CL2: the shared
        // head; CL3: all heads so far, the teacher's being those of tasks 0..t).
        let replayed = move |k: usize| match scenario {
            Scenario::Cl1 | Scenario::Cl2 => (
                Readout::head(scenario.head(k)),
                Readout::head(scenario.head(k)),
            ),
            Scenario::Cl3 => (
                Readout {
                    heads: 0..t + 1,
                    label_offset: 0,
                },
                Readout {
                    heads: 0..t,
                    label_offset: 0,
                },
            ),
        };
        let readouts = ReplayReadouts {
            current,
            label: &|l| l,
            replayed: &replayed,
        };
        self.classifier.learn_task(
            t,
            &task.train,
            &self.replay.vae,
            &readouts,
            &self.train,
            on_progress,
        )?;
        self.replay.learn(t, &task.train, &self.train, on_progress)
    }

    fn evaluate(&self, tests: &[&TaskView], identity: TaskIdentity) -> EvalRow {
        let c = &self.classifier.learner;
        evaluate_direct(&c.target, &c.weights, self.scenario, identity, tests)
    }

    fn save(&self) -> LearnerState {
        let mut state = LearnerState::default();
        self.classifier
            .learner
            .save_state("classifier.", &mut state);
        self.replay.save(&mut state);
        state
    }

    fn restore(&mut self, completed: usize, mut state: LearnerState) -> StateResult<()> {
        self.classifier
            .learner
            .restore_state("classifier.", completed, &mut state)?;
        self.replay
            .restore(self.replay.tasks_after(completed), &mut state)?;
        state.check_all_taken()
    }

    fn max_tasks(&self) -> Option<usize> {
        Some(self.replay.num_tasks())
    }

    fn report(&self) -> LearnerReport {
        LearnerReport {
            target_weights: self.classifier.learner.target.num_weights(),
            vae_losses: Some(self.replay.losses().to_vec()),
            ..LearnerReport::default()
        }
    }

    fn task_weights(&self, _task: usize) -> (&Mlp, Vec<f32>) {
        let c = &self.classifier.learner;
        (&c.target, c.weights.clone())
    }

    fn replay_samples(&self, samples: usize, seed: u64) -> Vec<Vec<f32>> {
        super::vae::replay_samples(&self.replay.vae, samples, seed)
    }
}
