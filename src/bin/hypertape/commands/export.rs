//! `hypertape export DIR --task K --out FILE`: one task's target weights as safetensors.

use crate::args::ExportArgs;
use hypertape::fsio::write_atomic;
use hypertape::run::export::export_task_weights;
use hypertape::run::RunState;
use hypertape::{Error, Result};
use std::path::Path;
use std::process::ExitCode;

/// Refuses an output file inside the run directory, where it could replace the checkpoint.
fn check_outside(out: &Path, dir: &Path) -> Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let (Ok(parent), Ok(dir)) = (parent.canonicalize(), dir.canonicalize()) {
        if parent.starts_with(&dir) {
            return Err(Error::config(
                "--out",
                format!(
                    "{} is inside the run directory {}; write the export outside it",
                    out.display(),
                    dir.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Runs the command.
pub fn exec(args: &ExportArgs) -> Result<ExitCode> {
    check_outside(&args.out, &args.dir)?;
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
