//! Diagnosis of HNET+ENT on a stored run. For every learned task's head (the shared head in
//! CL2) and every task's evaluation set: the median softmax entropy, the share of inputs
//! with an entropy below 1e-6 nats and the median top-2 logit gap; then HNET+ENT on those sets
//! without calibration and with the logit-gap temperatures (measured here on each task's
//! training inputs with the stored model).
//!
//! The evaluation sets are the validation sets if the run held some out (`--validation N`),
//! else the test sets.
//!
//!     cargo run --release --example entropy_stats -- runs/split-mnist-seed42

use hypertape::cl::inference::entropy;
use hypertape::cl::trainer::for_each_logits;
use hypertape::cl::{entropy_inference, logit_gap_temperature, Scenario};
use hypertape::data::TaskView;
use std::path::Path;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn gap(row: &[f32]) -> f64 {
    let mut s: Vec<f64> = row.iter().map(|&v| f64::from(v)).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s[0] - s.get(1).copied().unwrap_or(s[0])
}

fn main() -> hypertape::Result<()> {
    let dir = std::env::args().nth(1).expect("usage: entropy_stats DIR");
    let ckpt = hypertape::checkpoint::load(Path::new(&dir))?;
    let mut config = ckpt.config.clone();
    config.num_tasks = ckpt.completed();
    let tasks = config.load_tasks()?;
    let n = ckpt.completed();
    let scenario = ckpt.config.scenario;
    let on_validation = tasks.iter().all(|t| t.validation.is_some());
    let sets: Vec<&TaskView> = tasks
        .iter()
        .map(|t| t.validation.as_ref().unwrap_or(&t.test))
        .collect();
    let head = |k: usize| if scenario == Scenario::Cl2 { 0 } else { k };
    println!(
        "{} sets; rows: task k's weights and head, columns: set of task j",
        if on_validation { "validation" } else { "test" }
    );
    let mut table = vec![vec![[0.0f64; 3]; n]; n];
    for (k, row) in table.iter_mut().enumerate() {
        let w = ckpt.model.generated_weights(k);
        for (cell, set) in row.iter_mut().zip(&sets) {
            let (mut hs, mut gs) = (Vec::new(), Vec::new());
            for_each_logits(
                &ckpt.model.target,
                &w,
                head(k)..head(k) + 1,
                set,
                &mut |_, r| {
                    hs.push(entropy(r));
                    gs.push(gap(r));
                },
            );
            let tiny = hs.iter().filter(|&&h| h < 1e-6).count() as f64 / hs.len() as f64;
            *cell = [median(&mut hs), 100.0 * tiny, median(&mut gs)];
        }
    }
    for (i, what) in [
        "median entropy",
        "% entropy < 1e-6",
        "median top-2 logit gap",
    ]
    .iter()
    .enumerate()
    {
        println!("{what}:");
        for (k, row) in table.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|c| format!("{:>10.3e}", c[i])).collect();
            println!("  k={k} {}", cells.join(" "));
        }
    }
    let temperatures: Vec<f64> = (0..n)
        .map(|k| logit_gap_temperature(&ckpt.model, k, head(k), &tasks[k].train))
        .collect();
    println!("logit-gap temperatures {temperatures:.2?}");
    // Other quantiles of the own-training-set gap than the median, for comparison.
    let quantile_temps = |q: f64| -> Vec<f64> {
        (0..n)
            .map(|k| {
                let w = ckpt.model.generated_weights(k);
                let mut gs = Vec::new();
                for_each_logits(
                    &ckpt.model.target,
                    &w,
                    head(k)..head(k) + 1,
                    &tasks[k].train,
                    &mut |_, r| gs.push(gap(r)),
                );
                gs.sort_by(f64::total_cmp);
                gs[((gs.len() - 1) as f64 * q) as usize].max(1e-3)
            })
            .collect()
    };
    let q10 = quantile_temps(0.1);
    let q25 = quantile_temps(0.25);
    let q75 = quantile_temps(0.75);
    for (name, temps) in [
        ("none", &[][..]),
        ("logit-gap", &temperatures[..]),
        ("q10", &q10[..]),
        ("q25", &q25[..]),
        ("q75", &q75[..]),
    ] {
        let inf = entropy_inference(&ckpt.model, n, scenario, &sets, temps);
        let mean = |f: &dyn Fn(&hypertape::cl::InferredEval) -> f64| {
            inf.iter().map(f).sum::<f64>() / n as f64
        };
        println!(
            "HNET+ENT {name:>9}: accuracy {:.2} %, task inference {:.2} % per task {:.1?}; last task's inputs picked as {:.1?}",
            mean(&|e| e.accuracy),
            mean(&|e| e.task_inference_accuracy),
            inf.iter().map(|e| e.task_inference_accuracy).collect::<Vec<_>>(),
            inf[n - 1].picks
        );
        if std::env::var_os("ALL_PICKS").is_some() {
            for (j, e) in inf.iter().enumerate() {
                println!("    set {j} picked as {:.1?}", e.picks);
            }
        }
    }
    Ok(())
}
