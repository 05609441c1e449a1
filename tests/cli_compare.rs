//! The command line of the scenarios, baselines, compare grid and toy regression: what each
//! writes and prints, and a bad method named.

mod common;

use assert_cmd::Command;
use common::{mnist_dir, split_config};
use hypertape::cl::{Method, Scenario};
use hypertape::run::{ExperimentConfig, RunDir, RunState};

/// A tiny SplitMNIST compare grid (hnet and SI, CL1 and CL3, 2 tasks of 5 steps) into `out`.
fn tiny_compare(out: &std::path::Path) -> std::process::Output {
    tiny_grid(out).output().unwrap()
}

/// The command of [`tiny_compare`]'s grid, to add options to.
fn tiny_grid(out: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("hypertape").unwrap();
    cmd.args(["compare", "split-mnist", "--methods", "hnet,si"])
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
        .arg(out);
    cmd
}

#[test]
fn compare_writes_a_table_and_json_for_every_cell() {
    let out = tempfile::tempdir().unwrap();
    let o = tiny_compare(out.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = std::fs::read_to_string(out.path().join("table.md")).unwrap();
    assert!(table.contains("| method | CL1 | CL3 |"), "{table}");
    assert!(table.contains("| si |"));
    // One seed: a mean without a spread of zero.
    assert!(
        table.contains("1 seed: final mean test accuracy %"),
        "{table}"
    );
    assert!(!table.contains('±'), "{table}");
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

/// The bytes of `dir/name`.
fn read(dir: &std::path::Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// `results.json` of a cell directory, without the fields that vary between runs of the
/// same settings (the wall time, the sessions, the data directory).
fn cell_results(dir: &std::path::Path) -> serde_json::Value {
    let mut r: serde_json::Value = serde_json::from_slice(&read(dir, "results.json")).unwrap();
    let r_obj = r.as_object_mut().unwrap();
    r_obj.remove("wall_seconds");
    r_obj.remove("sessions");
    r_obj["config"].as_object_mut().unwrap().remove("data_dir");
    r
}

#[test]
fn compare_list_numbers_the_cells_in_table_order() {
    let out = tempfile::tempdir().unwrap();
    let o = tiny_grid(out.path())
        .args(["--seeds", "2", "--list"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let mut expected = Vec::new();
    for method in ["hnet", "si"] {
        for scenario in ["cl1", "cl3"] {
            for seed in ["42", "43"] {
                expected.push((method, scenario, seed));
            }
        }
    }
    assert_eq!(rows.len(), expected.len(), "{stdout}");
    for (k, (row, (method, scenario, seed))) in rows.iter().zip(expected).enumerate() {
        let dir = out.path().join(format!("{method}-{scenario}-seed{seed}"));
        assert_eq!(
            row,
            &[
                &k.to_string(),
                method,
                scenario,
                seed,
                dir.to_str().unwrap()
            ],
            "{stdout}"
        );
    }
    // Nothing ran, nothing was written.
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    // A cell outside the grid is refused with the range; --jobs does not go with --cell.
    let o = tiny_grid(out.path())
        .args(["--cell", "4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("numbered 0 to 3"), "{err}");
    let o = tiny_grid(out.path())
        .args(["--cell", "1", "--jobs", "2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn compare_by_cells_and_with_jobs_equals_the_serial_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let serial = tmp.path().join("serial");
    let o = tiny_compare(&serial);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cells = [
        "hnet-cl1-seed42",
        "hnet-cl3-seed42",
        "si-cl1-seed42",
        "si-cl3-seed42",
    ];

    // --cell K runs exactly cell K, as the full run did.
    let split = tmp.path().join("split");
    let o = tiny_grid(&split).args(["--cell", "2"]).output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("cell 2: si cl1 seed 42: after task 1,"),
        "{log}"
    );
    assert!(
        log.contains("[cell 2 of 0-3] cell 2: si cl1 seed 42: final mean accuracy"),
        "{log}"
    );
    let made: Vec<String> = std::fs::read_dir(&split)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(made, ["si-cl1-seed42"]);
    assert_eq!(
        cell_results(&split.join("si-cl1-seed42")),
        cell_results(&serial.join("si-cl1-seed42"))
    );

    // --collect with cells missing: what there is, the missing named, exit status 3.
    let o = tiny_grid(&split).arg("--collect").output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("3 of 4 runs missing"), "{err}");
    for (k, name) in [
        (0, "hnet cl1 seed 42"),
        (1, "hnet cl3 seed 42"),
        (3, "si cl3 seed 42"),
    ] {
        assert!(err.contains(&format!("cell {k}: {name} (")), "{err}");
    }
    assert!(err.contains("not started"), "{err}");
    assert!(err.contains("--array=0,1,3"), "{err}");
    let table = String::from_utf8_lossy(&read(&split, "table.md")).to_string();
    assert!(
        table.contains("| hnet (CL2/CL3: HNET+ENT) | missing | missing |"),
        "{table}"
    );
    assert!(table.contains("Incomplete: 3 runs missing"), "{table}");
    let json: serde_json::Value = serde_json::from_slice(&read(&split, "compare.json")).unwrap();
    assert_eq!(json["cells"].as_array().unwrap().len(), 1);
    assert_eq!(json["missing"].as_array().unwrap().len(), 3);
    assert_eq!(json["missing"][2]["index"], 3);

    // A cell stopped after its first task is named so.
    let config = cell_config(Method::Hnet, Scenario::Cl1, 5);
    let mut state = RunState::new(&config).unwrap();
    let data = state.load_data().unwrap();
    state
        .learn_task(config.task_specs()[0], &data[..1], &mut |_| {})
        .unwrap();
    let hnet_dir = split.join("hnet-cl1-seed42");
    state
        .save(&RunDir::open(&hnet_dir, "test").unwrap())
        .unwrap();
    let o = tiny_grid(&split).arg("--collect").output().unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cell 0: hnet cl1 seed 42 (") && err.contains("stopped after task 0 of 2"),
        "{err}"
    );

    // The other cells one by one (cell 0 resumes), then --collect: the serial grid's table and
    // compare.json, byte for byte.
    for k in ["0", "1", "3"] {
        let o = tiny_grid(&split).args(["--cell", k]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        if k == "0" {
            assert!(String::from_utf8_lossy(&o.stderr).contains("resumed after task 0"));
        }
    }
    let o = tiny_grid(&split).arg("--collect").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["table.md", "compare.json"] {
        assert_eq!(read(&split, f), read(&serial, f), "{f}");
    }
    for c in cells {
        assert_eq!(
            cell_results(&split.join(c)),
            cell_results(&serial.join(c)),
            "{c}"
        );
    }

    // --jobs 2: the same table, cells one thread each, two at once; progress names each cell.
    let jobs = tmp.path().join("jobs");
    let o = tiny_grid(&jobs).args(["--jobs", "2"]).output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    for f in ["table.md", "compare.json"] {
        assert_eq!(read(&jobs, f), read(&serial, f), "{f}");
    }
    for c in cells {
        assert_eq!(
            cell_results(&jobs.join(c)),
            cell_results(&serial.join(c)),
            "{c}"
        );
    }
    for (k, name) in ["hnet cl1", "hnet cl3", "si cl1", "si cl3"]
        .iter()
        .enumerate()
    {
        assert!(
            log.contains(&format!("cell {k}: {name} seed 42: started")),
            "{log}"
        );
        for t in 0..2 {
            let line = format!("cell {k}: {name} seed 42: after task {t}, mean test accuracy");
            assert!(log.contains(&line), "{line} in {log}");
        }
    }
    assert_eq!(log.matches("] cell ").count(), 4, "{log}");
    assert!(log.contains("[4/4] cell "), "{log}");
    // Every line whole: a cell's prefix starts each one.
    for line in log.lines() {
        assert!(
            line.starts_with("  cell ") || line.starts_with('['),
            "{line:?} in {log}"
        );
    }
}

#[test]
fn compare_slurm_writes_an_array_script_of_cell_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::path::PathBuf::from(env!("CARGO_BIN_EXE_hypertape"));
    // Relative --out, --data-dir and FILE: the script names them absolutely.
    let data = tmp.path().join("data");
    std::os::unix::fs::symlink(mnist_dir(), &data).unwrap();
    let o = Command::cargo_bin("hypertape")
        .unwrap()
        .current_dir(tmp.path())
        .args([
            "compare",
            "split-mnist",
            "--methods",
            "hnet,si",
            "--scenarios",
            "cl1,cl3",
        ])
        .args(["--seeds", "2", "--tasks", "2", "--iterations", "5"])
        .args([
            "--data-dir",
            "data",
            "--out",
            "grid",
            "--slurm",
            "grid.sbatch",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let script = std::fs::read_to_string(tmp.path().join("grid.sbatch")).unwrap();
    let out = tmp.path().join("grid");
    assert!(
        out.is_dir(),
        "the log directory exists before the array starts"
    );
    let grid = format!(
        "{} compare split-mnist --methods hnet,si --scenarios cl1,cl3 --seeds 2 --tasks 2 --iterations 5 --data-dir {} --out {}",
        exe.display(),
        data.display(),
        out.display()
    );
    for line in [
        "#!/bin/bash\n".to_string(),
        "\n#SBATCH --array=0-7\n".to_string(),
        format!("\n#SBATCH --output={}/slurm-%A_%a.log\n", out.display()),
        "\n#SBATCH --cpus-per-task=1\n".to_string(),
        "\n#SBATCH --time=0:15:00\n".to_string(),
        "\n#SBATCH --mem=512M\n".to_string(),
        format!("\nexec {grid} --cell \"$SLURM_ARRAY_TASK_ID\"\n"),
    ] {
        assert!(script.contains(&line), "{line:?} in\n{script}");
    }
    // Every #SBATCH line before the first command, as sbatch reads them.
    let first_command = script.find("\nset -eu").unwrap();
    assert!(script.rfind("#SBATCH").unwrap() < first_command, "{script}");
    // The collect step.
    assert!(
        stdout.contains("sbatch --dependency=afterany:$jobid"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("--wrap='{grid} --collect'")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\n  {grid} --collect\n")),
        "{stdout}"
    );

    // The script runs the cell Slurm names, as an array task would.
    let o = std::process::Command::new("bash")
        .arg(tmp.path().join("grid.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "5")
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("cell 5: si cl1 seed 43: final mean accuracy"),
        "{log}"
    );
    assert!(out.join("si-cl1-seed43/results.json").is_file());

    // --slurm runs nothing else and refuses what a script cannot name.
    let o = Command::cargo_bin("hypertape")
        .unwrap()
        .args(["compare", "split-mnist", "--out"])
        .arg(tmp.path().join("with space"))
        .arg("--slurm")
        .arg(tmp.path().join("x.sbatch"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("whitespace"));
}

/// The end-to-end test on a real one-node Slurm (scripts/slurm/e2e.sh), only with
/// HYPERTAPE_SLURM_E2E=1: it needs root, installs slurm-wlm and munge where missing and
/// starts munged, slurmctld and slurmd for about a minute.
#[test]
fn slurm_end_to_end_when_asked() {
    if std::env::var("HYPERTAPE_SLURM_E2E").as_deref() != Ok("1") {
        eprintln!("skipped: set HYPERTAPE_SLURM_E2E=1 to run scripts/slurm/e2e.sh");
        return;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/e2e.sh");
    let o = std::process::Command::new("bash")
        .arg(script)
        .env("HYPERTAPE", env!("CARGO_BIN_EXE_hypertape"))
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{log}");
    assert!(log.contains("e2e: PASSED"), "{log}");
}
