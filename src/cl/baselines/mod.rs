//! Baselines on the same engine: the target MLP trained directly (its weights one flat leaf
//! buffer, Adam), with no protection (fine-tuning) or with a quadratic weight penalty.
//!
//! - EWC (Kirkpatrick et al., PNAS 2017): after each task, the diagonal Fisher F of the
//!   log-likelihood, estimated from the squared gradients of individual samples (label: the
//!   model's own prediction, as in van de Ven & Tolias's code, unless the true labels are
//!   asked for), averaged over N samples and computed for all of them in batched passes
//!   ([`mlp_diagonal_fisher`]); penalty (λ/2) Σ_tasks Σ_i F_i (θ_i − θ*_i)².
//! - Online EWC (Schwarz et al., ICML 2018): one running Fisher F ← γF + F_new and one anchor
//!   θ* (the weights after the last task); penalty (λ/2) Σ_i F_i (θ_i − θ*_i)².
//! - SI (Zenke et al., ICML 2017): during a task, ω_i accumulates −g_i·Δθ_i after every step,
//!   g the gradient of the task loss alone (as in the authors' code, which uses the
//!   unregularized loss); at the end, Ω_i += ω_i / ((θ_i(end) − θ_i(start))² + ξ) and the anchor
//!   moves to θ(end); penalty c Σ_i Ω_i (θ_i − θ*_i)².
//!
//! Default strengths are those of van de Ven & Tolias's code (GMvandeVen/continual-learning,
//! `params/param_values.py`, read at commit d98e3d2): SplitMNIST task-incremental λ = 1e5,
//! c = 10; domain-incremental λ = 1e10, c = 5e4; class-incremental λ = 1e9, c = 5e3;
//! PermutedMNIST λ = 100 and c = 10 (5 for class-incremental); online EWC γ = 1; ξ = 0.1. Their
//! Fisher uses every training sample; ours uses `fisher_samples` random ones (default 1000), a
//! choice of this crate. Online EWC uses the EWC λ of the scenario.

mod direct;
mod learner;
mod penalty;

pub use direct::DirectLearner;
pub use learner::BaselineLearner;
pub use penalty::{diagonal_fisher, mlp_diagonal_fisher, Consolidation};

use super::Scenario;
use serde::{Deserialize, Serialize};

/// Strengths of the weight penalties and the Fisher estimate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineConfig {
    /// λ of EWC and online EWC.
    pub ewc_lambda: f64,
    /// γ of online EWC.
    pub online_ewc_gamma: f64,
    /// c of SI.
    pub si_c: f64,
    /// ξ of SI.
    pub si_xi: f64,
    /// Samples per Fisher estimate (at most the task's training set).
    pub fisher_samples: usize,
    /// Use the true labels in the Fisher instead of the model's predictions.
    pub fisher_true_labels: bool,
}

impl BaselineConfig {
    /// van de Ven & Tolias's settings (see the module documentation) for SplitMNIST
    /// (`split = true`) or PermutedMNIST in `scenario`.
    pub fn defaults(split: bool, scenario: Scenario) -> Self {
        let (ewc_lambda, si_c) = match (split, scenario) {
            (true, Scenario::Cl1) => (1e5, 10.0),
            (true, Scenario::Cl2) => (1e10, 5e4),
            (true, Scenario::Cl3) => (1e9, 5e3),
            (false, Scenario::Cl3) => (100.0, 5.0),
            (false, _) => (100.0, 10.0),
        };
        Self {
            ewc_lambda,
            online_ewc_gamma: 1.0,
            si_c,
            si_xi: 0.1,
            fisher_samples: 1000,
            fisher_true_labels: false,
        }
    }
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self::defaults(true, Scenario::Cl1)
    }
}
