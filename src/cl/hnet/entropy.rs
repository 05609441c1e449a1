//! Task inference by predictive entropy, HNET+ENT (von Oswald et al. 2020, §4): the task
//! whose generated network is the most certain about an input is taken to be its task.
//!
//! HNET+ENT: for every learned task k, the weights h(e(k), θ) are generated once and the
//! target network runs over the whole test set in batches with k's head (CL3) or the shared
//! head (CL2); per input, the softmax entropy of that prediction is kept if it is the lowest so
//! far (the first task wins ties). Evaluating T tasks costs T batched passes over a test set.
//!
//! Calibration: a head trained with hard targets on separable data keeps growing its logits,
//! and tasks do so at different rates (the first task, trained without the regularizer, the
//! most), so raw entropies compare scales as much as familiarity. With
//! [`EntropyCalibration::LogitGap`] each task k gets a temperature T_k when its training ends:
//! the median, over its own training inputs, of the gap between the largest and second largest
//! logit of its prediction; inference then compares the entropies of softmax(logits / T_k). No
//! data of other tasks and no test data is used.

use super::HnetModel;
use crate::cl::eval::{argmax, for_each_logits};
use crate::cl::{InferredEval, Scenario};
use crate::data::TaskView;
use serde::{Deserialize, Serialize};

/// How HNET+ENT scales each task's logits before comparing entropies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntropyCalibration {
    /// The entropies of the raw logits (the paper's rule).
    #[default]
    None,
    /// softmax(logits / T_k), T_k the median top-2 logit gap of task k on its own training
    /// inputs when its training ended.
    LogitGap,
}

impl EntropyCalibration {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            EntropyCalibration::None => "none",
            EntropyCalibration::LogitGap => "logit-gap",
        }
    }
}

impl std::str::FromStr for EntropyCalibration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(EntropyCalibration::None),
            "logit-gap" => Ok(EntropyCalibration::LogitGap),
            _ => Err(format!(
                "unknown entropy calibration '{s}' (none, logit-gap)"
            )),
        }
    }
}

/// Smallest temperature a task gets (a head whose top two logits tie on most inputs).
pub const MIN_TEMPERATURE: f64 = 1e-3;

/// The temperature of task `task` for [`EntropyCalibration::LogitGap`]: the median over
/// `data` (the task's training inputs) of the largest minus the second largest logit of head
/// `head` with the task's weights, at least [`MIN_TEMPERATURE`]; 1 for a head of one output
/// or no data.
pub fn logit_gap_temperature(
    model: &HnetModel<f32>,
    task: usize,
    head: usize,
    data: &TaskView,
) -> f64 {
    if model.target.head_dim() < 2 || data.is_empty() {
        return 1.0;
    }
    let weights = model.generated_weights(task);
    let mut gaps = Vec::with_capacity(data.len());
    for_each_logits(
        &model.target,
        &weights,
        head..head + 1,
        data,
        &mut |_, row| {
            let (mut a, mut b) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
            for &v in row {
                let v = f64::from(v);
                if v > a {
                    b = a;
                    a = v;
                } else if v > b {
                    b = v;
                }
            }
            gaps.push(a - b);
        },
    );
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    if median.is_finite() {
        median.max(MIN_TEMPERATURE)
    } else {
        1.0
    }
}

/// Softmax entropy −Σ p log p of a row of logits, in f64.
pub fn entropy(logits: &[f32]) -> f64 {
    entropy_at(logits, 1.0)
}

/// Softmax entropy of logits / `temperature`, in f64.
pub fn entropy_at(logits: &[f32], temperature: f64) -> f64 {
    let scaled = |v: f32| f64::from(v) / temperature;
    let m = logits
        .iter()
        .fold(f64::NEG_INFINITY, |a, &v| a.max(scaled(v)));
    let z: f64 = logits.iter().map(|&v| (scaled(v) - m).exp()).sum();
    let log_z = z.ln();
    logits
        .iter()
        .map(|&v| {
            let log_p = scaled(v) - m - log_z;
            -log_p.exp() * log_p
        })
        .sum()
}

/// HNET+ENT over the tasks 0..`learned` of `model` in `scenario` (CL2 or CL3): for each
/// test set `tests[j]` (the test set of task j), its accuracy, task-inference accuracy and how
/// its inputs were assigned. Each task's weights are generated once; each (task, test set)
/// pair is one batched pass. `temperatures[k]` divides task k's logits before the entropy
/// (1 for a task without one; the prediction itself is the unscaled argmax).
pub fn entropy_inference(
    model: &HnetModel<f32>,
    learned: usize,
    scenario: Scenario,
    tests: &[&TaskView],
    temperatures: &[f64],
) -> Vec<InferredEval> {
    infer_tasks(model, learned, scenario, tests, &mut |k, _, _, row| {
        entropy_at(row, temperatures.get(k).copied().unwrap_or(1.0))
    })
}

/// The score of task k for input i of test set j given k's logits: (k, j, i, logits).
pub type TaskScore<'s> = dyn FnMut(usize, usize, usize, &[f32]) -> f64 + 's;

/// Task inference by any rule: per input, the task k with the lowest `score(k, j, i, logits)`
/// (test set j, input i, the logits of k's head with k's weights) is picked (the first on
/// ties) and read as in [`entropy_inference`], whose rule is the entropy. HNET+TIR's rule is
/// 0 for the task its task-inference network predicts and 1 for every other.
pub fn infer_tasks(
    model: &HnetModel<f32>,
    learned: usize,
    scenario: Scenario,
    tests: &[&TaskView],
    score: &mut TaskScore<'_>,
) -> Vec<InferredEval> {
    assert!(scenario.infers_task(), "CL1 is given the task identity");
    assert!(
        learned >= 1 && learned <= model.task_embs.len(),
        "learned tasks"
    );
    // Per test set, per input: (lowest score, its task, its head's argmax).
    let mut best: Vec<Vec<(f64, usize, usize)>> = tests
        .iter()
        .map(|d| vec![(f64::INFINITY, 0, 0); d.len()])
        .collect();
    for k in 0..learned {
        let weights = model.generated_weights(k);
        let head = scenario.head(k);
        for (j, data) in tests.iter().enumerate() {
            let slots = &mut best[j];
            for_each_logits(
                &model.target,
                &weights,
                head..head + 1,
                data,
                &mut |i, row| {
                    let h = score(k, j, i, row);
                    if h < slots[i].0 {
                        slots[i] = (h, k, argmax(row));
                    }
                },
            );
        }
    }
    tests
        .iter()
        .zip(&best)
        .enumerate()
        .map(|(j, (data, slots))| {
            let labels = data.labels();
            let n = data.len().max(1) as f64;
            let mut correct = 0usize;
            let mut task_right = 0usize;
            let mut picks = vec![0usize; learned];
            for (&(_, k, pred), &label) in slots.iter().zip(&labels) {
                picks[k] += 1;
                task_right += usize::from(k == j);
                let ok = match scenario {
                    Scenario::Cl2 => pred == label,
                    // The global class k·head_dim + pred against j·head_dim + label.
                    _ => k == j && pred == label,
                };
                correct += usize::from(ok);
            }
            InferredEval {
                accuracy: 100.0 * correct as f64 / n,
                task_inference_accuracy: 100.0 * task_right as f64 / n,
                picks: picks.iter().map(|&c| 100.0 * c as f64 / n).collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_uniform_and_certain_rows() {
        assert!((entropy(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-12);
        assert!(entropy(&[100.0, -100.0]) < 1e-40);
        assert!(entropy(&[1.0, 0.0]) < entropy(&[0.5, 0.0]));
    }
}
