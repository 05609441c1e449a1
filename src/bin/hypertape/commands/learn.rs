//! `hypertape learn DIR --task SPEC`: one more task on a stored run.

use super::{format_row, progress_bar};
use crate::args::LearnArgs;
use hypertape::run::{RunDir, RunState};
use hypertape::{Error, Result};
use std::process::ExitCode;

/// Runs the command.
pub fn exec(args: &LearnArgs) -> Result<ExitCode> {
    // Opening locks (and would create) the directory: first make sure it is one.
    if !args.dir.is_dir() {
        return Err(Error::format(&args.dir, "no run directory here"));
    }
    let dir = RunDir::open(&args.dir, "hypertape learn")?;
    let mut state = RunState::load(&args.dir)?;
    state.config.data_dir =
        super::stored_data_dir(&state.config.data_dir, args.data_dir.as_deref());
    // Refuse before loading data or training when there is no room.
    state.check_room_for_task()?;
    let data = state.load_learned_data(Some(args.task))?;
    if let Some(n) = args.curve_every {
        state.curve_every = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let t = state.completed();
    eprintln!(
        "learning task {t} ({}) on the {} model in {} (head {} of {}), {} steps",
        args.task,
        state.config.method.name(),
        args.dir.display(),
        state.config.head(t),
        state.config.num_heads(),
        state.config.train.iterations
    );
    state.learn_task(args.task, &data, &mut progress_bar())?;
    state.save(&dir)?;
    println!(
        "after task {t} ({}): test accuracy % [{}]",
        args.task,
        format_row(&state.history.accuracy_matrix[t])
    );
    Ok(ExitCode::SUCCESS)
}
