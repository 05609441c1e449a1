//! `hypertape bench`: one training step's time and matmul GFLOP/s beside a bare sgemm's.

use crate::args::{BenchArgs, BenchConfigArg};
use hypertape::run::{bench, Benchmark, LONG_SEQUENCE_TASKS};
use hypertape::{Error, Result};
use std::process::ExitCode;

/// Most previous tasks a step is timed with.
const MAX_PREVIOUS: usize = 1_000;

/// Runs the command.
pub fn exec(args: &BenchArgs) -> Result<ExitCode> {
    let (benchmark, sequence) = match args.benchmark {
        BenchConfigArg::SplitMnist => (Benchmark::SplitMnist, 5),
        BenchConfigArg::PermutedMnist => (Benchmark::PermutedMnist, 10),
        BenchConfigArg::PermutedMnist100 => (Benchmark::PermutedMnist, LONG_SEQUENCE_TASKS),
    };
    let setup = bench::BenchSetup {
        benchmark,
        sequence,
        online_targets: args.online_targets,
        regularizer: args.regularizer,
        heads: args.heads.map(|h| h as usize),
    };
    for &p in &args.previous {
        if p > MAX_PREVIOUS {
            return Err(Error::config(
                format!("--previous {p}"),
                format!("at most {MAX_PREVIOUS} previous tasks"),
            ));
        }
        // The flag that sized the network: --heads when it gives more heads than p + 1.
        let flag = match setup.heads {
            Some(h) if h > p + 1 => format!("--heads {h}"),
            _ => format!("--previous {p}"),
        };
        bench::bench_config(setup, p)
            .check_memory()
            .map_err(|e| match e {
                Error::Config { message, .. } => Error::config(flag, message),
                other => other,
            })?;
    }
    let report = bench::run_bench(setup, &args.previous, args.steps as usize);
    if args.json {
        let json = serde_json::to_string(&report).expect("the report serializes");
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} step, {} targets, regularizer {}",
        setup.name(),
        if setup.online_targets {
            "online"
        } else {
            "precomputed"
        },
        setup.regularizer.name()
    );
    for s in &report.steps {
        let form = s.form.map_or("none", |f| f.name());
        let cpu = s
            .cpu_ms_per_step
            .map_or_else(|| "-".to_string(), |c| format!("{c:.2}"));
        println!(
            "previous tasks {:>2}, {:>3} heads: {:>9.2} ms/step (fastest {:>8.2}, {cpu:>9} ms on the cores)  {:>7.2} GFLOP/s matmul ({:.2} GFLOP/step)  regularizer {form:<8} keeps {:>8.2} MB",
            s.previous_tasks,
            s.heads,
            s.ms_per_step,
            s.fastest_ms,
            s.gflops,
            bench::step_matmul_flops(setup, s.previous_tasks) * 1e-9,
            s.regularizer_bytes as f64 / 1e6
        );
    }
    let n = bench::YARDSTICK_N;
    println!(
        "sgemm {n}x{n}:          {:>7.2} GFLOP/s (one matrixmultiply call, one thread)",
        report.sgemm_gflops
    );
    let threads = rayon::current_num_threads();
    println!(
        "engine matmul {n}x{n}:  {:>7.2} GFLOP/s (Tape::matmul, split over {threads} thread{})",
        report.engine_gflops,
        if threads == 1 { "" } else { "s" }
    );
    for s in &report.steps {
        println!(
            "step/sgemm at {:>2} previous tasks: {:.3}   step/engine matmul: {:.3}",
            s.previous_tasks,
            report.sgemm_fraction(s),
            report.engine_fraction(s)
        );
    }
    Ok(ExitCode::SUCCESS)
}
