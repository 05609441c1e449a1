//! `hypertape compare`: methods × scenarios × seeds and a table like the paper's Table 1.

use crate::args::{benchmark_of, CompareArgs};
use hypertape::fsio::write_atomic;
use hypertape::run::compare::{markdown, run_grid, CellOrigin};
use hypertape::run::record::mean;
use hypertape::run::ExperimentConfig;
use hypertape::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs the command.
pub fn exec(args: &CompareArgs) -> Result<ExitCode> {
    let benchmark = benchmark_of(args.benchmark);
    let mut base = ExperimentConfig::paper_defaults(benchmark);
    if let Some(t) = args.tasks {
        base.num_tasks = t;
    }
    if let Some(i) = args.iterations {
        base.train.iterations = i;
    }
    base.data_dir = args.data_dir.clone();
    base.validate()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/compare-{}", benchmark.name())));
    let seeds: Vec<u64> = (0..args.seeds).map(|i| 42 + i).collect();
    let total = args.methods.len() * args.scenarios.len() * seeds.len();
    let mut done = 0;
    let results = run_grid(
        &base,
        &args.methods,
        &args.scenarios,
        &seeds,
        &out,
        args.fresh,
        &mut |s| {
            let c = &s.config;
            let t = s.completed() - 1;
            eprintln!(
                "  {} {} seed {}: after task {t}, mean test accuracy {:.2} %",
                c.method.name(),
                c.scenario.name(),
                c.train.seed,
                mean(&s.history.accuracy_matrix[t])
            );
        },
        &mut |r, origin| {
            done += 1;
            let c = &r.config;
            eprintln!(
                "[{done}/{total}] {} {} seed {}: final mean accuracy {:.2} % ({:.0} s){}",
                c.method.name(),
                c.scenario.name(),
                r.seed,
                r.final_mean_accuracy,
                r.wall_seconds,
                match origin {
                    CellOrigin::New => String::new(),
                    CellOrigin::Resumed { completed } =>
                        format!(", resumed after task {}", completed - 1),
                    CellOrigin::Reused => ", results of an earlier run".to_string(),
                }
            );
        },
    )?;
    let table = markdown(&results);
    write_atomic(&out.join("table.md"), table.as_bytes())?;
    let json = serde_json::to_vec_pretty(&results).expect("results serialize");
    write_atomic(&out.join("compare.json"), &json)?;
    print!("{table}");
    println!("written to {}", out.join("table.md").display());
    Ok(ExitCode::SUCCESS)
}
