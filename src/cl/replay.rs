//! Generative replay protected by a hypernetwork (von Oswald et al. 2020, §4 of METHOD.md):
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

use super::baselines::{DirectLearner, Method};
use super::inference::Readout;
use super::state::{LearnerState, StateResult};
use super::trainer::{task_loop, Progress, TaskSession, TrainConfig};
use super::HnetModel;
use crate::data::TaskView;
use crate::nn::{Hnet, HnetConfig, HnetInit, TargetMlp};
use crate::optim::Adam;
use crate::rng::Rng;
use crate::tape::{Tape, Var};
use crate::tensor::{Float, Tensor};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings of the replay model and of training on replayed data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// 250,350 (HNET+R) or 300,150 (HNET+TIR), decoder hypernetwork [10,10] ELU with chunks
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
    /// decoder 400,400), latent 100, decoder hypernetwork [25,25] ELU with chunks of 85000,
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

/// The VAE's loss and its two parts, as vars of the tape.
#[derive(Clone, Copy, Debug)]
pub struct VaeLoss {
    /// reconstruction + kl.
    pub total: Var,
    /// Mean binary cross-entropy of the reconstruction, over rows and pixels.
    pub reconstruction: Var,
    /// KL(q(z|x) ‖ N(0, I)) summed over the latent, averaged over rows, divided by the
    /// input dimension.
    pub kl: Var,
}

/// The VAE loss of the batch `x` [B × D]: the encoder (weights `enc_w`, heads μ and log σ²)
/// gives q(z|x); z = μ + ε ⊙ exp(½ log σ²) with the noise `eps` [B × latent]; the decoder
/// (weights `dec_w`) reads [z, `cond`] and gives logits of Bernoulli pixels. Loss = mean BCE +
/// (1/(B·D)) Σ ½(σ² + μ² − 1 − log σ²).
#[allow(clippy::too_many_arguments)]
pub fn vae_loss<F: Float>(
    tape: &mut Tape<'_, F>,
    encoder: &TargetMlp,
    enc_w: Var,
    decoder: &TargetMlp,
    dec_w: Var,
    x: Var,
    cond: Var,
    eps: Var,
) -> VaeLoss {
    let (rows, input_dim) = tape.dims(x);
    let latent = encoder.head_dim();
    let h = encoder.hidden_features(tape, enc_w, x);
    let mu = encoder.head_outputs(tape, enc_w, h, 0..1);
    let log_var = encoder.head_outputs(tape, enc_w, h, 1..2);
    let half = tape.scale(log_var, F::from_f64(0.5));
    let std = tape.exp(half);
    let noise = tape.mul(eps, std);
    let z = tape.add(mu, noise);
    let input = tape.concat_cols(&[z, cond]);
    let logits = decoder.forward(tape, dec_w, input, 0);
    let reconstruction = tape.bce_with_logits(logits, x);
    let var = tape.exp(log_var);
    let mu2 = tape.square(mu);
    let a = tape.add(var, mu2);
    let b = tape.sub(a, log_var);
    let s = tape.sum(b);
    let ones = tape.constant(Tensor::from_vec(
        &[],
        vec![F::from_f64((rows * latent) as f64)],
    ));
    let centered = tape.sub(s, ones);
    let kl = tape.scale(
        centered,
        F::from_f64(0.5 / (rows.max(1) * input_dim.max(1)) as f64),
    );
    let total = tape.add(reconstruction, kl);
    VaeLoss {
        total,
        reconstruction,
        kl,
    }
}

/// One-hot task codes: `rows` rows of `dim` with a 1 at `task`.
fn one_hot_rows(task: usize, dim: usize, rows: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; rows * dim];
    c.chunks_exact_mut(dim).for_each(|r| r[task] = 1.0);
    c
}

/// A VAE whose decoder's weights a hypernetwork generates, one task embedding per task.
#[derive(Clone, Debug)]
pub struct Vae {
    /// The encoder: hidden layers, then head 0 = μ and head 1 = log σ² (latent_dim each).
    pub encoder: TargetMlp,
    /// Its weights (trained directly).
    pub encoder_weights: Vec<f32>,
    /// The decoder (input latent_dim + conditions, one head of input_dim logits) and the
    /// hypernetwork that generates its weights.
    pub decoder: HnetModel<f32>,
    /// Size of the one-hot task code.
    pub conditions: usize,
    config: ReplayConfig,
    seed: u64,
}

impl Vae {
    /// A VAE for inputs of `input_dim` and up to `conditions` tasks; every initialisation
    /// and random stream is derived from `seed` (streams of their own, apart from the
    /// classifier's).
    pub fn new(config: &ReplayConfig, input_dim: usize, conditions: usize, seed: u64) -> Self {
        let encoder = TargetMlp::new(input_dim, &config.encoder_hidden, config.latent_dim, 2);
        let encoder_weights = encoder.init_weights(&mut Rng::derived(seed, "vae-encoder", 0));
        let decoder_net = TargetMlp::new(
            config.latent_dim + conditions,
            &config.decoder_hidden,
            input_dim,
            1,
        );
        let hnet = Hnet::new(&config.hnet, decoder_net.num_weights());
        let replay_seed = Rng::derived(seed, "vae-seed", 0).next_u64();
        let decoder = HnetModel::with_init(decoder_net, hnet, replay_seed, HnetInit::Xavier);
        Self {
            encoder,
            encoder_weights,
            decoder,
            conditions,
            config: config.clone(),
            seed: replay_seed,
        }
    }

    /// Number of tasks learned.
    pub fn tasks(&self) -> usize {
        self.decoder.task_embs.len()
    }

    /// The training settings of the VAE: the classifier's steps and batch size, the replay
    /// learning rate and β, the Adam look-ahead, seeds of its own.
    fn train_config(&self, train: &TrainConfig) -> TrainConfig {
        TrainConfig {
            iterations: train.iterations,
            batch_size: train.batch_size,
            lr: self.config.lr,
            emb_lr: self.config.lr,
            beta: self.config.beta,
            lookahead: train.lookahead,
            reg_batch: None,
            online_targets: false,
            label_smoothing: 0.0,
            seed: self.seed,
        }
    }

    /// Learns task `t` (the next one) on `data`: the VAE loss with the decoder's weights
    /// generated for t, the output regularizer protecting the decoder of every earlier task.
    /// Returns the mean reconstruction loss and KL over the last 100 steps.
    pub fn learn_task(
        &mut self,
        t: usize,
        data: &TaskView,
        train: &TrainConfig,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<(f64, f64)> {
        if t >= self.conditions {
            return Err(Error::config(
                "tasks",
                format!(
                    "the VAE has task codes for {} tasks, task {t} asked",
                    self.conditions
                ),
            ));
        }
        let config = self.train_config(train);
        let mut session = TaskSession::begin(&mut self.decoder, t, 0, &config);
        let mut enc_opt = Adam::new(self.encoder_weights.len(), self.config.lr);
        let mut noise = Rng::derived(self.seed, "vae-noise", t as u64);
        let (dim, latent, conds) = (data.input_dim(), self.config.latent_dim, self.conditions);
        let cond = one_hot_rows(t, conds, config.batch_size);
        let mut eps = vec![0.0f32; config.batch_size * latent];
        let previous: Vec<usize> = (0..t).collect();
        let mut tail = (0.0, 0.0, 0usize);
        let tail_from = config.iterations.saturating_sub(100);
        let mut step = 0usize;
        let (encoder, enc_weights, decoder) =
            (&self.encoder, &mut self.encoder_weights, &mut self.decoder);
        task_loop(t, data, &config, on_progress, &mut |x, _| {
            let rows = x.len() / dim;
            eps.iter_mut().for_each(|e| *e = noise.normal() as f32);
            let mut parts = (0.0, 0.0);
            let mut grads = {
                let weights: &[f32] = enc_weights;
                session.gradients_extra(decoder, &previous, |tape, dec_w| {
                    let enc_w = tape.leaf_ref(&[weights.len()], weights);
                    let xv = tape.constant_ref(&[rows, dim], x);
                    let c = tape.constant_ref(&[rows, conds], &cond[..rows * conds]);
                    let e = tape.constant_ref(&[rows, latent], &eps[..rows * latent]);
                    let loss = vae_loss(tape, encoder, enc_w, &decoder.target, dec_w, xv, c, e);
                    parts = (
                        tape.item(loss.reconstruction).to_f64(),
                        tape.item(loss.kl).to_f64(),
                    );
                    (loss.total, vec![enc_w])
                })
            };
            let enc_grad = grads.extra.pop().unwrap_or_default();
            let losses = session.apply(decoder, grads)?;
            enc_opt.step(enc_weights, &enc_grad);
            if step >= tail_from {
                tail = (tail.0 + parts.0, tail.1 + parts.1, tail.2 + 1);
            }
            step += 1;
            Ok(losses)
        })?;
        session.finish(&self.decoder)?;
        if !self.encoder_weights.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "VAE task {t}: the encoder weights became NaN or infinite"
            )));
        }
        let n = tail.2.max(1) as f64;
        Ok((tail.0 / n, tail.1 / n))
    }

    /// Stores the encoder's weights as `{prefix}encoder` and the decoder's hypernetwork as
    /// `{prefix}decoder.` ([`HnetModel::save_state`]).
    pub fn save_state(&self, prefix: &str, state: &mut LearnerState) {
        state.put(format!("{prefix}encoder"), &self.encoder_weights);
        self.decoder.save_state(&format!("{prefix}decoder."), state);
    }

    /// Takes what [`Vae::save_state`] stored after the VAE learned `tasks` tasks.
    pub fn restore_state(
        &mut self,
        prefix: &str,
        tasks: usize,
        state: &mut LearnerState,
    ) -> StateResult<()> {
        if tasks > self.conditions {
            return Err(format!(
                "the VAE has task codes for {} tasks, {tasks} stored",
                self.conditions
            ));
        }
        let n = self.encoder_weights.len();
        self.encoder_weights = state.take(&format!("{prefix}encoder"), n)?;
        self.decoder
            .restore_state(&format!("{prefix}decoder."), tasks, state)
    }

    /// The decoder weights the hypernetwork generates for task `task`.
    pub fn decoder_weights(&self, task: usize) -> Vec<f32> {
        self.decoder.generated_weights(task)
    }

    /// `rows` samples of task `task` (pixel probabilities σ(decoder(z, task)), z ~ N(0, I)
    /// from `rng`), row-major [rows × input_dim], with the decoder weights `weights`
    /// ([`Vae::decoder_weights`]).
    pub fn sample(&self, weights: &[f32], task: usize, rows: usize, rng: &mut Rng) -> Vec<f32> {
        let latent = self.config.latent_dim;
        let conds = self.conditions;
        let mut input = vec![0.0f32; rows * (latent + conds)];
        for r in input.chunks_exact_mut(latent + conds) {
            r[..latent]
                .iter_mut()
                .for_each(|v| *v = rng.normal() as f32);
            r[latent + task] = 1.0;
        }
        let mut tape = Tape::no_grad();
        let w = tape.constant_ref(&[weights.len()], weights);
        let z = tape.constant_ref(&[rows, latent + conds], &input);
        let logits = self.decoder.target.forward(&mut tape, w, z, 0);
        let probs = tape.sigmoid(logits);
        tape.value(probs).to_vec()
    }
}

/// How the targets of replayed samples are made.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplayTargets {
    /// Soft: the outputs of the classifier as it was before the task (the teacher), softmax
    /// at the temperature, distilled (HNET+R). Student outputs the teacher does not read (a
    /// new task's classes in CL3) get the target `unseen` says.
    Distill {
        /// Softmax temperature.
        temperature: f64,
        /// Target of the outputs the teacher does not read.
        unseen: UnseenClasses,
    },
    /// Hard: a sample of task k has label k (HNET+TIR's task-inference network).
    TaskLabel,
}

/// A network trained directly (Adam, fresh per task) on the current task's data mixed with
/// replayed samples: loss = (1 − w)·L(current) + w·L(replay), the replay batch split evenly
/// over the earlier tasks (⌈batch / t⌉ samples of each).
pub struct ReplayClassifier {
    /// The network and its weights.
    pub learner: DirectLearner,
    /// How replayed samples are labelled.
    pub targets: ReplayTargets,
    /// w.
    pub replay_weight: f64,
}

/// What task `t` trains: the current data through `current` with labels `label(local label)`,
/// a replayed sample of task k through `replayed(k)` (the student's outputs and, for
/// distillation, the teacher's first outputs that have a target).
pub struct ReplayReadouts<'r> {
    /// The current task's outputs.
    pub current: Readout,
    /// The label a current sample trains (before `current.label_offset`) from its local
    /// label: the label itself for a classifier, the task for task inference.
    pub label: &'r dyn Fn(usize) -> usize,
    /// For a replayed task k: (student readout, teacher readout).
    pub replayed: &'r dyn Fn(usize) -> (Readout, Readout),
}

impl ReplayClassifier {
    /// A classifier on `target`, weights from `seed`.
    pub fn new(target: TargetMlp, targets: ReplayTargets, replay_weight: f64, seed: u64) -> Self {
        let learner = DirectLearner::new(
            target,
            Method::Finetune,
            &super::BaselineConfig::default(),
            seed,
        );
        Self {
            learner,
            targets,
            replay_weight,
        }
    }

    /// Learns task `t` on `data` through `readouts`, replaying tasks 0..t from `vae`.
    pub fn learn_task(
        &mut self,
        t: usize,
        data: &TaskView,
        vae: &Vae,
        readouts: &ReplayReadouts<'_>,
        config: &TrainConfig,
        on_progress: &mut dyn FnMut(&Progress),
    ) -> Result<()> {
        let mut opt = Adam::new(self.learner.weights.len(), config.lr);
        let teacher = self.learner.weights.clone();
        let decoders: Vec<Vec<f32>> = (0..t.min(vae.tasks()))
            .map(|k| vae.decoder_weights(k))
            .collect();
        let per_task = if t == 0 {
            0
        } else {
            config.batch_size.div_ceil(t)
        };
        let mut noise = Rng::derived(config.seed, "replay-noise", t as u64);
        let dim = data.input_dim();
        let w = self.replay_weight;
        let targets = self.targets.clone();
        let target = self.learner.target.clone();
        let mut labels = Vec::new();
        task_loop(t, data, config, on_progress, &mut |x, local| {
            let rows = local.len();
            labels.clear();
            labels.extend(
                local
                    .iter()
                    .map(|&l| (readouts.label)(l) + readouts.current.label_offset),
            );
            // Replayed samples of every earlier task and their targets, made before the step.
            let groups: Vec<ReplayGroup> = decoders
                .iter()
                .enumerate()
                .map(|(k, dec)| {
                    let xs = vae.sample(dec, k, per_task, &mut noise);
                    let (student, teacher_readout) = (readouts.replayed)(k);
                    let soft = match targets {
                        ReplayTargets::Distill {
                            temperature,
                            unseen,
                        } => Some(soft_targets(
                            &target,
                            &teacher,
                            &xs,
                            &teacher_readout,
                            student.heads.len() * target.head_dim(),
                            temperature,
                            unseen,
                        )),
                        ReplayTargets::TaskLabel => None,
                    };
                    ReplayGroup {
                        task: k,
                        x: xs,
                        student,
                        soft,
                    }
                })
                .collect();
            let target = &target;
            let labels = &labels;
            let targets = &targets;
            let current = &readouts.current;
            self.learner
                .step(&mut opt, &mut |tape, weights| {
                    let xv = tape.constant(Tensor::from_vec(&[rows, dim], x.to_vec()));
                    let logits = target.forward_heads(tape, weights, xv, current.heads.clone());
                    let ce = tape.softmax_cross_entropy(logits, labels);
                    if groups.is_empty() {
                        return ce;
                    }
                    let replay = replay_loss(tape, target, weights, &groups, targets, dim);
                    let a = tape.scale(ce, 1.0 - w as f32);
                    let b = tape.scale(replay, w as f32);
                    tape.add(a, b)
                })
                .map_err(|e| match e {
                    Error::NonFinite(m) => Error::NonFinite(format!("task {t}: {m}")),
                    other => other,
                })
        })?;
        if !self.learner.weights.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "task {t}: the classifier's weights became NaN or infinite in the last step"
            )));
        }
        Ok(())
    }
}

/// Replayed samples of one earlier task in a step.
struct ReplayGroup {
    task: usize,
    x: Vec<f32>,
    student: Readout,
    /// Distillation: the target probabilities [rows × student outputs].
    soft: Option<Vec<f32>>,
}

/// The teacher's distillation targets for the inputs `x`, [rows × width]: see
/// [`distillation_targets`].
fn soft_targets(
    target: &TargetMlp,
    teacher: &[f32],
    x: &[f32],
    readout: &Readout,
    width: usize,
    temperature: f64,
    unseen: UnseenClasses,
) -> Vec<f32> {
    let dim = target.input_dim();
    let rows = x.len() / dim;
    let mut tape = Tape::no_grad();
    let w = tape.constant_ref(&[teacher.len()], teacher);
    let xv = tape.constant_ref(&[rows, dim], x);
    let logits = target.forward_heads(&mut tape, w, xv, readout.heads.clone());
    let k = readout.heads.len() * target.head_dim();
    distillation_targets(tape.value(logits), k, width, temperature, unseen)
}

/// Distillation targets [rows × width] from the teacher's logits [rows × k]: softmax(logits /
/// T) over the k columns, and for the other width − k columns what `unseen` says
/// (ZeroLogit: a logit 0 each, inside the softmax; ZeroProbability: 0).
///
/// # Panics
/// If k is 0 or above `width`, or `logits` is not a whole number of rows of k.
pub fn distillation_targets(
    logits: &[f32],
    k: usize,
    width: usize,
    temperature: f64,
    unseen: UnseenClasses,
) -> Vec<f32> {
    assert!(
        k > 0 && k <= width && logits.len() % k == 0,
        "logits of rows of {k} ≤ {width}"
    );
    let softmax_width = match unseen {
        UnseenClasses::ZeroLogit => width,
        UnseenClasses::ZeroProbability => k,
    };
    let mut out = vec![0.0f32; logits.len() / k * width];
    for (row, dst) in logits.chunks_exact(k).zip(out.chunks_exact_mut(width)) {
        let logit = |i: usize| row.get(i).map_or(0.0, |&v| f64::from(v));
        let m = (0..softmax_width)
            .map(logit)
            .fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = (0..softmax_width)
            .map(|i| ((logit(i) - m) / temperature).exp())
            .collect();
        let z: f64 = e.iter().sum();
        for (d, v) in dst.iter_mut().zip(&e) {
            *d = (v / z) as f32;
        }
    }
    out
}

/// The loss on the replayed groups: with soft targets p, T²·mean over rows of
/// −Σ p ⊙ log softmax(s/T) (Hinton et al.'s distillation); with task labels, the mean softmax
/// cross-entropy of the label k of task k's samples.
fn replay_loss(
    tape: &mut Tape<'_, f32>,
    target: &TargetMlp,
    weights: Var,
    groups: &[ReplayGroup],
    targets: &ReplayTargets,
    dim: usize,
) -> Var {
    let total_rows: usize = groups.iter().map(|g| g.x.len() / dim).sum();
    let mut terms = Vec::with_capacity(groups.len());
    for g in groups {
        let rows = g.x.len() / dim;
        let xv = tape.constant(Tensor::from_vec(&[rows, dim], g.x.clone()));
        let logits = target.forward_heads(tape, weights, xv, g.student.heads.clone());
        let term = match (targets, &g.soft) {
            (ReplayTargets::Distill { temperature, .. }, Some(p)) => {
                let t = *temperature as f32;
                let scaled = tape.scale(logits, 1.0 / t);
                let log_p = tape.log_softmax(scaled);
                let width = tape.dims(log_p).1;
                let pv = tape.constant(Tensor::from_vec(&[rows, width], p.clone()));
                let prod = tape.mul(log_p, pv);
                let s = tape.sum(prod);
                tape.scale(s, -t * t / total_rows.max(1) as f32)
            }
            _ => {
                let labels = vec![g.task + g.student.label_offset; rows];
                let ce = tape.softmax_cross_entropy(logits, &labels);
                tape.scale(ce, rows as f32 / total_rows.max(1) as f32)
            }
        };
        terms.push(term);
    }
    let mut acc = terms[0];
    for &t in &terms[1..] {
        acc = tape.add(acc, t);
    }
    acc
}

/// `n` samples of each learned VAE task as 28×28 grey images (bytes, row-major, one image
/// after another), in the input space of the benchmark mapped back to the digit's pixels by
/// `unmap(task, sample)` (PermutedMNIST: undo the permutation and padding).
pub fn replay_pictures(
    vae: &Vae,
    n: usize,
    seed: u64,
    unmap: &dyn Fn(usize, &[f32]) -> Vec<f32>,
) -> Vec<Vec<f32>> {
    (0..vae.tasks())
        .map(|k| {
            let w = vae.decoder_weights(k);
            let mut rng = Rng::derived(seed, "replay-picture", k as u64);
            let xs = vae.sample(&w, k, n, &mut rng);
            let dim = xs.len() / n.max(1);
            xs.chunks_exact(dim.max(1))
                .flat_map(|s| unmap(k, s))
                .collect()
        })
        .collect()
}
