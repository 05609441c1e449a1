//! The `hypertape` command line: parses arguments, calls the library, prints. No numerics here.

use clap::{Parser, Subcommand};
use hypertape::gradcheck::{audit_ops, GradCheckOptions};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hypertape",
    version,
    about = "Reverse-mode autodiff and continual learning with hypernetworks on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Audit gradients against f64 central finite differences: every op of the tape.
    Gradcheck(GradcheckArgs),
}

#[derive(clap::Args)]
struct GradcheckArgs {
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dimensions (m, k, n) of the op inputs.
    #[arg(long, num_args = 3, value_names = ["M", "K", "N"], default_values_t = [5, 3, 7])]
    dims: Vec<usize>,
    /// Largest accepted error |a − n| / max(|a|, |n|, 1).
    #[arg(long, default_value_t = 1e-6)]
    tolerance: f64,
    /// Finite-difference step.
    #[arg(long, default_value_t = 1e-6)]
    eps: f64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gradcheck(args) => gradcheck(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn gradcheck(args: &GradcheckArgs) -> hypertape::Result<ExitCode> {
    let options = GradCheckOptions {
        eps: args.eps,
        tolerance: args.tolerance,
    };
    let dims = (args.dims[0], args.dims[1], args.dims[2]);
    if dims.0 == 0 || dims.1 == 0 || dims.2 == 0 {
        return Err(hypertape::Error::config(
            "--dims",
            "every dimension must be at least 1",
        ));
    }
    let audits = audit_ops(dims, args.seed, &options);
    println!(
        "{:<40} {:<28} {:>14}  result",
        "op", "input shapes", "max rel error"
    );
    let mut failed = 0;
    for a in &audits {
        let shapes: Vec<String> = a.shapes.iter().map(|s| format!("{s:?}")).collect();
        let ok = a.report.passed();
        failed += usize::from(!ok);
        println!(
            "{:<40} {:<28} {:>14.3e}  {}",
            a.name,
            shapes.join(" "),
            a.report.max_rel_error(),
            if ok { "pass" } else { "FAIL" }
        );
    }
    println!(
        "{} ops audited (eps {:e}, tolerance {:e}): {} passed, {} failed",
        audits.len(),
        options.eps,
        options.tolerance,
        audits.len() - failed,
        failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
