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
use hypertape::data::default_mnist_dir;
use hypertape::run::record::{accuracy_table, summary_lines};
use hypertape::run::RunResults;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use std::path::{Path, PathBuf};

/// The data directory of a stored run: `given` (--data-dir) if any, else the stored one if it
/// still exists, else the default one ([`default_mnist_dir`]), said on stderr.
pub fn stored_data_dir(stored: &Path, given: Option<&Path>) -> PathBuf {
    if let Some(d) = given {
        return d.to_path_buf();
    }
    if stored.is_dir() {
        return stored.to_path_buf();
    }
    let default = default_mnist_dir();
    if default.is_dir() {
        eprintln!(
            "note: the run's data directory {} is gone; reading {} (give another with --data-dir)",
            stored.display(),
            default.display()
        );
        return default;
    }
    stored.to_path_buf()
}

/// A progress bar per task on stderr (drawn only on a terminal, at most a few times a
/// second), under 80 columns: task, bar, steps done, steps per second, time left, and the
/// last task loss and regularizer value.
pub fn progress_bar() -> impl FnMut(&Progress) {
    let style = ProgressStyle::with_template(
        "task {prefix:>2} [{bar:14}] {pos:>5}/{len} {rate} {left} {msg}",
    )
    .expect("valid template")
    .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
        let _ = write!(w, "{:>4.0}/s", s.per_sec());
    })
    .with_key("left", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
        let secs = s.eta().as_secs();
        let _ = if secs >= 3600 {
            write!(w, "{:>2}h{:02}m left", secs / 3600, secs % 3600 / 60)
        } else {
            write!(w, "{:>2}m{:02}s left", secs / 60, secs % 60)
        };
    })
    .progress_chars("=> ");
    let mut bar: Option<ProgressBar> = None;
    move |p: &Progress| {
        let b = bar.get_or_insert_with(|| {
            let b = ProgressBar::new(p.iterations as u64).with_style(style.clone());
            b.set_prefix(p.task.to_string());
            b
        });
        if p.iteration.is_multiple_of(20) || p.iteration == p.iterations {
            b.set_position(p.iteration as u64);
            b.set_message(format!("loss {:.2e} reg {:.1e}", p.task_loss, p.reg_loss));
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
