//! HNET+TIR as a [`Learner`].

use super::{ReplayClassifier, ReplayConfig, ReplayModel, ReplayReadouts, ReplayTargets};
use crate::cl::eval::{argmax, for_each_logits};
use crate::cl::hnet::{infer_tasks, EntropyCalibration, HnetLearner};
use crate::cl::{
    EvalRow, Learner, LearnerReport, LearnerState, Progress, Readout, Scenario, StateResult,
    TaskIdentity, TrainConfig,
};
use crate::data::{ClassificationTask, TaskView};
use crate::nn::{HnetConfig, HnetInit, Mlp};
use crate::rng::Rng;
use crate::Result;

/// HNET+TIR: the hypernetwork classifier trained as in CL1 (each task its embedding; its head
/// in CL3, the shared head in CL2), a task-inference network trained on the current task
/// (label t) and replayed data (label k for task k's samples), and the VAE. Without task
/// identity, the task-inference network's argmax over the learned tasks picks the embedding
/// (and in CL3 the head). In CL1 the task is given: no task inference, no replay.
///
/// State ([`Learner::save`]): the hypernetwork classifier's `classifier.…`
/// ([`HnetLearner::save_into`]), the task-inference network's `task_net.weights`, the VAE's
/// `vae.…` and the scalars `vae.losses`.
#[derive(Clone, Debug)]
pub struct HnetTir {
    classifier: HnetLearner,
    task_net: ReplayClassifier,
    task_net_train: TrainConfig,
    replay: ReplayModel,
}

impl HnetTir {
    /// The hypernetwork classifier of `target`, a task-inference network with the target's
    /// hidden widths and one output per task, and a VAE of `replay`, all initialised from
    /// `train.seed`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: Mlp,
        hnet: &HnetConfig,
        init: HnetInit,
        replay: &ReplayConfig,
        num_tasks: usize,
        scenario: Scenario,
        train: &TrainConfig,
    ) -> Self {
        let seed = train.seed;
        let input_dim = target.input_dim();
        let task_seed = Rng::derived(seed, "task-inference-seed", 0).next_u64();
        let mut task_net_train = train.clone();
        task_net_train.seed = task_seed;
        let task_net = Mlp::new(input_dim, target.hidden(), 1, num_tasks);
        Self {
            classifier: HnetLearner::new(
                target,
                hnet,
                init,
                scenario,
                train,
                EntropyCalibration::None,
            ),
            task_net: ReplayClassifier::new(
                task_net,
                ReplayTargets::TaskLabel,
                replay.replay_weight,
                task_seed,
            ),
            task_net_train,
            replay: ReplayModel::new(replay, input_dim, num_tasks, seed),
        }
    }

    /// Whether the task is inferred (CL2, CL3): only then are the VAE and the task-inference
    /// network trained.
    fn infers_task(&self) -> bool {
        self.classifier.scenario.infers_task()
    }
}

impl Learner for HnetTir {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        self.classifier.learn(t, task, on_progress)?;
        if !self.infers_task() {
            return Ok(());
        }
        // With one task learned there is nothing to tell apart.
        if t > 0 {
            let all = Readout {
                heads: 0..t + 1,
                label_offset: 0,
            };
            let replayed = |_: usize| (all.clone(), all.clone());
            let readouts = ReplayReadouts {
                current: all.clone(),
                label: &|_| t,
                replayed: &replayed,
            };
            self.task_net.learn_task(
                t,
                &task.train,
                &self.replay.vae,
                &readouts,
                &self.task_net_train,
                on_progress,
            )?;
        }
        self.replay
            .learn(t, &task.train, &self.classifier.train, on_progress)
    }

    fn evaluate(&self, tests: &[&TaskView], identity: TaskIdentity) -> EvalRow {
        // Without a trained task-inference network (CL1), the classifier's HNET+ENT.
        if identity == TaskIdentity::Given || !self.infers_task() {
            return self.classifier.evaluate(tests, identity);
        }
        let learned = tests.len();
        let net = &self.task_net.learner;
        let picks: Vec<Vec<usize>> = tests
            .iter()
            .map(|d| {
                let mut v = Vec::with_capacity(d.len());
                for_each_logits(&net.target, &net.weights, 0..learned, d, &mut |_, row| {
                    v.push(argmax(row))
                });
                v
            })
            .collect();
        let inferred = infer_tasks(
            &self.classifier.model,
            learned,
            self.classifier.scenario,
            tests,
            &mut |k, j, i, _| if picks[j][i] == k { 0.0 } else { 1.0 },
        );
        EvalRow {
            accuracy: inferred.iter().map(|e| e.accuracy).collect(),
            inferred: Some(inferred),
        }
    }

    fn save(&self) -> LearnerState {
        let mut state = LearnerState::default();
        self.classifier.save_into("classifier.", &mut state);
        self.task_net.learner.save_state("task_net.", &mut state);
        self.replay.save(&mut state);
        state
    }

    fn restore(&mut self, completed: usize, mut state: LearnerState) -> StateResult<()> {
        // Without task inference (CL1) the VAE learns nothing.
        let vae_tasks = if self.infers_task() {
            self.replay.tasks_after(completed)
        } else {
            0
        };
        self.classifier
            .restore_from("classifier.", completed, &mut state)?;
        self.task_net
            .learner
            .restore_state("task_net.", completed, &mut state)?;
        self.replay.restore(vae_tasks, &mut state)?;
        state.check_all_taken()
    }

    fn max_tasks(&self) -> Option<usize> {
        Some(self.replay.num_tasks())
    }

    fn report(&self) -> LearnerReport {
        LearnerReport {
            target_weights: self.classifier.model.target.num_weights(),
            hnet_params: self.classifier.model.hnet.num_params(),
            task_temperatures: None,
            vae_losses: self.infers_task().then(|| self.replay.losses().to_vec()),
        }
    }

    fn task_weights(&self, task: usize) -> (&Mlp, Vec<f32>) {
        self.classifier.task_weights(task)
    }

    fn replay_samples(&self, samples: usize, seed: u64) -> Vec<Vec<f32>> {
        if self.infers_task() {
            super::vae::replay_samples(&self.replay.vae, samples, seed)
        } else {
            Vec::new()
        }
    }
}
