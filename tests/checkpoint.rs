//! Checkpoints of every method through the one run state ([`RunState`]) and the one on-disk
//! schema ([`store`]), on tiny SplitMNIST runs:
//!
//! - save → load is bit-exact (tensors and scalars), and saving the loaded run again writes
//!   the same tensor file byte for byte;
//! - a run stopped after a task and resumed from what it wrote ends bit for bit like one that
//!   never stopped (the hypernetwork, every baseline, both replay methods);
//! - corrupt, truncated and mismatched checkpoints give errors naming the file and the field or
//!   value; arbitrary bytes in any checkpoint file never panic (property tests);
//! - export writes the target layout's names and shapes (the hypernetwork's generated weights,
//!   a baseline's trained weights); `learn` adds a task while the stored ones keep their
//!   accuracy, and refuses one without a free head or beyond a replay model's tasks;
//! - `run --resume` continues a stored run from the command line;
//! - migration: checkpoints written by the previous release (format version 1,
//!   `tests/fixtures/v1/`) load, resume exactly as the old release's uninterrupted run, and are
//!   written back as version 2. The fixtures are copied before anything touches them.

mod common;

use assert_cmd::Command;
use common::{mnist_dir, tasks, TinySplit};
use hypertape::cl::hnet::HnetLearner;
use hypertape::cl::{Learner, LearnerState, Method, Scenario};
use hypertape::data::TaskSpec;
use hypertape::fsio::{sha256_hex, write_atomic};
use hypertape::nn::{Hnet, HnetInit};
use hypertape::run::export::export_task_weights;
use hypertape::run::store::{
    self, Snapshot, CURRENT_FILE, FORMAT_VERSION, MODEL_FILE, STATE_FILE, SUMS_FILE,
};
use hypertape::run::{self, ExperimentConfig, RunDir, RunResults, RunState};
use hypertape::Error;
use proptest::prelude::*;
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A tiny run of `method` in `scenario` over `num_tasks` SplitMNIST tasks.
fn config(method: Method, scenario: Scenario, num_tasks: usize) -> ExperimentConfig {
    let tiny = TinySplit {
        tasks: num_tasks,
        hidden: 20,
        chunk_size: 3000,
        iterations: 15,
    };
    let mut c = tiny.config(method, scenario);
    c.baseline.fisher_samples = 50;
    let r = &mut c.replay;
    r.latent_dim = 4;
    r.encoder_hidden = vec![16];
    r.decoder_hidden = vec![16];
    r.hnet.task_emb_dim = 4;
    r.hnet.hidden = vec![6];
    r.hnet.chunk_size = Some(3000);
    r.hnet.chunk_emb_dim = 4;
    c
}

/// The hypernetwork in CL1 with 4 heads (room for tasks added by `learn`), 20 steps per task.
fn hnet_config(num_tasks: usize) -> ExperimentConfig {
    let mut c = config(Method::Hnet, Scenario::Cl1, num_tasks);
    c.heads = Some(4);
    c.train.iterations = 20;
    c
}

/// Runs `c` from its first task to its last, saving to `dir` if given, calling `at_task_end`
/// after each task (after the save).
fn run_all(
    c: &ExperimentConfig,
    dir: Option<&Path>,
    mut at_task_end: impl FnMut(&RunState),
) -> RunState {
    let data = tasks(&c.task_specs());
    let mut state = RunState::new(c).unwrap();
    let dir = dir.map(locked);
    state
        .continue_run(&data, dir.as_ref(), &mut |_| {}, &mut |s| at_task_end(s))
        .unwrap();
    state
}

/// `path` as a run directory this test writes (locked until dropped).
fn locked(path: &Path) -> RunDir {
    RunDir::open(path, "checkpoint test").unwrap()
}

/// What a checkpoint of `s` holds.
fn snapshot(s: &RunState) -> Snapshot {
    Snapshot {
        config: s.config.clone(),
        tasks: s.tasks.clone(),
        history: s.history.clone(),
        state: s.learner.save(),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bits64(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Same names, and every tensor and scalar equal bit for bit.
fn assert_same_state(a: &LearnerState, b: &LearnerState, what: &str) {
    assert_eq!(
        a.tensors.keys().collect::<Vec<_>>(),
        b.tensors.keys().collect::<Vec<_>>(),
        "{what}: tensor names"
    );
    for (name, x) in &a.tensors {
        assert!(
            bits(x) == bits(&b.tensors[name]),
            "{what}: tensor {name} differs"
        );
    }
    assert_eq!(
        a.scalars.keys().collect::<Vec<_>>(),
        b.scalars.keys().collect::<Vec<_>>(),
        "{what}: scalar names"
    );
    for (name, x) in &a.scalars {
        assert_eq!(
            bits64(x),
            bits64(&b.scalars[name]),
            "{what}: scalars {name} differ"
        );
    }
}

/// Equal snapshots but for the time spent (which differs from run to run).
fn assert_same_snapshot(a: &Snapshot, b: &Snapshot, what: &str) {
    assert_same_state(&a.state, &b.state, what);
    assert_eq!(a.config, b.config, "{what}: config");
    assert_eq!(a.tasks, b.tasks, "{what}: tasks");
    let (mut ha, mut hb) = (a.history.clone(), b.history.clone());
    for h in [&mut ha, &mut hb] {
        h.wall_seconds = 0.0;
        h.sessions.clear();
    }
    assert_eq!(ha, hb, "{what}: history");
}

/// Results without what differs between runs of the same settings: the time spent and the
/// processes that ran them.
fn timeless(mut r: RunResults) -> RunResults {
    r.wall_seconds = 0.0;
    r.sessions.clear();
    r
}

/// Copies a directory tree.
fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dst.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// The current generation directory of checkpoint `dir`.
fn current_gen(dir: &Path) -> PathBuf {
    let name = std::fs::read_to_string(dir.join(CURRENT_FILE)).unwrap();
    dir.join(name.trim())
}

/// A copy of checkpoint directory `src` in a new temporary directory, with its generation.
fn copy_checkpoint(src: &Path) -> (tempfile::TempDir, PathBuf) {
    let dst = tempfile::tempdir().unwrap();
    copy_dir(src, dst.path());
    let gen_dir = current_gen(dst.path());
    (dst, gen_dir)
}

/// Rewrites SHA256SUMS to match the files, so a test reaches the parsers.
fn reseal(gen_dir: &Path) {
    let sum = |f: &str| sha256_hex(&std::fs::read(gen_dir.join(f)).unwrap());
    let text = format!(
        "{}  {MODEL_FILE}\n{}  {STATE_FILE}\n",
        sum(MODEL_FILE),
        sum(STATE_FILE)
    );
    std::fs::write(gen_dir.join(SUMS_FILE), text).unwrap();
}

/// Replaces `from` by `to` (which must occur) in the current generation's state file of `dir`
/// and reseals it.
fn edit_state(dir: &Path, from: &str, to: &str) {
    let gen_dir = current_gen(dir);
    let path = gen_dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    reseal(&gen_dir);
}

fn load_err(dir: &Path) -> String {
    RunState::load(dir).unwrap_err().to_string()
}

fn generations(dir: &Path) -> Vec<String> {
    let mut gens: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("gen-"))
        .collect();
    gens.sort();
    gens
}

fn model_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(current_gen(dir).join(MODEL_FILE)).unwrap()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The F32 tensor `name` of safetensors `st` as values.
fn tensor_values(st: &SafeTensors, name: &str) -> Vec<f32> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// The concrete hypernetwork learner of a hypernetwork run (its state restored into a new
/// one), to reach the model.
fn hnet_learner(s: &RunState) -> HnetLearner {
    let c = &s.config;
    let mut h = HnetLearner::new(
        c.target(),
        &c.hnet,
        c.hnet_init,
        c.scenario,
        &c.train,
        c.entropy_calibration,
    );
    h.restore(s.completed(), s.learner.save()).unwrap();
    h
}

/// Runs `c` uninterrupted to `dir`, and a copy of what `dir` held right after `stop` tasks
/// (as a process killed then would leave it); loads that copy, checks it reads back as the
/// state it was written from and re-saves to the same tensor bytes, resumes it to the end
/// (saving to its directory) and checks that it ends bit for bit like the uninterrupted run:
/// state, record, results, replay pictures, and the final checkpoint on disk. Returns the
/// final state.
fn check_resume(c: &ExperimentConfig, stop: usize) -> RunState {
    let name = format!(
        "{} {} stopped after {stop}",
        c.method.name(),
        c.scenario.name()
    );
    let dir = tempfile::tempdir().unwrap();
    let stopped = tempfile::tempdir().unwrap();
    let mut at_stop = None;
    let whole = run_all(c, Some(dir.path()), |s| {
        if s.completed() == stop {
            copy_dir(dir.path(), stopped.path());
            at_stop = Some(snapshot(s));
        }
    });
    let at_stop = at_stop.unwrap();

    // Save → load is bit-exact, and the loaded run saves to the same tensor file.
    let mut resumed = RunState::load(stopped.path()).unwrap();
    assert_eq!(resumed.completed(), stop, "{name}");
    assert!(!resumed.is_finished(), "{name}");
    assert_same_snapshot(&snapshot(&resumed), &at_stop, &name);
    assert_eq!(
        resumed.history.wall_seconds, at_stop.history.wall_seconds,
        "{name}: the time spent is stored"
    );
    let again = tempfile::tempdir().unwrap();
    resumed.save(&locked(again.path())).unwrap();
    assert!(
        model_bytes(again.path()) == model_bytes(stopped.path()),
        "{name}: re-saved tensor file differs"
    );

    let data = tasks(&c.task_specs());
    let mut trained = Vec::new();
    resumed
        .continue_run(
            &data,
            Some(&locked(stopped.path())),
            &mut |_| {},
            &mut |s| trained.push(s.completed() - 1),
        )
        .unwrap();
    assert_eq!(
        trained,
        (stop..c.num_tasks).collect::<Vec<_>>(),
        "{name}: only the tasks left are trained"
    );
    assert!(resumed.is_finished());
    // One session learned the whole run; the resumed run has two, split where it stopped.
    let spans = |s: &RunState| -> Vec<std::ops::Range<usize>> {
        s.history.sessions.iter().map(|x| x.tasks()).collect()
    };
    assert_eq!(spans(&whole), vec![0..c.num_tasks], "{name}: sessions");
    assert_eq!(
        spans(&resumed),
        vec![0..stop, stop..c.num_tasks],
        "{name}: sessions"
    );
    assert_same_snapshot(&snapshot(&resumed), &snapshot(&whole), &name);
    assert_eq!(
        timeless(resumed.results()),
        timeless(whole.results()),
        "{name}: results"
    );
    assert_eq!(
        resumed.replay_samples(&data),
        whole.replay_samples(&data),
        "{name}: replay pictures"
    );
    // On disk: the final checkpoint, the only generation left, and its results.
    let on_disk = RunState::load(stopped.path()).unwrap();
    assert_same_snapshot(&snapshot(&on_disk), &snapshot(&whole), &name);
    assert_eq!(generations(stopped.path()).len(), 1, "{name}");
    let results: RunResults =
        serde_json::from_slice(&std::fs::read(stopped.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(timeless(results), timeless(whole.results()), "{name}");
    whole
}

/// A saved 2-task hypernetwork run (CL1, 4 heads; shared: tests copy it before changing
/// files) and the snapshot it was saved from.
fn saved() -> &'static (tempfile::TempDir, Snapshot) {
    static SAVED: OnceLock<(tempfile::TempDir, Snapshot)> = OnceLock::new();
    SAVED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let state = run_all(&hnet_config(2), Some(dir.path()), |_| {});
        (dir, snapshot(&state))
    })
}

/// A copy of the saved hypernetwork checkpoint and its generation directory.
fn copy_saved() -> (tempfile::TempDir, PathBuf) {
    copy_checkpoint(saved().0.path())
}

/// A saved HNET+R CL3 run of 3 tasks stopped after the first (the richest state: classifier,
/// encoder, decoder hypernetwork with one task embedding, VAE losses), shared.
fn saved_hnet_r() -> &'static (tempfile::TempDir, Snapshot) {
    static SAVED: OnceLock<(tempfile::TempDir, Snapshot)> = OnceLock::new();
    SAVED.get_or_init(|| {
        let c = config(Method::HnetR, Scenario::Cl3, 3);
        let spec = c.task_specs()[0];
        let mut state = RunState::new(&c).unwrap();
        state
            .learn_task(spec, &tasks(&[spec]), &mut |_| {})
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        state.save(&locked(dir.path())).unwrap();
        (dir, snapshot(&state))
    })
}

/// A saved finished 2-task EWC CL3 run, shared.
fn saved_ewc() -> &'static (tempfile::TempDir, Snapshot) {
    static SAVED: OnceLock<(tempfile::TempDir, Snapshot)> = OnceLock::new();
    SAVED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let state = run_all(
            &config(Method::Ewc, Scenario::Cl3, 2),
            Some(dir.path()),
            |_| {},
        );
        (dir, snapshot(&state))
    })
}

// ---------------------------------------------------------------------------------------------
// Round trip and resume, every method
// ---------------------------------------------------------------------------------------------

#[test]
fn save_then_load_is_bit_exact() {
    let (dir, snap) = saved();
    let loaded = RunState::load(dir.path()).unwrap();
    assert_same_snapshot(&snapshot(&loaded), snap, "hnet");
    assert_eq!(&snapshot(&loaded), snap, "time included");
    let (stored, model_path) = store::load(dir.path()).unwrap();
    assert_eq!(&stored, snap);
    assert_eq!(model_path, current_gen(dir.path()).join(MODEL_FILE));
    // The hypernetwork's values: θ flat, one embedding per task, no optimizer state; CL1
    // measures no temperature.
    let names: Vec<&str> = snap.state.tensors.keys().map(String::as_str).collect();
    assert_eq!(names, ["task_embedding.0", "task_embedding.1", "theta"]);
    let h = hnet_learner(&loaded);
    assert_eq!(snap.state.tensors["theta"].len(), h.model.hnet.num_params());
    assert_eq!(snap.state.scalars["temperatures"], Vec::<f64>::new());
    // The same state gives the same files, byte for byte.
    let again = tempfile::tempdir().unwrap();
    loaded.save(&locked(again.path())).unwrap();
    assert_eq!(model_bytes(dir.path()), model_bytes(again.path()));
    let state_file = |d: &Path| std::fs::read(current_gen(d).join(STATE_FILE)).unwrap();
    assert_eq!(state_file(dir.path()), state_file(again.path()));
    let v = read_json(&current_gen(again.path()).join(STATE_FILE));
    assert_eq!(v["format_version"], FORMAT_VERSION);
    assert_eq!(v["completed_tasks"], 2);
    for f in ["results.json", "accuracy_matrix.csv", "accuracy.svg"] {
        assert!(again.path().join(f).is_file(), "{f}");
    }
    assert!(store::exists(again.path()));
    assert!(!store::exists(&again.path().join("elsewhere")));
}

#[test]
fn a_run_stopped_after_task_1_and_resumed_ends_like_an_uninterrupted_one() {
    let mut c = hnet_config(3);
    c.heads = None;
    check_resume(&c, 2);
}

#[test]
fn baselines_resume_bit_for_bit() {
    for (method, scenario, stop) in [
        (Method::Finetune, Scenario::Cl1, 2),
        (Method::Ewc, Scenario::Cl3, 2),
        (Method::OnlineEwc, Scenario::Cl2, 2),
        (Method::Si, Scenario::Cl1, 2),
        // Stopped after the first task: online EWC's running Fisher and SI's anchor appear.
        (Method::OnlineEwc, Scenario::Cl1, 1),
        (Method::Si, Scenario::Cl3, 1),
    ] {
        check_resume(&config(method, scenario, 3), stop);
    }
}

#[test]
fn replay_methods_resume_bit_for_bit_and_hold_no_more_tasks_than_configured() {
    check_resume(&config(Method::HnetR, Scenario::Cl3, 3), 1);
    check_resume(&config(Method::HnetTir, Scenario::Cl3, 3), 2);
    check_resume(&config(Method::HnetTir, Scenario::Cl1, 2), 1);
    // CL2 has a head for every task: what stops a 4th task is the replay model's task codes.
    let mut full = check_resume(&config(Method::HnetR, Scenario::Cl2, 3), 2);
    let err = full.check_room_for_task().unwrap_err().to_string();
    assert!(err.contains("hnet-r holds at most 3 tasks"), "{err}");
    let spec = TaskSpec::Split { classes: [6, 7] };
    let data = full.load_learned_data(Some(spec)).unwrap();
    let before = snapshot(&full);
    let err = full
        .learn_task(spec, &data, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 3 tasks"), "{err}");
    assert_eq!(snapshot(&full), before, "a refused task changes nothing");
}

/// Scenario and hyperfan init are part of a checkpoint: a CL3 run with hyperfan θ, stopped
/// after task 0 and resumed, ends like `run::run` (task inference and HNET+ENT temperatures
/// included); a CL2 model learns a task on its shared head.
#[test]
fn scenarios_and_hyperfan_survive_a_checkpoint() {
    let mut c = hnet_config(2);
    c.heads = None;
    c.set_method_and_scenario(Method::Hnet, Scenario::Cl3);
    c.hnet_init = HnetInit::Hyperfan;
    let data = tasks(&c.task_specs());
    let whole = run::run(&c, &data, &mut |_| {}, &mut |_, _| {}).unwrap();
    assert!(whole.results.task_inference_matrix.is_some());
    assert!(whole.replay_samples.is_empty());

    let finished = check_resume(&c, 1);
    assert_eq!(
        timeless(finished.results()),
        timeless(whole.results.clone())
    );
    // HNET+ENT's logit-gap temperatures are stored with each task and survive the resume.
    assert_eq!(
        whole.results.task_temperatures.as_ref().map(Vec::len),
        Some(2)
    );
    let loaded = {
        let dir = tempfile::tempdir().unwrap();
        finished.save(&locked(dir.path())).unwrap();
        RunState::load(dir.path()).unwrap()
    };
    assert_eq!(loaded.config.hnet_init, HnetInit::Hyperfan);
    assert_eq!(loaded.config.scenario, Scenario::Cl3);
    assert_eq!(loaded.history.task_inference.len(), 2);
    assert_eq!(
        loaded.learner.save().scalars["temperatures"],
        whole.results.task_temperatures.clone().unwrap()
    );
    assert_eq!(
        loaded.results().final_task_picks,
        whole.results.final_task_picks
    );

    // A stored scenario differs from another: check_same names the field.
    let mut cl1 = c.clone();
    cl1.set_method_and_scenario(Method::Hnet, Scenario::Cl1);
    cl1.entropy_calibration = c.entropy_calibration;
    let err = c.check_same(&cl1).unwrap_err().to_string();
    assert!(err.contains("scenario"), "{err}");

    let mut cl2 = hnet_config(1);
    cl2.heads = None;
    cl2.set_method_and_scenario(Method::Hnet, Scenario::Cl2);
    let mut state = run_all(&cl2, None, |_| {});
    let spec = TaskSpec::Split { classes: [2, 3] };
    let more = state.load_learned_data(Some(spec)).unwrap();
    state.learn_task(spec, &more, &mut |_| {}).unwrap();
    assert_eq!(state.history.accuracy_matrix[1].len(), 2);
    assert_eq!(hnet_learner(&state).model.target.num_heads(), 1);
    let eval = state.evaluate(&more).unwrap();
    assert!(
        eval.iter().all(|r| r.task_inference.unwrap() > 0.0),
        "{eval:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Crash safety (CURRENT and generations)
// ---------------------------------------------------------------------------------------------

#[test]
fn a_partial_generation_left_by_a_crash_is_ignored_and_cleaned_up() {
    let (dir, gen_dir) = copy_saved();
    let partial = dir.path().join("gen-000099");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join(MODEL_FILE), b"half a file").unwrap();
    // A complete generation that CURRENT does not name yet (killed before the switch).
    let complete = dir.path().join("gen-000050");
    copy_dir(&current_gen(saved_ewc().0.path()), &complete);
    let loaded = RunState::load(dir.path()).unwrap();
    assert_eq!(&snapshot(&loaded), &saved().1);
    // The writer that opens the directory removes both, then writes the next generation.
    let number: u64 = gen_dir.file_name().unwrap().to_str().unwrap()[4..]
        .parse()
        .unwrap();
    let next = format!("gen-{:06}", number + 1);
    loaded.save(&locked(dir.path())).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join(CURRENT_FILE))
            .unwrap()
            .trim(),
        next
    );
    assert!(!partial.exists() && !complete.exists() && !gen_dir.exists());
    assert_eq!(generations(dir.path()), [next]);
    assert_eq!(snapshot(&RunState::load(dir.path()).unwrap()), saved().1);
}

#[test]
fn an_atomic_write_replaces_the_whole_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(CURRENT_FILE);
    write_atomic(&path, b"gen-000001\n").unwrap();
    write_atomic(&path, b"gen-2\n").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"gen-2\n");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [CURRENT_FILE]);
    // A directory in the way: an error naming the path, and still no temporary left.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir_all(blocked.join("x")).unwrap();
    let err = write_atomic(&blocked.join("x"), b"y")
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocked"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&blocked).unwrap().collect();
    assert_eq!(left.len(), 1, "only the directory x");
}

#[test]
fn a_current_file_that_names_no_generation_is_an_error_naming_it() {
    let (dir, _) = copy_saved();
    let current = dir.path().join(CURRENT_FILE);
    std::fs::write(&current, "gen-000042\n").unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("gen-000042") && err.contains(SUMS_FILE),
        "{err}"
    );
    std::fs::write(&current, "../elsewhere\n").unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains(CURRENT_FILE) && err.contains("expected a generation name"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Corrupt, truncated and mismatched checkpoints
// ---------------------------------------------------------------------------------------------

#[test]
fn a_changed_byte_is_a_checksum_error_naming_the_file() {
    let (dir, gen_dir) = copy_saved();
    let path = gen_dir.join(MODEL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    match RunState::load(dir.path()) {
        Err(Error::Checksum {
            path: p,
            expected,
            found,
        }) => {
            assert_eq!(p, path);
            assert_ne!(expected, found);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert!(load_err(dir.path()).contains("model.safetensors: SHA-256 mismatch"));
}

#[test]
fn a_truncated_tensor_file_is_an_error_naming_it() {
    let (dir, gen_dir) = copy_saved();
    let path = gen_dir.join(MODEL_FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    reseal(&gen_dir);
    let err = load_err(dir.path());
    assert!(
        err.contains("model.safetensors") && err.contains("not a safetensors file"),
        "{err}"
    );
}

#[test]
fn tensors_that_do_not_fit_the_configuration_are_an_error_naming_tensor_and_sizes() {
    let (dir, gen_dir) = copy_saved();
    edit_state(dir.path(), "\"task_emb_dim\": 96", "\"task_emb_dim\": 95");
    let c = &saved().1.config;
    let mut smaller = c.hnet.clone();
    smaller.task_emb_dim = 95;
    let expected = Hnet::new(&smaller, c.target().num_weights()).num_params();
    let found = saved().1.state.tensors["theta"].len();
    assert_eq!(
        found,
        expected + 10,
        "one input fewer to the first of 10 units"
    );
    let err = load_err(dir.path());
    assert!(
        err.contains(&gen_dir.join(MODEL_FILE).display().to_string())
            && err.contains(&format!(
                "tensor theta: expected {expected} values (from the configuration), found {found}"
            )),
        "{err}"
    );
}

#[test]
fn an_inconsistent_state_file_is_an_error_naming_file_and_field() {
    let (dir, gen_dir) = copy_saved();
    let path = gen_dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let check = |changed: &str, field: &str| {
        std::fs::write(&path, changed).unwrap();
        reseal(&gen_dir);
        let err = load_err(dir.path());
        assert!(err.contains("state.json") && err.contains(field), "{err}");
    };
    check(
        &text.replace("\"completed_tasks\": 2", "\"completed_tasks\": 3"),
        "completed_tasks",
    );
    check(
        &text.replace("\"iterations\": 20", "\"iterations\": 0"),
        "iterations",
    );
    check(
        &text.replace(
            &format!("\"format_version\": {FORMAT_VERSION}"),
            "\"format_version\": 7",
        ),
        "format_version: expected 1 or 2, found 7",
    );
    check(
        &text.replacen("\"wall_seconds\": ", "\"wall_seconds\": -", 1),
        "wall_seconds",
    );
    // The session record: tasks past the run's, no thread.
    assert!(text.contains("\"first_task\": 0"), "a session is stored");
    check(
        &text.replacen("\"first_task\": 0", "\"first_task\": 1", 1),
        "sessions[0]: tasks 1..3 overlap an earlier session's or pass the 2 tasks learned",
    );
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["history"]["sessions"][0]["threads"] = 0.into();
    check(
        &serde_json::to_string(&value).unwrap(),
        "sessions[0]: expected at least one thread, found 0",
    );
    check(
        &text.replacen("\"scalars\": {", "\"surplus\": 1, \"scalars\": {", 1),
        "unknown field `surplus`",
    );
    check(&text[..text.len() / 2], "invalid state");

    std::fs::write(&path, &text).unwrap();
    reseal(&gen_dir);
    RunState::load(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join(CURRENT_FILE)).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("CURRENT") && err.contains("no checkpoint"),
        "{err}"
    );
}

/// Values missing, left over or of another size, a record that does not fit, a crafted
/// configuration far larger than the file, a flipped byte: each an error naming the file and
/// the value (HNET+R's state, the richest).
#[test]
fn bad_learner_states_are_named() {
    let (_, good) = saved_hnet_r();
    let load_saved = |s: &Snapshot| {
        let d = tempfile::tempdir().unwrap();
        store::save(d.path(), s).unwrap();
        let err = load_err(d.path());
        (d, err)
    };
    // The good one loads.
    let d = tempfile::tempdir().unwrap();
    store::save(d.path(), good).unwrap();
    assert_same_snapshot(
        &snapshot(&RunState::load(d.path()).unwrap()),
        good,
        "hnet-r",
    );

    let mut s = good.clone();
    s.state.tensors.remove("vae.decoder.task_embedding.0");
    let (_d, err) = load_saved(&s);
    assert!(
        err.contains(MODEL_FILE) && err.contains("tensor vae.decoder.task_embedding.0 is missing"),
        "{err}"
    );
    let mut s = good.clone();
    s.state.put("vae.decoder.task_embedding.1", &[0.0; 4]);
    let (_d, err) = load_saved(&s);
    assert!(
        err.contains(MODEL_FILE) && err.contains("unexpected tensor vae.decoder.task_embedding.1"),
        "{err}"
    );
    let mut s = good.clone();
    s.state.tensors.get_mut("classifier.weights").unwrap().pop();
    let (_d, err) = load_saved(&s);
    assert!(
        err.contains("tensor classifier.weights: expected") && err.contains("found"),
        "{err}"
    );
    let mut s = good.clone();
    s.state.scalars.clear();
    let (_d, err) = load_saved(&s);
    assert!(err.contains("scalars vae.losses are missing"), "{err}");
    let mut s = good.clone();
    s.state.put_scalars("vae.losses", &[1.0]);
    let (_d, err) = load_saved(&s);
    assert!(
        err.contains("scalars vae.losses: expected 2 values, found 1"),
        "{err}"
    );
    // A record that does not fit: an accuracy row too short; a task of another benchmark.
    let mut s = good.clone();
    s.history.accuracy_matrix[0].clear();
    let (_d, err) = load_saved(&s);
    assert!(
        err.contains(STATE_FILE) && err.contains("accuracy_matrix"),
        "{err}"
    );
    let mut s = good.clone();
    s.tasks[0] = TaskSpec::Permuted {
        seed: Some(1),
        index: 1,
    };
    let (_d, err) = load_saved(&s);
    assert!(
        err.contains(STATE_FILE) && err.contains("tasks[0]"),
        "{err}"
    );
    // A configuration whose networks are far larger than the file: refused before any is built.
    let mut s = good.clone();
    s.config.target_hidden = vec![1 << 18, 1 << 18];
    let (_d, err) = load_saved(&s);
    assert!(
        (err.contains(STATE_FILE) && err.contains("GiB"))
            || (err.contains(MODEL_FILE) && err.contains("networks of")),
        "{err}"
    );
    // Larger than the file but within this machine's memory: the size guard names the file.
    let mut s = good.clone();
    s.config.target_hidden = vec![1 << 12, 1 << 12];
    let (_d, err) = load_saved(&s);
    assert!(
        err.contains(MODEL_FILE) && err.contains("networks of"),
        "{err}"
    );
    let mut s = good.clone();
    s.config.target_hidden = vec![1 << 30, 1 << 30];
    let (_d, err) = load_saved(&s);
    assert!(
        err.contains(STATE_FILE) && err.contains("too large to count"),
        "{err}"
    );
    // A NaN is never written ...
    let mut s = good.clone();
    s.state.tensors.get_mut("vae.encoder").unwrap()[3] = f32::NAN;
    let d = tempfile::tempdir().unwrap();
    let e = store::save(d.path(), &s).unwrap_err();
    assert!(e.to_string().contains("tensor vae.encoder"), "{e}");
    assert!(!store::exists(d.path()));
    // ... and one put into a file (checksums resealed) is named when it is read.
    let d = tempfile::tempdir().unwrap();
    store::save(d.path(), good).unwrap();
    let gen = current_gen(d.path());
    let model = gen.join(MODEL_FILE);
    let mut bytes = std::fs::read(&model).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // The tensor's offset, from the file's own header.
    let meta: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header]).unwrap();
    let start = meta["vae.encoder"]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + header + start + 3 * 4;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&model, bytes).unwrap();
    reseal(&gen);
    let err = load_err(d.path());
    assert!(
        err.contains(MODEL_FILE) && err.contains("tensor vae.encoder holds a NaN"),
        "{err}"
    );
}

/// Every method reads the one schema, so a checkpoint whose configuration names another method
/// than its values is refused by the learner, naming the first value it misses or is left
/// with.
#[test]
fn a_checkpoint_with_another_methods_values_is_refused_naming_the_value() {
    let (dir, _) = copy_saved();
    edit_state(dir.path(), "\"method\": \"hnet\"", "\"method\": \"ewc\"");
    let err = load_err(dir.path());
    assert!(
        err.contains(MODEL_FILE) && err.contains("tensor weights is missing"),
        "{err}"
    );
    let (dir, _) = copy_checkpoint(saved_ewc().0.path());
    edit_state(
        dir.path(),
        "\"method\": \"ewc\"",
        "\"method\": \"finetune\"",
    );
    let err = load_err(dir.path());
    assert!(
        err.contains(MODEL_FILE) && err.contains("unexpected tensor ewc.0.anchor"),
        "{err}"
    );
    let (dir, _) = copy_checkpoint(saved_ewc().0.path());
    edit_state(dir.path(), "\"method\": \"ewc\"", "\"method\": \"si\"");
    let err = load_err(dir.path());
    assert!(err.contains(MODEL_FILE) && err.contains("si."), "{err}");
}

#[test]
fn resuming_with_another_configuration_names_the_field_and_both_values() {
    let stored = &saved().1.config;
    let mut given = stored.clone();
    given.train.lr = 2e-3;
    let err = stored.check_same(&given).unwrap_err().to_string();
    assert!(
        err.contains("train.lr") && err.contains("0.001") && err.contains("0.002"),
        "{err}"
    );
    let mut given = stored.clone();
    given.target_hidden = vec![30];
    let err = stored.check_same(&given).unwrap_err().to_string();
    assert!(
        err.contains("target_hidden") && err.contains("[20]") && err.contains("[30]"),
        "{err}"
    );
    assert_eq!(
        stored.difference(&given),
        Some((
            "target_hidden".to_string(),
            "[20]".to_string(),
            "[30]".to_string()
        ))
    );
    let mut given = stored.clone();
    given.data_dir = PathBuf::from("elsewhere");
    stored.check_same(&given).unwrap();
    // A checkpoint whose tasks are not the configuration's is refused.
    let mut other = RunState::load(saved().0.path()).unwrap();
    other.tasks[1] = TaskSpec::Split { classes: [8, 9] };
    other.config.num_tasks = 3;
    let data = tasks(&other.config.task_specs());
    let err = other
        .continue_run(&data, None, &mut |_| {}, &mut |_| {
            panic!("nothing is trained")
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("task 1") && err.contains("split:8,9"), "{err}");
    // Data of another number of tasks than the configuration's.
    let err = other
        .continue_run(&data[..2], None, &mut |_| {}, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("expected the configuration's 3 tasks"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Export, evaluate, learn
// ---------------------------------------------------------------------------------------------

/// Checks export of every learned task of `state`: the target layout's names and shapes,
/// values equal to `weights(task)`, and the metadata.
fn check_export(state: &RunState, weights: impl Fn(usize) -> Vec<f32>) {
    let target = state.config.target();
    let layout = target.layout();
    let mut expected: Vec<&str> = layout.entries().iter().map(|e| e.name.as_str()).collect();
    expected.sort();
    assert_eq!(
        expected,
        ["heads.bias", "heads.weight", "layer0.bias", "layer0.weight"]
    );
    for task in 0..state.completed() {
        let bytes = export_task_weights(state, task).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<&str> = st.names();
        names.retain(|&n| n != "input_map");
        names.sort();
        assert_eq!(names, expected);
        let w = weights(task);
        assert_eq!(w.len(), target.num_weights());
        for e in layout.entries() {
            let t = st.tensor(&e.name).unwrap();
            assert_eq!(t.shape(), e.shape.as_slice(), "{}", e.name);
            assert_eq!(
                bits(&tensor_values(&st, &e.name)),
                bits(&w[e.range()]),
                "task {task}: {}",
                e.name
            );
        }
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta: serde_json::Value =
            serde_json::from_str(&meta.metadata().as_ref().unwrap()["hypertape"]).unwrap();
        assert_eq!(meta["task"], task.to_string());
        assert_eq!(meta["head"], state.config.head(task).to_string());
        assert_eq!(meta["spec"], state.tasks[task].to_string());
    }
    let n = state.completed();
    let err = export_task_weights(state, n).unwrap_err().to_string();
    assert!(
        err.contains(&format!("--task {n}: the run has learned task")),
        "{err}"
    );
}

#[test]
fn export_writes_the_generated_weights_under_the_target_layout_names() {
    let state = RunState::load(saved().0.path()).unwrap();
    let h = hnet_learner(&state);
    check_export(&state, |task| h.model.generated_weights(task));
}

#[test]
fn export_of_a_baseline_writes_its_trained_weights() {
    let state = RunState::load(saved_ewc().0.path()).unwrap();
    let weights = state.learner.save().tensors["weights"].clone();
    check_export(&state, |_| weights.clone());
}

#[test]
fn learn_adds_a_task_and_the_stored_tasks_keep_their_accuracy() {
    let mut state = RunState::load(saved().0.path()).unwrap();
    let before = state.history.accuracy_matrix[1].clone();
    let spec = TaskSpec::Split { classes: [8, 9] };
    let data = state.load_learned_data(Some(spec)).unwrap();
    assert_eq!(data.len(), 3);
    state.learn_task(spec, &data, &mut |_| {}).unwrap();
    assert_eq!(state.completed(), 3);
    assert_eq!(state.tasks[2], spec);
    let row = state.history.accuracy_matrix[2].clone();
    assert_eq!(row.len(), 3);
    assert!(row[2] > 80.0, "new task: {row:?}");
    for t in 0..2 {
        assert!(
            (row[t] - before[t]).abs() < 3.0,
            "task {t}: {} before, {} after",
            before[t],
            row[t]
        );
    }
    let eval = state.evaluate(&data).unwrap();
    assert_eq!(eval.iter().map(|r| r.with_task_id).collect::<Vec<_>>(), row);
    // Without task identity (CL3 rule) a prediction is right only if the inferred task is too.
    for r in &eval {
        let inferred = r.task_inference.unwrap();
        assert!(r.without_task_id <= r.with_task_id + 1e-9, "{r:?}");
        assert!(r.without_task_id <= inferred + 1e-9, "{r:?}");
        assert!(inferred > 0.0, "{r:?}");
        assert_eq!(r.picks.len(), 3);
    }
    assert!(state.evaluate(&data[..2]).is_err());
    // The grown run saves and loads.
    let dir = tempfile::tempdir().unwrap();
    state.save(&locked(dir.path())).unwrap();
    assert_eq!(
        snapshot(&RunState::load(dir.path()).unwrap()),
        snapshot(&state)
    );

    // A task of the wrong benchmark, or past the reserved heads, is refused.
    let permuted = TaskSpec::Permuted {
        seed: Some(1),
        index: 0,
    };
    let err = state.learn_task(permuted, &data, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("not a split-mnist task"), "{err}");
    let err = state.load_learned_data(Some(permuted)).unwrap_err();
    assert!(err.to_string().contains("not a split-mnist task"), "{err}");
    let spec = TaskSpec::Split { classes: [0, 9] };
    let more = state.load_learned_data(Some(spec)).unwrap();
    state.learn_task(spec, &more, &mut |_| {}).unwrap();
    state.check_room_for_task().unwrap_err();
    let before = snapshot(&state);
    let more = state.load_learned_data(Some(spec)).unwrap();
    let err = state.learn_task(spec, &more, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string().contains("4 heads") && err.to_string().contains("--heads"),
        "{err}"
    );
    assert_eq!(state.completed(), 4, "a refused task changes nothing");
    assert_eq!(snapshot(&state), before);
}

#[test]
fn learn_refuses_a_task_without_a_free_head() {
    // One head per task and every task learned: no head for another.
    let mut state = RunState::load(saved_ewc().0.path()).unwrap();
    assert!(state.is_finished());
    let err = state.check_room_for_task().unwrap_err().to_string();
    assert!(
        err.contains("2 heads, all used by its 2 tasks") && err.contains("--heads N"),
        "{err}"
    );
    let spec = TaskSpec::Split { classes: [4, 5] };
    let data = state.load_learned_data(Some(spec)).unwrap();
    let before = snapshot(&state);
    let err = state.learn_task(spec, &data, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("heads"), "{err}");
    assert_eq!(snapshot(&state), before, "a refused task changes nothing");
}

/// A checkpoint that `learn` grew past its configuration's tasks resumes as finished (nothing
/// left to train), not as an error.
#[test]
fn a_checkpoint_grown_by_learn_resumes_as_finished() {
    let mut state = RunState::load(saved().0.path()).unwrap();
    let extra = TaskSpec::Split { classes: [4, 5] };
    let data = state.load_learned_data(Some(extra)).unwrap();
    state.learn_task(extra, &data, &mut |_| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    state.save(&locked(dir.path())).unwrap();
    let mut state = RunState::load(dir.path()).unwrap();
    let before = snapshot(&state);
    assert!(state.is_finished());
    let own = tasks(&state.config.task_specs());
    state
        .continue_run(&own, Some(&locked(dir.path())), &mut |_| {}, &mut |_| {
            panic!("no task is left to train")
        })
        .unwrap();
    assert_eq!(snapshot(&state), before);
    assert_eq!(state.completed(), 3);
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// `hypertape run` of a tiny SI run of 3 tasks with `iterations` steps per task.
fn si_run(iterations: &str) -> Command {
    let mut cmd = Command::cargo_bin("hypertape").unwrap();
    cmd.args(["run", "split-mnist", "--method", "si", "--scenario", "cl1"])
        .args([
            "--tasks",
            "3",
            "--target-hidden",
            "20",
            "--iterations",
            iterations,
        ])
        .arg("--data-dir")
        .arg(mnist_dir());
    cmd
}

#[test]
fn cli_resumes_a_baseline_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("si");
    // A whole run, for reference.
    let whole = si_run("5").arg("--out").arg(&out).output().unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let reference = read_json(&out.join("results.json"));
    assert!(store::exists(&out));
    // Starting again into the same directory is refused and names --resume.
    let again = si_run("5").arg("--out").arg(&out).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    // The stored run as it was after two tasks (as if stopped there), then resumed.
    let c = RunState::load(&out).unwrap().config;
    run_all(&c, None, |s| {
        if s.completed() == 2 {
            s.save(&locked(&out)).unwrap();
        }
    });
    assert_eq!(RunState::load(&out).unwrap().completed(), 2);
    let resumed = si_run("5").arg("--resume").arg(&out).output().unwrap();
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(
        log.contains("resuming") && log.contains("after 2 of 3 tasks"),
        "{log}"
    );
    assert_eq!(
        log.matches("after task").count(),
        1,
        "only task 2 runs: {log}"
    );
    let results = read_json(&out.join("results.json"));
    assert_eq!(results["accuracy_matrix"], reference["accuracy_matrix"]);
    // Resuming with another setting names it.
    let other = si_run("6").arg("--resume").arg(&out).output().unwrap();
    let log = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success());
    assert!(
        log.contains("--iterations") && log.contains("train.iterations"),
        "{log}"
    );
}

// ---------------------------------------------------------------------------------------------
// Migration from format version 1 (the previous release's checkpoints)
// ---------------------------------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1")
        .join(name)
}

const HNET_V1: &str = "split-hnet-cl3-task0of3";
const EWC_V1: &str = "split-ewc-cl3";

/// A copy of a fixture in a new temporary directory.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(name), dir.path());
    dir
}

/// The results fields of the old release's uninterrupted run a resumed run must reproduce:
/// the accuracy and task-inference matrices exactly; the temperatures (median logit gaps) to
/// 1e-5 relative, because the log-sum-exp of the loss now subtracts the maximum first, which
/// moves the low bits of the weights (the matrices did not move).
fn assert_same_as_v1_results(results: &serde_json::Value, old: &serde_json::Value) {
    for field in ["accuracy_matrix", "task_inference_matrix"] {
        assert!(!old[field].is_null(), "{field}");
        assert_eq!(results[field], old[field], "{field}");
    }
    let t = |v: &serde_json::Value| -> Vec<f64> {
        v["task_temperatures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (new, old) = (t(results), t(old));
    assert_eq!(new.len(), old.len());
    for (a, b) in new.iter().zip(&old) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs(),
            "temperatures {new:?} vs {old:?}"
        );
    }
}

#[test]
fn v1_hypernetwork_checkpoint_is_migrated_on_load() {
    let dir = copy_fixture(HNET_V1);
    let state = RunState::load(dir.path()).unwrap();
    assert_eq!(state.completed(), 1);
    assert!(!state.is_finished());
    assert_eq!(state.config.num_tasks, 3);
    assert_eq!(state.config.scenario, Scenario::Cl3);
    assert_eq!(state.config.data_dir, PathBuf::from("data/mnist"));
    // θ's per-layer tensors joined in layout order, Adam moments dropped, the temperatures
    // moved to the scalars.
    let saved = state.learner.save();
    let names: Vec<&str> = saved.tensors.keys().map(String::as_str).collect();
    assert_eq!(names, ["task_embedding.0", "theta"]);
    let old = std::fs::read(fixture(HNET_V1).join("gen-000001").join(MODEL_FILE)).unwrap();
    let old = SafeTensors::deserialize(&old).unwrap();
    let h = hnet_learner(&state);
    let mut theta = Vec::new();
    for e in h.model.hnet.layout().entries() {
        theta.extend(tensor_values(&old, &format!("theta.{}", e.name)));
    }
    assert_eq!(theta.len(), 6243);
    assert_eq!(bits(&saved.tensors["theta"]), bits(&theta));
    assert_eq!(
        bits(&saved.tensors["task_embedding.0"]),
        bits(&tensor_values(&old, "task_embedding.0"))
    );
    assert_eq!(
        saved.scalars["temperatures"],
        vec![11.967836141586304],
        "task_temperatures → scalars temperatures"
    );
    assert_eq!(state.history.accuracy_matrix, vec![vec![99.95271867612293]]);
    assert_eq!(state.history.task_inference.len(), 1);
    assert_eq!(state.history.wall_seconds, 0.184982443);
    // The fixture itself is untouched by a load.
    assert_eq!(generations(dir.path()), ["gen-000001"]);
}

#[test]
fn v1_hypernetwork_checkpoint_resumes_like_the_old_uninterrupted_run() {
    let old = read_json(&fixture(HNET_V1).join("uninterrupted-results.json"));
    let dir = copy_fixture(HNET_V1);
    let mut state = RunState::load(dir.path()).unwrap();
    let data = state.load_data().unwrap();
    let mut trained = Vec::new();
    state
        .continue_run(&data, Some(&locked(dir.path())), &mut |_| {}, &mut |s| {
            trained.push(s.completed() - 1)
        })
        .unwrap();
    assert_eq!(trained, [1, 2]);
    let results = serde_json::to_value(state.results()).unwrap();
    assert_same_as_v1_results(&results, &old);
    assert_same_as_v1_results(&read_json(&dir.path().join("results.json")), &old);
    // Written back as version 2, which loads to the same state.
    let v = read_json(&current_gen(dir.path()).join(STATE_FILE));
    assert_eq!(v["format_version"], FORMAT_VERSION);
    assert_eq!(generations(dir.path()).len(), 1);
    let again = RunState::load(dir.path()).unwrap();
    assert_same_snapshot(&snapshot(&again), &snapshot(&state), "hnet v1 resumed");
}

#[test]
fn v1_hypernetwork_checkpoint_resumes_through_the_cli() {
    let old = read_json(&fixture(HNET_V1).join("uninterrupted-results.json"));
    let dir = copy_fixture(HNET_V1);
    // Another scenario than the stored run's is refused, naming the option as typed, and
    // changes nothing.
    let refused = Command::cargo_bin("hypertape")
        .unwrap()
        .args(["run", "--resume"])
        .arg(dir.path())
        .args(["--scenario", "cl2"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{log}");
    assert!(log.contains("--scenario cl2"), "{log}");
    assert_eq!(generations(dir.path()), ["gen-000001"]);
    assert!(!dir.path().join("results.json").exists());

    let resumed = Command::cargo_bin("hypertape")
        .unwrap()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--resume"])
        .arg(dir.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{log}");
    assert!(log.contains("after 1 of 3 tasks"), "{log}");
    assert_same_as_v1_results(&read_json(&dir.path().join("results.json")), &old);
    let v = read_json(&current_gen(dir.path()).join(STATE_FILE));
    assert_eq!(v["format_version"], FORMAT_VERSION);
}

#[test]
fn v1_hypernetwork_checkpoint_that_does_not_fit_its_configuration_names_the_tensor() {
    let dir = copy_fixture(HNET_V1);
    edit_state(
        dir.path(),
        "\"hidden\": [\n        5,\n        5",
        "\"hidden\": [\n        5,\n        6",
    );
    let err = load_err(dir.path());
    assert!(
        err.contains(MODEL_FILE)
            && err.contains("tensor theta.layer1.weight: expected 30 values (shape [6, 5]")
            && err.contains("found 25"),
        "{err}"
    );
}

/// A crafted version-1 hypernetwork checkpoint whose configuration asks for a θ of 10^11
/// values must be refused like a version-2 one ("networks of … weights, the file holds …"),
/// not abort the process. Run through the binary, so an abort fails this test only.
#[test]
fn a_crafted_v1_configuration_is_refused_before_memory_is_reserved() {
    let dir = copy_fixture(HNET_V1);
    edit_state(
        dir.path(),
        "\"target_hidden\": [\n      20\n    ]",
        "\"target_hidden\": [\n      67108864\n    ]",
    );
    edit_state(dir.path(), "\"chunk_size\": 1000", "\"chunk_size\": 1");
    let out = Command::cargo_bin("hypertape")
        .unwrap()
        .args(["run", "--resume"])
        .arg(dir.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    // Refused by the memory estimate of the configuration, or by the size guard.
    assert!(
        (log.contains(STATE_FILE) && log.contains("GiB"))
            || (log.contains(MODEL_FILE) && log.contains("networks of")),
        "{log}"
    );
}

#[test]
fn v1_baseline_checkpoint_loads_evaluates_exports_and_resaves_as_version_2() {
    let stored = read_json(&fixture(EWC_V1).join("results.json"));
    let dir = copy_fixture(EWC_V1);
    let state = RunState::load(dir.path()).unwrap();
    assert_eq!(state.completed(), 2);
    assert!(state.is_finished());
    assert_eq!(state.config.method, Method::Ewc);
    let results = serde_json::to_value(state.results()).unwrap();
    for field in [
        "accuracy_matrix",
        "task_inference_matrix",
        "final_task_picks",
        "backward_transfer",
        "forgetting",
    ] {
        assert_eq!(results[field], stored[field], "{field}");
    }
    // Evaluating the loaded networks gives what the old release measured after task 1 (CL3:
    // the accuracy without task identity, and the task inference).
    let data = state.load_learned_data(None).unwrap();
    let eval = state.evaluate(&data).unwrap();
    assert_eq!(eval.len(), 2);
    let last = |field: &str| -> Vec<f64> {
        serde_json::from_value(stored[field].as_array().unwrap().last().unwrap().clone()).unwrap()
    };
    assert_eq!(
        eval.iter().map(|r| r.without_task_id).collect::<Vec<_>>(),
        last("accuracy_matrix")
    );
    assert_eq!(
        eval.iter()
            .map(|r| r.task_inference.unwrap())
            .collect::<Vec<_>>(),
        last("task_inference_matrix")
    );
    for r in &eval {
        assert!(r.with_task_id >= r.without_task_id, "{r:?}");
    }
    // Export: the trained weights under the layout's names.
    let weights = state.learner.save().tensors["weights"].clone();
    assert_eq!(weights.len(), 15784);
    check_export(&state, |_| weights.clone());
    // Saved again: version 2, loads to the same state.
    let again = tempfile::tempdir().unwrap();
    state.save(&locked(again.path())).unwrap();
    let v = read_json(&current_gen(again.path()).join(STATE_FILE));
    assert_eq!(v["format_version"], FORMAT_VERSION);
    let model = std::fs::read(current_gen(again.path()).join(MODEL_FILE)).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&model).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["hypertape"]).unwrap();
    assert_eq!(meta["format_version"], FORMAT_VERSION.to_string());
    let reloaded = RunState::load(again.path()).unwrap();
    assert_same_snapshot(&snapshot(&reloaded), &snapshot(&state), "ewc v1 re-saved");
    assert_eq!(reloaded.history.wall_seconds, state.history.wall_seconds);
    // Saving into the fixture's copy makes a new generation and removes the old one.
    state.save(&locked(dir.path())).unwrap();
    assert_eq!(generations(dir.path()), ["gen-000003"]);
}

// ---------------------------------------------------------------------------------------------
// Arbitrary bytes never panic
// ---------------------------------------------------------------------------------------------

/// Which file of a generation a property test overwrites.
fn file_strategy() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(MODEL_FILE),
        Just(STATE_FILE),
        Just(SUMS_FILE),
        Just(CURRENT_FILE)
    ]
}

/// Changes one byte of `file` in `gen_dir` (or cuts the file there) and reseals.
fn change_or_cut(gen_dir: &Path, file: &str, at: prop::sample::Index, xor: u8, cut: bool) {
    let path = gen_dir.join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    let i = at.index(bytes.len());
    if cut {
        bytes.truncate(i);
    } else {
        bytes[i] ^= xor;
    }
    std::fs::write(&path, &bytes).unwrap();
    reseal(gen_dir);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn arbitrary_bytes_in_any_file_are_an_error_not_a_panic(
        file in file_strategy(),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        seal in any::<bool>(),
    ) {
        let (dir, gen_dir) = copy_saved();
        let path = if file == CURRENT_FILE { dir.path().join(file) } else { gen_dir.join(file) };
        std::fs::write(&path, &bytes).unwrap();
        if seal && file != SUMS_FILE && file != CURRENT_FILE {
            reseal(&gen_dir);
        }
        prop_assert!(RunState::load(dir.path()).is_err());
    }

    /// A byte changed anywhere in the model or state file of a hypernetwork checkpoint, or the
    /// file cut short, and the checksums rewritten to match: an error or the same run.
    #[test]
    fn changed_or_cut_valid_files_are_an_error_or_the_same_checkpoint(
        file in prop_oneof![Just(MODEL_FILE), Just(STATE_FILE)],
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
        cut in any::<bool>(),
    ) {
        let (dir, gen_dir) = copy_saved();
        change_or_cut(&gen_dir, file, at, xor, cut);
        // A change in JSON whitespace or a float's last bits may still load; nothing panics.
        if let Ok(loaded) = RunState::load(dir.path()) {
            prop_assert_eq!(loaded.completed(), 2);
        }
    }

    /// The same for HNET+R's checkpoint (classifier, VAE, losses).
    #[test]
    fn changed_or_cut_replay_files_are_an_error_or_the_same_checkpoint(
        model in any::<bool>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
        cut in any::<bool>(),
    ) {
        let (dir, gen_dir) = copy_checkpoint(saved_hnet_r().0.path());
        change_or_cut(&gen_dir, if model { MODEL_FILE } else { STATE_FILE }, at, xor, cut);
        if let Ok(loaded) = RunState::load(dir.path()) {
            prop_assert_eq!(loaded.completed(), 1);
        }
    }

    /// The same for the version-1 checkpoints of the previous release (the migration's own
    /// parser for the hypernetwork's, the shared one for EWC's).
    #[test]
    fn changed_or_cut_v1_files_are_an_error_or_the_same_checkpoint(
        hnet in any::<bool>(),
        model in any::<bool>(),
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
        cut in any::<bool>(),
    ) {
        let (name, completed) = if hnet { (HNET_V1, 1) } else { (EWC_V1, 2) };
        let dir = copy_fixture(name);
        let gen_dir = current_gen(dir.path());
        change_or_cut(&gen_dir, if model { MODEL_FILE } else { STATE_FILE }, at, xor, cut);
        if let Ok(loaded) = RunState::load(dir.path()) {
            prop_assert_eq!(loaded.completed(), completed);
        }
    }
}
