//! The replay model: a VAE whose decoder a hypernetwork generates, protected by the output
//! regularizer, and its loss.

use super::ReplayConfig;
use crate::cl::hnet::{HnetModel, TaskSession};
use crate::cl::train::{task_loop, PHASE_VAE};
use crate::cl::{LearnerState, Progress, StateResult, TrainConfig};
use crate::data::TaskView;
use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::{Float, Tensor};
use crate::nn::{Hnet, HnetInit, Mlp};
use crate::optim::Adam;
use crate::rng::Rng;
use crate::{Error, Result};

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
    encoder: &Mlp,
    enc_w: Var,
    decoder: &Mlp,
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
    pub encoder: Mlp,
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
        let encoder = Mlp::new(input_dim, &config.encoder_hidden, config.latent_dim, 2);
        let encoder_weights = encoder.init_weights(&mut Rng::derived(seed, "vae-encoder", 0));
        let decoder_net = Mlp::new(
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
            regularizer: train.regularizer,
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
        let mut session =
            TaskSession::begin(&mut self.decoder, t, 0, &config).with_beta_flag("--replay-beta");
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
        task_loop(t, data, &config, PHASE_VAE, on_progress, &mut |x, _| {
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

/// `n` samples of each task `vae` learned, in the benchmark's input space, one task's after
/// another; task k's from a stream derived from `seed` and k.
pub fn replay_samples(vae: &Vae, n: usize, seed: u64) -> Vec<Vec<f32>> {
    (0..vae.tasks())
        .map(|k| {
            let w = vae.decoder_weights(k);
            let mut rng = Rng::derived(seed, "replay-picture", k as u64);
            vae.sample(&w, k, n, &mut rng)
        })
        .collect()
}
