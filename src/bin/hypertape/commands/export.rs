//! `hypertape export DIR --task K --out FILE`: one task's target weights as safetensors.

use crate::args::ExportArgs;
use hypertape::fsio::write_atomic;
use hypertape::run::export::{export_task_weights, input_map, task_classes};
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
    let spec = &state.tasks[args.task];
    let names: Vec<String> = target
        .layout()
        .entries()
        .iter()
        .map(|e| format!("{} {:?}", e.name, e.shape))
        .collect();
    let classes: Vec<String> = task_classes(spec).iter().map(|c| c.to_string()).collect();
    let (_, padding) = input_map(spec);
    println!(
        "task {} ({spec}): {} target weights written to {} ({})",
        args.task,
        target.num_weights(),
        args.out.display(),
        names.join(", "),
    );
    println!(
        "head {head}: rows {} to {} of heads.*, its outputs in order stand for the digits {}; hidden layers {}",
        head * target.head_dim(),
        (head + 1) * target.head_dim() - 1,
        classes.join(", "),
        target.activation().name(),
    );
    println!(
        "input: {} values, value i = pixel input_map[i] of the 28x28 image / 255{} (docs/export.md)",
        target.input_dim(),
        if padding > 0 {
            format!(", or 0 where input_map[i] = -1 (padding of {padding} on each side)")
        } else {
            String::new()
        },
    );
    Ok(ExitCode::SUCCESS)
}
