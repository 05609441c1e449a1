//! Continual learning: the methods, the scenarios and what every method shares.
//!
//! A method is a [`Learner`]: it learns task after task, evaluates the tasks it has learned
//! (with the task identity given, or inferring it), and saves and restores its state between
//! tasks as named values ([`LearnerState`]). The run loop, checkpoints and results in
//! [`crate::run`] drive any learner through this trait and know no method's internals.
//!
//! - [`hnet`]: the task-conditioned hypernetwork (von Oswald et al., ICLR 2020): the model,
//!   the output regularizer with its look-ahead, one training step, the task loop, task
//!   inference by predictive entropy (HNET+ENT) and the end-to-end gradient audit.
//! - [`baselines`]: fine-tuning, EWC, online EWC and SI on the target network trained
//!   directly.
//! - [`replay`]: generative replay with a hypernetwork-protected VAE (HNET+R, HNET+TIR).
//! - [`train`]: the batch loop every learner shares; [`eval`]: logits over a data set and
//!   the evaluation of a directly trained network; [`scenario`]: CL1, CL2, CL3.
//!
//! Adding a method: a folder here with a type that implements [`Learner`], a variant of
//! [`Method`], and one arm in [`crate::run::new_learner`].

pub mod baselines;
pub mod eval;
pub mod hnet;
pub mod replay;
pub mod scenario;
pub mod state;
pub mod train;

pub use scenario::{InferredEval, Readout, Scenario};
pub use state::{LearnerState, StateResult};
pub use train::{Progress, TrainConfig};

use crate::data::{ClassificationTask, TaskView};
use crate::nn::Mlp;
use crate::Result;
use serde::{Deserialize, Serialize};

/// Whether an evaluation is given each test set's task identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskIdentity {
    /// Task j's test set is read with task j's own weights and head (CL2: the shared head).
    Given,
    /// The task is inferred: in CL2 the shared head is read with the inferred task's weights;
    /// otherwise the prediction is a class among all learned tasks' classes (the CL3 rule).
    Inferred,
}

/// One evaluation of the learned tasks: accuracy (%) of each, and, where the task was
/// inferred and the method names one, how each test set's inputs were assigned to tasks.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalRow {
    /// Percent of task j's test set classified correctly, j = 0..learned.
    pub accuracy: Vec<f64>,
    /// Per task, the task inference (`None` when the task was given, or in CL2 for a method
    /// whose shared head names no task).
    pub inferred: Option<Vec<InferredEval>>,
}

/// What a learner adds to a run's results besides the accuracies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LearnerReport {
    /// Weights of the target network (all heads).
    pub target_weights: usize,
    /// Trainable hypernetwork parameters θ that generate it (0 when it is trained directly).
    pub hnet_params: usize,
    /// HNET+ENT's logit-gap temperature of every learned task, where measured.
    pub task_temperatures: Option<Vec<f64>>,
    /// Per task the replay model learned: mean reconstruction loss and KL term of its last
    /// 100 steps.
    pub vae_losses: Option<Vec<(f64, f64)>>,
}

/// A continual learner: one method's networks and everything it carries from one task to the
/// next.
///
/// Tasks are learned in order 0, 1, …; every random stream of task t is derived from the run's
/// seed and t, and every optimizer starts afresh with each task, so a learner restored from
/// the state it saved after task t continues exactly as one that never stopped.
pub trait Learner: Send {
    /// Learns task `t`, the next one (`t` = tasks learned so far), on `task.train`, reporting
    /// after every step. Errors: an empty training set, a loss or weight that becomes NaN or
    /// infinite (naming the step).
    fn learn(
        &mut self,
        t: usize,
        task: &ClassificationTask,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()>;

    /// Evaluates the first `tests.len()` tasks (all learned) on the data sets `tests`, in
    /// order, with the task identity given or inferred.
    fn evaluate(&self, tests: &[&TaskView], identity: TaskIdentity) -> EvalRow;

    /// The state after the last learned task, as named values.
    fn save(&self) -> LearnerState;

    /// Takes the state [`Learner::save`] gave after `completed` tasks. The error names the
    /// value that is missing, left over or of another size than this learner's.
    fn restore(&mut self, completed: usize, state: LearnerState) -> StateResult<()>;

    /// The most tasks this learner can hold, if its networks fix it (a replay model conditioned
    /// on the configured number of tasks); heads are checked by the run.
    fn max_tasks(&self) -> Option<usize> {
        None
    }

    /// Network sizes, temperatures and replay losses for the results.
    fn report(&self) -> LearnerReport;

    /// The target network and the weights it uses for learned task `task` (generated by the
    /// hypernetwork, or the trained weights themselves).
    fn task_weights(&self, task: usize) -> (&Mlp, Vec<f32>);

    /// `samples` inputs the replay model generates for each task it learned, one task's after
    /// another (empty for a learner without one), from a stream derived from `seed`.
    fn replay_samples(&self, _samples: usize, _seed: u64) -> Vec<Vec<f32>> {
        Vec::new()
    }
}

/// A continual-learning method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Task-conditioned hypernetwork with the output regularizer (HNET, HNET+ENT).
    #[default]
    Hnet,
    /// The target network trained on each task in turn, nothing protected.
    Finetune,
    /// Elastic weight consolidation, one Fisher and anchor per task.
    Ewc,
    /// Online EWC: one running Fisher and anchor.
    OnlineEwc,
    /// Synaptic intelligence.
    Si,
    /// HNET+R: a classifier trained on current and replayed data, the replay model's decoder
    /// generated by a hypernetwork ([`replay`]).
    HnetR,
    /// HNET+TIR: a task-inference network trained on replayed data picks the task embedding
    /// of the hypernetwork classifier ([`replay`]).
    HnetTir,
}

impl Method {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::Hnet => "hnet",
            Method::Finetune => "finetune",
            Method::Ewc => "ewc",
            Method::OnlineEwc => "online-ewc",
            Method::Si => "si",
            Method::HnetR => "hnet-r",
            Method::HnetTir => "hnet-tir",
        }
    }

    /// The row label of a results table: the name, and the paper's name where it differs.
    pub fn table_label(self) -> &'static str {
        match self {
            Method::Hnet => "hnet (CL2/CL3: HNET+ENT)",
            Method::HnetR => "hnet-r (HNET+R)",
            Method::HnetTir => "hnet-tir (HNET+TIR; CL1: HNET)",
            other => other.name(),
        }
    }

    /// Every method.
    pub const ALL: [Method; 7] = [
        Method::Hnet,
        Method::Finetune,
        Method::Ewc,
        Method::OnlineEwc,
        Method::Si,
        Method::HnetR,
        Method::HnetTir,
    ];

    /// True for the methods with a replay model (HNET+R, HNET+TIR).
    pub fn replays(self) -> bool {
        matches!(self, Method::HnetR | Method::HnetTir)
    }
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown method '{s}' (hnet, finetune, ewc, online-ewc, si, hnet-r, hnet-tir)"
                )
            })
    }
}
