//! The command line's arguments: parsed once by clap, then turned into the library's values
//! (an [`ExperimentConfig`] and the settings the user typed).

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use hypertape::cl::hnet::{EntropyCalibration, Lookahead};
use hypertape::cl::replay::UnseenClasses;
use hypertape::cl::{Method, Scenario};
use hypertape::data::TaskSpec;
use hypertape::nn::{Activation, HnetInit};
use hypertape::run::{Benchmark, ExperimentConfig};
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
/// A benchmark.
pub enum BenchmarkArg {
    SplitMnist,
    PermutedMnist,
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
    #[arg(long, value_delimiter = ',')]
    pub encoder_hidden: Option<Vec<usize>>,
    /// hnet-r/hnet-tir: hidden widths of the VAE's decoder [split-mnist: hnet-r 250,350,
    /// hnet-tir 300,150; permuted-mnist: hnet-r 400,400, hnet-tir 1000,1000].
    #[arg(long, value_delimiter = ',')]
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
    /// Number of tasks [split-mnist: 5, permuted-mnist: 10].
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
    /// Strength β of the output regularizer [0.01 / 0.1].
    #[arg(long)]
    pub beta: Option<f64>,
    /// Hidden widths of the target MLP, comma-separated [400,400 / 1000,1000].
    #[arg(long, value_delimiter = ',')]
    pub target_hidden: Option<Vec<usize>>,
    /// Hidden widths of the hypernetwork, comma-separated [10,10 / 25,25].
    #[arg(long, value_delimiter = ',')]
    pub hnet_hidden: Option<Vec<usize>>,
    /// Hypernetwork nonlinearity: relu, elu, sigmoid, tanh [relu / elu].
    #[arg(long)]
    pub hnet_activation: Option<Activation>,
    /// Initialisation of the hypernetwork: xavier (the official code's) or hyperfan [xavier].
    #[arg(long, value_enum)]
    pub hnet_init: Option<HnetInitArg>,
    /// Weights per hypernetwork chunk; 0 for an unchunked hypernetwork [42000 / 78000].
    #[arg(long)]
    pub chunk_size: Option<usize>,
    /// Size of a chunk embedding [96 / 8].
    #[arg(long)]
    pub chunk_emb_dim: Option<usize>,
    /// Size of a task embedding [96 / 24].
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
    /// Directory of the MNIST IDX files [data/mnist; with --resume: the stored run's].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Output heads of the target network, to reserve heads for tasks added later with
    /// `learn` [one per task].
    #[arg(long)]
    pub heads: Option<usize>,
    /// Directory for the checkpoint, results.json, accuracy_matrix.csv and accuracy.svg
    /// [runs/<benchmark>-seed<seed>].
    #[arg(long, conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run stored in DIR after its last completed task, with the configuration
    /// stored there; an option given beside it must equal the stored setting (--data-dir may
    /// point elsewhere).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
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
    /// Index of the task whose weights to write.
    #[arg(long)]
    pub task: usize,
    /// Output file (safetensors).
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
    /// Number of tasks [5 / 10].
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Training steps per task [2000 / 5000].
    #[arg(long)]
    pub iterations: Option<usize>,
    /// Directory of the MNIST IDX files.
    #[arg(long, default_value = "data/mnist")]
    pub data_dir: PathBuf,
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
    #[arg(long, num_args = 3, value_names = ["M", "K", "N"], default_values_t = [5, 3, 7],
          value_parser = clap::value_parser!(u64).range(1..=256).map(|v| v as usize))]
    pub dims: Vec<usize>,
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
    /// The benchmark whose paper configuration the step uses (permuted-mnist: the PyTorch
    /// reference's step).
    #[arg(long, value_enum, default_value = "permuted-mnist")]
    pub benchmark: BenchmarkArg,
    /// Regularizer targets recomputed from θ* in every step (as `run --online-targets`).
    #[arg(long)]
    pub online_targets: bool,
    /// Timed steps per configuration (median reported, after 3 warm-up steps), at most 100000.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub steps: u64,
    /// Numbers of previous tasks to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [0, 1, 9])]
    pub previous: Vec<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One option of `run` the user gave: as typed (`--scenario cl2`) and what it sets.
pub struct Setting {
    /// The flag and its value as on the command line.
    pub flag: String,
    /// The flag alone (`--scenario`).
    name: String,
    apply: Box<dyn Fn(&mut ExperimentConfig)>,
}

impl Setting {
    fn new(
        flag: &str,
        value: impl std::fmt::Display,
        apply: impl Fn(&mut ExperimentConfig) + 'static,
    ) -> Self {
        let value = value.to_string();
        Self {
            name: flag.to_string(),
            flag: if value.is_empty() {
                flag.to_string()
            } else {
                format!("{flag} {value}")
            },
            apply: Box::new(apply),
        }
    }

    /// Sets the option's value in `config`.
    pub fn apply(&self, config: &mut ExperimentConfig) {
        (self.apply)(config)
    }

    /// Whether the option means anything for a run of `method` on `benchmark`; the error
    /// names the flag and where it applies (an option a run ignores is refused rather than
    /// stored, so it never surprises a later `--resume`).
    pub fn check_applies(&self, method: Method, benchmark: Benchmark) -> Result<(), Error> {
        use Method::*;
        const HNET_CLASSIFIER: &[Method] = &[Hnet, HnetTir];
        let methods: &[Method] = match self.name.as_str() {
            "--emb-lr" | "--beta" | "--reg-batch" | "--online-targets" | "--hnet-hidden"
            | "--hnet-activation" | "--hnet-init" | "--chunk-size" | "--chunk-emb-dim"
            | "--task-emb-dim" => HNET_CLASSIFIER,
            // The replay model's decoder hypernetwork looks ahead too.
            "--no-lookahead" | "--sgd-lookahead" => &[Hnet, HnetTir, HnetR],
            "--label-smoothing" | "--entropy-calibration" => &[Hnet],
            "--latent-dim" | "--encoder-hidden" | "--decoder-hidden" | "--replay-beta" => {
                &[HnetR, HnetTir]
            }
            "--unseen-classes" => &[HnetR],
            "--ewc-lambda" | "--fisher-samples" => &[Ewc, OnlineEwc],
            "--online-ewc-gamma" => &[OnlineEwc],
            "--si-c" | "--si-xi" => &[Si],
            "--data-seed" => {
                if benchmark != Benchmark::PermutedMnist {
                    return Err(Error::config(
                        self.flag.clone(),
                        "applies to permuted-mnist (the permutations' seed) only",
                    ));
                }
                &Method::ALL
            }
            _ => &Method::ALL,
        };
        if methods.contains(&method) {
            return Ok(());
        }
        let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
        Err(Error::config(
            self.flag.clone(),
            format!(
                "applies to --method {}, not {}",
                names.join(" or "),
                method.name()
            ),
        ))
    }
}

/// An option's value written as a user types it (`1`, not `1.0`).
trait Typed {
    fn typed(&self) -> String;
}

impl Typed for usize {
    fn typed(&self) -> String {
        self.to_string()
    }
}

impl Typed for u64 {
    fn typed(&self) -> String {
        self.to_string()
    }
}

impl Typed for f64 {
    fn typed(&self) -> String {
        self.to_string()
    }
}

impl Typed for PathBuf {
    fn typed(&self) -> String {
        self.display().to_string()
    }
}

/// A comma-separated list as typed.
fn list(v: &[usize]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl RunArgs {
    /// The benchmark of `split-mnist`/`permuted-mnist` (`None` for the toy or when absent).
    pub fn benchmark(&self) -> Option<Benchmark> {
        match self.benchmark? {
            RunTarget::SplitMnist => Some(Benchmark::SplitMnist),
            RunTarget::PermutedMnist => Some(Benchmark::PermutedMnist),
            RunTarget::ToyRegression => None,
        }
    }

    /// Every configuration option given, in the order they are applied (`--lr` before
    /// `--emb-lr`, `--seed` before `--data-seed`). `--method` and `--scenario` set only the
    /// field; a new run's defaults for them come from
    /// [`ExperimentConfig::set_method_and_scenario`] first.
    pub fn settings(&self) -> Vec<Setting> {
        let mut s = Vec::new();
        macro_rules! opt {
            ($field:ident, $flag:literal, |$c:ident, $v:ident| $body:expr) => {
                if let Some(v) = self.$field.clone() {
                    let shown = Typed::typed(&v);
                    s.push(Setting::new(
                        $flag,
                        shown,
                        move |$c: &mut ExperimentConfig| {
                            let $v = v.clone();
                            $body;
                        },
                    ));
                }
            };
        }
        if let Some(b) = self.benchmark() {
            s.push(Setting::new(b.name(), "", move |c| c.benchmark = b));
        }
        if let Some(m) = self.method {
            s.push(Setting::new("--method", m.name(), move |c| c.method = m));
        }
        if let Some(sc) = self.scenario {
            s.push(Setting::new("--scenario", sc.name(), move |c| {
                c.scenario = sc
            }));
        }
        opt!(latent_dim, "--latent-dim", |c, v| c.replay.latent_dim = v);
        if let Some(v) = self.encoder_hidden.clone() {
            s.push(Setting::new("--encoder-hidden", list(&v), move |c| {
                c.replay.encoder_hidden = v.clone()
            }));
        }
        if let Some(v) = self.decoder_hidden.clone() {
            s.push(Setting::new("--decoder-hidden", list(&v), move |c| {
                c.replay.decoder_hidden = v.clone()
            }));
        }
        opt!(replay_beta, "--replay-beta", |c, v| c.replay.beta = v);
        if let Some(v) = self.unseen_classes {
            s.push(Setting::new("--unseen-classes", v.name(), move |c| {
                c.replay.unseen_classes = v
            }));
        }
        opt!(ewc_lambda, "--ewc-lambda", |c, v| c.baseline.ewc_lambda = v);
        opt!(online_ewc_gamma, "--online-ewc-gamma", |c, v| c
            .baseline
            .online_ewc_gamma =
            v);
        opt!(si_c, "--si-c", |c, v| c.baseline.si_c = v);
        opt!(si_xi, "--si-xi", |c, v| c.baseline.si_xi = v);
        opt!(fisher_samples, "--fisher-samples", |c, v| c
            .baseline
            .fisher_samples =
            v);
        opt!(tasks, "--tasks", |c, v| c.num_tasks = v);
        opt!(iterations, "--iterations", |c, v| c.train.iterations = v);
        opt!(batch_size, "--batch-size", |c, v| c.train.batch_size = v);
        opt!(lr, "--lr", |c, v| {
            c.train.lr = v;
            c.train.emb_lr = v;
        });
        opt!(emb_lr, "--emb-lr", |c, v| c.train.emb_lr = v);
        opt!(beta, "--beta", |c, v| c.train.beta = v);
        opt!(seed, "--seed", |c, v| {
            c.train.seed = v;
            c.data_seed = v;
        });
        opt!(data_seed, "--data-seed", |c, v| c.data_seed = v);
        if self.no_lookahead {
            s.push(Setting::new("--no-lookahead", "", |c| {
                c.train.lookahead = Lookahead::Off
            }));
        }
        if self.sgd_lookahead {
            s.push(Setting::new("--sgd-lookahead", "", |c| {
                c.train.lookahead = Lookahead::Sgd
            }));
        }
        opt!(reg_batch, "--reg-batch", |c, v| c.train.reg_batch = Some(v));
        if self.online_targets {
            s.push(Setting::new("--online-targets", "", |c| {
                c.train.online_targets = true
            }));
        }
        opt!(label_smoothing, "--label-smoothing", |c, v| c
            .train
            .label_smoothing =
            v);
        opt!(validation, "--validation", |c, v| c.validation = v);
        if let Some(v) = self.entropy_calibration {
            s.push(Setting::new("--entropy-calibration", v.name(), move |c| {
                c.entropy_calibration = v
            }));
        }
        if let Some(v) = self.target_hidden.clone() {
            s.push(Setting::new("--target-hidden", list(&v), move |c| {
                c.target_hidden = v.clone()
            }));
        }
        if let Some(v) = self.hnet_hidden.clone() {
            s.push(Setting::new("--hnet-hidden", list(&v), move |c| {
                c.hnet.hidden = v.clone()
            }));
        }
        if let Some(v) = self.hnet_activation {
            s.push(Setting::new("--hnet-activation", v.name(), move |c| {
                c.hnet.activation = v
            }));
        }
        if let Some(v) = self.hnet_init {
            let (name, init) = match v {
                HnetInitArg::Xavier => ("xavier", HnetInit::Xavier),
                HnetInitArg::Hyperfan => ("hyperfan", HnetInit::Hyperfan),
            };
            s.push(Setting::new("--hnet-init", name, move |c| {
                c.hnet_init = init
            }));
        }
        opt!(chunk_size, "--chunk-size", |c, v| c.hnet.chunk_size =
            (v > 0).then_some(v));
        opt!(chunk_emb_dim, "--chunk-emb-dim", |c, v| c
            .hnet
            .chunk_emb_dim =
            v);
        opt!(task_emb_dim, "--task-emb-dim", |c, v| c.hnet.task_emb_dim =
            v);
        opt!(heads, "--heads", |c, v| c.heads = Some(v));
        opt!(data_dir, "--data-dir", |c, v| c.data_dir = v);
        s
    }

    /// The configuration of a new run: the paper's settings for the benchmark, the method's
    /// and scenario's defaults, then every option given. Errors: an option that does not
    /// apply to the method or benchmark (named as typed).
    pub fn new_config(&self, benchmark: Benchmark) -> Result<ExperimentConfig, Error> {
        let method = self.method.unwrap_or_default();
        let mut c = ExperimentConfig::paper_defaults(benchmark);
        c.set_method_and_scenario(method, self.scenario.unwrap_or_default());
        for s in self.settings() {
            s.check_applies(method, benchmark)?;
            s.apply(&mut c);
        }
        Ok(c)
    }
}

/// The library's benchmark of a command-line one.
pub fn benchmark_of(arg: BenchmarkArg) -> Benchmark {
    match arg {
        BenchmarkArg::SplitMnist => Benchmark::SplitMnist,
        BenchmarkArg::PermutedMnist => Benchmark::PermutedMnist,
    }
}
