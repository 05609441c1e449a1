//! Diagnosis of HNET+ENT on a stored run. For every learned task's head (the shared head in
//! CL2) and every task's evaluation set: the median softmax entropy, the share of inputs
//! with an entropy below 1e-6 nats and the median top-2 logit gap; then HNET+ENT on those sets
//! without calibration and with the logit-gap temperatures (measured here on each task's
//! training inputs with the stored model). Last, other rules that score each task's top-2
//! logit gap against the gaps of its own training inputs, and one that also uses its gaps on
//! the later tasks' training inputs (see [`score_rules`]).
//!
//! The evaluation sets are the validation sets if the run held some out (`--validation N`),
//! else the test sets.
//!
//!     cargo run --release --example entropy_stats -- runs/split-mnist-seed42

use hypertape::cl::eval::for_each_logits;
use hypertape::cl::hnet::entropy::entropy;
use hypertape::cl::hnet::{entropy_inference, logit_gap_temperature, HnetLearner};
use hypertape::cl::Scenario;
use hypertape::cl::{Learner, Method};
use hypertape::data::{ClassificationTask, TaskView};
use hypertape::run::store;
use hypertape::Error;
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

fn argmax(row: &[f32]) -> usize {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap()
}

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: cargo run --release --example entropy_stats -- DIR (a hypernetwork run directory)");
        return std::process::ExitCode::from(2);
    };
    match stats(&dir) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn stats(dir: &str) -> hypertape::Result<()> {
    let (snapshot, model_path) = store::load(Path::new(dir))?;
    let c = &snapshot.config;
    if c.method != Method::Hnet {
        return Err(Error::config(
            "DIR",
            format!(
                "{dir} holds a run of method {}; this reads runs of the hypernetwork (--method hnet)",
                c.method.name()
            ),
        ));
    }
    let n = snapshot.tasks.len();
    let mut learner = HnetLearner::new(
        c.target(),
        &c.hnet,
        c.hnet_init,
        c.scenario,
        &c.train,
        c.entropy_calibration,
    );
    learner
        .restore(n, snapshot.state.clone())
        .map_err(|e| Error::format(&model_path, e))?;
    let ckpt = &learner;
    let mut config = c.clone();
    config.num_tasks = n;
    let tasks = config.load_tasks()?;
    let scenario = c.scenario;
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
    score_rules(ckpt, &tasks, &sets, scenario);
    Ok(())
}

/// Task inference by the highest score of each task k's top-2 logit gap: `raw` (the gap: the
/// lowest-entropy rule), `median` (gap / T_k, T_k the median gap on task k's training inputs:
/// `--entropy-calibration logit-gap`), `cdf` (the empirical CDF of task k's training gaps at
/// the gap), `logz` (the log gap's z-score against them) and `logmean` (log gap minus their
/// mean log); these use task k's own training inputs only. `oodmid` also uses what a run could
/// measure online: head k's gaps on the training inputs of the tasks learned after k (inputs
/// it should not claim); the log gap is scaled so that the median of those maps to 0 and the
/// median of its own to 1 (the last head, which meets no later task, takes the other heads'
/// mean distance between the two medians).
fn score_rules(
    ckpt: &HnetLearner,
    tasks: &[ClassificationTask],
    sets: &[&TaskView],
    scenario: Scenario,
) {
    let n = sets.len();
    let head = |k: usize| if scenario == Scenario::Cl2 { 0 } else { k };
    // Task k's gaps on its own training inputs, sorted.
    let mut own: Vec<Vec<f64>> = vec![];
    // gaps[k][j]: head k's gap on each input of set j; preds[k][j]: its predicted class.
    let mut gaps = vec![vec![vec![]; n]; n];
    let mut preds = vec![vec![vec![]; n]; n];
    for k in 0..n {
        let w = ckpt.model.generated_weights(k);
        let mut g = vec![];
        for_each_logits(
            &ckpt.model.target,
            &w,
            head(k)..head(k) + 1,
            &tasks[k].train,
            &mut |_, r| g.push(gap(r)),
        );
        g.sort_by(f64::total_cmp);
        own.push(g);
        for j in 0..n {
            for_each_logits(
                &ckpt.model.target,
                &w,
                head(k)..head(k) + 1,
                sets[j],
                &mut |_, r| {
                    gaps[k][j].push(gap(r));
                    preds[k][j].push(argmax(r));
                },
            );
        }
    }
    // later[k]: head k's log gaps on the training inputs of the tasks after k (what a run
    // sees online: task t's data meets every earlier head when t is learned); pooled.
    let later: Vec<Vec<f64>> = (0..n)
        .map(|k| {
            let w = ckpt.model.generated_weights(k);
            let mut g = vec![];
            for t in tasks.iter().take(n).skip(k + 1) {
                for_each_logits(
                    &ckpt.model.target,
                    &w,
                    head(k)..head(k) + 1,
                    &t.train,
                    &mut |_, r| g.push(gap(r).max(1e-6).ln()),
                );
            }
            g.sort_by(f64::total_cmp);
            g
        })
        .collect();
    let lmed: Vec<f64> = own.iter().map(|g| g[g.len() / 2].max(1e-6).ln()).collect();
    let out_med: Vec<Option<f64>> = later
        .iter()
        .map(|g| (!g.is_empty()).then(|| g[g.len() / 2]))
        .collect();
    let spreads: Vec<f64> = (0..n)
        .filter_map(|k| out_med[k].map(|o| lmed[k] - o))
        .collect();
    let mean_spread = spreads.iter().sum::<f64>() / spreads.len().max(1) as f64;
    let out_mid: Vec<f64> = (0..n)
        .map(|k| out_med[k].unwrap_or(lmed[k] - mean_spread))
        .collect();
    println!("log median gap own {lmed:.2?} later tasks {out_med:.2?}");
    let labels: Vec<Vec<usize>> = sets.iter().map(|s| s.labels().to_vec()).collect();
    let cdf = |k: usize, v: f64| own[k].partition_point(|&x| x <= v) as f64 / own[k].len() as f64;
    let med: Vec<f64> = own.iter().map(|g| g[g.len() / 2]).collect();
    let lmean: Vec<f64> = own
        .iter()
        .map(|g| g.iter().map(|v| v.max(1e-6).ln()).sum::<f64>() / g.len() as f64)
        .collect();
    let lstd: Vec<f64> = own
        .iter()
        .zip(&lmean)
        .map(|(g, m)| {
            (g.iter()
                .map(|v| (v.max(1e-6).ln() - m).powi(2))
                .sum::<f64>()
                / g.len() as f64)
                .sqrt()
        })
        .collect();
    type Rule<'r> = Box<dyn Fn(usize, f64) -> f64 + 'r>;
    let rules: Vec<(&str, Rule)> = vec![
        ("raw", Box::new(|_, v| v)),
        ("median", Box::new(|k, v| v / med[k])),
        ("cdf", Box::new(|k, v| cdf(k, v) + 1e-9 * v / med[k])),
        (
            "logz",
            Box::new(|k, v| (v.max(1e-6).ln() - lmean[k]) / lstd[k]),
        ),
        ("logmean", Box::new(|k, v| v.max(1e-6).ln() - lmean[k])),
        (
            "oodmid",
            Box::new(|k, v| (v.max(1e-6).ln() - out_mid[k]) / (lmed[k] - out_mid[k]).max(0.1)),
        ),
    ];
    for (name, score) in &rules {
        let mut acc = vec![];
        let mut ti = vec![];
        for j in 0..n {
            let m = labels[j].len();
            let (mut right, mut tright) = (0, 0);
            for i in 0..m {
                let best = (0..n)
                    .max_by(|&a, &b| score(a, gaps[a][j][i]).total_cmp(&score(b, gaps[b][j][i])))
                    .unwrap();
                if best == j {
                    tright += 1;
                }
                if (scenario == Scenario::Cl2 || best == j) && preds[best][j][i] == labels[j][i] {
                    right += 1;
                }
            }
            acc.push(100.0 * right as f64 / m as f64);
            ti.push(100.0 * tright as f64 / m as f64);
        }
        println!(
            "{name:>8}: acc {:.2} ti {:.1?}",
            acc.iter().sum::<f64>() / n as f64,
            ti
        );
    }
}
