//! `hypertape gradcheck`: every op of the tape, or the whole training step, against f64 central
//! finite differences; exits non-zero on a failure.

use crate::args::GradcheckArgs;
use hypertape::cl::hnet::audit::AuditSetup;
use hypertape::cl::hnet::{Lookahead, RegularizerForm};
use hypertape::gradcheck::{audit_ops, GradCheckOptions};
use hypertape::run::{Benchmark, ExperimentConfig};
use hypertape::{Error, Result};
use std::process::ExitCode;

/// Runs the command.
pub fn exec(args: &GradcheckArgs) -> Result<ExitCode> {
    let positive = |flag: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(Error::config(
                flag,
                format!("must be a positive finite number, got {v}"),
            ))
        }
    };
    positive("--tolerance", args.tolerance)?;
    if let Some(eps) = args.eps {
        positive("--eps", eps)?;
        // Central differences need a step far above f64 rounding and far below the scale of
        // the functions checked.
        if !(1e-12..=0.1).contains(&eps) {
            return Err(Error::config(
                "--eps",
                format!("must be between 1e-12 and 0.1, got {eps:e}"),
            ));
        }
    }
    if args.pipeline {
        gradcheck_pipeline(args)
    } else {
        gradcheck_ops(args)
    }
}

/// The finite-difference settings.
fn options(args: &GradcheckArgs) -> GradCheckOptions {
    let default_eps = if args.full_size { 1e-4 } else { 1e-6 };
    GradCheckOptions {
        eps: args.eps.unwrap_or(default_eps),
        tolerance: args.tolerance,
    }
}

/// Every op of the tape.
fn gradcheck_ops(args: &GradcheckArgs) -> Result<ExitCode> {
    let dims = match args.dims.as_deref() {
        Some(&[m, k, n]) => (m, k, n),
        _ => (5, 3, 7),
    };
    let options = options(args);
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

/// The whole training step and the VAE loss.
fn gradcheck_pipeline(args: &GradcheckArgs) -> Result<ExitCode> {
    let options = options(args);
    let mut all_passed = true;
    let lookaheads = [Lookahead::Adam, Lookahead::Sgd, Lookahead::Off];
    // The trainer's regularizer in each form; the objective is always R by its definition.
    let forms = [
        (RegularizerForm::Direct, false, "direct regularizer"),
        (RegularizerForm::Factored, false, "factored regularizer"),
        (
            RegularizerForm::Factored,
            true,
            "factored regularizer, online targets",
        ),
    ];
    if args.full_size {
        for benchmark in [Benchmark::SplitMnist, Benchmark::PermutedMnist] {
            let c = ExperimentConfig::paper_defaults(benchmark);
            for &(form, online, what) in &forms[..2] {
                let setup =
                    AuditSetup::with_form(c.target(), &c.hnet, 2, 8, args.seed, form, online);
                let report = setup.directional_audit(Lookahead::Adam, args.seed, &options);
                println!(
                    "{} (θ: {} parameters, target {} weights, 2 previous tasks, Adam look-ahead, {what}): {report}",
                    benchmark.name(),
                    setup.model.theta.len(),
                    setup.model.target.num_weights()
                );
                all_passed &= report.passed;
            }
        }
    } else {
        for (form, online, what) in forms {
            let setup = AuditSetup::tiny_with_form(args.seed, form, online);
            for lookahead in lookaheads {
                let report = setup.audit(lookahead, &options);
                println!(
                    "pipeline, look-ahead {}, {what} (input 0: θ with chunk embeddings, input 1: e(T)):\n{report}",
                    lookahead.describe()
                );
                all_passed &= report.passed();
            }
        }
        let report = hypertape::cl::replay::audit::vae_audit(args.seed, &options);
        println!(
            "VAE loss of hnet-r/hnet-tir, fixed noise (input 0: encoder weights, input 1: θ of the decoder's hypernetwork, input 2: e(T)):\n{report}"
        );
        all_passed &= report.passed();
    }
    println!("{}", if all_passed { "all passed" } else { "FAILED" });
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
