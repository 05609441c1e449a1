//! The command line of the scenarios, baselines, compare grid and toy regression: what each
//! writes and prints, and a bad method named.

use assert_cmd::Command;
use std::path::PathBuf;

fn mnist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

#[test]
fn compare_writes_a_table_and_json_for_every_cell() {
    let out = tempfile::tempdir().unwrap();
    let o = Command::cargo_bin("hypertape")
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
        .arg(out.path())
        .output()
        .unwrap();
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

    // Again into the same directory: every cell is taken from the runs already there, except
    // one whose results were made with another configuration, which is run again.
    let si = out.path().join("si-cl1-seed42/results.json");
    let mut changed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&si).unwrap()).unwrap();
    changed["config"]["train"]["iterations"] = serde_json::json!(6);
    std::fs::write(&si, serde_json::to_vec(&changed).unwrap()).unwrap();
    let again = Command::cargo_bin("hypertape")
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
        .arg(out.path())
        .output()
        .unwrap();
    assert!(again.status.success());
    let log = String::from_utf8_lossy(&again.stderr);
    assert_eq!(log.matches("results of an earlier run").count(), 3, "{log}");
    let rerun: serde_json::Value = serde_json::from_slice(&std::fs::read(&si).unwrap()).unwrap();
    assert_eq!(rerun["config"]["train"]["iterations"], 5);
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
