//! The hypernetwork method as a [`Learner`]: HNET in CL1, HNET+ENT (task inferred by
//! predictive entropy) in CL2 and CL3.

use super::entropy::{entropy_inference, logit_gap_temperature, EntropyCalibration};
use super::trainer::{accuracy, train_task};
use super::HnetModel;
use crate::cl::{
    EvalRow, Learner, LearnerReport, LearnerState, Progress, Scenario, StateResult, TaskIdentity,
    TrainConfig,
};
use crate::data::{ClassificationTask, TaskView};
use crate::nn::{Hnet, HnetConfig, HnetInit, Mlp};
use crate::Result;

/// A task-conditioned hypernetwork that generates the target network's weights from a task
/// embedding, protected by the output regularizer; in CL2 and CL3 the task is inferred by
/// HNET+ENT.
///
/// State ([`Learner::save`]): `theta` (θ, flat in the order of the hypernetwork's layout,
/// chunk embeddings last), `task_embedding.<k>` per learned task, and the scalars
/// `temperatures` (each task's logit-gap temperature; in CL1, none).
#[derive(Clone, Debug)]
pub struct HnetLearner {
    /// Target network, hypernetwork, θ and the task embeddings.
    pub model: HnetModel<f32>,
    /// The scenario it is trained in (which head a task trains, whether temperatures are
    /// measured).
    pub scenario: Scenario,
    /// The training loop's settings.
    pub train: TrainConfig,
    /// Every learned task's logit-gap temperature, measured when its training ended (CL2,
    /// CL3).
    pub temperatures: Vec<f64>,
    /// HNET+ENT's rule.
    pub calibration: EntropyCalibration,
}

impl HnetLearner {
    /// A learner with θ initialised by `init` from `train.seed` and no task yet.
    pub fn new(
        target: Mlp,
        hnet: &HnetConfig,
        init: HnetInit,
        scenario: Scenario,
        train: &TrainConfig,
        calibration: EntropyCalibration,
    ) -> Self {
        let hnet = Hnet::new(hnet, target.num_weights());
        Self {
            model: HnetModel::with_init(target, hnet, train.seed, init),
            scenario,
            train: train.clone(),
            temperatures: Vec::new(),
            calibration,
        }
    }

    /// Stores θ and the embeddings (`{prefix}theta`, `{prefix}task_embedding.{k}`) and the
    /// temperatures (scalars `{prefix}temperatures`).
    pub fn save_into(&self, prefix: &str, state: &mut LearnerState) {
        self.model.save_state(prefix, state);
        state.put_scalars(format!("{prefix}temperatures"), &self.temperatures);
    }

    /// Takes what [`HnetLearner::save_into`] stored after `completed` tasks.
    pub fn restore_from(
        &mut self,
        prefix: &str,
        completed: usize,
        state: &mut LearnerState,
    ) -> StateResult<()> {
        self.model.restore_state(prefix, completed, state)?;
        let n = if self.scenario.infers_task() {
            completed
        } else {
            0
        };
        self.temperatures = state.take_scalars(&format!("{prefix}temperatures"), n)?;
        Ok(())
    }

    /// The temperatures HNET+ENT divides the logits by (none: 1 for every task).
    fn entropy_temperatures(&self) -> &[f64] {
        match self.calibration {
            EntropyCalibration::None => &[],
            EntropyCalibration::LogitGap => &self.temperatures,
        }
    }

    /// The scenario an evaluation without task identity reads: the shared head in CL2, each
    /// task's own head otherwise (the CL3 rule).
    pub fn inference_scenario(&self) -> Scenario {
        match self.scenario {
            Scenario::Cl2 => Scenario::Cl2,
            Scenario::Cl1 | Scenario::Cl3 => Scenario::Cl3,
        }
    }
}

impl Learner for HnetLearner {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let head = self.scenario.head(t);
        train_task(
            &mut self.model,
            t,
            head,
            &task.train,
            &self.train,
            on_progress,
        )?;
        if self.scenario.infers_task() {
            self.temperatures.truncate(t);
            self.temperatures
                .push(logit_gap_temperature(&self.model, t, head, &task.train));
        }
        Ok(())
    }

    fn evaluate(&self, tests: &[&TaskView], identity: TaskIdentity) -> EvalRow {
        match identity {
            TaskIdentity::Inferred => {
                let inferred = entropy_inference(
                    &self.model,
                    tests.len(),
                    self.inference_scenario(),
                    tests,
                    self.entropy_temperatures(),
                );
                EvalRow {
                    accuracy: inferred.iter().map(|e| e.accuracy).collect(),
                    inferred: Some(inferred),
                }
            }
            TaskIdentity::Given => EvalRow {
                accuracy: tests
                    .iter()
                    .enumerate()
                    .map(|(j, d)| accuracy(&self.model, j, self.scenario.head(j), d))
                    .collect(),
                inferred: None,
            },
        }
    }

    fn save(&self) -> LearnerState {
        let mut state = LearnerState::default();
        self.save_into("", &mut state);
        state
    }

    fn restore(&mut self, completed: usize, mut state: LearnerState) -> StateResult<()> {
        self.restore_from("", completed, &mut state)?;
        state.check_all_taken()
    }

    fn report(&self) -> LearnerReport {
        LearnerReport {
            target_weights: self.model.target.num_weights(),
            hnet_params: self.model.hnet.num_params(),
            task_temperatures: (!self.temperatures.is_empty()).then(|| self.temperatures.clone()),
            vae_losses: None,
        }
    }

    fn task_weights(&self, task: usize) -> (&Mlp, Vec<f32>) {
        (&self.model.target, self.model.generated_weights(task))
    }
}
