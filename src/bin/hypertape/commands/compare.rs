//! `hypertape compare`: methods × scenarios × seeds and a table like the paper's Table 1.
//! The whole grid here (`--jobs N`: N cells at once), or handed to a scheduler: `--list`
//! numbers the cells, `--cell K` runs one, `--collect` gathers the finished ones, `--slurm
//! FILE` writes a Slurm job array of `--cell` runs. No cluster code beyond writing that script:
//! every cell is a run of its own in its own directory.

use crate::args::{benchmark_of, CompareArgs};
use hypertape::data::default_mnist_dir;
use hypertape::fsio::write_atomic;
use hypertape::run::compare::{
    compare_figure, markdown, CellOrigin, CompareResults, Grid, GridCell,
};
use hypertape::run::record::mean;
use hypertape::run::{Benchmark, ExperimentConfig, RunResults, RunState};
use hypertape::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The exit status of `--collect` when runs are missing.
const INCOMPLETE: u8 = 3;

/// Refuses a list that names an entry twice (it would run, or count, a cell twice).
fn refuse_repeats<T: PartialEq>(flag: &str, list: &[T], name: fn(&T) -> &str) -> Result<()> {
    if let Some((i, x)) = list
        .iter()
        .enumerate()
        .find(|(i, x)| list[..*i].contains(x))
    {
        let typed: Vec<&str> = list.iter().map(name).collect();
        return Err(hypertape::Error::config(
            format!("{flag} {}", typed.join(",")),
            format!("{} is given twice (entry {})", name(x), i + 1),
        ));
    }
    Ok(())
}

/// Runs the command.
pub fn exec(args: &CompareArgs) -> Result<ExitCode> {
    refuse_repeats("--methods", &args.methods, |m| m.name())?;
    refuse_repeats("--scenarios", &args.scenarios, |s| s.name())?;
    let benchmark = benchmark_of(args.benchmark);
    // PermutedMNIST with 100 tasks or more takes the long-sequence hypernetwork, as `run`.
    let mut base = match args.tasks {
        Some(t) => ExperimentConfig::paper_defaults_for(benchmark, t),
        None => ExperimentConfig::paper_defaults(benchmark),
    };
    if let Some(i) = args.iterations {
        base.train.iterations = i;
    }
    base.data_dir = args.data_dir.clone().unwrap_or_else(default_mnist_dir);
    base.validate()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/compare-{}", benchmark.name())));
    let seeds: Vec<u64> = (0..args.seeds).map(|i| 42 + i).collect();
    let grid = Grid::new(&base, &args.methods, &args.scenarios, &seeds, &out)?;
    let total = grid.cells().len();

    if args.list {
        print!("{}", list(&grid));
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(file) = &args.slurm {
        return write_slurm(args, &base, &grid, &out, file);
    }
    if args.collect {
        let results = grid.collect()?;
        write_table(&results, &out)?;
        if results.missing.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "incomplete: {} of {total} runs missing (table.md and compare.json hold the others):",
            results.missing.len()
        );
        for m in &results.missing {
            eprintln!(
                "  cell {}: {} {} seed {} ({}): {}",
                m.index,
                m.method.name(),
                m.scenario.name(),
                m.seed,
                m.dir.display(),
                m.state()
            );
        }
        let cells: Vec<usize> = results.missing.iter().map(|m| m.index).collect();
        eprintln!(
            "run them with --cell K (on Slurm: sbatch --array={} SCRIPT), then --collect again",
            array_ranges(&cells)
        );
        return Ok(ExitCode::from(INCOMPLETE));
    }

    let done = AtomicUsize::new(0);
    let on_start = |cell: &GridCell, origin: CellOrigin| {
        if let CellOrigin::Resumed { completed } = origin {
            eprintln!(
                "  cell {}: {}: resuming after task {}",
                cell.index,
                name(&cell.config),
                completed - 1
            );
        } else if args.jobs > 1 {
            eprintln!("  cell {}: {}: started", cell.index, name(&cell.config));
        }
    };
    let on_task_end = |cell: &GridCell, s: &RunState| {
        let t = s.completed() - 1;
        eprintln!(
            "  cell {}: {}: after task {t}, mean test accuracy {:.2} %",
            cell.index,
            name(&s.config),
            mean(&s.history.accuracy_matrix[t])
        );
    };
    let on_cell = |cell: &GridCell, r: &RunResults, origin: CellOrigin| {
        let counter = match args.cell {
            Some(k) => format!("[cell {k} of 0-{}]", total - 1),
            None => format!("[{}/{total}]", done.fetch_add(1, Ordering::SeqCst) + 1),
        };
        eprintln!("{counter} {}", cell_line(cell, r, origin));
    };

    if let Some(k) = args.cell {
        let (r, origin) = grid.run_cell(k, args.fresh, &on_start, &on_task_end)?;
        on_cell(grid.cell(k)?, &r, origin);
        return Ok(ExitCode::SUCCESS);
    }
    let results = grid.run(args.fresh, args.jobs, &on_start, &on_task_end, &on_cell)?;
    write_table(&results, &out)?;
    Ok(ExitCode::SUCCESS)
}

/// Increasing indices as Slurm's --array takes them, runs of three or more as "a-b":
/// "0-2,4,6-9".
fn array_ranges(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        if j >= i + 2 {
            parts.push(format!("{}-{}", indices[i], indices[j]));
        } else {
            parts.extend(indices[i..=j].iter().map(|k| k.to_string()));
        }
        i = j + 1;
    }
    parts.join(",")
}

/// "hnet cl1 seed 42".
fn name(c: &ExperimentConfig) -> String {
    format!(
        "{} {} seed {}",
        c.method.name(),
        c.scenario.name(),
        c.train.seed
    )
}

/// The line for a finished cell.
fn cell_line(cell: &GridCell, r: &RunResults, origin: CellOrigin) -> String {
    format!(
        "cell {}: {}: final mean accuracy {:.2} % ({:.0} s){}",
        cell.index,
        name(&cell.config),
        r.final_mean_accuracy,
        r.wall_seconds,
        match origin {
            CellOrigin::New => String::new(),
            CellOrigin::Resumed { completed } => format!(", resumed after task {}", completed - 1),
            CellOrigin::Reused => ", results of an earlier run".to_string(),
        }
    )
}

/// Writes table.md, compare.svg and compare.json to `out` and prints the table.
fn write_table(results: &CompareResults, out: &Path) -> Result<()> {
    let table = markdown(results);
    write_atomic(&out.join("table.md"), table.as_bytes())?;
    write_atomic(&out.join("compare.svg"), compare_figure(results).as_bytes())?;
    let json = serde_json::to_vec_pretty(results).expect("results serialize");
    write_atomic(&out.join("compare.json"), &json)?;
    print!("{table}");
    println!(
        "written to {} (figure: {})",
        out.join("table.md").display(),
        out.join("compare.svg").display()
    );
    Ok(())
}

/// One line per cell: index, method, scenario, seed, run directory, in aligned columns.
fn list(grid: &Grid) -> String {
    let cells = grid.cells();
    let iw = (cells.len() - 1).to_string().len();
    let mw = cells
        .iter()
        .map(|c| c.method().name().len())
        .max()
        .unwrap_or(0);
    let sw = cells
        .iter()
        .map(|c| c.seed().to_string().len())
        .max()
        .unwrap_or(0);
    cells
        .iter()
        .map(|c| {
            format!(
                "{:>iw$}  {:<mw$}  {}  {:<sw$}  {}\n",
                c.index,
                c.method().name(),
                c.scenario().name(),
                c.seed(),
                c.dir.display()
            )
        })
        .collect()
}

/// `s` as one word for a POSIX shell: as it is when it holds only safe characters, else in
/// single quotes.
fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// An absolute form of `path` (not resolving links; the directory need not exist yet).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::io(path, e))
}

/// A generous wall-clock allowance for one run of `c` on one CPU, in seconds: 30 ms a
/// training step on SplitMNIST and 500 ms on PermutedMNIST (on the shared 2-core machine of
/// docs/results.md one thread takes about 10 and 70–170 ms), three times that for the
/// replay methods, a minute a task for loading and evaluating, five minutes to start; at
/// least 15 minutes, rounded up to a quarter of an hour.
fn time_allowance(c: &ExperimentConfig) -> u64 {
    let per_step_ms: u64 = match c.benchmark {
        Benchmark::SplitMnist => 30,
        Benchmark::PermutedMnist => 500,
    };
    let factor = if c.method.replays() { 3 } else { 1 };
    let steps = (c.num_tasks as u64).saturating_mul(c.train.iterations as u64);
    let seconds = steps
        .saturating_mul(per_step_ms * factor)
        .div_ceil(1000)
        .saturating_add(60 * c.num_tasks as u64 + 300);
    seconds.div_ceil(900).saturating_mul(900)
}

/// The sbatch script of the grid and the commands that submit it and collect its table.
fn write_slurm(
    args: &CompareArgs,
    base: &ExperimentConfig,
    grid: &Grid,
    out: &Path,
    file: &Path,
) -> Result<ExitCode> {
    let exe = std::env::current_exe().map_err(|e| Error::io("the hypertape binary", e))?;
    let out = absolute(out)?;
    let data = absolute(&base.data_dir)?;
    let file = absolute(file)?;
    if out.to_string_lossy().chars().any(char::is_whitespace) {
        return Err(Error::config(
            "out",
            format!(
                "{}: the log files of a Slurm array are named in #SBATCH --output, which cannot hold whitespace; choose another --out",
                out.display()
            ),
        ));
    }
    let cells = grid.cells();
    let n = cells.len();
    let mem_mib = cells
        .iter()
        .map(|c| c.config.memory_estimate().unwrap_or(0))
        .max()
        .unwrap_or(0)
        .saturating_mul(5)
        .div_ceil(4)
        .div_ceil(64 << 20)
        .saturating_mul(64)
        .max(512);
    let seconds = cells
        .iter()
        .map(|c| time_allowance(&c.config))
        .max()
        .unwrap_or(900);
    let time = format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    let join = |names: Vec<&str>| names.join(",");
    let mut words: Vec<String> = vec![
        exe.to_string_lossy().into_owned(),
        "compare".into(),
        base.benchmark.name().into(),
        "--methods".into(),
        join(args.methods.iter().map(|m| m.name()).collect()),
        "--scenarios".into(),
        join(args.scenarios.iter().map(|s| s.name()).collect()),
        "--seeds".into(),
        args.seeds.to_string(),
        "--tasks".into(),
        base.num_tasks.to_string(),
        "--iterations".into(),
        base.train.iterations.to_string(),
        "--data-dir".into(),
        data.to_string_lossy().into_owned(),
        "--out".into(),
        out.to_string_lossy().into_owned(),
    ];
    let grid_command = words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    words.push("--collect".into());
    let collect = words
        .iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ");
    let file_word = shell_word(&file.to_string_lossy());
    let script = format!(
        r#"#!/bin/bash
# hypertape compare {benchmark} as a Slurm job array: methods {methods} × scenarios {scenarios}
# × seeds {first}..{last}, {n} runs, one array task each (task K runs cell K of --list).
# Written by `hypertape compare … --slurm`. The resource lines below may be edited: --time is a
# generous allowance for the slowest cell, --mem its memory estimate with a quarter more.
#
# Submit:                         sbatch {file_word}
# Rerun (resume) cells 3 and 5:   sbatch --array=3,5 {file_word}
# When every task has ended:      {collect}
#SBATCH --job-name=hypertape-{benchmark}
#SBATCH --array=0-{last_cell}
#SBATCH --output={out}/slurm-%A_%a.log
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time={time}
#SBATCH --mem={mem_mib}M

set -eu
# As many engine threads as Slurm gives CPUs to the task.
export RAYON_NUM_THREADS="${{SLURM_CPUS_PER_TASK:-1}}"
exec {grid_command} --cell "$SLURM_ARRAY_TASK_ID"
"#,
        benchmark = base.benchmark.name(),
        methods = join(args.methods.iter().map(|m| m.name()).collect()),
        scenarios = join(args.scenarios.iter().map(|s| s.name()).collect()),
        first = cells[0].seed(),
        last = cells[n - 1].seed(),
        last_cell = n - 1,
        out = out.display(),
    );
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    write_atomic(&file, script.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&file, e))?;
    }
    let wrap = shell_word(&collect);
    println!(
        "wrote {}: a Slurm job array of {n} tasks (cells 0-{}), each --cpus-per-task=1 --time={time} --mem={mem_mib}M (edit its #SBATCH lines to change them); logs {}/slurm-<job>_<cell>.log",
        file.display(),
        n - 1,
        out.display()
    );
    println!("submit it, and collect the table when every task has ended:");
    println!("  jobid=$(sbatch --parsable {file_word} | cut -d';' -f1)");
    println!(
        "  sbatch --dependency=afterany:$jobid --job-name=hypertape-collect --output={}/slurm-collect-%j.log --wrap={wrap}",
        shell_word(&out.to_string_lossy())
    );
    println!("or, once the array has ended:");
    println!("  {collect}");
    println!(
        "a task that failed, timed out or was cancelled resumes after its last completed task when submitted again: sbatch --array=K {file_word}"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ranges_and_shell_words() {
        assert_eq!(array_ranges(&[0, 1, 2, 4, 6, 7, 8, 9]), "0-2,4,6-9");
        assert_eq!(array_ranges(&[0, 1, 3]), "0,1,3");
        assert_eq!(array_ranges(&[5]), "5");
        assert_eq!(shell_word("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
