//! The `hypertape` command line: parses arguments, calls the library, prints. No numerics here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use hypertape::checkpoint::{self, Checkpoint};
use hypertape::cl::audit::AuditSetup;
use hypertape::cl::replay::UnseenClasses;
use hypertape::cl::trainer::Progress;
use hypertape::cl::{EntropyCalibration, Lookahead, Method, Scenario};
use hypertape::data::TaskSpec;
use hypertape::experiment::{self, Benchmark, ExperimentConfig, LearnerCheckpoint};
use hypertape::gradcheck::{audit_ops, GradCheckOptions};
use hypertape::nn::{Activation, HnetInit};
use hypertape::{report, Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hypertape",
    version,
    about = "Reverse-mode autodiff and continual learning with hypernetworks on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Learn the tasks of a benchmark in sequence (hypernetwork or a baseline) in scenario CL1,
    /// CL2 or CL3 and report per-task test accuracy, BWT, forgetting and task inference.
    Run(Box<RunArgs>),
    /// Learn one more task on the model stored in a run directory (the regularizer protects
    /// every stored task) and write a new checkpoint and results.
    Learn(LearnArgs),
    /// Test accuracy of every task stored in a run directory.
    Eval(EvalArgs),
    /// Write the target weights the stored model generates for one task as safetensors.
    Export(ExportArgs),
    /// Run methods × scenarios × seeds on a benchmark and print a table shaped like the paper's
    /// Table 1 (mean ± std over seeds of the final mean accuracy); writes table.md and
    /// compare.json.
    Compare(CompareArgs),
    /// Audit gradients against f64 central finite differences: every op of the tape, or the
    /// whole training step (--pipeline).
    Gradcheck(GradcheckArgs),
    /// Time one training step of the PermutedMNIST-10 configuration (as the PyTorch
    /// reference does; --benchmark split-mnist: SplitMNIST's) and report its matmul GFLOP/s
    /// beside a bare sgemm's.
    Bench(BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchmarkArg {
    SplitMnist,
    PermutedMnist,
}

#[derive(Clone, Copy, ValueEnum)]
enum HnetInitArg {
    Xavier,
    Hyperfan,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum RunTarget {
    SplitMnist,
    PermutedMnist,
    /// The 1-D toy regression (paper Fig. 2): hnet vs fine-tuning vs EWC, MSE table and SVG;
    /// reads --iterations, --lr, --beta, --ewc-lambda, --seed, --out.
    ToyRegression,
}

#[derive(Args)]
struct RunArgs {
    /// The benchmark; every default below is the paper's setting for it.
    benchmark: RunTarget,
    /// cl1: a head per task, task given; cl2: one shared head, task inferred; cl3: a head per
    /// task, task inferred (by predictive entropy, HNET+ENT, with --method hnet; by a
    /// task-inference network with hnet-tir; by the argmax over all classes otherwise).
    #[arg(long, default_value = "cl1")]
    scenario: Scenario,
    /// hnet, finetune, ewc, online-ewc, si (these four train the target MLP directly),
    /// hnet-r (a classifier trained on current and replayed data, the VAE's decoder generated
    /// by a hypernetwork) or hnet-tir (a task-inference network trained on replayed data picks
    /// the hypernetwork classifier's task embedding).
    #[arg(long, default_value = "hnet")]
    method: Method,
    /// hnet-r/hnet-tir: size of the VAE's latent code [100].
    #[arg(long)]
    latent_dim: Option<usize>,
    /// hnet-r/hnet-tir: hidden widths of the VAE's encoder [400,400 / 1000,1000].
    #[arg(long, value_delimiter = ',')]
    encoder_hidden: Option<Vec<usize>>,
    /// hnet-r/hnet-tir: hidden widths of the VAE's decoder [split-mnist: hnet-r 250,350,
    /// hnet-tir 300,150; permuted-mnist: hnet-r 400,400, hnet-tir 1000,1000].
    #[arg(long, value_delimiter = ',')]
    decoder_hidden: Option<Vec<usize>>,
    /// hnet-r/hnet-tir: β of the decoder hypernetwork's output regularizer [split-mnist:
    /// hnet-r 0.01, hnet-tir 0.05; permuted-mnist 0.1].
    #[arg(long)]
    replay_beta: Option<f64>,
    /// hnet-r: distillation target of the classes the teacher does not read (CL3: the new
    /// task's) for replayed samples: zero-logit (the teacher's logits padded with 0 before the
    /// softmax, as the official code) or zero-probability [zero-logit].
    #[arg(long)]
    unseen_classes: Option<UnseenClasses>,
    /// λ of EWC and online EWC [van de Ven & Tolias's value for the benchmark and scenario].
    #[arg(long)]
    ewc_lambda: Option<f64>,
    /// γ of online EWC [1].
    #[arg(long)]
    online_ewc_gamma: Option<f64>,
    /// c of SI [van de Ven & Tolias's value for the benchmark and scenario].
    #[arg(long)]
    si_c: Option<f64>,
    /// ξ of SI [0.1].
    #[arg(long)]
    si_xi: Option<f64>,
    /// Samples per Fisher estimate of EWC [1000].
    #[arg(long)]
    fisher_samples: Option<usize>,
    /// Number of tasks [split-mnist: 5, permuted-mnist: 10].
    #[arg(long)]
    tasks: Option<usize>,
    /// Training steps per task [2000 / 5000].
    #[arg(long)]
    iterations: Option<usize>,
    /// Batch size [128].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate of the hypernetwork [1e-3 / 1e-4].
    #[arg(long)]
    lr: Option<f64>,
    /// Adam learning rate of the task embeddings [same as --lr].
    #[arg(long)]
    emb_lr: Option<f64>,
    /// Strength β of the output regularizer [0.01 / 0.1].
    #[arg(long)]
    beta: Option<f64>,
    /// Hidden widths of the target MLP, comma-separated [400,400 / 1000,1000].
    #[arg(long, value_delimiter = ',')]
    target_hidden: Option<Vec<usize>>,
    /// Hidden widths of the hypernetwork, comma-separated [10,10 / 25,25].
    #[arg(long, value_delimiter = ',')]
    hnet_hidden: Option<Vec<usize>>,
    /// Hypernetwork nonlinearity: relu, elu, sigmoid, tanh [relu / elu].
    #[arg(long)]
    hnet_activation: Option<Activation>,
    /// Initialisation of the hypernetwork: xavier (the official code's) or hyperfan [xavier].
    #[arg(long, value_enum)]
    hnet_init: Option<HnetInitArg>,
    /// Weights per hypernetwork chunk; 0 for an unchunked hypernetwork [42000 / 78000].
    #[arg(long)]
    chunk_size: Option<usize>,
    /// Size of a chunk embedding [96 / 8].
    #[arg(long)]
    chunk_emb_dim: Option<usize>,
    /// Size of a task embedding [96 / 24].
    #[arg(long)]
    task_emb_dim: Option<usize>,
    /// Seed of initialisation, batches and (unless --data-seed) permutations [42].
    #[arg(long)]
    seed: Option<u64>,
    /// Seed of the PermutedMNIST permutations [--seed].
    #[arg(long)]
    data_seed: Option<u64>,
    /// Regularize at θ instead of at θ + Δθ (no look-ahead).
    #[arg(long)]
    no_lookahead: bool,
    /// Look ahead with a gradient-descent step (−lr·g) instead of an Adam step.
    #[arg(long, conflicts_with = "no_lookahead")]
    sgd_lookahead: bool,
    /// Regularize a random subset of K previous tasks per step [all].
    #[arg(long, value_name = "K")]
    reg_batch: Option<usize>,
    /// Recompute regularizer targets from a frozen copy of θ every step (constant memory).
    #[arg(long)]
    online_targets: bool,
    /// Label smoothing ε of the hypernetwork's task loss: soft targets 1 − ε on the label and
    /// ε/(n − 1) on the head's other classes (the official code's --soft_targets is ε = 0.05)
    /// [0].
    #[arg(long, value_name = "EPS")]
    label_smoothing: Option<f64>,
    /// Hold out the last N training samples of every task as a validation set: not trained
    /// on, evaluated after every task like the test sets (results.json: validation_*), to
    /// choose settings without looking at the test sets [0].
    #[arg(long, value_name = "N")]
    validation: Option<usize>,
    /// HNET+ENT calibration: none (entropies of the raw logits, the paper's rule) or
    /// logit-gap (task k's logits divided by T_k, the median top-2 logit gap on its own
    /// training inputs, measured when its training ended) [cl2, cl3: logit-gap; cl1: none].
    #[arg(long, value_name = "RULE")]
    entropy_calibration: Option<EntropyCalibration>,
    /// Directory of the MNIST IDX files.
    #[arg(long, default_value = "data/mnist")]
    data_dir: PathBuf,
    /// Output heads of the target network, to reserve heads for tasks added later with
    /// `learn` [one per task].
    #[arg(long)]
    heads: Option<usize>,
    /// Directory for the checkpoint, results.json, accuracy_matrix.csv and accuracy.svg
    /// [runs/<benchmark>-seed<seed>].
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run stored in DIR after its last completed task; the other options must
    /// be those the run was started with.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
}

#[derive(Args)]
struct LearnArgs {
    /// Run directory holding the checkpoint.
    dir: PathBuf,
    /// The task: split:A,B, permuted:none, permuted:SEED or permuted:SEED/INDEX.
    #[arg(long, value_parser = parse_spec)]
    task: TaskSpec,
    /// Directory of the MNIST IDX files [the run's].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct EvalArgs {
    /// Run directory holding the checkpoint.
    dir: PathBuf,
    /// Directory of the MNIST IDX files [the run's].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ExportArgs {
    /// Run directory holding the checkpoint.
    dir: PathBuf,
    /// Index of the task whose weights to write.
    #[arg(long)]
    task: usize,
    /// Output file (safetensors).
    #[arg(long)]
    out: PathBuf,
}

fn parse_spec(s: &str) -> std::result::Result<TaskSpec, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

#[derive(Args)]
struct CompareArgs {
    /// The benchmark (paper settings unless overridden below).
    benchmark: BenchmarkArg,
    /// Methods, comma-separated (rows): hnet, finetune, ewc, online-ewc, si, hnet-r,
    /// hnet-tir.
    #[arg(long, value_delimiter = ',', default_values = ["hnet", "finetune", "ewc", "online-ewc", "si"])]
    methods: Vec<Method>,
    /// Scenarios, comma-separated (columns).
    #[arg(long, value_delimiter = ',', default_values = ["cl1", "cl2", "cl3"])]
    scenarios: Vec<Scenario>,
    /// Number of seeds: 42, 43, …
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// Number of tasks [5 / 10].
    #[arg(long)]
    tasks: Option<usize>,
    /// Training steps per task [2000 / 5000].
    #[arg(long)]
    iterations: Option<usize>,
    /// Directory of the MNIST IDX files.
    #[arg(long, default_value = "data/mnist")]
    data_dir: PathBuf,
    /// Directory for table.md, compare.json and every run's results [runs/compare-<benchmark>].
    /// A run whose results.json is already there with the same settings (every one the method
    /// reads; the data directory may differ) is not run again.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run every cell again, even where the output directory holds its results.
    #[arg(long)]
    fresh: bool,
}

#[derive(Args)]
struct GradcheckArgs {
    /// Audit the whole training step (hnet → target → loss + look-ahead regularizer) on a tiny
    /// f64 configuration, element by element, and the VAE loss of hnet-r/hnet-tir (encoder,
    /// decoder hypernetwork, embedding) with fixed noise.
    #[arg(long)]
    pipeline: bool,
    /// With --pipeline: audit the paper's SplitMNIST and PermutedMNIST configurations in f64
    /// with a projected check (one random direction over all parameters).
    #[arg(long, requires = "pipeline")]
    full_size: bool,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dimensions (m, k, n) of the op inputs.
    #[arg(long, num_args = 3, value_names = ["M", "K", "N"], default_values_t = [5, 3, 7])]
    dims: Vec<usize>,
    /// Largest accepted error |a − n| / max(|a|, |n|, 1).
    #[arg(long, default_value_t = 1e-6)]
    tolerance: f64,
    /// Finite-difference step [1e-6; with --full-size 1e-4 along a unit direction, large
    /// enough that rounding in the loss of a full-size model stays far below the tolerance].
    #[arg(long)]
    eps: Option<f64>,
}

#[derive(Args)]
struct BenchArgs {
    /// The benchmark whose paper configuration the step uses (permuted-mnist: the PyTorch
    /// reference's step).
    #[arg(long, value_enum, default_value = "permuted-mnist")]
    benchmark: BenchmarkArg,
    /// Regularizer targets recomputed from θ* in every step (as `run --online-targets`).
    #[arg(long)]
    online_targets: bool,
    /// Timed steps per configuration (median reported, after 3 warm-up steps).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    steps: u64,
    /// Numbers of previous tasks to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1, 9])]
    previous: Vec<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Learn(args) => learn(&args),
        Command::Eval(args) => eval(&args),
        Command::Export(args) => export(&args),
        Command::Compare(args) => compare(&args),
        Command::Gradcheck(args) if args.pipeline => gradcheck_pipeline(&args),
        Command::Gradcheck(args) => gradcheck_ops(&args),
        Command::Bench(args) => bench(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Overwrites `field` with the value of an option that was given.
fn set<T: Clone>(field: &mut T, option: &Option<T>) {
    if let Some(v) = option {
        *field = v.clone();
    }
}

fn experiment_config(args: &RunArgs) -> ExperimentConfig {
    let benchmark = match args.benchmark {
        RunTarget::SplitMnist | RunTarget::ToyRegression => Benchmark::SplitMnist,
        RunTarget::PermutedMnist => Benchmark::PermutedMnist,
    };
    let mut c = ExperimentConfig::paper_defaults(benchmark);
    c.set_method_and_scenario(args.method, args.scenario);
    let r = &mut c.replay;
    set(&mut r.latent_dim, &args.latent_dim);
    set(&mut r.encoder_hidden, &args.encoder_hidden);
    set(&mut r.decoder_hidden, &args.decoder_hidden);
    set(&mut r.beta, &args.replay_beta);
    set(&mut r.unseen_classes, &args.unseen_classes);
    let b = &mut c.baseline;
    set(&mut b.ewc_lambda, &args.ewc_lambda);
    set(&mut b.online_ewc_gamma, &args.online_ewc_gamma);
    set(&mut b.si_c, &args.si_c);
    set(&mut b.si_xi, &args.si_xi);
    set(&mut b.fisher_samples, &args.fisher_samples);
    let t = &mut c.train;
    set(&mut c.num_tasks, &args.tasks);
    set(&mut t.iterations, &args.iterations);
    set(&mut t.batch_size, &args.batch_size);
    if let Some(v) = args.lr {
        t.lr = v;
        t.emb_lr = v;
    }
    set(&mut t.emb_lr, &args.emb_lr);
    set(&mut t.beta, &args.beta);
    if let Some(v) = args.seed {
        t.seed = v;
        c.data_seed = v;
    }
    set(&mut c.data_seed, &args.data_seed);
    t.lookahead = if args.no_lookahead {
        Lookahead::Off
    } else if args.sgd_lookahead {
        Lookahead::Sgd
    } else {
        Lookahead::Adam
    };
    t.reg_batch = args.reg_batch;
    t.online_targets = args.online_targets;
    set(&mut t.label_smoothing, &args.label_smoothing);
    set(&mut c.validation, &args.validation);
    set(&mut c.entropy_calibration, &args.entropy_calibration);
    set(&mut c.target_hidden, &args.target_hidden);
    let h = &mut c.hnet;
    set(&mut h.hidden, &args.hnet_hidden);
    set(&mut h.activation, &args.hnet_activation);
    if let Some(v) = args.hnet_init {
        c.hnet_init = match v {
            HnetInitArg::Xavier => HnetInit::Xavier,
            HnetInitArg::Hyperfan => HnetInit::Hyperfan,
        };
    }
    if let Some(v) = args.chunk_size {
        h.chunk_size = (v > 0).then_some(v);
    }
    set(&mut h.chunk_emb_dim, &args.chunk_emb_dim);
    set(&mut h.task_emb_dim, &args.task_emb_dim);
    c.heads = args.heads;
    c.data_dir = args.data_dir.clone();
    c
}

fn run_toy(args: &RunArgs) -> Result<ExitCode> {
    let mut c = hypertape::toy::ToyConfig::default();
    set(&mut c.iterations, &args.iterations);
    set(&mut c.batch_size, &args.batch_size);
    set(&mut c.lr, &args.lr);
    set(&mut c.beta, &args.beta);
    set(&mut c.ewc_lambda, &args.ewc_lambda);
    set(&mut c.seed, &args.seed);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/toy-regression-seed{}", c.seed)));
    eprintln!(
        "toy regression: 3 tasks, {} steps of {} per task, hnet vs finetune vs ewc (λ {})",
        c.iterations, c.batch_size, c.ewc_lambda
    );
    let (results, tasks) =
        hypertape::toy::run_toy(&c, &[Method::Hnet, Method::Finetune, Method::Ewc])?;
    let json = serde_json::to_vec_pretty(&results).expect("results serialize");
    report::write_atomic(&out.join("results.json"), &json)?;
    report::write_atomic(
        &out.join("curves.svg"),
        hypertape::toy::svg(&results, &tasks).as_bytes(),
    )?;
    print!("{}", hypertape::toy::mse_table(&results));
    println!(
        "wall clock {:.1} s; results in {}, curves in {}",
        results.wall_seconds,
        out.join("results.json").display(),
        out.join("curves.svg").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A progress bar per task on stderr.
fn progress_bar() -> impl FnMut(&Progress) {
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

fn format_row(row: &[f64]) -> String {
    let cells: Vec<String> = row.iter().map(|a| format!("{a:.2}")).collect();
    cells.join(", ")
}

/// Writes the checkpoint, then results.json, accuracy_matrix.csv and accuracy.svg.
fn save_all(dir: &Path, state: &Checkpoint) -> Result<()> {
    checkpoint::save(dir, state)?;
    report::write_results(dir, &experiment::results(state))
}

fn run(args: &RunArgs) -> Result<ExitCode> {
    if args.benchmark == RunTarget::ToyRegression {
        return run_toy(args);
    }
    let config = experiment_config(args);
    config.validate()?;
    if config.method != Method::Hnet {
        return run_learner(args, &config);
    }
    let (out, mut state) = resume_or_new(
        args,
        &config,
        checkpoint::load,
        |s| &mut s.config,
        Checkpoint::completed,
        Checkpoint::new,
    )?;
    let tasks = config.load_tasks()?;
    let (target, hnet) = (&state.model.target, &state.model.hnet);
    eprintln!(
        "{} {}: {} tasks, target {} weights ({} heads), hypernetwork {} parameters (ratio {:.3}), {} steps of {} per task",
        config.benchmark.name(),
        config.scenario.name(),
        config.num_tasks,
        target.num_weights(),
        target.num_heads(),
        hnet.num_params(),
        hnet.num_params() as f64 / target.num_weights() as f64,
        config.train.iterations,
        config.train.batch_size
    );
    let mut on_progress = progress_bar();
    let mut on_task_end = |s: &Checkpoint| {
        let t = s.completed() - 1;
        eprintln!(
            "after task {t}: test accuracy % [{}]",
            format_row(&s.history.accuracy_matrix[t])
        );
        save_all(&out, s)
    };
    experiment::continue_run(&mut state, &tasks, &mut on_progress, &mut on_task_end)?;
    let results = experiment::results(&state);
    report::write_results(&out, &results)?;
    print!("{}", report::accuracy_table(&results));
    print!("{}", report::summary_lines(&results));
    println!(
        "wall clock {:.1} s; checkpoint and results in {}",
        results.wall_seconds,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The run directory and its state: with `--resume DIR`, the checkpoint in DIR (`load`),
/// whose configuration must be the one given (the data directory is the one given now);
/// otherwise `--out` and a fresh state (`fresh`), refused if `--out` already holds a
/// checkpoint.
fn resume_or_new<S>(
    args: &RunArgs,
    config: &ExperimentConfig,
    load: fn(&Path) -> Result<S>,
    config_of: fn(&mut S) -> &mut ExperimentConfig,
    completed: fn(&S) -> usize,
    fresh: fn(&ExperimentConfig) -> Result<S>,
) -> Result<(PathBuf, S)> {
    match &args.resume {
        Some(dir) => {
            let mut state = load(dir)?;
            let stored = config_of(&mut state);
            stored.check_same(config)?;
            stored.data_dir = config.data_dir.clone();
            eprintln!(
                "resuming {} after {} of {} tasks",
                dir.display(),
                completed(&state),
                config.num_tasks
            );
            Ok((dir.clone(), state))
        }
        None => {
            let out = out_dir(args, config);
            if checkpoint::exists(&out) {
                return Err(Error::config(
                    "out",
                    format!(
                        "{} already holds a checkpoint: continue it with --resume {0} or choose another --out",
                        out.display()
                    ),
                ));
            }
            Ok((out, fresh(config)?))
        }
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

/// A run of a baseline, HNET+R or HNET+TIR: after every task its checkpoint
/// ([`checkpoint::save_learner`]) and results.json, accuracy_matrix.csv and accuracy.svg; at
/// the end, for HNET+R and HNET+TIR, the replay model's samples per task (replay-task<k>.png,
/// replay.png). `--resume DIR` continues a stopped run after its last completed task.
fn run_learner(args: &RunArgs, config: &ExperimentConfig) -> Result<ExitCode> {
    let (out, mut state) = resume_or_new(
        args,
        config,
        checkpoint::load_learner,
        |s| &mut s.config,
        LearnerCheckpoint::completed,
        LearnerCheckpoint::new,
    )?;
    let tasks = config.load_tasks()?;
    let target = config.target();
    eprintln!(
        "{} {}: {} tasks, {} on the target network ({} weights), {} steps of {} per task",
        config.benchmark.name(),
        config.scenario.name(),
        config.num_tasks,
        config.method.name(),
        target.num_weights(),
        config.train.iterations,
        config.train.batch_size
    );
    if config.method.replays() {
        let r = &config.replay;
        eprintln!(
            "replay: VAE encoder {:?}, latent {}, decoder {:?} generated by a hypernetwork {:?} (chunks of {:?}), β {}",
            r.encoder_hidden, r.latent_dim, r.decoder_hidden, r.hnet.hidden, r.hnet.chunk_size, r.beta
        );
        if config.method == Method::HnetR {
            eprintln!(
                "replay targets: distilled at T = {}, unseen classes {}",
                r.temperature,
                r.unseen_classes.name()
            );
        }
    }
    let mut on_task_end = |s: &LearnerCheckpoint| {
        let t = s.completed() - 1;
        eprintln!(
            "after task {t}: test accuracy % [{}]",
            format_row(&s.history.accuracy_matrix[t])
        );
        checkpoint::save_learner(&out, s)?;
        report::write_results(&out, &experiment::learner_results(s))
    };
    let output = experiment::continue_learner_run(
        &mut state,
        &tasks,
        &mut progress_bar(),
        &mut on_task_end,
    )?;
    let results = &output.results;
    report::write_results(&out, results)?;
    let pictures = report::write_replay_pictures(&out, &output.replay_samples)?;
    print!("{}", report::accuracy_table(results));
    print!("{}", report::summary_lines(results));
    if let Some(l) = &results.vae_losses {
        let parts: Vec<String> = l.iter().map(|(r, k)| format!("{r:.4} + {k:.4}")).collect();
        println!(
            "VAE loss per task (reconstruction + KL): {}",
            parts.join(", ")
        );
    }
    if let Some(p) = pictures.last() {
        println!("replayed samples: {}", p.display());
    }
    println!(
        "wall clock {:.1} s; checkpoint and results in {}",
        results.wall_seconds,
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The stored model and the data of its tasks (plus `extra`).
fn load_with_tasks(
    dir: &Path,
    data_dir: Option<&PathBuf>,
    extra: Option<TaskSpec>,
) -> Result<(Checkpoint, Vec<hypertape::data::ClassificationTask>)> {
    let mut state = checkpoint::load(dir)?;
    if let Some(d) = data_dir {
        state.config.data_dir = d.clone();
    }
    if let Some(spec) = &extra {
        state.config.check_task(spec)?;
    }
    let specs: Vec<TaskSpec> = state.tasks.iter().copied().chain(extra).collect();
    let tasks = experiment::load_tasks(&state.config.data_dir, &specs, 0)?;
    Ok((state, tasks))
}

fn learn(args: &LearnArgs) -> Result<ExitCode> {
    let (mut state, tasks) = load_with_tasks(&args.dir, args.data_dir.as_ref(), Some(args.task))?;
    let t = state.completed();
    eprintln!(
        "learning task {t} ({}) on the model in {} ({} heads, {} used), {} steps",
        args.task,
        args.dir.display(),
        state.config.num_heads(),
        t,
        state.config.train.iterations
    );
    let row = experiment::learn(&mut state, args.task, &tasks, &mut progress_bar())?;
    save_all(&args.dir, &state)?;
    println!(
        "after task {t} ({}): test accuracy % [{}]",
        args.task,
        format_row(&row)
    );
    Ok(ExitCode::SUCCESS)
}

fn eval(args: &EvalArgs) -> Result<ExitCode> {
    let (state, tasks) = load_with_tasks(&args.dir, args.data_dir.as_ref(), None)?;
    let rows = experiment::evaluate(&state, &tasks)?;
    println!(
        "scenario {}: with task id = the task's embedding and head; without = the task inferred by predictive entropy ({}; {} calibration)",
        state.config.scenario.name(),
        if state.config.scenario == Scenario::Cl2 {
            "shared head"
        } else {
            "each task's own head, right only if task and class are"
        },
        state.config.entropy_calibration.name()
    );
    println!("task  spec              head  with task id %  without task id %  task inferred %  picked as task 0..T %");
    for r in &rows {
        let picks: Vec<String> = r.picks.iter().map(|p| format!("{p:.1}")).collect();
        println!(
            "{:>4}  {:<16}  {:>4}  {:>13.2}  {:>17.2}  {:>15.2}  [{}]",
            r.task,
            r.spec.to_string(),
            state.config.head(r.task),
            r.with_task_id,
            r.without_task_id,
            r.task_inference,
            picks.join(" ")
        );
    }
    let mean = |f: &dyn Fn(&experiment::TaskAccuracy) -> f64| {
        rows.iter().map(f).sum::<f64>() / rows.len().max(1) as f64
    };
    println!(
        "mean                          {:>13.2}  {:>17.2}  {:>15.2}",
        mean(&|r| r.with_task_id),
        mean(&|r| r.without_task_id),
        mean(&|r| r.task_inference)
    );
    Ok(ExitCode::SUCCESS)
}

fn export(args: &ExportArgs) -> Result<ExitCode> {
    let state = checkpoint::load(&args.dir)?;
    let bytes = checkpoint::export_task_weights(&state, args.task)?;
    let head = state.config.head(args.task);
    report::write_atomic(&args.out, &bytes)?;
    let names: Vec<String> = state
        .model
        .target
        .layout()
        .entries()
        .iter()
        .map(|e| format!("{} {:?}", e.name, e.shape))
        .collect();
    println!(
        "task {} ({}): {} target weights written to {} ({}); head {} is rows {}..{} of heads.*",
        args.task,
        state.tasks[args.task],
        state.model.target.num_weights(),
        args.out.display(),
        names.join(", "),
        head,
        head * state.model.target.head_dim(),
        (head + 1) * state.model.target.head_dim()
    );
    Ok(ExitCode::SUCCESS)
}

fn benchmark_of(arg: BenchmarkArg) -> Benchmark {
    match arg {
        BenchmarkArg::SplitMnist => Benchmark::SplitMnist,
        BenchmarkArg::PermutedMnist => Benchmark::PermutedMnist,
    }
}

fn compare(args: &CompareArgs) -> Result<ExitCode> {
    let benchmark = benchmark_of(args.benchmark);
    let mut base = ExperimentConfig::paper_defaults(benchmark);
    set(&mut base.num_tasks, &args.tasks);
    set(&mut base.train.iterations, &args.iterations);
    base.data_dir = args.data_dir.clone();
    base.validate()?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/compare-{}", benchmark.name())));
    let seeds: Vec<u64> = (0..args.seeds).map(|i| 42 + i).collect();
    let total = args.methods.len() * args.scenarios.len() * seeds.len();
    let mut done = 0;
    let mut written: Result<()> = Ok(());
    let run_dir = |c: &ExperimentConfig| {
        let name = format!(
            "{}-{}-seed{}",
            c.method.name(),
            c.scenario.name(),
            c.train.seed
        );
        out.join(name)
    };
    let mut earlier = |c: &ExperimentConfig| {
        if args.fresh {
            return None;
        }
        // Unreadable or different earlier results are simply run again (and overwritten).
        let bytes = std::fs::read(run_dir(c).join("results.json")).ok()?;
        serde_json::from_slice::<experiment::RunResults>(&bytes).ok()
    };
    let results = hypertape::compare::run_grid(
        &base,
        &args.methods,
        &args.scenarios,
        &seeds,
        &mut earlier,
        &mut |c, t, row| {
            eprintln!(
                "  {} {} seed {}: after task {t}, mean test accuracy {:.2} %",
                c.method.name(),
                c.scenario.name(),
                c.train.seed,
                experiment::mean(row)
            );
        },
        &mut |o, reused| {
            let r = &o.results;
            done += 1;
            let c = &r.config;
            eprintln!(
                "[{done}/{total}] {} {} seed {}: final mean accuracy {:.2} % ({:.0} s){}",
                c.method.name(),
                c.scenario.name(),
                r.seed,
                r.final_mean_accuracy,
                r.wall_seconds,
                if reused {
                    ", results of an earlier run"
                } else {
                    ""
                }
            );
            if !reused && written.is_ok() {
                let dir = run_dir(c);
                written = report::write_results(&dir, r)
                    .and_then(|()| report::write_replay_pictures(&dir, &o.replay_samples))
                    .map(|_| ());
            }
        },
    )?;
    written?;
    let table = hypertape::compare::markdown(&results);
    report::write_atomic(&out.join("table.md"), table.as_bytes())?;
    let json = serde_json::to_vec_pretty(&results).expect("results serialize");
    report::write_atomic(&out.join("compare.json"), &json)?;
    print!("{table}");
    println!("written to {}", out.join("table.md").display());
    Ok(ExitCode::SUCCESS)
}

fn options(args: &GradcheckArgs) -> GradCheckOptions {
    let default_eps = if args.full_size { 1e-4 } else { 1e-6 };
    GradCheckOptions {
        eps: args.eps.unwrap_or(default_eps),
        tolerance: args.tolerance,
    }
}

fn gradcheck_ops(args: &GradcheckArgs) -> Result<ExitCode> {
    let dims = (args.dims[0], args.dims[1], args.dims[2]);
    if dims.0 == 0 || dims.1 == 0 || dims.2 == 0 {
        return Err(Error::config(
            "--dims",
            "every dimension must be at least 1",
        ));
    }
    let options = options(args);
    let audits = audit_ops(dims, args.seed, &options);
    println!(
        "{:<40} {:<28} {:>14}  result",
        "op", "input shapes", "max rel error"
    );
    let mut failed = 0;
    for a in &audits {
        let shapes: Vec<String> = a.shapes.iter().map(|s| format!("{s:?}")).collect();
        let ok = a.report.passed();
        failed += usize::from(!ok);
        println!(
            "{:<40} {:<28} {:>14.3e}  {}",
            a.name,
            shapes.join(" "),
            a.report.max_rel_error(),
            if ok { "pass" } else { "FAIL" }
        );
    }
    println!(
        "{} ops audited (eps {:e}, tolerance {:e}): {} passed, {} failed",
        audits.len(),
        options.eps,
        options.tolerance,
        audits.len() - failed,
        failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn gradcheck_pipeline(args: &GradcheckArgs) -> Result<ExitCode> {
    let options = options(args);
    let mut all_passed = true;
    let lookaheads = [Lookahead::Adam, Lookahead::Sgd, Lookahead::Off];
    if args.full_size {
        for benchmark in [Benchmark::SplitMnist, Benchmark::PermutedMnist] {
            let c = ExperimentConfig::paper_defaults(benchmark);
            let setup = AuditSetup::new(c.target(), &c.hnet, 2, 8, args.seed);
            let report = setup.directional_audit(Lookahead::Adam, args.seed, &options);
            println!(
                "{} (θ: {} parameters, target {} weights, 2 previous tasks, Adam look-ahead): {report}",
                benchmark.name(),
                setup.model.theta.len(),
                setup.model.target.num_weights()
            );
            all_passed &= report.passed;
        }
    } else {
        let setup = AuditSetup::tiny(args.seed);
        for lookahead in lookaheads {
            let report = setup.audit(lookahead, &options);
            println!(
                "pipeline, look-ahead {lookahead:?} (input 0: θ with chunk embeddings, input 1: e(T)):\n{report}"
            );
            all_passed &= report.passed();
        }
        let report = hypertape::cl::audit::vae_audit(args.seed, &options);
        println!(
            "VAE loss of hnet-r/hnet-tir, fixed noise (input 0: encoder weights, input 1: θ of the decoder's hypernetwork, input 2: e(T)):\n{report}"
        );
        all_passed &= report.passed();
    }
    println!("{}", if all_passed { "all passed" } else { "FAILED" });
    Ok(if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bench(args: &BenchArgs) -> Result<ExitCode> {
    let setup = hypertape::bench::BenchSetup {
        benchmark: benchmark_of(args.benchmark),
        online_targets: args.online_targets,
    };
    let report = hypertape::bench::run_bench(setup, &args.previous, args.steps as usize);
    if args.json {
        let json = serde_json::to_string(&report).expect("the report serializes");
        println!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} step, {} targets",
        setup.benchmark.name(),
        if setup.online_targets {
            "online"
        } else {
            "precomputed"
        }
    );
    for s in &report.steps {
        println!(
            "previous tasks {:>2}: {:>9.2} ms/step  {:>7.2} GFLOP/s matmul ({:.2} GFLOP/step)",
            s.previous_tasks,
            s.ms_per_step,
            s.gflops,
            hypertape::bench::step_matmul_flops(setup, s.previous_tasks) * 1e-9
        );
    }
    let n = hypertape::bench::YARDSTICK_N;
    println!(
        "sgemm {n}x{n}:          {:>7.2} GFLOP/s (one matrixmultiply call, one thread)",
        report.sgemm_gflops
    );
    println!(
        "engine matmul {n}x{n}:  {:>7.2} GFLOP/s (Tape::matmul, split over {} threads)",
        report.engine_gflops,
        rayon::current_num_threads()
    );
    for s in &report.steps {
        println!(
            "step/sgemm at {:>2} previous tasks: {:.3}   step/engine matmul: {:.3}",
            s.previous_tasks,
            report.sgemm_fraction(s),
            report.engine_fraction(s)
        );
    }
    Ok(ExitCode::SUCCESS)
}
