//! Diagnosis of HNET+ENT on a stored run: for every learned task's head (the shared head in
//! CL2) and every task's test set, the median softmax entropy, the share of inputs with an
//! entropy below 1e-6 nats and the median |logit margin| of the two-class heads.
//!
//!     cargo run --release --example entropy_stats -- runs/split-mnist-seed42

use hypertape::cl::inference::entropy;
use hypertape::cl::trainer::for_each_logits;
use hypertape::cl::Scenario;
use std::path::Path;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() -> hypertape::Result<()> {
    let dir = std::env::args().nth(1).expect("usage: entropy_stats DIR");
    let ckpt = hypertape::checkpoint::load(Path::new(&dir))?;
    let tasks = hypertape::experiment::load_tasks(&ckpt.config.data_dir, &ckpt.tasks)?;
    let n = ckpt.completed();
    let scenario = ckpt.config.scenario;
    println!("rows: head of task k; columns: test set of task j");
    for (what, col) in [
        ("median entropy", 0usize),
        ("share H<1e-6", 1),
        ("median |margin|", 2),
    ] {
        println!("{what}:");
        for k in 0..n {
            let w = ckpt.model.generated_weights(k);
            let head = if scenario == Scenario::Cl2 { 0 } else { k };
            let mut line = format!("  k={k}");
            for t in tasks.iter().take(n) {
                let mut hs = Vec::new();
                let mut ms = Vec::new();
                for_each_logits(
                    &ckpt.model.target,
                    &w,
                    head..head + 1,
                    &t.test,
                    &mut |_, row| {
                        hs.push(entropy(row));
                        ms.push(f64::from((row[0] - row[1]).abs()));
                    },
                );
                let v = match col {
                    0 => median(&mut hs),
                    1 => 100.0 * hs.iter().filter(|&&h| h < 1e-6).count() as f64 / hs.len() as f64,
                    _ => median(&mut ms),
                };
                line += &format!(" {v:>10.3e}");
            }
            println!("{line}");
        }
    }
    Ok(())
}
