//! The options of `run` as the user typed them: each one a [`Setting`] that knows its flag,
//! what it sets in an [`ExperimentConfig`] and which methods it applies to. A new run applies
//! them to the benchmark's defaults; `--resume` compares them with the stored configuration.

use crate::args::{HnetInitArg, RunArgs, RunTarget};
use hypertape::cl::hnet::Lookahead;
use hypertape::cl::Method;
use hypertape::nn::HnetInit;
use hypertape::run::{Benchmark, ExperimentConfig};
use hypertape::Error;
use std::path::PathBuf;

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

    /// The flag alone, as `--scenario`.
    pub fn name(&self) -> &str {
        &self.name
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
            "--no-lookahead" | "--sgd-lookahead" | "--regularizer" => &[Hnet, HnetTir, HnetR],
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
        if let Some(v) = self.regularizer {
            s.push(Setting::new("--regularizer", v.name(), move |c| {
                c.train.regularizer = v
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
        // PermutedMNIST-100 and longer take the official code's long-sequence hypernetwork.
        let tasks = self
            .tasks
            .unwrap_or_else(|| ExperimentConfig::paper_defaults(benchmark).num_tasks);
        let mut c = ExperimentConfig::paper_defaults_for(benchmark, tasks);
        c.set_method_and_scenario(method, self.scenario.unwrap_or_default());
        for s in self.settings() {
            s.check_applies(method, benchmark)?;
            s.apply(&mut c);
        }
        Ok(c)
    }
}
