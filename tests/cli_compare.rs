//! The command line of the scenarios, baselines, compare grid and toy regression: what each
//! writes and prints, and a bad method named.

mod common;

use assert_cmd::Command;
use common::{mnist_dir, split_config};
use hypertape::cl::{Method, Scenario};
use hypertape::run::{ExperimentConfig, RunDir, RunState};

/// A tiny SplitMNIST compare grid (hnet and SI, CL1 and CL3, 2 tasks of 5 steps) into `out`.
fn tiny_compare(out: &std::path::Path) -> std::process::Output {
    Command::cargo_bin("hypertape")
        .unwrap()
        .args(["compare", "split-mnist", "--methods", "hnet,si"])
        .args([
            "--scenarios",
            "cl1,cl3",
            "--tasks",
            "2",
            "--iterations",
            "5",
        ])
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn compare_writes_a_table_and_json_for_every_cell() {
    let out = tempfile::tempdir().unwrap();
    let o = tiny_compare(out.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(out.path().join("table.md")).unwrap();
    assert!(table.contains("| method | CL1 | CL3 |"), "{table}");
    assert!(table.contains("| si |"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("compare.json")).unwrap()).unwrap();
    assert_eq!(json["cells"].as_array().unwrap().len(), 4);
    let run = out.path().join("hnet-cl3-seed42/results.json");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(run).unwrap()).unwrap();
    assert_eq!(r["task_inference_matrix"].as_array().unwrap().len(), 2);
    assert!(r["backward_transfer"].is_number());
    // Progress after every task of every new run.
    let log = String::from_utf8_lossy(&o.stderr);
    for cell in ["hnet cl1", "hnet cl3", "si cl1", "si cl3"] {
        for t in 0..2 {
            let line = format!("{cell} seed 42: after task {t}, mean test accuracy");
            assert!(log.contains(&line), "{line} in {log}");
        }
    }

    let first_si: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join("si-cl1-seed42/results.json")).unwrap(),
    )
    .unwrap();

    // Again into the same directory: every finished cell is taken from its checkpoint.
    let again = tiny_compare(out.path());
    assert!(again.status.success());
    let log = String::from_utf8_lossy(&again.stderr);
    assert_eq!(log.matches("results of an earlier run").count(), 4, "{log}");
    assert_eq!(
        log.matches("after task").count(),
        0,
        "nothing runs again: {log}"
    );

    // A cell stopped after its first task resumes there, and ends as the uninterrupted run.
    let si_dir = out.path().join("si-cl1-seed42");
    std::fs::remove_dir_all(&si_dir).unwrap();
    let config = cell_config(Method::Si, Scenario::Cl1, 5);
    let mut state = RunState::new(&config).unwrap();
    let data = state.load_data().unwrap();
    state
        .learn_task(config.task_specs()[0], &data[..1], &mut |_| {})
        .unwrap();
    state.save(&RunDir::open(&si_dir, "test").unwrap()).unwrap();
    let resumed = tiny_compare(out.path());
    assert!(resumed.status.success());
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(log.contains("si cl1 seed 42: final mean accuracy"), "{log}");
    assert!(log.contains("resumed after task 0"), "{log}");
    assert_eq!(
        log.matches("after task 1,").count(),
        1,
        "only task 1 runs: {log}"
    );
    assert_eq!(log.matches("results of an earlier run").count(), 3, "{log}");
    let si: serde_json::Value =
        serde_json::from_slice(&std::fs::read(si_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(si["accuracy_matrix"], first_si["accuracy_matrix"]);

    // A cell directory holding a run of other settings is refused, naming it; --fresh runs
    // the grid again.
    std::fs::remove_dir_all(&si_dir).unwrap();
    let mut other = RunState::new(&cell_config(Method::Si, Scenario::Cl1, 6)).unwrap();
    other
        .continue_run(
            &data,
            Some(&RunDir::open(&si_dir, "test").unwrap()),
            &mut |_| {},
            &mut |_| {},
        )
        .unwrap();
    let refused = tiny_compare(out.path());
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("si-cl1-seed42") && err.contains("--fresh"),
        "{err}"
    );
    assert!(err.contains("train.iterations"), "{err}");
    let fresh = Command::cargo_bin("hypertape")
        .unwrap()
        .args([
            "compare",
            "split-mnist",
            "--methods",
            "si",
            "--scenarios",
            "cl1",
        ])
        .args(["--tasks", "2", "--iterations", "5", "--fresh"])
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        fresh.status.success(),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    let si: serde_json::Value =
        serde_json::from_slice(&std::fs::read(si_dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(si["config"]["train"]["iterations"], 5);
    assert_eq!(si["accuracy_matrix"], first_si["accuracy_matrix"]);

    // A grid written before cells kept checkpoints has only results.json: a cell's is reused
    // when it is the same run. A setting the method does not read does not count: a
    // hypernetwork run stored before the replay model had `unseen_classes` (so it reads back
    // as another value) is the same run.
    let hnet_dir = out.path().join("hnet-cl3-seed42");
    for entry in std::fs::read_dir(&hnet_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name == "CURRENT" {
            std::fs::remove_file(&path).unwrap();
        } else if name.starts_with("gen-") {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    let hnet = hnet_dir.join("results.json");
    let mut old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&hnet).unwrap()).unwrap();
    let replay = old["config"]["replay"].as_object_mut().unwrap();
    assert!(replay.remove("unseen_classes").is_some());
    std::fs::write(&hnet, serde_json::to_vec(&old).unwrap()).unwrap();
    let legacy = tiny_compare(out.path());
    assert!(legacy.status.success());
    let log = String::from_utf8_lossy(&legacy.stderr);
    assert_eq!(log.matches("results of an earlier run").count(), 4, "{log}");
}

/// The configuration of one cell of [`tiny_compare`]'s grid, with `iterations` steps.
fn cell_config(method: Method, scenario: Scenario, iterations: usize) -> ExperimentConfig {
    let mut c = split_config(method, scenario, 2);
    c.train.iterations = iterations;
    c
}

#[test]
fn unknown_method_is_named() {
    let o = Command::cargo_bin("hypertape")
        .unwrap()
        .args(["run", "split-mnist", "--method", "lwf"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown method 'lwf'"));
}

#[test]
fn toy_regression_writes_results_and_svg() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::cargo_bin("hypertape")
        .unwrap()
        .args(["run", "toy-regression", "--iterations", "50", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("task 0 MSE") && stdout.contains("ewc"),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(out.path().join("curves.svg")).unwrap();
    assert!(svg.contains("<polyline"));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(r["methods"].as_array().unwrap().len(), 3);
}

fn tiny_replay_run(out: &std::path::Path, method: &str, scenario: &str) -> Command {
    let mut cmd = Command::cargo_bin("hypertape").unwrap();
    cmd.args([
        "run",
        "split-mnist",
        "--method",
        method,
        "--scenario",
        scenario,
    ])
    .args([
        "--tasks",
        "2",
        "--iterations",
        "10",
        "--target-hidden",
        "20",
    ])
    .args([
        "--encoder-hidden",
        "20",
        "--decoder-hidden",
        "20",
        "--latent-dim",
        "4",
    ])
    .arg("--data-dir")
    .arg(mnist_dir())
    .arg("--out")
    .arg(out);
    cmd
}

#[test]
fn replay_run_writes_results_and_png_pictures_of_replayed_digits() {
    let tmp = tempfile::tempdir().unwrap();
    for (method, scenario) in [("hnet-r", "cl3"), ("hnet-tir", "cl2")] {
        let out = tmp.path().join(method);
        let o = tiny_replay_run(&out, method, scenario).output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(stdout.contains("replayed samples:"), "{stdout}");
        assert!(stdout.contains("VAE loss per task"), "{stdout}");
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
        assert_eq!(r["config"]["method"], method);
        assert_eq!(r["config"]["replay"]["latent_dim"], 4);
        assert_eq!(r["task_inference_matrix"].as_array().unwrap().len(), 2);
        for f in ["replay-task0.png", "replay.png"] {
            let png = std::fs::read(out.join(f)).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{f}");
        }
        // The last task is never replayed, so the VAE does not learn it.
        assert!(!out.join("replay-task1.png").exists());
    }
}

#[test]
fn compare_runs_replay_methods_and_names_them() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::cargo_bin("hypertape")
        .unwrap()
        .args(["compare", "split-mnist", "--methods", "hnet-r,hnet-tir"])
        .args(["--scenarios", "cl2", "--tasks", "2", "--iterations", "3"])
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(out.path().join("table.md")).unwrap();
    assert!(table.contains("| hnet-r (HNET+R) |"), "{table}");
    assert!(
        table.contains("| hnet-tir (HNET+TIR; CL1: HNET) |"),
        "{table}"
    );
    assert!(out.path().join("hnet-tir-cl2-seed42/replay.png").exists());
}

#[test]
fn bad_replay_settings_are_refused_with_their_name() {
    let tmp = tempfile::tempdir().unwrap();
    for (flag, value, named) in [
        ("--latent-dim", "0", "latent-dim"),
        ("--decoder-hidden", "0", "decoder-hidden"),
        ("--replay-beta=-1", "", "replay-beta"),
    ] {
        let o = Command::cargo_bin("hypertape")
            .unwrap()
            .args([
                "run",
                "split-mnist",
                "--method",
                "hnet-r",
                "--scenario",
                "cl2",
            ])
            .args(["--tasks", "2", "--iterations", "2", flag])
            .args((!value.is_empty()).then_some(value))
            .arg("--data-dir")
            .arg(mnist_dir())
            .arg("--out")
            .arg(tmp.path().join("bad"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(named) && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}
