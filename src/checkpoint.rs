//! Checkpoints: a model and its history on disk, written after every completed task, so a run
//! can be resumed, more tasks learned later, and the model evaluated or exported.
//!
//! # Layout
//!
//! ```text
//! DIR/CURRENT                      "gen-000003": the generation that is the checkpoint
//! DIR/gen-000003/model.safetensors θ as named tensors (`theta.<name>` after the hypernetwork's
//!                                  layout: theta.layer0.weight, …, theta.output.bias,
//!                                  theta.chunk_embeddings), `task_embedding.<k>` per task,
//!                                  and the Adam moments `adam.theta.m`, `adam.theta.v`,
//!                                  `adam.embedding.m`, `adam.embedding.v` (all F32)
//! DIR/gen-000003/state.json        format version, hypertape version, the run's configuration,
//!                                  the learned tasks (dataset, permutation seed or digits),
//!                                  the accuracy matrix, the task inference (CL2/CL3), wall
//!                                  clock, Adam step counts and rates
//! DIR/gen-000003/SHA256SUMS        SHA-256 of the two files above (`sha256sum -c` reads it)
//! ```
//!
//! The Adam states are those after the last task's last step. Every task begins with fresh
//! Adam states (as the official code does), so a resumed run or `learn` does not use them;
//! they are stored so the checkpoint is a complete record of the run.
//!
//! The runs of the other methods (fine-tuning, EWC, online EWC, SI, HNET+R, HNET+TIR) are
//! stored the same way ([`save_learner`], [`load_learner`]): `model.safetensors` holds the
//! learner's state after the last task as flat F32 tensors by name (the
//! [`crate::cl::LearnerState`] of the learner: e.g. `weights`, `ewc.0.fisher`, `si.omega`,
//! `classifier.weights`, `vae.encoder`, `vae.decoder.theta`, `vae.decoder.task_embedding.0`),
//! `state.json` the format version, the configuration, the tasks, the history and the
//! learner's f64 values (`scalars`, e.g. `vae.losses`). Each kind of checkpoint refuses the
//! other with an error that names the method stored.
//!
//! # Crash safety
//!
//! [`save`] never changes a generation that `CURRENT` names. It writes a new generation
//! directory (number one above the largest present), each file atomically (temporary file,
//! fsync, rename, directory fsync: [`crate::report::write_atomic`]), the checksum file last,
//! and only then replaces `CURRENT` atomically. So at any moment `CURRENT` names a complete,
//! synced generation: a process killed before the switch leaves the old checkpoint (and a
//! partial directory that [`load`] ignores and the next [`save`] removes), one killed after it
//! leaves the new one. Older generations are removed after the switch.
//!
//! [`load`] verifies every file's checksum, then the format, the configuration, and every
//! tensor's presence, dtype and shape against the configuration; any mismatch is an error that
//! names the file and what was expected and found. Arbitrary bytes never panic.

use crate::cl::trainer::OptimizerState;
use crate::cl::{HnetModel, InferredEval, LearnerState, Method};
use crate::data::TaskSpec;
use crate::experiment::{ExperimentConfig, History, LearnerCheckpoint};
use crate::nn::{Hnet, HnetConfig, ParamLayout};
use crate::optim::Adam;
use crate::report::write_atomic;
use crate::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Version of the on-disk format; [`load`] accepts only this one.
pub const FORMAT_VERSION: u32 = 1;
/// The pointer file naming the current generation.
pub const CURRENT_FILE: &str = "CURRENT";
/// Tensors of a generation.
pub const MODEL_FILE: &str = "model.safetensors";
/// Metadata of a generation.
pub const STATE_FILE: &str = "state.json";
/// Checksums of a generation.
pub const SUMS_FILE: &str = "SHA256SUMS";

const GEN_PREFIX: &str = "gen-";

/// A model and its history: the run's configuration, the tasks learned (in order; task k uses
/// head k and embedding k), the accuracy matrix (row i: accuracies of tasks 0..=i after task
/// i), and the Adam states after the last task.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// The run's configuration (its `num_tasks` tasks; `learn` may add more).
    pub config: ExperimentConfig,
    /// Every task learned so far.
    pub tasks: Vec<TaskSpec>,
    /// Target network, hypernetwork, θ and one embedding per learned task.
    pub model: HnetModel<f32>,
    /// Adam states after the last task (`None` before the first).
    pub optimizer: Option<OptimizerState>,
    /// The accuracy matrix, the task inference (CL2/CL3) and the time spent.
    pub history: History,
}

impl Checkpoint {
    /// The state before the first task: θ initialised from the configuration's seed.
    /// Fails for a method other than the hypernetwork (only its model is stored).
    pub fn new(config: &ExperimentConfig) -> Result<Self> {
        config.validate()?;
        check_method(config)?;
        let target = config.target();
        let hnet = Hnet::new(&config.hnet, target.num_weights());
        Ok(Self {
            config: config.clone(),
            tasks: Vec::new(),
            model: HnetModel::with_init(target, hnet, config.train.seed, config.hnet_init),
            optimizer: None,
            history: History::default(),
        })
    }

    /// Number of tasks learned.
    pub fn completed(&self) -> usize {
        self.tasks.len()
    }
}

/// A [`Checkpoint`] holds a hypernetwork run: an error for any other method (whose runs are
/// stored by [`save_learner`]).
pub fn check_method(config: &ExperimentConfig) -> Result<()> {
    if config.method == Method::Hnet {
        Ok(())
    } else {
        Err(Error::config(
            "method",
            format!(
                "a hypernetwork checkpoint holds --method hnet runs, not {}",
                config.method.name()
            ),
        ))
    }
}

/// Adam's settings and step count (the moments are tensors).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AdamMeta {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    steps: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct OptimizerMeta {
    theta: AdamMeta,
    embedding: AdamMeta,
}

/// The content of `state.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    format_version: u32,
    hypertape_version: String,
    completed_tasks: usize,
    config: ExperimentConfig,
    tasks: Vec<TaskSpec>,
    accuracy_matrix: Vec<Vec<f64>>,
    /// CL2/CL3: per task, the task inference of tasks 0..=i (empty in CL1).
    #[serde(default)]
    task_inference: Vec<Vec<InferredEval>>,
    wall_seconds: f64,
    optimizer: Option<OptimizerMeta>,
    /// Runs with validation sets: per task, the validation accuracy of tasks 0..=i.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    validation_accuracy_matrix: Vec<Vec<f64>>,
    /// CL2/CL3 runs with validation sets: per task, the task inference on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    validation_task_inference: Vec<Vec<InferredEval>>,
    /// Per task, the logit-gap temperature of HNET+ENT's calibration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    task_temperatures: Vec<f64>,
}

fn adam_meta(a: &Adam<f32>) -> AdamMeta {
    AdamMeta {
        lr: a.lr,
        beta1: a.beta1,
        beta2: a.beta2,
        eps: a.eps,
        steps: a.steps(),
    }
}

/// Whether `dir` holds a checkpoint (a `CURRENT` file).
pub fn exists(dir: &Path) -> bool {
    dir.join(CURRENT_FILE).is_file()
}

/// Writes `ckpt` to `dir` as a new generation and makes it current (see the module doc).
pub fn save(dir: &Path, ckpt: &Checkpoint) -> Result<()> {
    check_consistent(ckpt)?;
    let model = model_bytes(ckpt)?;
    let state = State {
        format_version: FORMAT_VERSION,
        hypertape_version: env!("CARGO_PKG_VERSION").to_string(),
        completed_tasks: ckpt.completed(),
        config: ckpt.config.clone(),
        tasks: ckpt.tasks.clone(),
        accuracy_matrix: ckpt.history.accuracy_matrix.clone(),
        task_inference: ckpt.history.task_inference.clone(),
        wall_seconds: ckpt.history.wall_seconds,
        optimizer: ckpt.optimizer.as_ref().map(|o| OptimizerMeta {
            theta: adam_meta(&o.theta),
            embedding: adam_meta(&o.embedding),
        }),
        validation_accuracy_matrix: ckpt.history.validation_accuracy_matrix.clone(),
        validation_task_inference: ckpt.history.validation_task_inference.clone(),
        task_temperatures: ckpt.history.task_temperatures.clone(),
    };
    let state = serde_json::to_vec_pretty(&state).expect("the state serializes");
    write_generation(dir, &model, &state)
}

/// Writes `model` and `state` as a new generation of `dir` and makes it current.
fn write_generation(dir: &Path, model: &[u8], state: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let existing = generations(dir)?;
    let next = existing.iter().map(|(n, _)| n + 1).max().unwrap_or(1);
    let name = format!("{GEN_PREFIX}{next:06}");
    let gen_dir = dir.join(&name);
    std::fs::create_dir(&gen_dir).map_err(|e| Error::io(&gen_dir, e))?;
    write_atomic(&gen_dir.join(MODEL_FILE), model)?;
    write_atomic(&gen_dir.join(STATE_FILE), state)?;
    let sums = format!(
        "{}  {MODEL_FILE}\n{}  {STATE_FILE}\n",
        sha256_hex(model),
        sha256_hex(state)
    );
    write_atomic(&gen_dir.join(SUMS_FILE), sums.as_bytes())?;
    write_atomic(&dir.join(CURRENT_FILE), format!("{name}\n").as_bytes())?;
    // Best effort: a leftover generation is harmless (never current) and removed next time.
    for (_, path) in existing {
        let _ = std::fs::remove_dir_all(path);
    }
    Ok(())
}

/// The generation directories in `dir` with their numbers.
fn generations(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        if let Some(n) = name.to_str().and_then(generation_number) {
            out.push((n, entry.path()));
        }
    }
    Ok(out)
}

/// `gen-000042` → 42.
fn generation_number(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(GEN_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_consistent(c: &Checkpoint) -> Result<()> {
    let n = c.completed();
    let inference_rows = if c.config.scenario.infers_task() {
        n
    } else {
        0
    };
    if c.model.task_embs.len() != n
        || c.history.accuracy_matrix.len() != n
        || c.history.task_inference.len() != inference_rows
    {
        return Err(Error::config(
            "checkpoint",
            format!(
                "{n} tasks, {} task embeddings, {} accuracy rows, {} task-inference rows",
                c.model.task_embs.len(),
                c.history.accuracy_matrix.len(),
                c.history.task_inference.len()
            ),
        ));
    }
    Ok(())
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Serializes named f32 tensors `(name, shape, bytes)` as safetensors. `metadata` goes into the
/// header as one entry `hypertape` holding a JSON object with sorted keys (a single entry, so
/// the same content always gives the same bytes).
fn safetensors_bytes(
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    metadata: BTreeMap<&str, String>,
) -> Result<Vec<u8>> {
    let metadata = HashMap::from([(
        "hypertape".to_string(),
        serde_json::to_string(&metadata).expect("metadata serializes"),
    )]);
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Shape(format!("safetensors: {e}")))?;
    safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Shape(format!("safetensors: {e}")))
}

/// The tensors of `model.safetensors` with their expected shapes, in a fixed order.
fn expected_tensors(
    layout: &ParamLayout,
    theta_len: usize,
    emb_dim: usize,
    tasks: usize,
    with_adam: bool,
) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = layout
        .entries()
        .iter()
        .map(|e| (format!("theta.{}", e.name), e.shape.clone()))
        .collect();
    out.extend((0..tasks).map(|k| (format!("task_embedding.{k}"), vec![emb_dim])));
    if with_adam {
        for (opt, len) in [("theta", theta_len), ("embedding", emb_dim)] {
            for moment in ["m", "v"] {
                out.push((format!("adam.{opt}.{moment}"), vec![len]));
            }
        }
    }
    out
}

fn model_bytes(c: &Checkpoint) -> Result<Vec<u8>> {
    let m = &c.model;
    let layout = m.hnet.layout();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = layout
        .entries()
        .iter()
        .map(|e| {
            (
                format!("theta.{}", e.name),
                e.shape.clone(),
                f32_bytes(&m.theta[e.range()]),
            )
        })
        .collect();
    for (k, e) in m.task_embs.iter().enumerate() {
        tensors.push((format!("task_embedding.{k}"), vec![e.len()], f32_bytes(e)));
    }
    if let Some(o) = &c.optimizer {
        for (name, adam) in [("theta", &o.theta), ("embedding", &o.embedding)] {
            let (mv, vv) = adam.moments();
            tensors.push((format!("adam.{name}.m"), vec![mv.len()], f32_bytes(mv)));
            tensors.push((format!("adam.{name}.v"), vec![vv.len()], f32_bytes(vv)));
        }
    }
    let metadata = BTreeMap::from([
        ("format", "hypertape-checkpoint".to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("hypertape_version", env!("CARGO_PKG_VERSION").to_string()),
    ]);
    safetensors_bytes(&tensors, metadata)
}

/// Reads a file; a missing `CURRENT` says that there is no checkpoint.
fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Reads the checkpoint of `dir`, verifying checksums, format, configuration and shapes.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let generation = read_generation(dir)?;
    let state_path = generation.dir.join(STATE_FILE);
    if let Some(method) = stored_method(&generation.state) {
        if method != Method::Hnet {
            return Err(Error::format(
                &state_path,
                format!(
                    "holds a {} run; this needs a hypernetwork (--method hnet) checkpoint",
                    method.name()
                ),
            ));
        }
    }
    let state = parse_state(&state_path, &generation.state)?;
    parse_model(&generation.dir.join(MODEL_FILE), &generation.model, state)
}

/// The method of a stored configuration, if the state file has one that parses.
fn stored_method(state: &[u8]) -> Option<Method> {
    let v: serde_json::Value = serde_json::from_slice(state).ok()?;
    match v.get("config")?.get("method") {
        None => Some(Method::Hnet),
        Some(m) => serde_json::from_value(m.clone()).ok(),
    }
}

/// The current generation of a checkpoint directory: its path and its two files, each
/// verified against `SHA256SUMS`.
struct Generation {
    dir: PathBuf,
    model: Vec<u8>,
    state: Vec<u8>,
}

fn read_generation(dir: &Path) -> Result<Generation> {
    let current_path = dir.join(CURRENT_FILE);
    if !current_path.is_file() {
        return Err(Error::format(
            &current_path,
            "no checkpoint here (the file naming the current generation is missing)",
        ));
    }
    let current = read(&current_path)?;
    let name = std::str::from_utf8(&current)
        .ok()
        .map(str::trim)
        .filter(|n| generation_number(n).is_some())
        .ok_or_else(|| {
            Error::format(
                &current_path,
                format!(
                    "expected a generation name like gen-000001, found {:?}",
                    String::from_utf8_lossy(&current[..current.len().min(64)])
                ),
            )
        })?;
    let gen_dir = dir.join(name);
    let sums_path = gen_dir.join(SUMS_FILE);
    let sums = parse_sums(&sums_path, &read(&sums_path)?)?;
    let mut files = HashMap::new();
    for file in [MODEL_FILE, STATE_FILE] {
        let path = gen_dir.join(file);
        let bytes = read(&path)?;
        let found = sha256_hex(&bytes);
        let expected = &sums[file];
        if &found != expected {
            return Err(Error::Checksum {
                path,
                expected: expected.clone(),
                found,
            });
        }
        files.insert(file, bytes);
    }
    Ok(Generation {
        model: files.remove(MODEL_FILE).unwrap_or_default(),
        state: files.remove(STATE_FILE).unwrap_or_default(),
        dir: gen_dir,
    })
}

/// Parses a `SHA256SUMS` file that must list exactly the model and the state file.
fn parse_sums(path: &Path, bytes: &[u8]) -> Result<HashMap<&'static str, String>> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::format(path, "expected UTF-8 text"))?;
    let mut sums = HashMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |why: &str| Error::format(path, format!("line {}: {why}", i + 1));
        let (hex, file) = line
            .split_once("  ")
            .ok_or_else(|| bad("expected '<sha256>  <file>'"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("expected 64 hex digits"));
        }
        let file = [MODEL_FILE, STATE_FILE]
            .into_iter()
            .find(|f| *f == file)
            .ok_or_else(|| bad(&format!("unexpected file {file:?}")))?;
        if sums.insert(file, hex.to_ascii_lowercase()).is_some() {
            return Err(bad(&format!("{file} listed twice")));
        }
    }
    for file in [MODEL_FILE, STATE_FILE] {
        if !sums.contains_key(file) {
            return Err(Error::format(path, format!("no checksum of {file}")));
        }
    }
    Ok(sums)
}

/// Parses and checks `state.json`.
fn parse_state(path: &Path, bytes: &[u8]) -> Result<State> {
    let state: State = serde_json::from_slice(bytes)
        .map_err(|e| Error::format(path, format!("invalid state: {e}")))?;
    let bad = |field: &str, message: String| Error::format(path, format!("{field}: {message}"));
    if state.format_version != FORMAT_VERSION {
        return Err(bad(
            "format_version",
            format!("expected {FORMAT_VERSION}, found {}", state.format_version),
        ));
    }
    state
        .config
        .validate()
        .map_err(|e| bad("config", e.to_string()))?;
    if !sizes_fit(&state.config) {
        return Err(bad(
            "config",
            "the network sizes are implausibly large".to_string(),
        ));
    }
    let n = state.tasks.len();
    if state.completed_tasks != n {
        return Err(bad(
            "completed_tasks",
            format!(
                "expected {n} (the number of tasks), found {}",
                state.completed_tasks
            ),
        ));
    }
    check_method(&state.config).map_err(|e| bad("config", e.to_string()))?;
    check_record(
        path,
        &state.config,
        &state.tasks,
        &state.accuracy_matrix,
        &state.task_inference,
        state.wall_seconds,
    )?;
    if state.optimizer.is_some() != (n > 0) {
        return Err(bad(
            "optimizer",
            format!("expected Adam states exactly when a task was learned ({n} tasks)"),
        ));
    }
    Ok(state)
}

/// Checks a run's record against its configuration: one accuracy row per task (row i with
/// i + 1 entries), task-inference rows exactly when the run records them
/// ([`ExperimentConfig::records_task_inference`]), a head for every task, tasks of the
/// benchmark, a time ≥ 0. Errors name `path` and the field.
fn check_record(
    path: &Path,
    config: &ExperimentConfig,
    tasks: &[TaskSpec],
    accuracy_matrix: &[Vec<f64>],
    task_inference: &[Vec<InferredEval>],
    wall_seconds: f64,
) -> Result<()> {
    let bad = |field: &str, message: String| Error::format(path, format!("{field}: {message}"));
    let n = tasks.len();
    if accuracy_matrix.len() != n {
        return Err(bad(
            "accuracy_matrix",
            format!("expected {n} rows, found {}", accuracy_matrix.len()),
        ));
    }
    if let Some((i, row)) = accuracy_matrix
        .iter()
        .enumerate()
        .find(|(i, r)| r.len() != i + 1)
    {
        return Err(bad(
            "accuracy_matrix",
            format!("expected {} entries in row {i}, found {}", i + 1, row.len()),
        ));
    }
    let inference_rows = if config.records_task_inference() {
        n
    } else {
        0
    };
    if task_inference.len() != inference_rows {
        return Err(bad(
            "task_inference",
            format!(
                "expected {inference_rows} rows in scenario {}, found {}",
                config.scenario.name(),
                task_inference.len()
            ),
        ));
    }
    if let Some((i, row)) = task_inference
        .iter()
        .enumerate()
        .find(|(i, r)| r.len() != i + 1 || r.iter().any(|e| e.picks.len() != i + 1))
    {
        return Err(bad(
            "task_inference",
            format!("expected {} entries in row {i}, found {}", i + 1, row.len()),
        ));
    }
    if n > 0 && !config.has_head_for(n - 1) {
        return Err(bad(
            "tasks",
            format!(
                "{n} tasks but the target network has {} heads",
                config.num_heads()
            ),
        ));
    }
    for (k, spec) in tasks.iter().enumerate() {
        config
            .check_task(spec)
            .map_err(|e| bad(&format!("tasks[{k}]"), e.to_string()))?;
    }
    if !(wall_seconds.is_finite() && wall_seconds >= 0.0) {
        return Err(bad(
            "wall_seconds",
            format!("expected a time >= 0, found {wall_seconds}"),
        ));
    }
    Ok(())
}

/// Whether the target, hypernetwork and (HNET+R, HNET+TIR) replay model sizes of `c` stay
/// below 2^40 elements (so a crafted
/// configuration cannot overflow a size computation before the tensors are checked).
fn sizes_fit(c: &ExperimentConfig) -> bool {
    const LIMIT: u64 = 1 << 40;
    let fits = |v: Option<u64>| v.filter(|&v| v <= LIMIT);
    let mul = |a: u64, b: u64| fits(a.checked_mul(b));
    let mlp = |input: u64, hidden: &[usize], out: u64| -> Option<u64> {
        let mut total = 0u64;
        let mut fan_in = input;
        for &h in hidden.iter().chain(std::iter::once(&(out as usize))) {
            let h = h as u64;
            total = fits(total.checked_add(mul(fan_in, h)?.checked_add(h)?))?;
            fan_in = h;
        }
        Some(total)
    };
    // A hypernetwork with `cfg` generating `weights` outputs.
    let hnet = |cfg: &HnetConfig, weights: u64| -> Option<()> {
        let (chunk, emb) = match cfg.chunk_size {
            Some(s) => (s as u64, cfg.chunk_emb_dim as u64),
            None => (weights, 0),
        };
        let hnet_in = fits((cfg.task_emb_dim as u64).checked_add(emb))?;
        mlp(hnet_in, &cfg.hidden, chunk)?;
        mul(weights.div_ceil(chunk.max(1)), emb)?;
        Some(())
    };
    let (input, head) = c.io_dims();
    let check = || -> Option<()> {
        let heads = mul(c.num_heads() as u64, head as u64)?;
        let weights = mlp(input as u64, &c.target_hidden, heads)?;
        hnet(&c.hnet, weights)?;
        if c.method == Method::HnetTir {
            // The task-inference network: one output per task.
            mlp(input as u64, &c.target_hidden, c.num_tasks as u64)?;
        }
        if c.method.replays() {
            let r = &c.replay;
            let latent = r.latent_dim as u64;
            mlp(input as u64, &r.encoder_hidden, mul(latent, 2)?)?;
            let z = fits(latent.checked_add(c.num_tasks as u64))?;
            let decoder = mlp(z, &r.decoder_hidden, input as u64)?;
            hnet(&r.hnet, decoder)?;
        }
        Some(())
    };
    check().is_some()
}

/// The values of stored F32 tensor `name` (little-endian bytes `data`); a NaN or infinite one
/// is an error naming `path` and the tensor.
fn finite_f32(path: &Path, name: &str, data: &[u8]) -> Result<Vec<f32>> {
    let v: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::format(
            path,
            format!("tensor {name} holds a NaN or infinite value"),
        ));
    }
    Ok(v)
}

/// Reads the tensors of `model.safetensors` that `state` describes.
fn parse_model(path: &Path, bytes: &[u8], state: State) -> Result<Checkpoint> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::format(path, format!("not a safetensors file: {e}")))?;
    let config = state.config.clone();
    let target = config.target();
    let hnet = Hnet::new(&config.hnet, target.num_weights());
    let d = config.hnet.task_emb_dim;
    let theta_len = hnet.num_params();
    let expected = expected_tensors(
        hnet.layout(),
        theta_len,
        d,
        state.tasks.len(),
        state.optimizer.is_some(),
    );
    if let Some(extra) = st
        .names()
        .into_iter()
        .find(|n| !expected.iter().any(|(e, _)| e == n))
    {
        return Err(Error::format(path, format!("unexpected tensor {extra:?}")));
    }
    let mut values: HashMap<String, Vec<f32>> = HashMap::new();
    for (name, shape) in &expected {
        let t = st
            .tensor(name)
            .map_err(|_| Error::format(path, format!("tensor {name} is missing")))?;
        if t.dtype() != Dtype::F32 {
            return Err(Error::format(
                path,
                format!("tensor {name}: expected dtype F32, found {:?}", t.dtype()),
            ));
        }
        if t.shape() != shape.as_slice() {
            return Err(Error::format(
                path,
                format!(
                    "tensor {name}: expected shape {shape:?} (from the configuration in {STATE_FILE}), found {:?}",
                    t.shape()
                ),
            ));
        }
        values.insert(name.clone(), finite_f32(path, name, t.data())?);
    }
    // Every tensor is present with its shape: θ's entries tile θ in layout order.
    let theta: Vec<f32> = hnet
        .layout()
        .entries()
        .iter()
        .flat_map(|e| values[&format!("theta.{}", e.name)].iter().copied())
        .collect();
    let task_embs = (0..state.tasks.len())
        .map(|k| {
            values
                .remove(&format!("task_embedding.{k}"))
                .unwrap_or_default()
        })
        .collect();
    let mut ckpt = Checkpoint {
        config,
        tasks: Vec::new(),
        model: HnetModel {
            target,
            hnet,
            theta,
            task_embs,
        },
        optimizer: None,
        history: History::default(),
    };
    if let Some(meta) = &state.optimizer {
        let mut adam = |name: &str, len: usize, m: &AdamMeta| {
            let mut a = Adam::<f32>::new(len, m.lr);
            a.beta1 = m.beta1;
            a.beta2 = m.beta2;
            a.eps = m.eps;
            let mv = values.remove(&format!("adam.{name}.m")).unwrap_or_default();
            let vv = values.remove(&format!("adam.{name}.v")).unwrap_or_default();
            a.with_state(mv, vv, m.steps)
                .ok_or_else(|| Error::format(path, format!("adam.{name}: wrong length")))
        };
        ckpt.optimizer = Some(OptimizerState {
            theta: adam("theta", theta_len, &meta.theta)?,
            embedding: adam("embedding", d, &meta.embedding)?,
        });
    }
    ckpt.tasks = state.tasks;
    ckpt.history = History {
        accuracy_matrix: state.accuracy_matrix,
        task_inference: state.task_inference,
        wall_seconds: state.wall_seconds,
        validation_accuracy_matrix: state.validation_accuracy_matrix,
        validation_task_inference: state.validation_task_inference,
        task_temperatures: state.task_temperatures,
    };
    Ok(ckpt)
}

/// The content of `state.json` of a run of another method than the hypernetwork's.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnerStateFile {
    format_version: u32,
    hypertape_version: String,
    completed_tasks: usize,
    config: ExperimentConfig,
    tasks: Vec<TaskSpec>,
    history: History,
    /// The learner's f64 values ([`LearnerState::scalars`]).
    scalars: BTreeMap<String, Vec<f64>>,
}

/// Writes the state of a run of another method than the hypernetwork's (a baseline, HNET+R,
/// HNET+TIR) to `dir` as a new generation and makes it current: its tensors
/// ([`LearnerState::tensors`], one flat F32 tensor each, by name) in `model.safetensors`; the
/// configuration, tasks, history and scalars in `state.json`.
pub fn save_learner(dir: &Path, ckpt: &LearnerCheckpoint) -> Result<()> {
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = ckpt
        .state
        .tensors
        .iter()
        .map(|(name, v)| (name.clone(), vec![v.len()], f32_bytes(v)))
        .collect();
    let metadata = BTreeMap::from([
        ("format", "hypertape-learner-checkpoint".to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("hypertape_version", env!("CARGO_PKG_VERSION").to_string()),
    ]);
    let model = safetensors_bytes(&tensors, metadata)?;
    let state = LearnerStateFile {
        format_version: FORMAT_VERSION,
        hypertape_version: env!("CARGO_PKG_VERSION").to_string(),
        completed_tasks: ckpt.completed(),
        config: ckpt.config.clone(),
        tasks: ckpt.tasks.clone(),
        history: ckpt.history.clone(),
        scalars: ckpt.state.scalars.clone(),
    };
    let state = serde_json::to_vec_pretty(&state).expect("the state serializes");
    write_generation(dir, &model, &state)
}

/// Reads what [`save_learner`] wrote, verifying checksums, format, configuration, the record,
/// and every stored value against what the configuration's learner holds after the stored
/// number of tasks; an error names the file and what was expected and found.
pub fn load_learner(dir: &Path) -> Result<LearnerCheckpoint> {
    let generation = read_generation(dir)?;
    let state_path = generation.dir.join(STATE_FILE);
    let model_path = generation.dir.join(MODEL_FILE);
    if stored_method(&generation.state) == Some(Method::Hnet) {
        return Err(Error::format(
            &state_path,
            "holds a hypernetwork (--method hnet) checkpoint, not a run of another method",
        ));
    }
    let state: LearnerStateFile = serde_json::from_slice(&generation.state)
        .map_err(|e| Error::format(&state_path, format!("invalid state: {e}")))?;
    let bad =
        |field: &str, message: String| Error::format(&state_path, format!("{field}: {message}"));
    if state.format_version != FORMAT_VERSION {
        return Err(bad(
            "format_version",
            format!("expected {FORMAT_VERSION}, found {}", state.format_version),
        ));
    }
    let config = &state.config;
    config
        .validate()
        .map_err(|e| bad("config", e.to_string()))?;
    if !sizes_fit(config) {
        return Err(bad(
            "config",
            "the network sizes are implausibly large".to_string(),
        ));
    }
    if state.completed_tasks != state.tasks.len() {
        return Err(bad(
            "completed_tasks",
            format!(
                "expected {} (the number of tasks), found {}",
                state.tasks.len(),
                state.completed_tasks
            ),
        ));
    }
    let h = &state.history;
    check_record(
        &state_path,
        config,
        &state.tasks,
        &h.accuracy_matrix,
        &h.task_inference,
        h.wall_seconds,
    )?;
    let st = SafeTensors::deserialize(&generation.model)
        .map_err(|e| Error::format(&model_path, format!("not a safetensors file: {e}")))?;
    let mut tensors = BTreeMap::new();
    for name in st.names() {
        let t = st
            .tensor(name)
            .map_err(|e| Error::format(&model_path, format!("tensor {name}: {e}")))?;
        if t.dtype() != Dtype::F32 || t.shape().len() != 1 {
            return Err(Error::format(
                &model_path,
                format!(
                    "tensor {name}: expected a flat F32 tensor, found {:?} of shape {:?}",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        tensors.insert(name.to_string(), finite_f32(&model_path, name, t.data())?);
    }
    // Restoring builds the configuration's networks before it compares sizes: they must fit
    // in what the file holds, so a crafted configuration cannot ask for more memory.
    let stored: usize = tensors.values().map(Vec::len).sum();
    let networks = LearnerCheckpoint::network_sizes(config);
    if networks > stored {
        return Err(Error::format(
            &model_path,
            format!(
                "the configuration in {STATE_FILE} has networks of {networks} weights, the file holds {stored} values"
            ),
        ));
    }
    let ckpt = LearnerCheckpoint {
        config: state.config,
        tasks: state.tasks,
        history: state.history,
        state: LearnerState {
            tensors,
            scalars: state.scalars,
        },
    };
    ckpt.check_state()
        .map_err(|e| Error::format(&model_path, e))?;
    Ok(ckpt)
}

/// The target weights generated for task `task` as safetensors bytes, one tensor per entry of
/// the target layout (`layer0.weight`, `layer0.bias`, …, `heads.weight`, `heads.bias`; all
/// heads, the task's head h being rows `h·head_dim..(h+1)·head_dim`; h = task, or 0 in CL2), with
/// the task, its head
/// and its spec in the metadata (the header entry `hypertape`, a JSON object).
pub fn export_task_weights(ckpt: &Checkpoint, task: usize) -> Result<Vec<u8>> {
    let n = ckpt.completed();
    if task >= n {
        return Err(Error::config(
            "task",
            format!("expected a learned task 0..{n}, found {task}"),
        ));
    }
    let weights = ckpt.model.generated_weights(task);
    let target = &ckpt.model.target;
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = target
        .layout()
        .entries()
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.shape.clone(),
                f32_bytes(&weights[e.range()]),
            )
        })
        .collect();
    let metadata = BTreeMap::from([
        ("task", task.to_string()),
        ("head", ckpt.config.head(task).to_string()),
        ("head_dim", target.head_dim().to_string()),
        ("spec", ckpt.tasks[task].to_string()),
        ("hypertape_version", env!("CARGO_PKG_VERSION").to_string()),
    ]);
    safetensors_bytes(&tensors, metadata)
}
