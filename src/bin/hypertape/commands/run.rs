//! `hypertape run`: learn a benchmark's tasks in sequence, or continue a stored run
//! (`--resume DIR`), or the toy regression.

use super::{format_row, print_results, progress_bar};
use crate::args::{RunArgs, RunTarget};
use hypertape::cl::train::number;
use hypertape::cl::Method;
use hypertape::fsio::write_atomic;
use hypertape::report::write_replay_pictures;
use hypertape::run::session::Session;
use hypertape::run::{store, toy, ExperimentConfig, RunDir, RunState};
use hypertape::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Runs the command.
pub fn exec(args: &RunArgs) -> Result<ExitCode> {
    if args.benchmark == Some(RunTarget::ToyRegression) {
        if args.resume.is_some() {
            return Err(Error::config(
                "--resume",
                "the toy regression keeps no checkpoint; --resume continues split-mnist and permuted-mnist runs",
            ));
        }
        if args.curve_every.is_some() {
            return Err(Error::config(
                "--curve-every",
                "the toy regression keeps no training curves; --curve-every applies to split-mnist and permuted-mnist runs",
            ));
        }
        return run_toy(args);
    }
    let (dir, mut state) = match &args.resume {
        Some(path) => {
            // Opening locks (and would create) the directory: first make sure it is one.
            if !path.is_dir() {
                return Err(Error::config(
                    "--resume",
                    format!("{}: no run directory here", path.display()),
                ));
            }
            let dir = RunDir::open(path, "hypertape run --resume")?;
            let state = resume(args, path)?;
            (dir, state)
        }
        None => {
            let benchmark = args
                .benchmark()
                .expect("clap requires a benchmark without --resume");
            let config = args.new_config(benchmark)?;
            config.validate().map_err(|e| name_size_flags(args, e))?;
            let out = out_dir(args, &config);
            let dir = RunDir::open(&out, "hypertape run").map_err(|e| match e {
                Error::Locked { .. } => e,
                other => Error::config("--out", other.to_string()),
            })?;
            if store::exists(&out) {
                return Err(Error::config(
                    "--out",
                    format!(
                        "{} already holds a checkpoint: continue it with --resume {0} or choose another --out",
                        out.display()
                    ),
                ));
            }
            (dir, RunState::new(&config)?)
        }
    };
    if let Some(n) = args.curve_every {
        state.curve_every = usize::try_from(n).unwrap_or(usize::MAX);
    }
    let out = dir.path().to_path_buf();
    let data = state.load_data()?;
    print_setup(&state.config, &state);
    let mut on_task_end = |s: &RunState| {
        let t = s.completed() - 1;
        eprintln!(
            "after task {t}: test accuracy % [{}]",
            format_row(&s.history.accuracy_matrix[t])
        );
    };
    state.continue_run(&data, Some(&dir), &mut progress_bar(), &mut on_task_end)?;
    let results = state.results();
    let pictures = write_replay_pictures(&out, &state.replay_samples(&data))?;
    print_results(&results);
    if let Some(p) = pictures.last() {
        println!("replayed samples: {}", p.display());
    }
    println!(
        "wall clock {:.1} s; checkpoint and results in {}",
        results.wall_seconds,
        out.display()
    );
    print_sessions(&results.sessions);
    Ok(ExitCode::SUCCESS)
}

/// One line on the processes that learned the run, the last in detail.
fn print_sessions(sessions: &[Session]) {
    let Some(last) = sessions.last() else {
        return;
    };
    let tasks = last.tasks();
    let peak = last
        .peak_mb
        .map_or(String::new(), |mb| format!(", peak memory {mb:.0} MB"));
    println!(
        "sessions: {} (the last learned tasks {} to {} from {}, build {}, {} thread{}{peak})",
        sessions.len(),
        tasks.start,
        tasks.end.saturating_sub(1),
        last.started,
        last.build,
        last.threads,
        if last.threads == 1 { "" } else { "s" }
    );
}

/// The run stored in `dir`, every option given checked against its configuration: one that
/// differs is refused, named as typed.
fn resume(args: &RunArgs, dir: &Path) -> Result<RunState> {
    let mut state = RunState::load(dir)?;
    for setting in args.settings() {
        let mut changed = state.config.clone();
        setting.apply(&mut changed);
        let mut stored = state.config.clone();
        // The data may have moved: --data-dir is where it is now.
        stored.data_dir = changed.data_dir.clone();
        let differences = stored.differences(&changed);
        if !differences.is_empty() {
            // A method's defaults (whole JSON objects) follow the method: name the setting.
            let scalar = differences.iter().any(|(_, was, _)| !was.starts_with('{'));
            let has: Vec<String> = differences
                .iter()
                .filter(|(_, was, _)| !scalar || !was.starts_with('{'))
                .map(|(field, was, _)| format!("{field} = {was}"))
                .collect();
            return Err(Error::config(
                setting.flag.clone(),
                format!(
                    "the run in {} has {}; --resume continues a run with its stored settings (leave the option out, or start a new run with --out)",
                    dir.display(),
                    has.join(", ")
                ),
            ));
        }
        state.config.data_dir = changed.data_dir;
    }
    state.config.data_dir =
        super::stored_data_dir(&state.config.data_dir, args.data_dir.as_deref());
    eprintln!(
        "resuming {} after {} of {} tasks",
        dir.display(),
        state.completed(),
        state.config.num_tasks
    );
    Ok(state)
}

/// A size error of the configuration, with the options given that set a size named.
fn name_size_flags(args: &RunArgs, e: Error) -> Error {
    const SIZES: [&str; 13] = [
        "--tasks",
        "--heads",
        "--batch-size",
        "--target-hidden",
        "--hnet-hidden",
        "--chunk-size",
        "--chunk-emb-dim",
        "--task-emb-dim",
        "--latent-dim",
        "--encoder-hidden",
        "--decoder-hidden",
        "--fisher-samples",
        "--validation",
    ];
    match e {
        Error::Config { field, message } if field == "sizes" => {
            let given: Vec<String> = args
                .settings()
                .iter()
                .filter(|s| SIZES.contains(&s.name()))
                .map(|s| s.flag.clone())
                .collect();
            if given.is_empty() {
                Error::Config { field, message }
            } else {
                Error::config(given.join(" "), message)
            }
        }
        other => other,
    }
}

/// `--out`, or `runs/<benchmark>-seed<seed>`.
fn out_dir(args: &RunArgs, config: &ExperimentConfig) -> PathBuf {
    args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/{}-seed{}",
            config.benchmark.name(),
            config.train.seed
        ))
    })
}

/// What is about to be trained, on stderr.
fn print_setup(config: &ExperimentConfig, state: &RunState) {
    let report = state.learner.report();
    let sizes = if report.hnet_params > 0 {
        format!(
            "target {} weights ({}), hypernetwork {} parameters (ratio {:.3})",
            report.target_weights,
            heads(config.num_heads()),
            report.hnet_params,
            report.hnet_params as f64 / report.target_weights as f64
        )
    } else {
        format!(
            "target network trained directly ({} weights, {})",
            report.target_weights,
            heads(config.num_heads())
        )
    };
    eprintln!(
        "{} {} {}: {} tasks, {sizes}, {} steps of {} per task",
        config.benchmark.name(),
        config.scenario.name(),
        config.method.name(),
        config.num_tasks,
        config.train.iterations,
        config.train.batch_size
    );
    if state.completed() == 0 && !config.has_head_for(config.num_tasks) {
        eprintln!(
            "heads: one per task, none spare: to add tasks to this run later with `hypertape learn`, start it with --heads N (N > {})",
            config.num_tasks
        );
    }
    if config.method.replays() {
        let r = &config.replay;
        eprintln!(
            "replay: VAE encoder {:?}, latent {}, decoder {:?} generated by a hypernetwork {:?} ({}), β {}",
            r.encoder_hidden,
            r.latent_dim,
            r.decoder_hidden,
            r.hnet.hidden,
            match r.hnet.chunk_size {
                Some(c) => format!("chunks of {c}"),
                None => "unchunked".to_string(),
            },
            number(r.beta)
        );
        if config.method == Method::HnetR {
            eprintln!(
                "replay targets: distilled at T = {}, unseen classes {}",
                r.temperature,
                r.unseen_classes.name()
            );
        }
    }
}

/// "1 head", "5 heads".
fn heads(n: usize) -> String {
    format!("{n} head{}", if n == 1 { "" } else { "s" })
}

/// The toy regression: hnet vs fine-tuning vs EWC.
fn run_toy(args: &RunArgs) -> Result<ExitCode> {
    const READ: [&str; 6] = [
        "--iterations",
        "--batch-size",
        "--lr",
        "--beta",
        "--ewc-lambda",
        "--seed",
    ];
    if let Some(s) = args.settings().iter().find(|s| !READ.contains(&s.name())) {
        return Err(Error::config(
            s.flag.clone(),
            format!(
                "not read by toy-regression (it reads {}, --out)",
                READ.join(", ")
            ),
        ));
    }
    let mut c = toy::ToyConfig::default();
    let set = |field: &mut usize, v: Option<usize>| {
        if let Some(v) = v {
            *field = v;
        }
    };
    set(&mut c.iterations, args.iterations);
    set(&mut c.batch_size, args.batch_size);
    c.lr = args.lr.unwrap_or(c.lr);
    c.beta = args.beta.unwrap_or(c.beta);
    c.ewc_lambda = args.ewc_lambda.unwrap_or(c.ewc_lambda);
    c.seed = args.seed.unwrap_or(c.seed);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/toy-regression-seed{}", c.seed)));
    c.validate()?;
    eprintln!(
        "toy regression: 3 tasks, {} steps of {} per task, hnet vs finetune vs ewc (λ {})",
        c.iterations, c.batch_size, c.ewc_lambda
    );
    let (results, tasks) = toy::run_toy(&c, &[Method::Hnet, Method::Finetune, Method::Ewc])?;
    let json = serde_json::to_vec_pretty(&results).expect("results serialize");
    write_atomic(&out.join("results.json"), &json)?;
    write_atomic(
        &out.join("curves.svg"),
        toy::svg(&results, &tasks).as_bytes(),
    )?;
    print!("{}", toy::mse_table(&results));
    println!(
        "wall clock {:.1} s; results in {}, curves in {}",
        results.wall_seconds,
        out.join("results.json").display(),
        out.join("curves.svg").display()
    );
    Ok(ExitCode::SUCCESS)
}
