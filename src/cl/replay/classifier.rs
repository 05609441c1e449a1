//! A network trained directly on the current task's data mixed with replayed samples.

use super::{UnseenClasses, Vae};
use crate::cl::baselines::{BaselineConfig, DirectLearner};
use crate::cl::eval::readout_accuracy;
use crate::cl::train::{probed_task_loop, PHASE_CLASSIFIER, PHASE_TASK_INFERENCE};
use crate::cl::{Method, Progress, Readout, TrainConfig};
use crate::data::TaskView;
use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::Tensor;
use crate::nn::Mlp;
use crate::optim::Adam;
use crate::rng::Rng;
use crate::{Error, Result};

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
#[derive(Clone, Debug)]
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
    pub fn new(target: Mlp, targets: ReplayTargets, replay_weight: f64, seed: u64) -> Self {
        let learner =
            DirectLearner::new(target, Method::Finetune, &BaselineConfig::default(), seed);
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
        let phase = match self.targets {
            ReplayTargets::Distill { .. } => PHASE_CLASSIFIER,
            ReplayTargets::TaskLabel => PHASE_TASK_INFERENCE,
        };
        let probe_target = &target;
        let probe = |learner: &DirectLearner, v: &TaskView| {
            readout_accuracy(
                probe_target,
                &learner.weights,
                &readouts.current,
                readouts.label,
                v,
            )
        };
        probed_task_loop(
            t,
            data,
            config,
            phase,
            on_progress,
            &mut self.learner,
            &mut |learner, x, local| {
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
                learner
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
            },
            Some(&probe),
        )?;
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
    target: &Mlp,
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
        k > 0 && k <= width && logits.len().is_multiple_of(k),
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
    target: &Mlp,
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
