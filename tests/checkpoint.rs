//! Checkpoints on tiny SplitMNIST runs: a bit-exact round trip; a run stopped after task 1
//! and resumed from its checkpoint ends bit for bit like an uninterrupted one; corrupt,
//! truncated and mismatched checkpoints give errors naming the file or field; arbitrary bytes
//! in any checkpoint file never panic; export writes the generated weights under the target
//! layout's names; learn adds a task while the stored tasks keep their accuracy.

use hypertape::checkpoint::{self, Checkpoint, MODEL_FILE, STATE_FILE, SUMS_FILE};
use hypertape::data::{load_mnist, ClassificationTask, Mnist, TaskSpec};
use hypertape::experiment::{self, Benchmark, ExperimentConfig};
use hypertape::Error;
use proptest::prelude::*;
use safetensors::SafeTensors;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn config(tasks: usize) -> ExperimentConfig {
    let mut c = ExperimentConfig::paper_defaults(Benchmark::SplitMnist);
    c.num_tasks = tasks;
    c.heads = Some(4);
    c.target_hidden = vec![20];
    c.hnet.chunk_size = Some(3000);
    c.train.iterations = 20;
    c.data_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    c
}

fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| load_mnist(&config(1).data_dir).expect("MNIST in data/mnist"))
}

fn tasks(specs: &[TaskSpec]) -> Vec<ClassificationTask> {
    specs.iter().map(|s| s.load(mnist(), 0).unwrap()).collect()
}

/// A run of `n` tasks trained to the end.
fn trained(n: usize) -> Checkpoint {
    let c = config(n);
    let mut state = Checkpoint::new(&c).unwrap();
    experiment::continue_run(
        &mut state,
        &tasks(&c.task_specs()),
        &mut |_| {},
        &mut |_| Ok(()),
    )
    .unwrap();
    state
}

/// A saved 2-task checkpoint (shared; tests copy it before changing files).
fn saved() -> &'static (tempfile::TempDir, Checkpoint) {
    static SAVED: OnceLock<(tempfile::TempDir, Checkpoint)> = OnceLock::new();
    SAVED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let state = trained(2);
        checkpoint::save(dir.path(), &state).unwrap();
        (dir, state)
    })
}

/// A copy of the saved checkpoint; returns the directory and its generation directory.
fn copy_saved() -> (tempfile::TempDir, PathBuf) {
    let (src, _) = saved();
    let dst = tempfile::tempdir().unwrap();
    let current = std::fs::read_to_string(src.path().join("CURRENT")).unwrap();
    let gen = current.trim();
    std::fs::copy(src.path().join("CURRENT"), dst.path().join("CURRENT")).unwrap();
    std::fs::create_dir(dst.path().join(gen)).unwrap();
    for f in [MODEL_FILE, STATE_FILE, SUMS_FILE] {
        std::fs::copy(src.path().join(gen).join(f), dst.path().join(gen).join(f)).unwrap();
    }
    let gen_dir = dst.path().join(gen);
    (dst, gen_dir)
}

/// Rewrites SHA256SUMS to match the files, so a test reaches the parsers.
fn reseal(gen_dir: &Path) {
    let sum = |f: &str| checkpoint::sha256_hex(&std::fs::read(gen_dir.join(f)).unwrap());
    let text = format!(
        "{}  {MODEL_FILE}\n{}  {STATE_FILE}\n",
        sum(MODEL_FILE),
        sum(STATE_FILE)
    );
    std::fs::write(gen_dir.join(SUMS_FILE), text).unwrap();
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn assert_bit_identical(a: &Checkpoint, b: &Checkpoint) {
    assert_eq!(bits(&a.model.theta), bits(&b.model.theta), "θ");
    assert_eq!(a.model.task_embs.len(), b.model.task_embs.len());
    for (x, y) in a.model.task_embs.iter().zip(&b.model.task_embs) {
        assert_eq!(bits(x), bits(y), "task embedding");
    }
    assert_eq!(a.history.accuracy_matrix, b.history.accuracy_matrix);
    assert_eq!(a.tasks, b.tasks);
    let (oa, ob) = (a.optimizer.as_ref().unwrap(), b.optimizer.as_ref().unwrap());
    assert_eq!(bits(oa.theta.moments().0), bits(ob.theta.moments().0));
    assert_eq!(bits(oa.theta.moments().1), bits(ob.theta.moments().1));
    assert_eq!(oa.theta.steps(), ob.theta.steps());
    assert_eq!(
        bits(oa.embedding.moments().1),
        bits(ob.embedding.moments().1)
    );
}

#[test]
fn save_then_load_is_bit_exact() {
    let (dir, state) = saved();
    let loaded = checkpoint::load(dir.path()).unwrap();
    assert_bit_identical(&loaded, state);
    assert_eq!(&loaded, state);
    assert_eq!(state.optimizer.as_ref().unwrap().theta.steps(), 20);
    // The same state gives the same tensor file, byte for byte.
    let again = tempfile::tempdir().unwrap();
    checkpoint::save(again.path(), &loaded).unwrap();
    let model = |d: &Path| std::fs::read(d.join("gen-000001").join(MODEL_FILE)).unwrap();
    assert_eq!(model(dir.path()), model(again.path()));
}

#[test]
fn a_run_stopped_after_task_1_and_resumed_ends_like_an_uninterrupted_one() {
    let c = config(3);
    let data = tasks(&c.task_specs());
    let uninterrupted = trained(3);

    let dir = tempfile::tempdir().unwrap();
    let mut state = Checkpoint::new(&c).unwrap();
    let err = experiment::continue_run(&mut state, &data, &mut |_| {}, &mut |s| {
        checkpoint::save(dir.path(), s)?;
        if s.completed() == 2 {
            return Err(Error::config("test", "stopped after task 1"));
        }
        Ok(())
    })
    .unwrap_err();
    assert!(err.to_string().contains("stopped after task 1"), "{err}");

    let mut resumed = checkpoint::load(dir.path()).unwrap();
    assert_eq!(resumed.completed(), 2);
    resumed.config.check_same(&c).unwrap();
    let mut saves = 0;
    experiment::continue_run(&mut resumed, &data, &mut |_| {}, &mut |s| {
        saves += 1;
        checkpoint::save(dir.path(), s)
    })
    .unwrap();
    assert_eq!(saves, 1, "only task 2 is trained again");
    assert_bit_identical(&resumed, &uninterrupted);
    assert_bit_identical(&checkpoint::load(dir.path()).unwrap(), &uninterrupted);
    // Only the current generation is left.
    let gens = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("gen-")
        })
        .count();
    assert_eq!(gens, 1);
}

#[test]
fn a_partial_generation_left_by_a_crash_is_ignored_and_cleaned_up() {
    let (dir, gen_dir) = copy_saved();
    let partial = dir.path().join("gen-000099");
    std::fs::create_dir(&partial).unwrap();
    std::fs::write(partial.join(MODEL_FILE), b"half a file").unwrap();
    let loaded = checkpoint::load(dir.path()).unwrap();
    assert_eq!(&loaded, &saved().1);
    checkpoint::save(dir.path(), &loaded).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("CURRENT"))
            .unwrap()
            .trim(),
        "gen-000100"
    );
    assert!(!partial.exists() && !gen_dir.exists());
    assert_eq!(checkpoint::load(dir.path()).unwrap(), loaded);
}

fn load_err(dir: &Path) -> String {
    checkpoint::load(dir).unwrap_err().to_string()
}

#[test]
fn a_changed_byte_is_a_checksum_error_naming_the_file() {
    let (dir, gen_dir) = copy_saved();
    let path = gen_dir.join(MODEL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    match checkpoint::load(dir.path()) {
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
fn tensors_that_do_not_fit_the_configuration_are_an_error_naming_tensor_and_shapes() {
    let (dir, gen_dir) = copy_saved();
    let path = gen_dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let changed = text.replacen("\"task_emb_dim\": 96", "\"task_emb_dim\": 95", 1);
    assert_ne!(text, changed);
    std::fs::write(&path, changed).unwrap();
    reseal(&gen_dir);
    let err = load_err(dir.path());
    assert!(
        err.contains("model.safetensors")
            && err.contains("theta.layer0.weight")
            && err.contains("expected shape [10, 191]")
            && err.contains("found [10, 192]"),
        "{err}"
    );
}

#[test]
fn an_inconsistent_state_file_is_an_error_naming_file_and_field() {
    let (dir, gen_dir) = copy_saved();
    let path = gen_dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace("\"completed_tasks\": 2", "\"completed_tasks\": 3"),
    )
    .unwrap();
    reseal(&gen_dir);
    let err = load_err(dir.path());
    assert!(
        err.contains("state.json") && err.contains("completed_tasks"),
        "{err}"
    );

    std::fs::write(
        &path,
        text.replace("\"iterations\": 20", "\"iterations\": 0"),
    )
    .unwrap();
    reseal(&gen_dir);
    let err = load_err(dir.path());
    assert!(
        err.contains("state.json") && err.contains("iterations"),
        "{err}"
    );

    std::fs::write(&path, &text[..text.len() / 2]).unwrap();
    reseal(&gen_dir);
    let err = load_err(dir.path());
    assert!(
        err.contains("state.json") && err.contains("invalid state"),
        "{err}"
    );

    std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let err = load_err(dir.path());
    assert!(
        err.contains("CURRENT") && err.contains("no checkpoint"),
        "{err}"
    );
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
    let mut given = stored.clone();
    given.data_dir = PathBuf::from("elsewhere");
    stored.check_same(&given).unwrap();
    // A checkpoint whose tasks are not the configuration's is refused.
    let mut other = saved().1.clone();
    other.tasks[1] = TaskSpec::Split { classes: [8, 9] };
    let c = other.config.clone();
    let err = experiment::continue_run(
        &mut other,
        &tasks(&c.task_specs()),
        &mut |_| {},
        &mut |_| Ok(()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("task 1") && err.contains("split:8,9"), "{err}");
}

#[test]
fn export_writes_the_generated_weights_under_the_target_layout_names() {
    let (_, state) = saved();
    for task in 0..2 {
        let bytes = checkpoint::export_task_weights(state, task).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let weights = state.model.generated_weights(task);
        let layout = state.model.target.layout();
        let mut names: Vec<&str> = st.names();
        names.sort();
        let mut expected: Vec<&str> = layout.entries().iter().map(|e| e.name.as_str()).collect();
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(
            expected,
            ["heads.bias", "heads.weight", "layer0.bias", "layer0.weight"]
        );
        for e in layout.entries() {
            let t = st.tensor(&e.name).unwrap();
            assert_eq!(t.shape(), e.shape.as_slice(), "{}", e.name);
            let values: Vec<f32> = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(bits(&values), bits(&weights[e.range()]), "{}", e.name);
        }
    }
    assert!(checkpoint::export_task_weights(state, 2).is_err());
}

#[test]
fn learn_adds_a_task_and_the_stored_tasks_keep_their_accuracy() {
    let mut state = saved().1.clone();
    let before = state.history.accuracy_matrix[1].clone();
    let spec = TaskSpec::Split { classes: [8, 9] };
    let specs: Vec<TaskSpec> = state.tasks.iter().copied().chain([spec]).collect();
    let data = tasks(&specs);
    let row = experiment::learn(&mut state, spec, &data, &mut |_| {}).unwrap();
    assert_eq!(state.completed(), 3);
    assert_eq!(state.tasks[2], spec);
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
    let eval = experiment::evaluate(&state, &data[..3]).unwrap();
    assert_eq!(eval.iter().map(|r| r.with_task_id).collect::<Vec<_>>(), row);
    // Without task identity (CL3 rule) a prediction is right only if the inferred task is too.
    for r in &eval {
        assert!(r.without_task_id <= r.with_task_id + 1e-9, "{r:?}");
        assert!(r.without_task_id <= r.task_inference + 1e-9, "{r:?}");
        assert!(r.task_inference > 0.0, "{r:?}");
    }

    // Another task of the wrong benchmark, or past the reserved heads, is refused.
    let permuted = TaskSpec::Permuted {
        seed: Some(1),
        index: 0,
    };
    let err = experiment::learn(&mut state, permuted, &data, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("not a split-mnist task"), "{err}");
    let spec = TaskSpec::Split { classes: [0, 9] };
    let specs: Vec<TaskSpec> = state.tasks.iter().copied().chain([spec]).collect();
    experiment::learn(&mut state, spec, &tasks(&specs), &mut |_| {}).unwrap();
    let specs: Vec<TaskSpec> = state.tasks.iter().copied().chain([spec]).collect();
    let err = experiment::learn(&mut state, spec, &tasks(&specs), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("4 heads"), "{err}");
    assert_eq!(state.completed(), 4, "a refused task changes nothing");
}

/// Which file of a generation a property test overwrites.
fn file_strategy() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(MODEL_FILE),
        Just(STATE_FILE),
        Just(SUMS_FILE),
        Just("CURRENT")
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_in_any_file_are_an_error_not_a_panic(
        file in file_strategy(),
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        seal in any::<bool>(),
    ) {
        let (dir, gen_dir) = copy_saved();
        let path = if file == "CURRENT" { dir.path().join(file) } else { gen_dir.join(file) };
        std::fs::write(&path, &bytes).unwrap();
        if seal && file != SUMS_FILE && file != "CURRENT" {
            reseal(&gen_dir);
        }
        prop_assert!(checkpoint::load(dir.path()).is_err());
    }

    #[test]
    fn changed_or_cut_valid_files_are_an_error_or_the_same_checkpoint(
        file in prop_oneof![Just(MODEL_FILE), Just(STATE_FILE)],
        at in any::<prop::sample::Index>(),
        xor in 1u8..,
        cut in any::<bool>(),
    ) {
        let (dir, gen_dir) = copy_saved();
        let path = gen_dir.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] ^= xor;
        }
        std::fs::write(&path, &bytes).unwrap();
        reseal(&gen_dir);
        // A change in JSON whitespace or a float's last bits may still load; nothing panics.
        if let Ok(loaded) = checkpoint::load(dir.path()) {
            prop_assert_eq!(loaded.completed(), 2);
        }
    }
}

/// Scenario and hyperfan init are part of a checkpoint: a CL3 run with hyperfan θ, saved after
/// task 0 and resumed, ends like `experiment::run` (task inference included); a CL2 model
/// learns a task on its shared head; a baseline method has no checkpoint.
#[test]
fn scenarios_and_hyperfan_survive_a_checkpoint_and_baselines_are_refused() {
    use hypertape::cl::{Method, Scenario};
    use hypertape::nn::HnetInit;
    let mut c = config(2);
    c.set_method_and_scenario(Method::Hnet, Scenario::Cl3);
    c.hnet_init = HnetInit::Hyperfan;
    let data = tasks(&c.task_specs());
    let whole = experiment::run(&c, &data, &mut |_| {}, &mut |_, _| {}).unwrap();
    assert!(whole.task_inference_matrix.is_some());

    let dir = tempfile::tempdir().unwrap();
    let mut first = Checkpoint::new(&c).unwrap();
    let mut one = c.clone();
    one.num_tasks = 1;
    first.config = one;
    experiment::continue_run(&mut first, &data[..1], &mut |_| {}, &mut |s| {
        checkpoint::save(dir.path(), s)
    })
    .unwrap();
    let mut state = checkpoint::load(dir.path()).unwrap();
    assert_eq!(state.config.hnet_init, HnetInit::Hyperfan);
    assert_eq!(state.config.scenario, Scenario::Cl3);
    assert_eq!(state.history.task_inference.len(), 1);
    state.config = c.clone();
    experiment::continue_run(&mut state, &data, &mut |_| {}, &mut |s| {
        checkpoint::save(dir.path(), s)
    })
    .unwrap();
    let resumed = experiment::results(&checkpoint::load(dir.path()).unwrap());
    assert_eq!(resumed.accuracy_matrix, whole.accuracy_matrix);
    assert_eq!(resumed.task_inference_matrix, whole.task_inference_matrix);
    assert_eq!(resumed.final_task_picks, whole.final_task_picks);
    // HNET+ENT's logit-gap temperatures are stored with each task and survive the resume.
    assert_eq!(whole.task_temperatures.as_ref().map(Vec::len), Some(2));
    assert_eq!(resumed.task_temperatures, whole.task_temperatures);

    // A stored scenario differs from another: check_same names the field.
    let mut cl1 = c.clone();
    cl1.set_method_and_scenario(Method::Hnet, Scenario::Cl1);
    cl1.entropy_calibration = c.entropy_calibration;
    let err = c.check_same(&cl1).unwrap_err().to_string();
    assert!(err.contains("scenario"), "{err}");

    let mut cl2 = config(1);
    cl2.heads = None;
    cl2.set_method_and_scenario(Method::Hnet, Scenario::Cl2);
    let mut state = Checkpoint::new(&cl2).unwrap();
    let specs = cl2.task_specs();
    experiment::continue_run(&mut state, &tasks(&specs), &mut |_| {}, &mut |_| Ok(())).unwrap();
    let spec = TaskSpec::Split { classes: [2, 3] };
    let more = tasks(&[specs[0], spec]);
    let row = experiment::learn(&mut state, spec, &more, &mut |_| {}).unwrap();
    assert_eq!(row.len(), 2);
    assert_eq!(state.model.target.num_heads(), 1);
    let eval = experiment::evaluate(&state, &more).unwrap();
    assert!(eval.iter().all(|r| r.task_inference > 0.0), "{eval:?}");

    let mut ewc = config(1);
    ewc.method = Method::Ewc;
    let err = Checkpoint::new(&ewc).unwrap_err().to_string();
    assert!(
        err.contains("a hypernetwork checkpoint holds --method hnet runs"),
        "{err}"
    );
}

/// A checkpoint that `learn` grew past its configuration's tasks resumes as finished (nothing
/// left to train), not as an error.
#[test]
fn a_checkpoint_grown_by_learn_resumes_as_finished() {
    let mut state = saved().1.clone();
    let mut specs = state.config.task_specs();
    let extra = TaskSpec::Split { classes: [4, 5] };
    specs.push(extra);
    experiment::learn(&mut state, extra, &tasks(&specs), &mut |_| {}).unwrap();
    let before = state.clone();
    let own = tasks(&state.config.task_specs());
    experiment::continue_run(&mut state, &own, &mut |_| {}, &mut |_| {
        panic!("no task is left to train")
    })
    .unwrap();
    assert_eq!(state, before);
    assert_eq!(state.completed(), 3);
}
