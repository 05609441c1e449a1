//! The task-conditioned hypernetwork (von Oswald et al., ICLR 2020).
//!
//! - [`HnetModel`]: the target network, the hypernetwork, θ and the task embeddings.
//! - [`OutputRegularizer`]: keeps the hypernetwork's outputs for earlier tasks where they were
//!   before the current task, all regularized tasks in one batched pass, directly or from Gram
//!   matrices of the output layer ([`RegularizerForm`], [`RegularizerCost`]).
//! - [`step_gradients`]: one training step's gradients: task loss, look-ahead Δθ, regularizer.
//! - [`trainer`]: the steps of one task and the accuracy of a learned task.
//! - [`entropy`]: task inference by predictive entropy (HNET+ENT) and its calibration.
//! - [`audit`]: the end-to-end f64 gradient audit of the step.
//! - [`HnetLearner`]: all of it as a [`crate::cl::Learner`].

pub mod audit;
pub mod entropy;
mod learner;
mod model;
mod regularizer;
mod step;
pub mod trainer;

pub use crate::cl::train::{Lookahead, RegularizerForm};
pub use entropy::{
    entropy_inference, infer_tasks, logit_gap_temperature, EntropyCalibration, TaskScore,
};
pub use learner::HnetLearner;
pub use model::HnetModel;
pub use regularizer::{last_width, OutputRegularizer, RegTargets, RegularizerCost};
pub use step::{
    step_gradients, step_gradients_extra, step_gradients_with, task_loss, StepGradients, StepInput,
    StepWorkspace,
};
pub use trainer::{accuracy, train_task, TaskSession};
