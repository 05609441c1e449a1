//! Checkpoint storage: a run's state on disk, written after every completed task, so that a run
//! can be resumed, more tasks learned later, and the model evaluated or exported. One schema
//! for every method: the store knows no method; it keeps the named values a
//! [`crate::cl::Learner`] saves beside the run's configuration and record.
//!
//! # Layout
//!
//! ```text
//! DIR/CURRENT                      "gen-000003": the generation that is the checkpoint
//! DIR/gen-000003/model.safetensors the learner's tensors, flat F32, by name (e.g. `theta`,
//!                                  `task_embedding.0` of the hypernetwork; `weights`,
//!                                  `ewc.0.fisher` of EWC; `vae.decoder.theta` of HNET+R)
//! DIR/gen-000003/state.json        format version 2, hypertape version, the configuration,
//!                                  the learned tasks, the record (accuracy matrix, task
//!                                  inference, validation rows, wall clock) and the learner's
//!                                  f64 values (`scalars`, e.g. `temperatures`, `vae.losses`)
//! DIR/gen-000003/SHA256SUMS        SHA-256 of the two files above (`sha256sum -c` reads it)
//! ```
//!
//! Format version 1 (the hypernetwork's own layout, with θ per layer and Adam moments, and the
//! other methods' layout, equal to version 2 but for the number) is read and migrated on load
//! ([`load`]); Adam moments are dropped, as no task reads them (every task starts its
//! optimizers afresh).
//!
//! # Crash safety
//!
//! [`save`] never changes a generation that `CURRENT` names. It writes a new generation
//! directory (number one above the largest present), each file atomically (temporary file,
//! fsync, rename, directory fsync: [`crate::fsio::write_atomic`]), the checksum file last,
//! and only then replaces `CURRENT` atomically. So at any moment `CURRENT` names a complete,
//! synced generation: a process killed before the switch leaves the old checkpoint (and a
//! partial directory that [`load`] ignores and the next [`save`] removes), one killed after it
//! leaves the new one. Older generations are removed after the switch.
//!
//! [`load`] verifies every file's checksum, then the format, the configuration, the record
//! and every tensor's dtype and values; the learner then checks that every value it needs is
//! there with its size ([`crate::run::RunState::load`]). Any mismatch is an error that names
//! the file and what was expected and found. Arbitrary bytes never panic.

use super::config::ExperimentConfig;
use super::record::History;
use super::session::Session;
use crate::cl::{InferredEval, LearnerState};
use crate::data::TaskSpec;
use crate::fsio::{sha256_hex, write_atomic};
use crate::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Version of the on-disk format [`save`] writes; [`load`] also reads version 1.
pub const FORMAT_VERSION: u32 = 2;
/// The pointer file naming the current generation.
pub const CURRENT_FILE: &str = "CURRENT";
/// Tensors of a generation.
pub const MODEL_FILE: &str = "model.safetensors";
/// Metadata of a generation.
pub const STATE_FILE: &str = "state.json";
/// Checksums of a generation.
pub const SUMS_FILE: &str = "SHA256SUMS";

const GEN_PREFIX: &str = "gen-";

/// What a checkpoint holds: the run's configuration, the tasks learned (in order), the record
/// and the learner's state after the last of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The run's configuration (its `num_tasks` tasks; `learn` may have added more).
    pub config: ExperimentConfig,
    /// Every task learned so far.
    pub tasks: Vec<TaskSpec>,
    /// The accuracy matrix, the task inference and the time spent.
    pub history: History,
    /// The learner's named values after the last task.
    pub state: LearnerState,
}

/// The content of `state.json` (version 2; version 1 of the methods other than the
/// hypernetwork is the same but for the number).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format_version: u32,
    hypertape_version: String,
    completed_tasks: usize,
    config: ExperimentConfig,
    tasks: Vec<TaskSpec>,
    history: History,
    /// The learner's f64 values ([`LearnerState::scalars`]).
    scalars: BTreeMap<String, Vec<f64>>,
}

/// Whether `dir` holds a checkpoint (a `CURRENT` file).
pub fn exists(dir: &Path) -> bool {
    dir.join(CURRENT_FILE).is_file()
}

/// Writes `snapshot` to `dir` as a new generation and makes it current (see the module doc).
/// Errors: a tensor or scalar that is NaN or infinite ([`Error::NonFinite`], naming it: a
/// diverged run must not leave a checkpoint its loader rejects; the current generation stays
/// as it was), or a failed write (naming the file).
pub fn save(dir: &Path, snapshot: &Snapshot) -> Result<()> {
    let state = &snapshot.state;
    let bad_tensor = state
        .tensors
        .iter()
        .find(|(_, v)| v.iter().any(|x| !x.is_finite()));
    let bad_scalar = state
        .scalars
        .iter()
        .find(|(_, v)| v.iter().any(|x| !x.is_finite()));
    if let Some(name) = bad_tensor
        .map(|(n, _)| format!("tensor {n}"))
        .or_else(|| bad_scalar.map(|(n, _)| format!("scalars {n}")))
    {
        return Err(Error::NonFinite(format!(
            "{name} holds a NaN or infinite value after task {}; not written, {} keeps its last checkpoint",
            snapshot.tasks.len().saturating_sub(1),
            dir.display()
        )));
    }
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = snapshot
        .state
        .tensors
        .iter()
        .map(|(name, v)| (name.clone(), vec![v.len()], f32_bytes(v)))
        .collect();
    let metadata = BTreeMap::from([
        ("format", "hypertape-checkpoint".to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("hypertape_version", env!("CARGO_PKG_VERSION").to_string()),
    ]);
    let model = safetensors_bytes(&tensors, metadata)?;
    let state = StateFile {
        format_version: FORMAT_VERSION,
        hypertape_version: env!("CARGO_PKG_VERSION").to_string(),
        completed_tasks: snapshot.tasks.len(),
        config: snapshot.config.clone(),
        tasks: snapshot.tasks.clone(),
        history: snapshot.history.clone(),
        scalars: snapshot.state.scalars.clone(),
    };
    let state = serde_json::to_vec_pretty(&state).expect("the state serializes");
    write_generation(dir, &model, &state)
}

/// Reads the checkpoint of `dir`, verifying checksums, format (migrating version 1),
/// configuration, record and tensors; returns it with the path of its tensor file (which an
/// error about the learner's values should name).
pub fn load(dir: &Path) -> Result<(Snapshot, PathBuf)> {
    let generation = read_current_generation(dir)?;
    let state_path = generation.dir.join(STATE_FILE);
    let model_path = generation.dir.join(MODEL_FILE);
    let bad =
        |field: &str, message: String| Error::format(&state_path, format!("{field}: {message}"));
    let value: serde_json::Value = serde_json::from_slice(&generation.state)
        .map_err(|e| Error::format(&state_path, format!("invalid state: {e}")))?;
    let version = value.get("format_version").and_then(|v| v.as_u64());
    let hnet_v1 = version == Some(1) && value.get("history").is_none();
    let file: StateFile = if hnet_v1 {
        v1::state_file(&state_path, value)?
    } else {
        serde_json::from_value(value)
            .map_err(|e| Error::format(&state_path, format!("invalid state: {e}")))?
    };
    if !(file.format_version == FORMAT_VERSION || file.format_version == 1) {
        return Err(bad(
            "format_version",
            format!(
                "expected 1 or {FORMAT_VERSION}, found {}",
                file.format_version
            ),
        ));
    }
    let config = &file.config;
    config
        .validate()
        .map_err(|e| bad("config", e.to_string()))?;
    let values = config.learner_values().ok_or_else(|| {
        bad(
            "config",
            "the network sizes are implausibly large".to_string(),
        )
    })?;
    if file.completed_tasks != file.tasks.len() {
        return Err(bad(
            "completed_tasks",
            format!(
                "expected {} (the number of tasks), found {}",
                file.tasks.len(),
                file.completed_tasks
            ),
        ));
    }
    let h = &file.history;
    check_record(
        &state_path,
        config,
        &file.tasks,
        &h.accuracy_matrix,
        &h.task_inference,
        h.wall_seconds,
    )?;
    check_sessions(&state_path, &h.sessions, file.tasks.len())?;
    let st = SafeTensors::deserialize(&generation.model)
        .map_err(|e| Error::format(&model_path, format!("not a safetensors file: {e}")))?;
    let mut tensors = BTreeMap::new();
    for name in st.names() {
        let t = st
            .tensor(name)
            .map_err(|e| Error::format(&model_path, format!("tensor {name}: {e}")))?;
        if t.dtype() != Dtype::F32 {
            return Err(Error::format(
                &model_path,
                format!("tensor {name}: expected dtype F32, found {:?}", t.dtype()),
            ));
        }
        if !hnet_v1 && t.shape().len() != 1 {
            return Err(Error::format(
                &model_path,
                format!(
                    "tensor {name}: expected a flat tensor, found shape {:?}",
                    t.shape()
                ),
            ));
        }
        tensors.insert(name.to_string(), finite_f32(&model_path, name, t.data())?);
    }
    // Restoring (and migrating) builds the configuration's networks before it compares
    // sizes: they must fit in what the file holds, so a crafted configuration cannot ask for
    // more memory.
    let stored: u64 = tensors.values().map(|v| v.len() as u64).sum();
    if values > stored {
        return Err(Error::format(
            &model_path,
            format!(
                "the configuration in {STATE_FILE} has networks of {values} weights, the file holds {stored} values"
            ),
        ));
    }
    if hnet_v1 {
        v1::migrate_tensors(&model_path, config, &mut tensors)?;
    }
    let snapshot = Snapshot {
        config: file.config,
        tasks: file.tasks,
        history: file.history,
        state: LearnerState {
            tensors,
            scalars: file.scalars,
        },
    };
    Ok((snapshot, model_path))
}

mod v1;

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

/// [`read_generation`], again if a writer switched `CURRENT` and removed the generation while
/// it was being read (a reader never holds the run directory's lock).
fn read_current_generation(dir: &Path) -> Result<Generation> {
    let mut attempts = 0;
    loop {
        let before = std::fs::read(dir.join(CURRENT_FILE)).ok();
        match read_generation(dir) {
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && attempts < 3
                    && std::fs::read(dir.join(CURRENT_FILE)).ok() != before =>
            {
                attempts += 1;
            }
            other => return other,
        }
    }
}

/// Removes what an interrupted writer of `dir` left: temporary files of atomic writes
/// (`.NAME.tmpPID`) and generation directories that `CURRENT` does not name (all of them when
/// there is no `CURRENT`: none was ever complete). Leaves everything when `CURRENT` exists but
/// cannot be read (loading reports that). Call it only while holding the directory's lock
/// ([`crate::run::RunDir`]).
pub fn clean(dir: &Path) -> Result<()> {
    let current = match std::fs::read(dir.join(CURRENT_FILE)) {
        Ok(bytes) => match std::str::from_utf8(&bytes).map(str::trim) {
            Ok(name) if generation_number(name).is_some() => Some(name.to_string()),
            _ => return Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => return Ok(()),
    };
    for (_, path) in generations(dir)? {
        if current.as_deref() != path.file_name().and_then(|n| n.to_str()) {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_temporary(&name) && entry.path().is_file() {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Whether `name` is a temporary file of [`write_atomic`]: `.NAME.tmpPID`.
fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
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

pub(crate) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Serializes named f32 tensors `(name, shape, bytes)` as safetensors. `metadata` goes into the
/// header as one entry `hypertape` holding a JSON object with sorted keys (a single entry, so
/// the same content always gives the same bytes).
pub(crate) fn safetensors_bytes(
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

/// Reads a file; a missing `CURRENT` says that there is no checkpoint.
fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
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

/// Checks a run's record against its configuration: one accuracy row per task (row i with
/// i + 1 entries), task-inference rows for every task or for none (a method and scenario that
/// name no inferred task), a head for every task, tasks of the benchmark, a time ≥ 0. Errors
/// name `path` and the field.
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
    if !task_inference.is_empty() && task_inference.len() != n {
        return Err(bad(
            "task_inference",
            format!(
                "expected a row per task ({n}) or none, found {}",
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

/// Checks the sessions of a record of `n` tasks: each learned tasks after the previous
/// session's, none past the last, on at least one thread, in finite times ≥ 0 and with a
/// finite peak memory ≥ 0. Errors name `path` and the session.
fn check_sessions(path: &Path, sessions: &[Session], n: usize) -> Result<()> {
    let mut next = 0;
    for (i, s) in sessions.iter().enumerate() {
        let bad = |message: String| Error::format(path, format!("sessions[{i}]: {message}"));
        let tasks = s.tasks();
        if tasks.start < next || tasks.end > n {
            return Err(bad(format!(
                "tasks {}..{} overlap an earlier session's or pass the {n} tasks learned",
                tasks.start, tasks.end
            )));
        }
        next = tasks.end;
        if s.threads == 0 {
            return Err(bad("expected at least one thread, found 0".to_string()));
        }
        let time_ok = |t: f64| t.is_finite() && t >= 0.0;
        if let Some(t) = s.task_seconds.iter().find(|&&t| !time_ok(t)) {
            return Err(bad(format!("task_seconds: expected times >= 0, found {t}")));
        }
        if let Some(mb) = s.peak_mb.filter(|&mb| !time_ok(mb)) {
            return Err(bad(format!("peak_mb: expected a size >= 0, found {mb}")));
        }
    }
    Ok(())
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
