//! The figures and training curves a run and a comparison write: titles that name the
//! benchmark, method, scenario and evaluation; curves of every method with the documented
//! columns and rows; a resumed run ending with the curves of an uninterrupted one; curves that
//! change no result; compare.svg beside table.md.

mod common;

use assert_cmd::Command;
use common::{mnist_dir, tasks, TinySplit};
use hypertape::cl::{Method, Scenario};
use hypertape::run::curves::CURVE_HEADER;
use hypertape::run::{ExperimentConfig, RunDir, RunState};
use std::path::Path;

/// A run of `method` in `scenario`: 2 SplitMNIST tasks of 10 steps, a curve point every 4.
fn tiny(out: &Path, method: &str, scenario: &str) -> Command {
    let mut cmd = Command::cargo_bin("hypertape").unwrap();
    cmd.args([
        "run",
        "split-mnist",
        "--method",
        method,
        "--scenario",
        scenario,
    ])
    .args(["--tasks", "2", "--iterations", "10", "--curve-every", "4"])
    .args(["--target-hidden", "20"]);
    if method == "hnet" || method == "hnet-tir" {
        cmd.args(["--chunk-size", "3000"]);
    }
    if method.starts_with("hnet-") {
        cmd.args(["--encoder-hidden", "20", "--decoder-hidden", "20"])
            .args(["--latent-dim", "4"]);
    }
    cmd.arg("--data-dir").arg(mnist_dir()).arg("--out").arg(out);
    cmd
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The rows of a curve file as fields, after checking its header.
fn rows(csv: &str) -> Vec<Vec<String>> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(CURVE_HEADER));
    lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// (task, phase) of every row with its step, regularizer and held-out accuracy fields.
fn loops(rows: &[Vec<String>]) -> Vec<(String, String, String, String, String)> {
    rows.iter()
        .map(|r| {
            assert_eq!(r.len(), 7, "{r:?}");
            (
                r[0].clone(),
                r[1].clone(),
                r[2].clone(),
                r[4].clone(),
                r[6].clone(),
            )
        })
        .collect()
}

#[test]
fn every_method_writes_curves_with_its_loops_and_regularizer() {
    // (method, scenario, loops of task 0, loops of task 1, has a regularizer in its
    // classifier loop)
    type Case<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str], bool);
    let cases: [Case<'_>; 7] = [
        ("hnet", "cl1", &["classifier"], &["classifier"], true),
        ("finetune", "cl1", &["classifier"], &["classifier"], false),
        ("ewc", "cl3", &["classifier"], &["classifier"], true),
        ("online-ewc", "cl1", &["classifier"], &["classifier"], true),
        ("si", "cl2", &["classifier"], &["classifier"], true),
        (
            "hnet-r",
            "cl1",
            &["classifier", "vae"],
            &["classifier"],
            false,
        ),
        (
            "hnet-tir",
            "cl2",
            &["classifier", "vae"],
            &["classifier", "task-inference"],
            true,
        ),
    ];
    for (method, scenario, loops0, loops1, regularized) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let o = tiny(&out, method, scenario).output().unwrap();
        let name = format!("{method} {scenario}");
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let all = rows(&read(&out, "curves.csv"));
        let per_task: Vec<Vec<Vec<String>>> = (0..2)
            .map(|t| rows(&read(&out, &format!("curves-task{t}.csv"))))
            .collect();
        assert_eq!(
            all,
            per_task.concat(),
            "{name}: curves.csv = the task files"
        );
        for (t, expected) in [loops0, loops1].into_iter().enumerate() {
            let mine = loops(&per_task[t]);
            // Steps 4, 8 and the last, 10, for every loop, in the order the loops ran.
            let want: Vec<(String, String)> = expected
                .iter()
                .flat_map(|p| ["4", "8", "10"].map(|s| (p.to_string(), s.to_string())))
                .collect();
            let got: Vec<(String, String)> = mine
                .iter()
                .map(|(task, phase, step, _, _)| {
                    assert_eq!(task, &t.to_string(), "{name}");
                    (phase.clone(), step.clone())
                })
                .collect();
            assert_eq!(got, want, "{name}: task {t}");
            for (_, phase, _, reg, acc) in &mine {
                let has_reg = phase == "vae" || (phase == "classifier" && regularized);
                assert_eq!(
                    !reg.is_empty(),
                    has_reg,
                    "{name}: {phase} regularizer {reg:?}"
                );
                if has_reg && t == 0 {
                    assert_eq!(
                        reg.parse::<f64>().unwrap(),
                        0.0,
                        "{name}: nothing to protect"
                    );
                }
                if phase == "vae" {
                    assert!(acc.is_empty(), "{name}: the VAE classifies nothing");
                } else {
                    let a: f64 = acc.parse().unwrap();
                    assert!((0.0..=100.0).contains(&a), "{name}: {a}");
                }
            }
            for r in &per_task[t] {
                assert_eq!(r[5], "test-first-1000", "{name}");
                assert!(r[3].parse::<f64>().unwrap().is_finite(), "{name}");
            }
        }
        let svg = read(&out, "curves.svg");
        for phase in loops0.iter().chain(loops1.iter()) {
            assert!(svg.contains(&format!("loop: {phase}")), "{name}: {phase}");
        }
        assert!(
            svg.contains("held-out accuracy % (test first 1000)"),
            "{name}"
        );
        if !regularized && !method.starts_with("hnet-") {
            assert!(svg.contains("none: this loop has no regularizer"), "{name}");
        }
        let acc = read(&out, "accuracy.svg");
        assert!(acc.contains("SplitMNIST-2"), "{name}");
        assert!(acc.contains(&format!("--method {method}")), "{name}");
        assert!(acc.contains(&scenario.to_uppercase()), "{name}");
        assert!(acc.contains("accuracy %"), "{name}: the colour bar");
        if method.starts_with("hnet-") {
            let png = std::fs::read(out.join("replay.png")).unwrap();
            let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
            assert!(width > 900, "{name}: replay.png is scaled up ({width} px)");
        }
    }
}

#[test]
fn accuracy_figure_says_what_the_scenario_evaluates() {
    let cases = [
        ("hnet", "cl1", "HNET (--method hnet)", "task identity given"),
        (
            "hnet",
            "cl2",
            "HNET+ENT (--method hnet)",
            "weights of the task HNET+ENT infers",
        ),
        (
            "hnet",
            "cl3",
            "HNET+ENT (--method hnet)",
            "task inferred by HNET+ENT",
        ),
        (
            "si",
            "cl2",
            "SI (--method si)",
            "the one shared head (no task inferred)",
        ),
        (
            "finetune",
            "cl3",
            "fine-tuning (--method finetune)",
            "argmax over the classes of every learned task",
        ),
    ];
    for (method, scenario, label, shows) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let o = tiny(&out, method, scenario).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let svg = read(&out, "accuracy.svg");
        let title = format!(
            "SplitMNIST-2 · {label} · {} · seed 42",
            scenario.to_uppercase()
        );
        assert!(svg.contains(&title), "{method} {scenario}: {title}");
        assert!(svg.contains(shows), "{method} {scenario}: {shows}");
        assert!(!svg.contains("task identity given") || scenario == "cl1");
    }
}

#[test]
fn the_toy_regression_figure_has_axes_and_a_legend() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::cargo_bin("hypertape")
        .unwrap()
        .args(["run", "toy-regression", "--iterations", "20", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = read(tmp.path(), "curves.svg");
    for label in [
        "1-D toy regression",
        ">x</text>",
        ">y</text>",
        "task 0: y = x+3 on [-4, -2]",
        "task 2: y = (x-3)^3 on [2, 4]",
        "true function",
        "training points",
        "the method&apos;s fit",
    ] {
        let label = label.replace("&apos;", "'");
        assert!(svg.contains(&label), "{label}");
    }
    let refused = Command::cargo_bin("hypertape")
        .unwrap()
        .args(["run", "toy-regression", "--curve-every", "5", "--out"])
        .arg(tmp.path().join("x"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--curve-every"));
}

#[test]
fn compare_draws_its_grid_beside_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::cargo_bin("hypertape")
        .unwrap()
        .args(["compare", "split-mnist", "--methods", "hnet,si"])
        .args(["--scenarios", "cl1,cl3", "--seeds", "2"])
        .args(["--tasks", "2", "--iterations", "3"])
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = read(tmp.path(), "compare.svg");
    let json: serde_json::Value = serde_json::from_str(&read(tmp.path(), "compare.json")).unwrap();
    assert!(svg.contains("SplitMNIST-2, 3 steps per task, 2 seeds"));
    for label in [
        "CL1",
        "CL3",
        "hnet (CL2/CL3: HNET+ENT)",
        "si",
        "final mean accuracy %",
    ] {
        assert!(svg.contains(&format!(">{label}</text>")), "{label}");
    }
    for cell in json["cells"].as_array().unwrap() {
        let text = format!(
            "{:.2} ± {:.2} (2 seeds)",
            cell["mean"].as_f64().unwrap(),
            cell["std"].as_f64().unwrap()
        );
        assert!(svg.contains(&text), "{text}");
    }
    // A dot per seed and a mean per cell.
    assert_eq!(svg.matches("<circle").count(), 4 * 3);
}

fn config(method: Method) -> ExperimentConfig {
    let mut c = TinySplit {
        tasks: 2,
        hidden: 20,
        chunk_size: 3000,
        iterations: 9,
    }
    .config(method, Scenario::Cl1);
    c.replay.encoder_hidden = vec![20];
    c.replay.decoder_hidden = vec![20];
    c.replay.latent_dim = 4;
    c
}

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

#[test]
fn a_resumed_run_ends_with_the_curves_of_an_uninterrupted_one() {
    for method in [Method::Hnet, Method::HnetTir] {
        let c = config(method);
        let data = tasks(&c.task_specs());
        let whole = tempfile::tempdir().unwrap();
        let stopped = tempfile::tempdir().unwrap();
        let mut state = RunState::new(&c).unwrap();
        state.curve_every = 4;
        let dir = RunDir::open(whole.path(), "figures test").unwrap();
        state
            .continue_run(&data, Some(&dir), &mut |_| {}, &mut |s| {
                if s.completed() == 1 {
                    copy_dir(whole.path(), stopped.path());
                }
            })
            .unwrap();
        drop(dir);
        // A process killed after writing task 1's curve but before its checkpoint leaves the
        // file behind; the resumed run writes it again, not beside it.
        std::fs::write(
            stopped.path().join("curves-task1.csv"),
            format!("{CURVE_HEADER}\n1,classifier,4,1e0,1e0,test-first-1000,50.00\n"),
        )
        .unwrap();
        let mut resumed = RunState::load(stopped.path()).unwrap();
        assert_eq!(resumed.curve_every, 4, "the interval of the stored curves");
        let dir = RunDir::open(stopped.path(), "figures test").unwrap();
        resumed
            .continue_run(&data, Some(&dir), &mut |_| {}, &mut |_| {})
            .unwrap();
        for f in [
            "curves.csv",
            "curves-task0.csv",
            "curves-task1.csv",
            "curves.svg",
        ] {
            assert_eq!(
                read(whole.path(), f),
                read(stopped.path(), f),
                "{}: {f}",
                method.name()
            );
        }
        let rows = rows(&read(whole.path(), "curves.csv"));
        assert!(rows.iter().any(|r| r[0] == "1"), "{}", method.name());
    }
}

#[test]
fn curves_change_no_result() {
    let c = config(Method::Si);
    let data = tasks(&c.task_specs());
    let matrix = |every: usize| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::open(tmp.path(), "figures test").unwrap();
        let mut s = RunState::new(&c).unwrap();
        s.curve_every = every;
        s.continue_run(&data, Some(&dir), &mut |_| {}, &mut |_| {})
            .unwrap();
        (s.history.accuracy_matrix.clone(), s.learner.save())
    };
    let (a, sa) = matrix(1);
    let (b, sb) = matrix(1000);
    assert_eq!(a, b);
    assert!(
        sa == sb,
        "the learner's state differs with the curve interval"
    );
}
