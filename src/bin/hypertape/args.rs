//! The command line's arguments: parsed once by clap, then turned into the library's values
//! (an [`ExperimentConfig`] and the settings the user typed).

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hypertape::cl::hnet::{EntropyCalibration, RegularizerForm};
use hypertape::cl::replay::UnseenClasses;
use hypertape::cl::{Method, Scenario};
use hypertape::data::TaskSpec;
use hypertape::nn::Activation;
use hypertape::run::Benchmark;
use hypertape::Error;
use std::path::PathBuf;

/// The command line.
#[derive(Parser)]
#[command(
    name = "hypertape",
    version,
    about = "Reverse-mode autodiff and continual learning with hypernetworks on the CPU"
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
/// The subcommands.
pub enum Command {
    /// Learn the tasks of a benchmark in sequence (hypernetwork or a baseline) in scenario CL1,
    /// CL2 or CL3 and report per-task test accuracy, BWT, forgetting and task inference.
    Run(Box<RunArgs>),
    /// Learn one more task on the model stored in a run directory (the regularizer protects
    /// every stored task) and write a new checkpoint and results.
    Learn(LearnArgs),
    /// Test accuracy of every task stored in a run directory.
    Eval(EvalArgs),
    /// Write the target weights the stored model uses for one task as safetensors, with the
    /// input map, head, classes, activation and input scaling needed to use them elsewhere.
    Export(ExportArgs),
    /// Run methods × scenarios × seeds on a benchmark and print a table shaped like the paper's
    /// Table 1 (mean ± std over seeds of the final mean accuracy); writes table.md and
    /// compare.json.
    Compare(CompareArgs),
    /// Audit gradients against f64 central finite differences: every op of the tape, or the
    /// whole training step (--pipeline).
    Gradcheck(GradcheckArgs),
    /// Time one training step of the PermutedMNIST-10 configuration (as the PyTorch
    /// reference does; --benchmark split-mnist: SplitMNIST's, permuted-mnist-100:
    /// PermutedMNIST-100's) at several numbers of previous tasks and report its matmul
    /// GFLOP/s beside a bare sgemm's, the regularizer's form and the memory it keeps.
    Bench(BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
/// A benchmark.
pub enum BenchmarkArg {
    SplitMnist,
    PermutedMnist,
}

#[derive(Clone, Copy, ValueEnum)]
/// The configuration `bench` times.
pub enum BenchConfigArg {
    SplitMnist,
    PermutedMnist,
    #[value(name = "permuted-mnist-100")]
    PermutedMnist100,
}

#[derive(Clone, Copy, ValueEnum)]
/// An initialisation of the hypernetwork.
pub enum HnetInitArg {
    Xavier,
    Hyperfan,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
/// What `run` learns.
pub enum RunTarget {
    SplitMnist,
    PermutedMnist,
    /// The 1-D toy regression (paper Fig. 2): hnet vs fine-tuning vs EWC, MSE table and SVG;
    /// reads --iterations, --lr, --beta, --ewc-lambda, --seed, --out.
    ToyRegression,
}

#[derive(Args)]
pub struct RunArgs {
    /// The benchmark; every default below is the paper's setting for it (with --resume: the
    /// stored run's).
    #[arg(required_unless_present = "resume")]
    pub benchmark: Option<RunTarget>,
    /// cl1: a head per task, task given; cl2: one shared head, task inferred; cl3: a head per
    /// task, task inferred (by predictive entropy, HNET+ENT, with --method hnet; by a
    /// task-inference network with hnet-tir; by the argmax over all classes otherwise) [cl1].
    #[arg(long)]
    pub scenario: Option<Scenario>,
    /// hnet, finetune, ewc, online-ewc, si (these four train the target MLP directly),
    /// hnet-r (a classifier trained on current and replayed data, the VAE's decoder generated
    /// by a hypernetwork) or hnet-tir (a task-inference network trained on replayed data picks
    /// the hypernetwork classifier's task embedding) [hnet].
    #[arg(long)]
    pub method: Option<Method>,
    /// hnet-r/hnet-tir: size of the VAE's latent code [100].
    #[arg(long)]
    pub latent_dim: Option<usize>,
    /// hnet-r/hnet-tir: hidden widths of the VAE's encoder [400,400 / 1000,1000].
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub encoder_hidden: Option<Vec<usize>>,
    /// hnet-r/hnet-tir: hidden widths of the VAE's decoder [split-mnist: hnet-r 250,350,
    /// hnet-tir 300,150; permuted-mnist: hnet-r 400,400, hnet-tir 1000,1000].
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub decoder_hidden: Option<Vec<usize>>,
    /// hnet-r/hnet-tir: β of the decoder hypernetwork's output regularizer [split-mnist:
    /// hnet-r 0.01, hnet-tir 0.05; permuted-mnist 0.1].
    #[arg(long)]
    pub replay_beta: Option<f64>,
    /// hnet-r: distillation target of the classes the teacher does not read (CL3: the new
    /// task's) for replayed samples: zero-logit (the teacher's logits padded with 0 before the
    /// softmax, as the official code) or zero-probability [zero-logit].
    #[arg(long)]
    pub unseen_classes: Option<UnseenClasses>,
    /// λ of EWC and online EWC [van de Ven & Tolias's value for the benchmark and scenario].
    #[arg(long)]
    pub ewc_lambda: Option<f64>,
    /// γ of online EWC [1].
    #[arg(long)]
    pub online_ewc_gamma: Option<f64>,
    /// c of SI [van de Ven & Tolias's value for the benchmark and scenario].
    #[arg(long)]
    pub si_c: Option<f64>,
    /// ξ of SI [0.1].
    #[arg(long)]
    pub si_xi: Option<f64>,
    /// Samples per Fisher estimate of EWC [1000].
    #[arg(long)]
    pub fisher_samples: Option<usize>,
    /// Number of tasks [split-mnist: 5, permuted-mnist: 10]. permuted-mnist with 100 or more
    /// (PermutedMNIST-100) takes the official code's hypernetwork for long sequences unless
    /// the options below say otherwise: hidden 200,250,350 ReLU, chunks of 7500, task
    /// embedding 128, chunk embedding 12, β 0.01 (learning rate, batch and steps as for 10).
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Training steps per task [2000 / 5000].
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Batch size [128].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam learning rate of the hypernetwork [1e-3 / 1e-4].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Adam learning rate of the task embeddings [same as --lr].
    #[arg(long)]
    pub emb_lr: Option<f64>,
    /// Strength β of the output regularizer [0.01 / 0.1; 100 tasks or more: 0.01].
    #[arg(long)]
    pub beta: Option<f64>,
    /// Hidden widths of the target MLP, comma-separated [400,400 / 1000,1000].
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub target_hidden: Option<Vec<usize>>,
    /// Hidden widths of the hypernetwork, comma-separated [10,10 / 25,25; 100 tasks or more:
    /// 200,250,350].
    #[arg(long, value_delimiter = ',', action = clap::ArgAction::Set)]
    pub hnet_hidden: Option<Vec<usize>>,
    /// Hypernetwork nonlinearity: relu, elu, sigmoid, tanh [relu / elu; 100 tasks or more:
    /// relu].
    #[arg(long)]
    pub hnet_activation: Option<Activation>,
    /// Initialisation of the hypernetwork: xavier (the official code's) or hyperfan [xavier].
    #[arg(long, value_enum)]
    pub hnet_init: Option<HnetInitArg>,
    /// Weights per hypernetwork chunk; 0 for an unchunked hypernetwork [42000 / 78000; 100
    /// tasks or more: 7500].
    #[arg(long)]
    pub chunk_size: Option<usize>,
    /// Size of a chunk embedding [96 / 8; 100 tasks or more: 12].
    #[arg(long)]
    pub chunk_emb_dim: Option<usize>,
    /// Size of a task embedding [96 / 24; 100 tasks or more: 128].
    #[arg(long)]
    pub task_emb_dim: Option<usize>,
    /// Seed of initialisation, batches and (unless --data-seed) permutations [42].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seed of the PermutedMNIST permutations [--seed].
    #[arg(long)]
    pub data_seed: Option<u64>,
    /// Regularize at θ instead of at θ + Δθ (no look-ahead).
    #[arg(long)]
    pub no_lookahead: bool,
    /// Look ahead with a gradient-descent step (−lr·g) instead of an Adam step.
    #[arg(long, conflicts_with = "no_lookahead")]
    pub sgd_lookahead: bool,
    /// Regularize a random subset of K previous tasks per step [all].
    #[arg(long, value_name = "K")]
    pub reg_batch: Option<usize>,
    /// Recompute regularizer targets from a frozen copy of θ every step (constant memory).
    #[arg(long)]
    pub online_targets: bool,
    /// How the output regularizer is computed: direct (every earlier task's generated
    /// weights made whole; stores them, growing with the tasks), factored (from Gram matrices
    /// of the hypernetwork's linear output layer; stores θ* and each task's last hidden
    /// activations) or auto (per step the cheaper by a cost model from the shapes: direct for
    /// one earlier task, factored from two on with the paper's networks). The same value and
    /// gradient up to rounding [auto].
    #[arg(long, value_name = "FORM")]
    pub regularizer: Option<RegularizerForm>,
    /// Label smoothing ε of the hypernetwork's task loss: soft targets 1 − ε on the label and
    /// ε/(n − 1) on the head's other classes (the official code's --soft_targets is ε = 0.05)
    /// [0].
    #[arg(long, value_name = "EPS")]
    pub label_smoothing: Option<f64>,
    /// Hold out the last N training samples of every task as a validation set: not trained
    /// on, evaluated after every task like the test sets (results.json: validation_*), to
    /// choose settings without looking at the test sets [0].
    #[arg(long, value_name = "N")]
    pub validation: Option<usize>,
    /// HNET+ENT calibration: none (entropies of the raw logits, the paper's rule) or
    /// logit-gap (task k's logits divided by T_k, the median top-2 logit gap on its own
    /// training inputs, measured when its training ended) [cl2, cl3: logit-gap; cl1: none].
    #[arg(long, value_name = "RULE")]
    pub entropy_calibration: Option<EntropyCalibration>,
    /// Directory of the MNIST IDX files [./data/mnist, else the data bundled with the source
    /// tree the program was built from; with --resume: the stored run's].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output heads of the target network, to reserve heads for tasks added later with
    /// `learn` [one per task].
    #[arg(long)]
    pub heads: Option<usize>,
    /// Directory for the checkpoint and the result files (results.json, accuracy_matrix.csv,
    /// accuracy.svg, curves.csv, curves.svg, …) [runs/<benchmark>-seed<seed>].
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run stored in DIR after its last completed task, with the configuration
    /// stored there; an option given beside it must equal the stored setting (--data-dir may
    /// point elsewhere).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Steps between two points of the training curves (curves.csv, curves.svg): the mean
    /// task loss and regularizer since the previous point and the held-out accuracy, also at
    /// each task's last step. Changes no result [100; with --resume: the stored run's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub curve_every: Option<u64>,
}

#[derive(Args)]
pub struct LearnArgs {
    /// Run directory holding the checkpoint.
    pub dir: PathBuf,
    /// The task: split:A,B, permuted:none, permuted:SEED or permuted:SEED/INDEX.
    #[arg(long, value_parser = parse_spec)]
    pub task: TaskSpec,
    /// Directory of the MNIST IDX files [the run's].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Steps between two points of the task's training curve [the run's, else 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub curve_every: Option<u64>,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Run directory holding the checkpoint.
    pub dir: PathBuf,
    /// Directory of the MNIST IDX files [the run's].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Run directory holding the checkpoint.
    pub dir: PathBuf,
    /// Index of the task whose weights to write (0 for the first learned task).
    #[arg(long)]
    pub task: usize,
    /// Output file (safetensors; format in docs/export.md), outside the run directory.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn parse_spec(s: &str) -> std::result::Result<TaskSpec, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

#[derive(Args)]
pub struct CompareArgs {
    /// The benchmark (paper settings unless overridden below).
    pub benchmark: BenchmarkArg,
    /// Methods, comma-separated (rows): hnet, finetune, ewc, online-ewc, si, hnet-r,
    /// hnet-tir.
    #[arg(long, value_delimiter = ',', default_values = ["hnet", "finetune", "ewc", "online-ewc", "si"])]
    pub methods: Vec<Method>,
    /// Scenarios, comma-separated (columns).
    #[arg(long, value_delimiter = ',', default_values = ["cl1", "cl2", "cl3"])]
    pub scenarios: Vec<Scenario>,
    /// Number of seeds: 42, 43, … (at most 10000).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub seeds: u64,
    /// Number of tasks [5 / 10]; permuted-mnist with 100 or more takes the long-sequence
    /// hypernetwork, as `run --tasks`.
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Training steps per task [2000 / 5000].
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Directory of the MNIST IDX files [./data/mnist, else the data bundled with the source
    /// tree the program was built from].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory for table.md, compare.json and every run's results [runs/compare-<benchmark>].
    /// A run whose results.json is already there with the same settings (every one the method
    /// reads; the data directory may differ) is not run again.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run every cell again (with --cell: that cell), even where the output directory holds
    /// its results.
    #[arg(long, conflicts_with_all = ["list", "collect", "slurm"])]
    pub fresh: bool,
    /// Print the grid's cells, one a line: index, method, scenario, seed, run directory. The
    /// index runs over methods × scenarios × seeds in the table's order. Runs nothing.
    #[arg(long, conflicts_with_all = ["cell", "collect", "slurm"])]
    pub list: bool,
    /// Run only cell K of --list, in its run directory: resumed after its last completed
    /// task, or reused when finished, like any cell. Writes no table (see --collect).
    #[arg(long, value_name = "K", conflicts_with_all = ["collect", "slurm"])]
    pub cell: Option<usize>,
    /// Run nothing: build table.md and compare.json from the cells that have finished and
    /// name the missing ones. With any missing the table and compare.json are still written
    /// (with the missing runs listed), and the exit status is 3.
    #[arg(long, conflicts_with = "slurm")]
    pub collect: bool,
    /// Run nothing: write FILE, an sbatch script that runs the grid as a Slurm job array (one
    /// array task per cell, each `--cell $SLURM_ARRAY_TASK_ID`, a log per cell in --out), and
    /// print how to submit it and collect the table. Its #SBATCH resource lines (one CPU,
    /// time, memory from the configuration's estimate) may be edited.
    #[arg(long, value_name = "FILE")]
    pub slurm: Option<PathBuf>,
    /// Run N cells at once, each on one thread; the results are the same bit for bit as one
    /// at a time. 1: one cell at a time on all cores.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1024).map(|v| v as usize),
          conflicts_with_all = ["list", "cell", "collect", "slurm"])]
    pub jobs: usize,
}

#[derive(Args)]
pub struct GradcheckArgs {
    /// Audit the whole training step (hnet → target → loss + look-ahead regularizer) on a tiny
    /// f64 configuration, element by element, and the VAE loss of hnet-r/hnet-tir (encoder,
    /// decoder hypernetwork, embedding) with fixed noise.
    #[arg(long)]
    pub pipeline: bool,
    /// With --pipeline: audit the paper's SplitMNIST and PermutedMNIST configurations in f64
    /// with a projected check (one random direction over all parameters).
    #[arg(long, requires = "pipeline")]
    pub full_size: bool,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Dimensions (m, k, n) of the op inputs, each 1 to 256 (every element is perturbed
    /// twice, so the check's cost grows with their product).
    /// Not with --pipeline. [5 3 7]
    #[arg(long, num_args = 3, value_names = ["M", "K", "N"], conflicts_with = "pipeline",
          value_parser = clap::value_parser!(u64).range(1..=256).map(|v| v as usize))]
    pub dims: Option<Vec<usize>>,
    /// Largest accepted error |a − n| / max(|a|, |n|, 1).
    #[arg(long, default_value_t = 1e-6)]
    pub tolerance: f64,
    /// Finite-difference step [1e-6; with --full-size 1e-4 along a unit direction, large
    /// enough that rounding in the loss of a full-size model stays far below the tolerance].
    #[arg(long)]
    pub eps: Option<f64>,
}

#[derive(Args)]
pub struct BenchArgs {
    /// The configuration of the step: split-mnist, permuted-mnist (PermutedMNIST-10's, the
    /// PyTorch reference's step) or permuted-mnist-100 (the official code's hypernetwork for
    /// long sequences, as `run permuted-mnist --tasks 100`).
    #[arg(long, value_enum, default_value = "permuted-mnist")]
    pub benchmark: BenchConfigArg,
    /// Regularizer targets recomputed from θ* in every step (as `run --online-targets`).
    #[arg(long)]
    pub online_targets: bool,
    /// How the output regularizer is computed: direct (every previous task's generated weights
    /// made whole), factored (from Gram matrices of the output layer) or auto (the cheaper by
    /// a cost model from the shapes, as training does); the form taken is printed per line.
    #[arg(long, value_name = "FORM", default_value = "auto")]
    pub regularizer: RegularizerForm,
    /// Timed steps per configuration (median reported, after 3 warm-up steps), at most 100000.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub steps: u64,
    /// Numbers of previous tasks to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1, 9])]
    pub previous: Vec<usize>,
    /// Output heads of the target network on every line: N, or at a line of p previous tasks
    /// the benchmark's task count or p + 1 if more. By default a line has the benchmark's task
    /// count of heads or p + 1, whichever is more; `--heads 100` times every line on the
    /// network a 100-task run trains from its first task, so the lines differ by the
    /// regularizer alone.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub heads: Option<u64>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The library's benchmark of a command-line one.
pub fn benchmark_of(arg: BenchmarkArg) -> Benchmark {
    match arg {
        BenchmarkArg::SplitMnist => Benchmark::SplitMnist,
        BenchmarkArg::PermutedMnist => Benchmark::PermutedMnist,
    }
}
