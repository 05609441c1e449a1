//! `hypertape bench`: one training step's time and matmul GFLOP/s beside a bare sgemm's.

use crate::args::{benchmark_of, BenchArgs};
use hypertape::run::bench;
use hypertape::{Error, Result};
use std::process::ExitCode;

/// Runs the command.
pub fn exec(args: &BenchArgs) -> Result<ExitCode> {
    let setup = bench::BenchSetup {
        benchmark: benchmark_of(args.benchmark),
        online_targets: args.online_targets,
    };
    for &p in &args.previous {
        bench::bench_config(setup, p)
            .check_memory()
            .map_err(|e| match e {
                Error::Config { message, .. } => Error::config(format!("--previous {p}"), message),
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
        "{} step, {} targets",
        setup.benchmark.name(),
        if setup.online_targets {
            "online"
        } else {
            "precomputed"
        }
    );
    for s in &report.steps {
        println!(
            "previous tasks {:>2}: {:>9.2} ms/step  {:>7.2} GFLOP/s matmul ({:.2} GFLOP/step)",
            s.previous_tasks,
            s.ms_per_step,
            s.gflops,
            bench::step_matmul_flops(setup, s.previous_tasks) * 1e-9
        );
    }
    let n = bench::YARDSTICK_N;
    println!(
        "sgemm {n}x{n}:          {:>7.2} GFLOP/s (one matrixmultiply call, one thread)",
        report.sgemm_gflops
    );
    println!(
        "engine matmul {n}x{n}:  {:>7.2} GFLOP/s (Tape::matmul, split over {} threads)",
        report.engine_gflops,
        rayon::current_num_threads()
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
