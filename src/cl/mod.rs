//! Continual learning with a task-conditioned hypernetwork (von Oswald et al. 2020).
//!
//! - [`HnetModel`]: the target network, the hypernetwork, θ and the task embeddings.
//! - [`OutputRegularizer`]: keeps the hypernetwork's outputs for earlier tasks where they were
//!   before the current task, all regularized tasks in one batched pass.
//! - [`step_gradients`]: one training step's gradients: task loss, look-ahead Δθ, regularizer.
//! - [`trainer`]: the task loop, evaluation and the accuracy matrix.
//! - [`audit`]: the end-to-end f64 gradient audit of the step.
//! - [`inference`]: the scenarios CL1–CL3 and task inference by predictive entropy (HNET+ENT).
//! - [`baselines`]: fine-tuning, EWC, online EWC and SI on the target network trained directly.
//! - [`replay`]: the hypernetwork-protected VAE and training on replayed data (HNET+R,
//!   HNET+TIR).
//! - [`state`]: a learner's state between tasks as named values (what a run's checkpoint
//!   stores).

pub mod audit;
pub mod baselines;
pub mod inference;
mod model;
mod regularizer;
pub mod replay;
pub mod state;
mod step;
pub mod trainer;

pub use baselines::{BaselineConfig, Consolidation, DirectLearner, Method};
pub use inference::{
    entropy_inference, infer_tasks, logit_gap_temperature, EntropyCalibration, InferredEval,
    Readout, Scenario, TaskScore,
};
pub use model::HnetModel;
pub use regularizer::{OutputRegularizer, RegTargets};
pub use state::{LearnerState, StateResult};
pub use step::{
    step_gradients, step_gradients_extra, step_gradients_with, task_loss, Lookahead, StepGradients,
    StepInput, StepWorkspace,
};
