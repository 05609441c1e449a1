//! Results on disk and on the terminal: atomic writes, results.json, the accuracy matrix as
//! CSV, and the per-task table.

use crate::experiment::RunResults;
use crate::{Error, Result};
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to
/// disk, then renamed over `path`. A reader sees the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::config("path", format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the directory is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Writes `dir/results.json` and `dir/accuracy_matrix.csv`.
pub fn write_results(dir: &Path, results: &RunResults) -> Result<()> {
    let json = serde_json::to_vec_pretty(results).expect("results serialize");
    write_atomic(&dir.join("results.json"), &json)?;
    write_atomic(
        &dir.join("accuracy_matrix.csv"),
        accuracy_csv(&results.accuracy_matrix).as_bytes(),
    )
}

/// The accuracy matrix as CSV: a header `after_task,task_0,…`, one row per trained task,
/// empty cells for tasks not yet seen.
pub fn accuracy_csv(matrix: &[Vec<f64>]) -> String {
    let n = matrix.len();
    let mut s = String::from("after_task");
    for j in 0..n {
        let _ = write!(s, ",task_{j}");
    }
    s.push('\n');
    for (i, row) in matrix.iter().enumerate() {
        let _ = write!(s, "{i}");
        for j in 0..n {
            match row.get(j) {
                Some(a) => {
                    let _ = write!(s, ",{a:.2}");
                }
                None => s.push(','),
            }
        }
        s.push('\n');
    }
    s
}

/// The per-task table: accuracy right after each task's training and at the end, and means;
/// with task inference (CL2/CL3), the final task-inference accuracy and the share of each
/// task's inputs assigned to the last task too.
pub fn accuracy_table(results: &RunResults) -> String {
    let inference = results.final_task_inference_accuracy.as_ref();
    let mut s = String::from("task   during %   final %");
    if inference.is_some() {
        s.push_str("   task inferred %   picked as task 0..T %");
    }
    s.push('\n');
    for (t, (d, f)) in results
        .during_accuracy
        .iter()
        .zip(&results.final_accuracy)
        .enumerate()
    {
        let _ = write!(s, "{t:>4}   {d:>8.2}   {f:>7.2}");
        if let (Some(inf), Some(picks)) = (inference, results.final_task_picks.as_ref()) {
            let cells: Vec<String> = picks[t].iter().map(|p| format!("{p:.1}")).collect();
            let _ = write!(s, "   {:>15.2}   [{}]", inf[t], cells.join(" "));
        }
        s.push('\n');
    }
    let _ = write!(
        s,
        "mean   {:>8.2}   {:>7.2}",
        results.during_mean_accuracy, results.final_mean_accuracy
    );
    if let Some(m) = results.final_mean_task_inference_accuracy {
        let _ = write!(s, "   {m:>15.2}");
    }
    s.push('\n');
    s
}

/// One line: backward transfer and forgetting in percentage points.
pub fn summary_lines(results: &RunResults) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:+.2}"));
    format!(
        "backward transfer {} pp, forgetting {} pp\n",
        f(results.backward_transfer),
        f(results.forgetting)
    )
}
