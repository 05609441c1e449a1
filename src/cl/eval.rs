//! Evaluation helpers every learner shares: the target network's logits over a whole data set
//! in batches, the argmax, and the accuracy of a directly trained network in a scenario.

use super::scenario::{InferredEval, Readout, Scenario};
use super::{EvalRow, TaskIdentity};
use crate::data::TaskView;
use crate::engine::tape::{BufferPool, Tape};
use crate::nn::Mlp;
use std::ops::Range;

/// Rows evaluated per batch.
pub const EVAL_BATCH: usize = 1000;
/// Runs `target` with weights `weights` over all of `data` in batches of [`EVAL_BATCH`] rows
/// and calls `f(sample, logits)` for every sample in order, the logits being those of the
/// heads `heads` side by side.
pub fn for_each_logits(
    target: &Mlp,
    weights: &[f32],
    heads: Range<usize>,
    data: &TaskView,
    f: &mut dyn FnMut(usize, &[f32]),
) {
    let dim = data.input_dim();
    let mut x = vec![0.0f32; EVAL_BATCH * dim];
    let mut labels = vec![0usize; EVAL_BATCH];
    let all: Vec<usize> = (0..data.len()).collect();
    let mut pool = BufferPool::new();
    let k = heads.len() * target.head_dim();
    for idx in all.chunks(EVAL_BATCH) {
        let rows = idx.len();
        data.fill_batch(idx, &mut x[..rows * dim], &mut labels[..rows]);
        let mut tape = Tape::with_pool(false, pool);
        let w = tape.constant_ref(&[weights.len()], weights);
        let xv = tape.constant_ref(&[rows, dim], &x[..rows * dim]);
        let logits = target.forward_heads(&mut tape, w, xv, heads.clone());
        for (r, row) in tape.value(logits).chunks_exact(k).enumerate() {
            f(idx[0] + r, row);
        }
        pool = tape.into_pool(None);
    }
}

/// Index of the largest element (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Percent of `data` that `target` with weights `w`, read through `readout`, classifies as
/// `label(l) + readout.label_offset` (l: the sample's local label): the accuracy of the
/// readout a training loop's loss reads.
pub fn readout_accuracy(
    target: &Mlp,
    w: &[f32],
    readout: &Readout,
    label: &dyn Fn(usize) -> usize,
    data: &TaskView,
) -> f64 {
    let labels = data.labels();
    let mut correct = 0usize;
    for_each_logits(target, w, readout.heads.clone(), data, &mut |i, row| {
        correct += usize::from(argmax(row) == label(labels[i]) + readout.label_offset);
    });
    100.0 * correct as f64 / data.len().max(1) as f64
}

/// The outputs task `t` of a directly trained network trains: its own head (CL1), the shared
/// head (CL2), or the heads of every class seen so far with the task's classes after them
/// (CL3, as van de Ven & Tolias train their class-incremental baselines).
pub fn direct_readout(scenario: Scenario, t: usize, head_dim: usize) -> Readout {
    match scenario {
        Scenario::Cl1 | Scenario::Cl2 => Readout::head(scenario.head(t)),
        Scenario::Cl3 => Readout {
            heads: 0..t + 1,
            label_offset: t * head_dim,
        },
    }
}

/// The evaluation of a network trained directly (weights `w`), trained in `scenario`. Task
/// given: task j's own head (CL2: the shared head). Task inferred: in CL2 the shared head (it
/// names no task); otherwise the argmax over the classes of every learned task, whose head
/// names the inferred task (the CL3 rule).
pub fn evaluate_direct(
    target: &Mlp,
    w: &[f32],
    scenario: Scenario,
    identity: TaskIdentity,
    tests: &[&TaskView],
) -> EvalRow {
    let class_incremental = identity == TaskIdentity::Inferred && scenario != Scenario::Cl2;
    let learned = tests.len();
    let hd = target.head_dim();
    let mut accuracy = Vec::with_capacity(learned);
    let mut inferred = Vec::with_capacity(learned);
    for (j, data) in tests.iter().enumerate() {
        let labels = data.labels();
        let n = data.len().max(1) as f64;
        let (heads, offset) = if class_incremental {
            (0..learned, j * hd)
        } else {
            (scenario.head(j)..scenario.head(j) + 1, 0)
        };
        let mut correct = 0usize;
        let mut picks = vec![0usize; learned];
        for_each_logits(target, w, heads, data, &mut |i, row| {
            let p = argmax(row);
            correct += usize::from(p == labels[i] + offset);
            if class_incremental {
                picks[p / hd] += 1;
            }
        });
        accuracy.push(100.0 * correct as f64 / n);
        if class_incremental {
            inferred.push(InferredEval {
                accuracy: 100.0 * correct as f64 / n,
                task_inference_accuracy: 100.0 * picks[j] as f64 / n,
                picks: picks.iter().map(|&c| 100.0 * c as f64 / n).collect(),
            });
        }
    }
    EvalRow {
        accuracy,
        inferred: class_incremental.then_some(inferred),
    }
}
