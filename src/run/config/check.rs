//! Checks of a configuration: every field against what it allows (errors name the flag),
//! and its sizes counted with checked arithmetic and its memory estimated before anything is
//! allocated.

use super::*;

impl ExperimentConfig {
    /// The number of values the networks of this configuration's learner hold (θ of each
    /// hypernetwork with its chunk embeddings, the weights of each network trained
    /// directly), computed from the sizes alone, without building a network; `None` if a
    /// size computation overflows or any network exceeds 2^40 values. A checkpoint must hold
    /// at least as many values as its configuration's networks: that check comes before the
    /// networks are built, so a crafted configuration cannot ask for more memory than its
    /// file holds.
    pub fn learner_values(&self) -> Option<u64> {
        self.sizes().map(|(values, _)| values)
    }

    /// (learner values, target network weights): see [`ExperimentConfig::learner_values`].
    fn sizes(&self) -> Option<(u64, u64)> {
        const LIMIT: u64 = 1 << 40;
        let fits = |v: Option<u64>| v.filter(|&v| v <= LIMIT);
        let mul = |a: u64, b: u64| fits(a.checked_mul(b));
        let add = |a: u64, b: u64| fits(a.checked_add(b));
        let mlp = |input: u64, hidden: &[usize], out: u64| -> Option<u64> {
            let mut total = 0u64;
            let mut fan_in = input;
            for &h in hidden.iter().chain(std::iter::once(&(out as usize))) {
                let h = h as u64;
                total = add(total, mul(fan_in, h)?.checked_add(h)?)?;
                fan_in = h;
            }
            Some(total)
        };
        // θ of a hypernetwork with `cfg` generating `weights` outputs.
        let hnet = |cfg: &HnetConfig, weights: u64| -> Option<u64> {
            let (chunk, emb) = match cfg.chunk_size {
                Some(s) => (s as u64, cfg.chunk_emb_dim as u64),
                None => (weights, 0),
            };
            let hnet_in = add(cfg.task_emb_dim as u64, emb)?;
            let body = mlp(hnet_in, &cfg.hidden, chunk)?;
            add(body, mul(weights.div_ceil(chunk.max(1)), emb)?)
        };
        let (input, head) = self.io_dims();
        let input = input as u64;
        let heads = mul(self.num_heads() as u64, head as u64)?;
        let target = mlp(input, &self.target_hidden, heads)?;
        let theta = hnet(&self.hnet, target)?;
        let mut values = match self.method {
            Method::Hnet => theta,
            // The hypernetwork classifier and the task-inference network (one output per task).
            Method::HnetTir => add(
                theta,
                mlp(input, &self.target_hidden, self.num_tasks as u64)?,
            )?,
            _ => target,
        };
        if self.method.replays() {
            let r = &self.replay;
            let latent = r.latent_dim as u64;
            values = add(values, mlp(input, &r.encoder_hidden, mul(latent, 2)?)?)?;
            let z = add(latent, self.num_tasks as u64)?;
            let decoder = mlp(z, &r.decoder_hidden, input)?;
            values = add(values, hnet(&r.hnet, decoder)?)?;
        }
        Some((values, target))
    }

    /// A rough estimate of the memory a run of this configuration needs, in bytes: every
    /// learner value with its gradient and Adam moments (16 bytes), the generated target
    /// weights with their gradients, the stored regularizer targets of every task, a batch's
    /// activations and the MNIST images. `None` if a size overflows.
    pub fn memory_estimate(&self) -> Option<u64> {
        let (values, target) = self.sizes()?;
        let mul = |a: u64, b: u64| a.checked_mul(b);
        let (input, head) = self.io_dims();
        let widths = (input as u64)
            .checked_add(self.target_hidden.iter().map(|&h| h as u64).sum::<u64>())?
            .checked_add(mul(self.num_heads() as u64, head as u64)?)?;
        let activations = mul(mul(self.train.batch_size as u64, widths)?, 4 * 6)?;
        let targets = if matches!(self.method, Method::Hnet | Method::HnetTir) {
            self.regularizer_memory(values, target)?
        } else {
            0
        };
        const DATA: u64 = 256 << 20;
        mul(values, 16)?
            .checked_add(mul(target, 12)?)?
            .checked_add(targets)?
            .checked_add(activations)?
            .checked_add(DATA)
    }

    /// Bytes the hypernetwork classifier's output regularizer keeps at most, for θ of
    /// `values` values and a target network of `target` weights: the direct form's stored
    /// targets ([previous tasks × target weights]), or θ* (online targets, the factored form)
    /// and the factored form's last hidden activations of every previous task; the automatic
    /// form stores targets only over the first tasks, where the direct form is cheaper.
    fn regularizer_memory(&self, values: u64, target: u64) -> Option<u64> {
        use crate::cl::hnet::RegularizerCost;
        let mul = |a: u64, b: u64| a.checked_mul(b);
        let tasks = self.num_tasks as u64;
        let stored_targets = |t: u64| mul(mul(t, target)?, 4);
        let theta_star = mul(values, 4)?;
        let h = &self.hnet;
        let chunk = h.chunk_size.map_or(target, |c| c as u64).max(1);
        let chunks = target.div_ceil(chunk);
        let width = match h.hidden.last() {
            Some(&w) => w as u64,
            None => (h.task_emb_dim + h.chunk_size.map_or(0, |_| h.chunk_emb_dim)) as u64,
        };
        let factors = theta_star.checked_add(mul(mul(mul(tasks, chunks)?, width)?, 4)?)?;
        if self.train.online_targets {
            return Some(theta_star);
        }
        match self.train.regularizer {
            RegularizerForm::Direct => stored_targets(tasks),
            RegularizerForm::Factored => Some(factors),
            RegularizerForm::Auto => {
                // Previous tasks P over which the direct form with stored targets is cheaper:
                // both costs are linear in P, direct a·P against factored c + b·P.
                let cost = |p| {
                    RegularizerCost::of_shapes(
                        chunk as usize,
                        width as usize,
                        chunks as usize,
                        p,
                        true,
                    )
                };
                let (zero, one) = (cost(0), cost(1));
                let (a, b, c) = (one.direct, one.factored - zero.factored, zero.factored);
                let most = tasks.saturating_sub(1);
                let direct_tasks = if a > b {
                    ((c / (a - b)).floor() as u64).min(most)
                } else {
                    most
                };
                factors.checked_add(stored_targets(direct_tasks)?)
            }
        }
    }

    /// Checks every field; the error names the field and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let positive = |field: &str, v: usize| {
            if v == 0 {
                Err(Error::config(field, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        let rate = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    field,
                    format!("must be a positive finite number, got {v}"),
                ))
            }
        };
        positive("tasks", self.num_tasks)?;
        if self.heads.is_some() && self.scenario == Scenario::Cl2 {
            return Err(Error::config(
                "heads",
                "CL2 has one head shared by all tasks; --heads applies to CL1 and CL3",
            ));
        }
        if let Some(h) = self.heads {
            if h < self.num_tasks {
                return Err(Error::config(
                    "heads",
                    format!(
                        "expected at least one head per task ({}), found {h}",
                        self.num_tasks
                    ),
                ));
            }
        }
        if self.benchmark == Benchmark::SplitMnist && self.num_tasks > 5 {
            return Err(Error::config(
                "tasks",
                format!("SplitMNIST has 5 tasks, {} asked", self.num_tasks),
            ));
        }
        positive("iterations", self.train.iterations)?;
        positive("batch-size", self.train.batch_size)?;
        if self.train.iterations > MAX_ITERATIONS {
            return Err(Error::config(
                "iterations",
                format!(
                    "must be at most {MAX_ITERATIONS} steps per task, got {}",
                    self.train.iterations
                ),
            ));
        }
        if self.train.batch_size > MAX_BATCH {
            return Err(Error::config(
                "batch-size",
                format!("must be at most {MAX_BATCH}, got {}", self.train.batch_size),
            ));
        }
        rate("lr", self.train.lr)?;
        rate("emb-lr", self.train.emb_lr)?;
        if !(self.train.beta.is_finite() && self.train.beta >= 0.0) {
            return Err(Error::config(
                "beta",
                format!("must be finite and >= 0, got {}", self.train.beta),
            ));
        }
        if self.target_hidden.contains(&0) {
            return Err(Error::config(
                "target-hidden",
                "every width must be at least 1",
            ));
        }
        if self.hnet.hidden.contains(&0) {
            return Err(Error::config(
                "hnet-hidden",
                "every width must be at least 1",
            ));
        }
        positive("task-emb-dim", self.hnet.task_emb_dim)?;
        if let Some(c) = self.hnet.chunk_size {
            positive("chunk-size", c)?;
            positive("chunk-emb-dim", self.hnet.chunk_emb_dim)?;
        }
        if let Some(k) = self.train.reg_batch {
            positive("reg-batch", k)?;
        }
        let eps = self.train.label_smoothing;
        if !(0.0..1.0).contains(&eps) {
            return Err(Error::config(
                "label-smoothing",
                format!("must be in [0, 1), got {eps}"),
            ));
        }
        if eps > 0.0 && self.method != Method::Hnet {
            return Err(Error::config(
                "label-smoothing",
                format!("applies to --method hnet only, not {}", self.method.name()),
            ));
        }
        if self.entropy_calibration != EntropyCalibration::None && self.method != Method::Hnet {
            return Err(Error::config(
                "entropy-calibration",
                format!(
                    "applies to HNET+ENT (--method hnet) only, not {}",
                    self.method.name()
                ),
            ));
        }
        let b = &self.baseline;
        for (field, v) in [
            ("ewc-lambda", b.ewc_lambda),
            ("online-ewc-gamma", b.online_ewc_gamma),
            ("si-c", b.si_c),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(
                    field,
                    format!("must be finite and >= 0, got {v}"),
                ));
            }
        }
        rate("si-xi", b.si_xi)?;
        positive("fisher-samples", b.fisher_samples)?;
        if self.method.replays() {
            self.replay.validate()?;
        }
        self.check_memory()
    }

    /// Refuses a configuration whose networks overflow a size computation or whose
    /// [`ExperimentConfig::memory_estimate`] exceeds this machine's physical memory, before
    /// anything is allocated; the error gives the estimate.
    pub fn check_memory(&self) -> Result<()> {
        let too_large = || {
            let chunks = match self.hnet.chunk_size {
                Some(c) => format!("chunks of {c}"),
                None => "unchunked".to_string(),
            };
            let replay = if self.method.replays() {
                let r = &self.replay;
                format!(
                    ", VAE encoder {:?}, latent {}, decoder {:?}",
                    r.encoder_hidden, r.latent_dim, r.decoder_hidden
                )
            } else {
                String::new()
            };
            Error::config(
                "sizes",
                format!(
                    "the networks of this configuration are too large to count (target widths {:?}, {} heads of {}, hypernetwork widths {:?}, {chunks}, chunk embedding {}, task embedding {}{replay})",
                    self.target_hidden,
                    self.num_heads(),
                    self.io_dims().1,
                    self.hnet.hidden,
                    self.hnet.chunk_emb_dim,
                    self.hnet.task_emb_dim,
                ),
            )
        };
        let (values, target) = self.sizes().ok_or_else(too_large)?;
        let estimate = self.memory_estimate().ok_or_else(too_large)?;
        if let Some(memory) = physical_memory() {
            if estimate > memory {
                let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
                return Err(Error::config(
                    "sizes",
                    format!(
                        "this configuration needs about {:.1} GiB ({values} trained values, a target network of {target} weights, {} tasks, batch {}), more than this machine's {:.1} GiB",
                        gib(estimate),
                        self.num_tasks,
                        self.train.batch_size,
                        gib(memory)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The machine's physical memory in bytes (`MemTotal` of /proc/meminfo; `None` where there is
/// none).
fn physical_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
