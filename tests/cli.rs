//! The `hypertape` command line: the gradient audits, a tiny successful run and what it writes,
//! and failures that name their cause (a missing data directory, a bad option, a truncated IDX
//! file, a file whose SHA-256 does not match).

mod common;

use assert_cmd::Command;
use common::mnist_dir;
use hypertape::data::read_idx;
use std::path::Path;

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

fn hypertape() -> Command {
    Command::cargo_bin("hypertape").unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tiny run on `data_dir` writing to `out`.
fn tiny_run(data_dir: &Path, out: &Path) -> Command {
    let mut cmd = hypertape();
    cmd.args(["run", "split-mnist", "--tasks", "2", "--iterations", "20"])
        .args(["--target-hidden", "20", "--chunk-size", "3000"])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--out")
        .arg(out);
    cmd
}

/// A copy of the MNIST directory in a temporary directory, with or without SHA256SUMS.
fn copy_mnist(with_sums: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in FILES {
        std::fs::copy(mnist_dir().join(f), dir.path().join(f)).unwrap();
    }
    if with_sums {
        std::fs::copy(
            mnist_dir().join("SHA256SUMS"),
            dir.path().join("SHA256SUMS"),
        )
        .unwrap();
    }
    dir
}

#[test]
fn gradcheck_of_the_ops_passes() {
    let out = hypertape().arg("gradcheck").output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("passed, 0 failed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn gradcheck_with_an_impossible_tolerance_fails() {
    // The exit status follows the audit: a tolerance no difference quotient meets fails.
    let out = hypertape()
        .args(["gradcheck", "--tolerance", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!stdout(&out).contains(" 0 failed"), "{}", stdout(&out));
}

#[test]
fn gradcheck_of_the_pipeline_passes() {
    let out = hypertape()
        .args(["gradcheck", "--pipeline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("all passed"), "{text}");
    for l in ["an Adam step", "a gradient-descent step", "none (at θ)"] {
        assert!(text.contains(&format!("look-ahead {l}")), "{text}");
    }
    assert!(text.contains("VAE loss of hnet-r/hnet-tir"), "{text}");
}

#[test]
fn missing_data_directory_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = hypertape()
        .args(["run", "split-mnist", "--data-dir", "/nonexistent"])
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/nonexistent"), "{}", stderr(&out));
}

#[test]
fn zero_tasks_is_rejected_naming_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let out = hypertape()
        .args(["run", "split-mnist", "--tasks", "0", "--out"])
        .arg(tmp.path())
        .arg("--data-dir")
        .arg(mnist_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("tasks"), "{}", stderr(&out));
    assert!(!tmp.path().join("results.json").exists());
}

#[test]
fn tiny_run_writes_results() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let out = tiny_run(&mnist_dir(), &out_dir).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("results.json")).unwrap()).unwrap();
    for key in [
        "config",
        "seed",
        "version",
        "accuracy_matrix",
        "final_accuracy",
        "final_mean_accuracy",
        "during_accuracy",
        "during_mean_accuracy",
        "wall_seconds",
    ] {
        assert!(json.get(key).is_some(), "results.json lacks {key}: {json}");
    }
    assert_eq!(json["seed"], 42);
    assert_eq!(json["config"]["num_tasks"], 2);
    let matrix = json["accuracy_matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 2);
    assert_eq!(matrix[0].as_array().unwrap().len(), 1);
    assert_eq!(matrix[1].as_array().unwrap().len(), 2);
    for a in json["final_accuracy"].as_array().unwrap() {
        let a = a.as_f64().unwrap();
        assert!((0.0..=100.0).contains(&a), "{a}");
    }
    let csv = std::fs::read_to_string(out_dir.join("accuracy_matrix.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "after_task,task_0,task_1");
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1].starts_with("0,") && lines[1].ends_with(','),
        "{csv}"
    );
    assert!(stdout(&out).contains("mean"), "{}", stdout(&out));
}

#[test]
fn truncated_idx_file_is_named() {
    // The labels of the test set, decompressed and cut short, in place of the .gz file.
    let dir = copy_mnist(false);
    let name = "t10k-labels-idx1-ubyte";
    let labels = read_idx(&mnist_dir().join(format!("{name}.gz"))).unwrap();
    assert_eq!(labels.dims, [10_000]);
    let mut bytes = vec![0, 0, 8, 1];
    bytes.extend_from_slice(&10_000u32.to_be_bytes());
    bytes.extend_from_slice(&labels.data[..9_000]);
    std::fs::remove_file(dir.path().join(format!("{name}.gz"))).unwrap();
    std::fs::write(dir.path().join(name), &bytes).unwrap();
    let out = tiny_run(dir.path(), &dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(name), "{err}");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn truncated_gzip_file_is_named() {
    let dir = copy_mnist(false);
    let name = "t10k-labels-idx1-ubyte.gz";
    let path = dir.path().join(name);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let out = tiny_run(dir.path(), &dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains(name), "{}", stderr(&out));
}

#[test]
fn altered_file_fails_the_checksum_naming_it() {
    let dir = copy_mnist(true);
    let name = "train-labels-idx1-ubyte.gz";
    let path = dir.path().join(name);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let out = tiny_run(dir.path(), &dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(name), "{err}");
    assert!(err.contains("SHA-256 mismatch"), "{err}");
    assert!(!dir.path().join("out/results.json").exists());
}

#[test]
fn a_stored_model_learns_a_task_later_and_is_evaluated_and_exported() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("run");
    let mut cmd = tiny_run(&mnist_dir(), &dir);
    cmd.args(["--heads", "3"]).assert().success();
    for f in [
        "CURRENT",
        "results.json",
        "accuracy_matrix.csv",
        "accuracy.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let svg = std::fs::read_to_string(dir.join("accuracy.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("split:2,3"));

    // The same directory again without --resume is refused; with it there is nothing left.
    let again = tiny_run(&mnist_dir(), &dir)
        .args(["--heads", "3"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--resume"), "{}", stderr(&again));

    let learn = hypertape()
        .arg("learn")
        .arg(&dir)
        .args(["--task", "split:8,9", "--data-dir"])
        .arg(mnist_dir())
        .output()
        .unwrap();
    assert!(learn.status.success(), "{}", stderr(&learn));
    assert!(stdout(&learn).contains("after task 2 (split:8,9)"));

    let eval = hypertape()
        .arg("eval")
        .arg(&dir)
        .arg("--data-dir")
        .arg(mnist_dir())
        .output()
        .unwrap();
    assert!(eval.status.success(), "{}", stderr(&eval));
    let text = stdout(&eval);
    assert!(
        text.contains("split:0,1") && text.contains("split:8,9"),
        "{text}"
    );

    let file = out.path().join("w.safetensors");
    let export = hypertape()
        .arg("export")
        .arg(&dir)
        .args(["--task", "2", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", stderr(&export));
    assert!(file.is_file());

    let full = hypertape()
        .arg("learn")
        .arg(&dir)
        .args(["--task", "split:6,7"])
        .output()
        .unwrap();
    assert!(!full.status.success());
    assert!(stderr(&full).contains("3 heads"), "{}", stderr(&full));
}

/// A user's first commands from a directory without `data/mnist`: the bundled data is found,
/// the start says the run has no spare head, the end table names each task's digits and
/// explains its columns, and `learn` on that run refuses before training, naming --heads.
#[test]
fn a_run_started_elsewhere_finds_the_bundled_data_and_explains_its_table() {
    let cwd = tempfile::tempdir().unwrap();
    let out = hypertape()
        .current_dir(cwd.path())
        .args(["run", "split-mnist", "--tasks", "2", "--iterations", "5"])
        .args([
            "--target-hidden",
            "20",
            "--chunk-size",
            "3000",
            "--out",
            "r",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(err.contains("(2 heads)"), "{err}");
    assert!(
        err.contains("none spare") && err.contains("--heads N"),
        "{err}"
    );
    for expected in [
        "task  data            learned %  end %",
        "   0  digits 0 and 1",
        "   1  digits 2 and 3",
        "learned = right after the task's own training",
        "end = after all 2 tasks",
    ] {
        assert!(text.contains(expected), "{expected:?} not in\n{text}");
    }
    let results = std::fs::read_to_string(cwd.path().join("r/results.json")).unwrap();
    assert!(
        results.contains(&*mnist_dir().canonicalize().unwrap().to_string_lossy()),
        "the bundled data directory is stored as an absolute path: {results}"
    );
    let learn = hypertape()
        .current_dir(cwd.path())
        .args(["learn", "r", "--task", "split:4,5"])
        .output()
        .unwrap();
    assert!(!learn.status.success());
    let err = stderr(&learn);
    assert!(
        err.contains("--heads") && err.contains("2 heads, all used by its 2 tasks"),
        "{err}"
    );
    assert!(
        !err.contains("learning task"),
        "refused after announcing: {err}"
    );
}

#[test]
fn a_missing_data_directory_says_how_to_point_at_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let out = hypertape()
        .args([
            "run",
            "split-mnist",
            "--data-dir",
            "/nonexistent/mnist",
            "--out",
        ])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/mnist: no such directory") && err.contains("--data-dir DIR"),
        "{err}"
    );
}
