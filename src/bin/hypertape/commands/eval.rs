//! `hypertape eval DIR`: test accuracy of every stored task with and without task identity.

use crate::args::EvalArgs;
use hypertape::cl::Scenario;
use hypertape::run::{RunState, TaskAccuracy};
use hypertape::Result;
use std::process::ExitCode;

/// Runs the command.
pub fn exec(args: &EvalArgs) -> Result<ExitCode> {
    let mut state = RunState::load(&args.dir)?;
    state.config.data_dir =
        super::stored_data_dir(&state.config.data_dir, args.data_dir.as_deref());
    let data = state.load_learned_data(None)?;
    let rows = state.evaluate(&data)?;
    let c = &state.config;
    println!(
        "{} {}: with task id = the task's own weights and head; without = {}",
        c.method.name(),
        c.scenario.name(),
        if c.scenario == Scenario::Cl2 {
            "the shared head (with the inferred task's weights where the method infers one)"
        } else {
            "the task inferred, read with its own head (right only if task and class are)"
        },
    );
    println!("task  spec              head  with task id %  without task id %  task inferred %  assigned to each task %");
    for r in &rows {
        let picks: Vec<String> = r.picks.iter().map(|p| format!("{p:.1}")).collect();
        println!(
            "{:>4}  {:<16}  {:>4}  {:>13.2}  {:>17.2}  {:>15}  [{}]",
            r.task,
            r.spec.to_string(),
            c.head(r.task),
            r.with_task_id,
            r.without_task_id,
            r.task_inference
                .map_or_else(|| "-".to_string(), |v| format!("{v:.2}")),
            picks.join(" ")
        );
    }
    let mean = |f: &dyn Fn(&TaskAccuracy) -> f64| {
        rows.iter().map(f).sum::<f64>() / rows.len().max(1) as f64
    };
    let inferred: Option<Vec<f64>> = rows.iter().map(|r| r.task_inference).collect();
    println!(
        "mean                          {:>13.2}  {:>17.2}  {:>15}",
        mean(&|r| r.with_task_id),
        mean(&|r| r.without_task_id),
        inferred.map_or_else(
            || "-".to_string(),
            |v| format!("{:.2}", v.iter().sum::<f64>() / v.len().max(1) as f64)
        )
    );
    Ok(ExitCode::SUCCESS)
}
