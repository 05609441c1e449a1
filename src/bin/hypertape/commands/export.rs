//! `hypertape export DIR --task K --out FILE`: one task's target weights as safetensors.

use crate::args::ExportArgs;
use hypertape::fsio::write_atomic;
use hypertape::run::export::export_task_weights;
use hypertape::run::RunState;
use hypertape::Result;
use std::process::ExitCode;

/// Runs the command.
pub fn exec(args: &ExportArgs) -> Result<ExitCode> {
    let state = RunState::load(&args.dir)?;
    let bytes = export_task_weights(&state, args.task)?;
    write_atomic(&args.out, &bytes)?;
    let (target, _) = state.learner.task_weights(args.task);
    let head = state.config.head(args.task);
    let names: Vec<String> = target
        .layout()
        .entries()
        .iter()
        .map(|e| format!("{} {:?}", e.name, e.shape))
        .collect();
    println!(
        "task {} ({}): {} target weights written to {} ({}); head {} is rows {}..{} of heads.*",
        args.task,
        state.tasks[args.task],
        target.num_weights(),
        args.out.display(),
        names.join(", "),
        head,
        head * target.head_dim(),
        (head + 1) * target.head_dim()
    );
    Ok(ExitCode::SUCCESS)
}
