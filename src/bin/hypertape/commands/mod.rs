//! One module per subcommand, each with `exec(args) -> Result<ExitCode>`, and what they share
//! on the terminal: the progress bar and number formats.

pub mod bench;
pub mod compare;
pub mod eval;
pub mod export;
pub mod gradcheck;
pub mod learn;
pub mod run;

use hypertape::cl::Progress;
use hypertape::run::record::{accuracy_table, summary_lines};
use hypertape::run::RunResults;
use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar per task on stderr.
pub fn progress_bar() -> impl FnMut(&Progress) {
    let style =
        ProgressStyle::with_template("task {prefix} [{bar:30}] {pos}/{len} {per_sec} {msg}")
            .expect("valid template")
            .progress_chars("=> ");
    let mut bar: Option<ProgressBar> = None;
    move |p: &Progress| {
        let b = bar.get_or_insert_with(|| {
            let b = ProgressBar::new(p.iterations as u64).with_style(style.clone());
            b.set_prefix(p.task.to_string());
            b
        });
        if p.iteration % 20 == 0 || p.iteration == p.iterations {
            b.set_position(p.iteration as u64);
            b.set_message(format!("loss {:.4} reg {:.3e}", p.task_loss, p.reg_loss));
        }
        if p.iteration == p.iterations {
            b.finish_and_clear();
            bar = None;
        }
    }
}

/// Accuracies as `98.12, 97.30`.
pub fn format_row(row: &[f64]) -> String {
    let cells: Vec<String> = row.iter().map(|a| format!("{a:.2}")).collect();
    cells.join(", ")
}

/// The per-task table and the summary lines of a run's results.
pub fn print_results(results: &RunResults) {
    print!("{}", accuracy_table(results));
    print!("{}", summary_lines(results));
    if let Some(l) = &results.vae_losses {
        let parts: Vec<String> = l.iter().map(|(r, k)| format!("{r:.4} + {k:.4}")).collect();
        println!(
            "VAE loss per task (reconstruction + KL): {}",
            parts.join(", ")
        );
    }
}
