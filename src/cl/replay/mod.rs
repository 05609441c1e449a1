//! Generative replay protected by a hypernetwork (von Oswald et al. 2020, §4):
//! HNET+R and HNET+TIR.
//!
//! - [`Vae`]: a variational autoencoder whose decoder's weights a (chunked) hypernetwork
//!   generates from a task embedding; the decoder also reads a one-hot code of the task. The
//!   encoder is an MLP with its own weights and two heads (μ and log σ²). While learning task
//!   t, the decoder's hypernetwork is protected by the same output regularizer as the
//!   classifier's (look-ahead included), so the generator does not forget earlier tasks.
//! - [`vae_loss`]: mean binary cross-entropy of the reconstruction (on logits) plus the KL
//!   divergence to N(0, I) averaged over the batch and divided by the input dimension, with
//!   z = μ + ε ⊙ exp(½ log σ²) for noise ε given from outside (the run's seeded stream; fixed
//!   noise in the gradient audit).
//! - [`ReplayClassifier`]: a network trained directly on the current task's data mixed with
//!   replayed samples of every earlier task: HNET+R's classifier (soft targets from a copy of
//!   itself taken before the task, distilled at a temperature) and HNET+TIR's task-inference
//!   network (hard targets: the task that generated a sample).

pub mod audit;
mod classifier;
mod hnet_r;
mod hnet_tir;
mod memory;
mod vae;

pub use classifier::{distillation_targets, ReplayClassifier, ReplayReadouts, ReplayTargets};
pub use hnet_r::HnetR;
pub use hnet_tir::HnetTir;
pub use memory::ReplayModel;
pub use vae::{replay_samples, vae_loss, Vae, VaeLoss};

use crate::nn::HnetConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings of the replay model and of training on replayed data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// Size of the latent code z.
    pub latent_dim: usize,
    /// Hidden widths of the encoder (its two heads, μ and log σ², follow).
    pub encoder_hidden: Vec<usize>,
    /// Hidden widths of the decoder (input: z and the one-hot task code).
    pub decoder_hidden: Vec<usize>,
    /// The hypernetwork that generates the decoder's weights.
    pub hnet: HnetConfig,
    /// β of the decoder hypernetwork's output regularizer.
    pub beta: f64,
    /// Adam learning rate of the encoder, the decoder hypernetwork and its embeddings.
    pub lr: f64,
    /// Weight of the loss on replayed data; the current data's loss gets 1 − this.
    pub replay_weight: f64,
    /// Temperature of the distillation of soft targets (HNET+R).
    pub temperature: f64,
    /// HNET+R: the distillation target of the classes the teacher does not read (CL3: the
    /// new task's). Configurations saved before this field existed ran with
    /// [`UnseenClasses::ZeroProbability`].
    #[serde(default = "UnseenClasses::before_choice")]
    pub unseen_classes: UnseenClasses,
}

/// The distillation target of a replayed sample for outputs the teacher (the classifier
/// before the task) does not read: in CL3, the new task's classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnseenClasses {
    /// The teacher's logits padded with logit 0 for them, then the softmax at the temperature
    /// over all outputs (the official code's targets and the default): a small, bounded
    /// probability.
    ZeroLogit,
    /// Probability 0: the softmax at the temperature over the teacher's outputs only, so the
    /// student is pushed to drive those outputs' logits down without bound.
    ZeroProbability,
}

impl UnseenClasses {
    fn before_choice() -> Self {
        UnseenClasses::ZeroProbability
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            UnseenClasses::ZeroLogit => "zero-logit",
            UnseenClasses::ZeroProbability => "zero-probability",
        }
    }
}

impl std::str::FromStr for UnseenClasses {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "zero-logit" => Ok(UnseenClasses::ZeroLogit),
            "zero-probability" => Ok(UnseenClasses::ZeroProbability),
            _ => Err(format!(
                "unknown target for unseen classes '{s}' (zero-logit, zero-probability)"
            )),
        }
    }
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self::split_mnist(false)
    }
}

impl ReplayConfig {
    /// The official code's settings for SplitMNIST: encoder 400,400, latent 100, decoder
    /// 250,350 (HNET+R) or 300,150 (HNET+TIR), decoder hypernetwork \[10,10\] ELU with chunks
    /// of 50000 and embeddings of 96, β 0.01 (HNET+TIR: 0.05), lr 1e-3.
    pub fn split_mnist(task_inference: bool) -> Self {
        Self {
            latent_dim: 100,
            encoder_hidden: vec![400, 400],
            decoder_hidden: if task_inference {
                vec![300, 150]
            } else {
                vec![250, 350]
            },
            hnet: HnetConfig {
                task_emb_dim: 96,
                hidden: vec![10, 10],
                activation: crate::nn::Activation::Elu,
                chunk_size: Some(50_000),
                chunk_emb_dim: 96,
            },
            beta: if task_inference { 0.05 } else { 0.01 },
            lr: 1e-3,
            replay_weight: 0.5,
            temperature: 2.0,
            unseen_classes: UnseenClasses::ZeroLogit,
        }
    }

    /// The official code's settings for PermutedMNIST: encoder and decoder 1000,1000 (HNET+R:
    /// decoder 400,400), latent 100, decoder hypernetwork \[25,25\] ELU with chunks of 85000,
    /// task embedding 24, chunk embedding 8, β 0.1, lr 1e-4.
    pub fn permuted_mnist(task_inference: bool) -> Self {
        Self {
            latent_dim: 100,
            encoder_hidden: vec![1000, 1000],
            decoder_hidden: if task_inference {
                vec![1000, 1000]
            } else {
                vec![400, 400]
            },
            hnet: HnetConfig {
                task_emb_dim: 24,
                hidden: vec![25, 25],
                activation: crate::nn::Activation::Elu,
                chunk_size: Some(85_000),
                chunk_emb_dim: 8,
            },
            beta: 0.1,
            lr: 1e-4,
            replay_weight: 0.5,
            temperature: 2.0,
            unseen_classes: UnseenClasses::ZeroLogit,
        }
    }

    /// Checks every field; the error names the field (as its command-line option).
    pub fn validate(&self) -> Result<()> {
        if self.latent_dim == 0 {
            return Err(Error::config("latent-dim", "must be at least 1"));
        }
        for (field, v) in [
            ("encoder-hidden", &self.encoder_hidden),
            ("decoder-hidden", &self.decoder_hidden),
            ("replay hnet hidden", &self.hnet.hidden),
        ] {
            if v.contains(&0) {
                return Err(Error::config(field, "every width must be at least 1"));
            }
        }
        if self.hnet.task_emb_dim == 0 || self.hnet.chunk_size == Some(0) {
            return Err(Error::config(
                "replay hnet",
                "task embedding and chunk size must be at least 1",
            ));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::config(
                "replay-beta",
                format!("must be finite and >= 0, got {}", self.beta),
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config(
                "replay lr",
                format!("must be a positive finite number, got {}", self.lr),
            ));
        }
        if !(0.0..=1.0).contains(&self.replay_weight) {
            return Err(Error::config(
                "replay weight",
                format!("must be in [0, 1], got {}", self.replay_weight),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(Error::config(
                "temperature",
                format!("must be a positive finite number, got {}", self.temperature),
            ));
        }
        Ok(())
    }
}
