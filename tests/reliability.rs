//! Bad input and faults around runs: one writer per run directory, divergence that leaves the
//! last good checkpoint, options that do not apply, absurd sizes, bad output paths, and what
//! a killed writer leaves behind. Each test is a fault found by probing, with the behaviour
//! it must have now.

mod common;

use assert_cmd::Command;
use common::mnist_dir;
use hypertape::cl::LearnerState;
use hypertape::run::store::{self, Snapshot};
use hypertape::run::{ExperimentConfig, RunDir, RunState};
use hypertape::Error;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn hypertape() -> Command {
    Command::cargo_bin("hypertape").unwrap()
}

/// `hypertape run split-mnist` on the bundled data with `args`, a tiny target network.
fn run(out: &Path, args: &[&str]) -> std::process::Output {
    hypertape()
        .args(["run", "split-mnist", "--target-hidden", "20"])
        .args(args)
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn current(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("CURRENT")).unwrap()
}

#[test]
fn a_second_writer_is_refused_naming_the_holder_and_a_killed_ones_lock_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut first = std::process::Command::new(env!("CARGO_BIN_EXE_hypertape"))
        .args([
            "run",
            "split-mnist",
            "--tasks",
            "2",
            "--iterations",
            "100000",
        ])
        .args(["--target-hidden", "20", "--hnet-hidden", "5,5"])
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let lock = out.join("LOCK");
    while std::fs::read_to_string(&lock).map_or(true, |s| s.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the first run never took its lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Another run, a resume and `learn` on the same directory are all refused at once.
    for o in [
        run(&out, &["--tasks", "2"]),
        hypertape()
            .args(["learn"])
            .arg(&out)
            .args(["--task", "split:8,9"])
            .output()
            .unwrap(),
    ] {
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains("in use by hypertape run (pid") && err.contains("one writer"),
            "{err}"
        );
    }
    // The library refuses a second writer in the same way.
    let e = RunDir::open(&out, "test").unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");

    // SIGKILL: the operating system drops the lock with the process; the next run takes it.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!out.join("CURRENT").exists(), "no task was completed");
    let again = run(&out, &["--tasks", "1", "--iterations", "5"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(std::fs::read_to_string(&lock)
        .unwrap()
        .starts_with("hypertape run (pid"));
}

#[test]
fn what_a_killed_writer_leaves_is_removed_when_the_directory_is_next_opened() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run(&out, &["--tasks", "2", "--iterations", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let gen = current(&out).trim().to_string();
    // As a kill at the wrong moment leaves them: temporaries of atomic writes and a
    // generation that never became current.
    for name in [".CURRENT.tmp4242", ".results.json.tmp17"] {
        std::fs::write(out.join(name), b"partial").unwrap();
    }
    std::fs::create_dir(out.join("gen-000099")).unwrap();
    std::fs::write(out.join("gen-000099/model.safetensors"), b"partial").unwrap();
    // A reader changes nothing.
    let e = hypertape().arg("eval").arg(&out).output().unwrap();
    assert!(e.status.success(), "{}", stderr(&e));
    assert!(out.join(".CURRENT.tmp4242").exists());
    // The next writer cleans up, and the run stays whole.
    let r = hypertape()
        .args(["run", "--resume"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "CURRENT",
            "LOCK",
            "accuracy.svg",
            "accuracy_matrix.csv",
            "curves-task0.csv",
            "curves-task1.csv",
            "curves.csv",
            "curves.svg",
            gen.as_str(),
            "results.json"
        ]
    );
}

#[test]
fn a_diverging_run_exits_non_zero_names_the_setting_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (&["--emb-lr", "1e30"][..], "--emb-lr"),
        (&["--beta", "1e300"][..], "--beta"),
        (&["--lr", "1e30"][..], "--lr"),
    ] {
        let out = dir.path().join(flag.trim_start_matches('-'));
        // The paper's networks (the tiny ones of `run` survive some of these rates).
        let o = hypertape()
            .args(["run", "split-mnist", "--tasks", "2", "--iterations", "30"])
            .args(args)
            .arg("--data-dir")
            .arg(mnist_dir())
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} diverges: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("try a smaller {flag}")),
            "{args:?}: {err}"
        );
        // Whatever was stored before the divergence still loads and evaluates.
        if out.join("CURRENT").exists() {
            let e = hypertape().arg("eval").arg(&out).output().unwrap();
            assert!(e.status.success(), "{}", stderr(&e));
        }
    }
}

#[test]
fn a_state_with_a_nan_is_not_written_and_the_current_generation_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ExperimentConfig::paper_defaults(hypertape::run::Benchmark::SplitMnist);
    c.num_tasks = 1;
    c.train.iterations = 2;
    c.target_hidden = vec![10];
    c.data_dir = mnist_dir();
    let mut state = RunState::new(&c).unwrap();
    let data = state.load_data().unwrap();
    let locked = RunDir::open(dir.path(), "test").unwrap();
    state
        .continue_run(&data, Some(&locked), &mut |_| {}, &mut |_| {})
        .unwrap();
    let before = current(dir.path());
    let mut learner: LearnerState = state.learner.save();
    learner.tensors.get_mut("theta").unwrap()[3] = f32::NAN;
    let snapshot = Snapshot {
        config: state.config.clone(),
        tasks: state.tasks.clone(),
        history: state.history.clone(),
        state: learner,
    };
    let e = store::save(dir.path(), &snapshot).unwrap_err();
    assert!(matches!(e, Error::NonFinite(_)), "{e}");
    assert!(e.to_string().contains("tensor theta"), "{e}");
    assert_eq!(current(dir.path()), before);
    RunState::load(dir.path()).unwrap();
}

#[test]
fn options_that_do_not_apply_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            &["--method", "ewc", "--online-targets"][..],
            "--online-targets: applies to --method hnet or hnet-tir, not ewc",
        ),
        (
            &["--method", "finetune", "--reg-batch", "2"][..],
            "--reg-batch 2: applies to --method hnet or hnet-tir",
        ),
        (
            &["--method", "si", "--no-lookahead"][..],
            "--no-lookahead: applies to --method hnet or hnet-tir or hnet-r, not si",
        ),
        (
            &["--latent-dim", "10"][..],
            "--latent-dim 10: applies to --method hnet-r or hnet-tir, not hnet",
        ),
        (
            &["--data-seed", "3"][..],
            "--data-seed 3: applies to permuted-mnist",
        ),
        (
            &["--method", "ewc", "--si-c", "1"][..],
            "--si-c 1: applies to --method si, not ewc",
        ),
    ] {
        let out = dir.path().join("never");
        let o = run(&out, args);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(expected), "{args:?}: {}", stderr(&o));
        assert!(!out.exists(), "{args:?}: nothing is created");
    }
}

#[test]
fn absurd_sizes_are_refused_with_an_estimate_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    let max = usize::MAX.to_string();
    for args in [
        vec!["--encoder-hidden", "1000000000", "--method", "hnet-r"],
        vec!["--task-emb-dim", &max],
        vec!["--heads", &max],
        vec!["--batch-size", &max],
        vec!["--chunk-size", &max],
    ] {
        let o = run(&out, &args);
        assert!(!o.status.success(), "{args:?}");
        let err = stderr(&o);
        // The options that set the sizes are named (or the limit of the one given).
        assert!(
            err.contains(args[0]) || err.contains("batch-size"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked") && !err.contains("memory allocation"));
    }
    let o = hypertape()
        .args(["run", "split-mnist", "--target-hidden", "1000000000"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("--target-hidden 1000000000: this configuration needs about"),
        "{}",
        stderr(&o)
    );
    let o = hypertape()
        .args(["run", "permuted-mnist", "--tasks", "1000000"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(stderr(&o).contains("GiB"), "{}", stderr(&o));
    for args in [
        vec!["compare", "split-mnist", "--seeds", &max],
        vec!["bench", "--previous", "100000"],
        vec!["gradcheck", "--dims", "100000", "100000", "100000"],
        vec!["gradcheck", "--tolerance", "NaN"],
        vec!["gradcheck", "--tolerance", "-1"],
        vec!["gradcheck", "--eps", "0"],
        vec!["run", "toy-regression", "--lr", "0"],
        vec!["run", "toy-regression", "--beta=-5"],
        vec!["run", "toy-regression", "--batch-size", "1000000000"],
    ] {
        let o = hypertape().args(&args).output().unwrap();
        assert!(!o.status.success(), "{args:?}");
        let err = stderr(&o);
        assert!(
            !err.contains("panicked") && !err.contains("memory allocation"),
            "{args:?}: {err}"
        );
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}

#[test]
fn a_bad_out_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    for out in [file.as_path(), Path::new("/dev/null")] {
        let start = Instant::now();
        let o = run(out, &[]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains("--out") && err.contains("not a directory"),
            "{err}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "refused before training"
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn faults_found_by_the_second_probe_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let max = usize::MAX.to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "split-mnist", "--iterations", &max],
            "iterations: must be at most 10000000",
        ),
        (
            vec![
                "run",
                "split-mnist",
                "--method",
                "hnet-r",
                "--latent-dim",
                &max,
            ],
            "--latent-dim 18446744073709551615: the networks",
        ),
        (
            vec!["bench", "--benchmark", "split-mnist", "--previous", &max],
            "at most 1000 previous tasks",
        ),
        (
            vec!["run", "toy-regression", "--method", "ewc"],
            "--method ewc: not read by toy-regression",
        ),
        (
            vec!["gradcheck", "--pipeline", "--dims", "2", "2", "2"],
            "cannot be used with",
        ),
        (
            vec!["gradcheck", "--eps", "1e300"],
            "--eps: must be between 1e-12 and 0.1",
        ),
        (
            vec![
                "compare",
                "split-mnist",
                "--methods",
                "hnet,si,hnet",
                "--list",
            ],
            "--methods hnet,si,hnet: hnet is given twice",
        ),
    ];
    for (args, expected) in cases {
        let o = hypertape()
            .args(&args)
            .arg("--out")
            .arg(dir.path().join("never"))
            .output()
            .unwrap();
        let o = if stderr(&o).contains("unexpected argument '--out'") {
            hypertape().args(&args).output().unwrap()
        } else {
            o
        };
        assert!(!o.status.success(), "{args:?}");
        assert!(stderr(&o).contains(expected), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_diverging_penalty_names_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            &["--method", "ewc", "--ewc-lambda", "1e300"][..],
            "try a smaller --ewc-lambda",
        ),
        (
            &["--method", "online-ewc", "--online-ewc-gamma", "1e300"][..],
            "try a smaller --online-ewc-gamma",
        ),
        (
            &["--method", "si", "--si-xi", "1e-300"][..],
            "try a larger --si-xi",
        ),
    ] {
        let out = dir.path().join(args[1]);
        let o = run(
            &out,
            &[&["--tasks", "3", "--iterations", "30"], args].concat(),
        );
        assert!(!o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn export_refuses_to_write_into_its_run_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run(&out, &["--tasks", "1", "--iterations", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = current(&out);
    for target in [out.join("CURRENT"), out.join("weights.safetensors")] {
        let e = hypertape()
            .arg("export")
            .arg(&out)
            .args(["--task", "0", "--out"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(!e.status.success());
        assert!(
            stderr(&e).contains("inside the run directory"),
            "{}",
            stderr(&e)
        );
    }
    assert_eq!(current(&out), before);
    RunState::load(&out).unwrap();
}

#[test]
fn a_stored_configuration_with_an_unknown_field_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = run(&out, &["--tasks", "1", "--iterations", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let gen = out.join(current(&out).trim());
    let state_path = gen.join("state.json");
    let text = std::fs::read_to_string(&state_path).unwrap();
    let text = text.replacen("\"num_tasks\"", "\"zzz_unknown\": 1,\n    \"num_tasks\"", 1);
    std::fs::write(&state_path, &text).unwrap();
    let sums: String = ["model.safetensors", "state.json"]
        .iter()
        .map(|f| {
            let bytes = std::fs::read(gen.join(f)).unwrap();
            format!("{}  {f}\n", hypertape::fsio::sha256_hex(&bytes))
        })
        .collect();
    std::fs::write(gen.join("SHA256SUMS"), sums).unwrap();
    let e = RunState::load(&out).unwrap_err().to_string();
    assert!(
        e.contains("state.json") && e.contains("unknown field `zzz_unknown`"),
        "{e}"
    );
}

#[test]
fn a_labels_file_of_another_kind_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(mnist_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name != "SHA256SUMS" && !name.ends_with(".md") {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    // The test images where the test labels should be.
    std::fs::copy(
        mnist_dir().join("t10k-images-idx3-ubyte.gz"),
        dir.path().join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let e = hypertape::data::load_mnist(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t10k-labels-idx1-ubyte.gz")
            && e.contains("expected rank 1 for labels, found rank 3"),
        "{e}"
    );
}
