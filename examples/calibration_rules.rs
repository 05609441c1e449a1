//! Task-inference rules of HNET+ENT compared on a stored CL2/CL3 run: for every input, each
//! learned task k scores the top-2 logit gap of its head, and the highest score picks the
//! task. Rules: `raw` (the gap: the lowest-entropy rule), `median` (gap / T_k with T_k the
//! median gap on task k's training inputs: `--entropy-calibration logit-gap`), `cdf` (the
//! empirical CDF of task k's training gaps at the gap), `logz` (z-score of the log gap against
//! task k's training gaps) and `logmean` (log gap minus its training mean). Every rule uses
//! task k's own training inputs only. Evaluated on the validation sets if the run held some
//! out, else on the test sets (`TEST=1`: test sets always).
//!
//!     cargo run --release --example calibration_rules -- runs/split-mnist-seed42
use hypertape::cl::trainer::for_each_logits;
use hypertape::cl::Scenario;
use hypertape::data::TaskView;
use std::path::Path;

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

fn main() -> hypertape::Result<()> {
    let dir = std::env::args().nth(1).expect("DIR");
    let ckpt = hypertape::checkpoint::load(Path::new(&dir))?;
    let mut config = ckpt.config.clone();
    config.num_tasks = ckpt.completed();
    let tasks = config.load_tasks()?;
    let n = ckpt.completed();
    let scenario = ckpt.config.scenario;
    let head = |k: usize| if scenario == Scenario::Cl2 { 0 } else { k };
    let use_test = std::env::var_os("TEST").is_some();
    let sets: Vec<&TaskView> = tasks
        .iter()
        .map(|t| {
            if use_test {
                &t.test
            } else {
                t.validation.as_ref().unwrap_or(&t.test)
            }
        })
        .collect();
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
    Ok(())
}
