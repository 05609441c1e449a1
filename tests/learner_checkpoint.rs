//! Checkpoints of the runs of the other methods than the hypernetwork's (fine-tuning, EWC,
//! online EWC, SI, HNET+R, HNET+TIR) on tiny SplitMNIST runs: a run stopped after a task and
//! resumed from its checkpoint on disk ends bit for bit like an uninterrupted one; a bad
//! checkpoint (a value missing, extra or of another size, another method's checkpoint, a
//! crafted configuration, a flipped byte) gives an error naming the file, and no change to
//! a file panics; `run --resume` continues a stored run from the command line.

use assert_cmd::Command;
use hypertape::checkpoint::{self, MODEL_FILE, STATE_FILE};
use hypertape::cl::{Method, Scenario};
use hypertape::data::{load_mnist, ClassificationTask, Mnist};
use hypertape::experiment::{self, Benchmark, ExperimentConfig, LearnerCheckpoint};
use hypertape::Error;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

fn config(method: Method, scenario: Scenario) -> ExperimentConfig {
    let mut c = ExperimentConfig::paper_defaults(Benchmark::SplitMnist);
    c.set_method_and_scenario(method, scenario);
    c.num_tasks = 3;
    c.target_hidden = vec![20];
    c.hnet.chunk_size = Some(3000);
    c.train.iterations = 15;
    c.baseline.fisher_samples = 50;
    let r = &mut c.replay;
    r.latent_dim = 4;
    r.encoder_hidden = vec![16];
    r.decoder_hidden = vec![16];
    r.hnet.task_emb_dim = 4;
    r.hnet.hidden = vec![6];
    r.hnet.chunk_size = Some(3000);
    r.hnet.chunk_emb_dim = 4;
    c.data_dir = data_dir();
    c
}

fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| load_mnist(&data_dir()).expect("MNIST in data/mnist"))
}

fn tasks(c: &ExperimentConfig) -> Vec<ClassificationTask> {
    c.task_specs()
        .iter()
        .map(|s| s.load(mnist(), 0).unwrap())
        .collect()
}

/// The checkpoint as of the end of the run, with the time spent zeroed (it differs).
fn timeless(mut c: LearnerCheckpoint) -> LearnerCheckpoint {
    c.history.wall_seconds = 0.0;
    c
}

/// Runs `c` to the end in one go, and again stopped after `stop` tasks (an error from the
/// task-end hook, after the checkpoint is written), loaded from disk and resumed; both must
/// end in the same state, with the same results and replay pictures.
fn check_resume(c: &ExperimentConfig, stop: usize) {
    let data = tasks(c);
    let mut whole = LearnerCheckpoint::new(c).unwrap();
    let whole_out =
        experiment::continue_learner_run(&mut whole, &data, &mut |_| {}, &mut |_| Ok(())).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut first = LearnerCheckpoint::new(c).unwrap();
    let err = experiment::continue_learner_run(&mut first, &data, &mut |_| {}, &mut |s| {
        checkpoint::save_learner(dir.path(), s)?;
        if s.completed() == stop {
            Err(Error::NonFinite("stopped".into()))
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert!(err.to_string().contains("stopped"), "{err}");
    let mut resumed = checkpoint::load_learner(dir.path()).unwrap();
    assert_eq!(resumed.completed(), stop);
    assert!(resumed == first, "the checkpoint reads back as written");
    let resumed_out =
        experiment::continue_learner_run(&mut resumed, &data, &mut |_| {}, &mut |_| Ok(()))
            .unwrap();
    let name = format!("{} {}", c.method.name(), c.scenario.name());
    // (Not assert_eq: the states are large.)
    assert!(
        timeless(resumed) == timeless(whole),
        "{name}: the final states differ"
    );
    let (mut a, mut b) = (whole_out.results, resumed_out.results);
    a.wall_seconds = 0.0;
    b.wall_seconds = 0.0;
    assert_eq!(a, b, "{name}: results");
    assert_eq!(
        whole_out.replay_samples, resumed_out.replay_samples,
        "{name}: replay pictures"
    );
}

#[test]
fn baselines_resume_bit_for_bit() {
    for (method, scenario) in [
        (Method::Finetune, Scenario::Cl1),
        (Method::Ewc, Scenario::Cl3),
        (Method::OnlineEwc, Scenario::Cl2),
        (Method::Si, Scenario::Cl1),
    ] {
        check_resume(&config(method, scenario), 2);
    }
    // Stopped after the first task: online EWC's running Fisher and SI's anchor appear.
    check_resume(&config(Method::OnlineEwc, Scenario::Cl1), 1);
    check_resume(&config(Method::Si, Scenario::Cl3), 1);
}

#[test]
fn replay_methods_resume_bit_for_bit() {
    check_resume(&config(Method::HnetR, Scenario::Cl3), 1);
    check_resume(&config(Method::HnetR, Scenario::Cl2), 2);
    check_resume(&config(Method::HnetTir, Scenario::Cl3), 2);
    check_resume(&config(Method::HnetTir, Scenario::Cl1), 1);
}

/// A saved HNET+R checkpoint after one task (the richest state: classifier, encoder, decoder
/// hypernetwork and one task embedding, VAE losses).
fn saved_hnet_r() -> (tempfile::TempDir, LearnerCheckpoint) {
    let c = config(Method::HnetR, Scenario::Cl3);
    let data = tasks(&c);
    let dir = tempfile::tempdir().unwrap();
    let mut state = LearnerCheckpoint::new(&c).unwrap();
    let _ = experiment::continue_learner_run(&mut state, &data, &mut |_| {}, &mut |s| {
        checkpoint::save_learner(dir.path(), s)?;
        Err(Error::NonFinite("stopped".into()))
    });
    (dir, state)
}

fn load_err(dir: &Path) -> String {
    checkpoint::load_learner(dir).unwrap_err().to_string()
}

#[test]
fn bad_learner_checkpoints_are_named() {
    let (_dir, good) = saved_hnet_r();
    let save = |c: &LearnerCheckpoint| {
        let d = tempfile::tempdir().unwrap();
        checkpoint::save_learner(d.path(), c).unwrap();
        d
    };
    // A tensor missing, one left over, one of another size, a scalar missing.
    let mut c = good.clone();
    c.state.tensors.remove("vae.decoder.task_embedding.0");
    let d = save(&c);
    let err = load_err(d.path());
    assert!(
        err.contains(MODEL_FILE) && err.contains("vae.decoder.task_embedding.0 is missing"),
        "{err}"
    );
    let mut c = good.clone();
    c.state.put("vae.decoder.task_embedding.1", &[0.0; 4]);
    let err = load_err(save(&c).path());
    assert!(
        err.contains("unexpected tensor vae.decoder.task_embedding.1"),
        "{err}"
    );
    let mut c = good.clone();
    c.state.tensors.get_mut("classifier.weights").unwrap().pop();
    let err = load_err(save(&c).path());
    assert!(
        err.contains("tensor classifier.weights: expected") && err.contains("found"),
        "{err}"
    );
    let mut c = good.clone();
    c.state.scalars.clear();
    let err = load_err(save(&c).path());
    assert!(err.contains("scalars vae.losses are missing"), "{err}");
    // A record that does not fit: an accuracy row too short.
    let mut c = good.clone();
    c.history.accuracy_matrix[0].clear();
    let err = load_err(save(&c).path());
    assert!(
        err.contains(STATE_FILE) && err.contains("accuracy_matrix"),
        "{err}"
    );
    // A configuration whose networks are far larger than the file: refused before any is built.
    let mut c = good.clone();
    c.config.target_hidden = vec![1 << 18, 1 << 18];
    let err = load_err(save(&c).path());
    assert!(
        err.contains(MODEL_FILE) && err.contains("networks of"),
        "{err}"
    );
    // A flipped byte in the model file: its checksum.
    let d = save(&good);
    let gen = std::fs::read_to_string(d.path().join("CURRENT")).unwrap();
    let model = d.path().join(gen.trim()).join(MODEL_FILE);
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&model, bytes).unwrap();
    let err = load_err(d.path());
    assert!(err.contains("SHA-256 mismatch"), "{err}");
}

#[test]
fn each_kind_of_checkpoint_refuses_the_other() {
    let (dir, _) = saved_hnet_r();
    let err = checkpoint::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("holds a hnet-r run") && err.contains("--method hnet"),
        "{err}"
    );
    let mut c = config(Method::Hnet, Scenario::Cl1);
    c.num_tasks = 1;
    let hnet_dir = tempfile::tempdir().unwrap();
    let state = checkpoint::Checkpoint::new(&c).unwrap();
    checkpoint::save(hnet_dir.path(), &state).unwrap();
    let err = load_err(hnet_dir.path());
    assert!(err.contains("holds a hypernetwork"), "{err}");
    let err = LearnerCheckpoint::new(&c).unwrap_err().to_string();
    assert!(err.contains("method"), "{err}");
}

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
        .arg(data_dir());
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
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert!(checkpoint::exists(&out));
    // Starting again into the same directory is refused and names --resume.
    let again = si_run("5").arg("--out").arg(&out).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    // The stored run as it was after two tasks (as if stopped there), then resumed.
    let c = checkpoint::load_learner(&out).unwrap().config;
    let mut two = LearnerCheckpoint::new(&c).unwrap();
    let _ = experiment::continue_learner_run(&mut two, &tasks(&c), &mut |_| {}, &mut |s| {
        if s.completed() == 2 {
            Err(Error::NonFinite("stopped".into()))
        } else {
            Ok(())
        }
    });
    assert_eq!(two.completed(), 2);
    checkpoint::save_learner(&out, &two).unwrap();
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
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["accuracy_matrix"], reference["accuracy_matrix"]);
    // Resuming with another setting names it.
    let other = si_run("6").arg("--resume").arg(&out).output().unwrap();
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("train.iterations"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
}

/// The saved HNET+R checkpoint, shared (tests copy its directory before changing files).
fn shared_hnet_r() -> &'static (tempfile::TempDir, LearnerCheckpoint) {
    static SAVED: OnceLock<(tempfile::TempDir, LearnerCheckpoint)> = OnceLock::new();
    SAVED.get_or_init(saved_hnet_r)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// A byte changed anywhere in the model or state file, or the file cut short, and the
    /// checksums rewritten to match: an error or the same checkpoint, never a panic.
    #[test]
    fn changed_or_cut_learner_files_are_an_error_or_the_same_checkpoint(
        model in proptest::prelude::any::<bool>(),
        at in proptest::prelude::any::<proptest::sample::Index>(),
        xor in 1u8..,
        cut in proptest::prelude::any::<bool>(),
    ) {
        let (src, good) = shared_hnet_r();
        let dir = tempfile::tempdir().unwrap();
        let gen = std::fs::read_to_string(src.path().join("CURRENT")).unwrap();
        let gen = gen.trim();
        std::fs::copy(src.path().join("CURRENT"), dir.path().join("CURRENT")).unwrap();
        std::fs::create_dir(dir.path().join(gen)).unwrap();
        for f in [MODEL_FILE, STATE_FILE] {
            std::fs::copy(src.path().join(gen).join(f), dir.path().join(gen).join(f)).unwrap();
        }
        let gen_dir = dir.path().join(gen);
        let path = gen_dir.join(if model { MODEL_FILE } else { STATE_FILE });
        let mut bytes = std::fs::read(&path).unwrap();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] ^= xor;
        }
        std::fs::write(&path, &bytes).unwrap();
        let sum = |f: &str| checkpoint::sha256_hex(&std::fs::read(gen_dir.join(f)).unwrap());
        let sums = format!("{}  {MODEL_FILE}\n{}  {STATE_FILE}\n", sum(MODEL_FILE), sum(STATE_FILE));
        std::fs::write(gen_dir.join(checkpoint::SUMS_FILE), sums).unwrap();
        // A change in JSON whitespace or a float's last bits may still load; nothing panics.
        if let Ok(loaded) = checkpoint::load_learner(dir.path()) {
            proptest::prop_assert_eq!(loaded.completed(), good.completed());
        }
    }
}
