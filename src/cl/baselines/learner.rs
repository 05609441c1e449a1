//! The baselines as a [`Learner`].

use super::{BaselineConfig, DirectLearner};
use crate::cl::eval::{direct_readout, evaluate_direct};
use crate::cl::{
    EvalRow, Learner, LearnerReport, LearnerState, Method, Progress, Scenario, StateResult,
    TaskIdentity, TrainConfig,
};
use crate::data::{ClassificationTask, TaskView};
use crate::nn::Mlp;
use crate::Result;

/// Fine-tuning, EWC, online EWC or SI: the target network trained directly, task after task.
///
/// State ([`Learner::save`]): `weights` and the penalty's: EWC `ewc.<k>.fisher` and
/// `ewc.<k>.anchor` per task, online EWC `online_ewc.fisher` and `online_ewc.anchor`, SI
/// `si.omega` and `si.anchor`.
#[derive(Clone, Debug)]
pub struct BaselineLearner {
    /// The network, its weights and its penalty.
    pub learner: DirectLearner,
    /// The scenario it is trained in (which outputs a task trains).
    pub scenario: Scenario,
    /// The training loop's settings.
    pub train: TrainConfig,
}

impl BaselineLearner {
    /// `method`'s learner on `target`, weights initialised from `train.seed`.
    pub fn new(
        target: Mlp,
        method: Method,
        config: &BaselineConfig,
        scenario: Scenario,
        train: &TrainConfig,
    ) -> Self {
        Self {
            learner: DirectLearner::new(target, method, config, train.seed),
            scenario,
            train: train.clone(),
        }
    }
}

impl Learner for BaselineLearner {
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let readout = direct_readout(self.scenario, t, self.learner.target.head_dim());
        self.learner
            .learn_classification(t, &task.train, &readout, &self.train, on_progress)
    }

    fn evaluate(&self, tests: &[&TaskView], identity: TaskIdentity) -> EvalRow {
        evaluate_direct(
            &self.learner.target,
            &self.learner.weights,
            self.scenario,
            identity,
            tests,
        )
    }

    fn save(&self) -> LearnerState {
        let mut state = LearnerState::default();
        self.learner.save_state("", &mut state);
        state
    }

    fn restore(&mut self, completed: usize, mut state: LearnerState) -> StateResult<()> {
        self.learner.restore_state("", completed, &mut state)?;
        state.check_all_taken()
    }

    fn report(&self) -> LearnerReport {
        LearnerReport {
            target_weights: self.learner.target.num_weights(),
            ..LearnerReport::default()
        }
    }

    fn task_weights(&self, _task: usize) -> (&Mlp, Vec<f32>) {
        (&self.learner.target, self.learner.weights.clone())
    }
}
