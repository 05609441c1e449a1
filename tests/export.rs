//! `hypertape export` writes files other tools can use: a classifier rebuilt from the
//! exported file alone — its tensors and metadata, a plain forward pass written here (not
//! hypertape's networks) and the raw MNIST IDX test files — classifies exactly as many test
//! samples correctly as `hypertape eval` reports with the task identity given (and, in CL1,
//! as `results.json`), for a PermutedMNIST task after the first and a SplitMNIST task, with
//! the hypernetwork and with a directly trained baseline.

use assert_cmd::Command;
use hypertape::run::RunState;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

fn mnist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

fn hypertape() -> Command {
    Command::cargo_bin("hypertape").unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An IDX file of unsigned bytes, gzip-compressed: its dimensions and its data.
fn read_idx_gz(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(
        &bytes[..3],
        &[0, 0, 8],
        "{}: an IDX file of bytes",
        path.display()
    );
    let rank = usize::from(bytes[3]);
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let data = bytes[4 + 4 * rank..].to_vec();
    assert_eq!(data.len(), dims.iter().product::<usize>());
    (dims, data)
}

/// A tensor of the file as f32 (F32) or i32 (I32) values, with its shape.
fn tensor_f32(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

fn tensor_i32(st: &SafeTensors, name: &str) -> Vec<i32> {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::I32, "{name}");
    t.data()
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The metadata object of an exported file.
fn metadata(bytes: &[u8]) -> Value {
    let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
    serde_json::from_str(&meta.metadata().as_ref().unwrap()["hypertape"]).unwrap()
}

fn meta_usize(meta: &Value, key: &str) -> usize {
    meta[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key}: {}", meta[key])) as usize
}

/// The classifier of an exported file: for each layer its weight [out × in] and bias, the
/// hidden activation, the rows of the task's head, the input map and scaling, the classes.
struct Exported {
    layers: Vec<(usize, usize, Vec<f32>, Vec<f32>)>,
    activation: String,
    head_rows: (usize, usize),
    input_map: Vec<i32>,
    divisor: f32,
    classes: Vec<u8>,
}

fn load_export(bytes: &[u8]) -> Exported {
    let meta = metadata(bytes);
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut layers = Vec::new();
    for name in meta["layers"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        let (shape, w) = tensor_f32(&st, &format!("{name}.weight"));
        let (bshape, b) = tensor_f32(&st, &format!("{name}.bias"));
        assert_eq!(bshape, [shape[0]], "{name}");
        layers.push((shape[0], shape[1], w, b));
    }
    let head: usize = meta["head"].as_str().unwrap().parse().unwrap();
    let head_dim: usize = meta["head_dim"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        layers.last().unwrap().0,
        head_dim * meta_usize(&meta, "num_heads")
    );
    let input_map = tensor_i32(&st, "input_map");
    assert_eq!(input_map.len(), meta_usize(&meta, "input_size"));
    assert_eq!(input_map.len(), layers[0].1);
    let classes: Vec<u8> = meta["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(classes.len(), head_dim);
    assert_eq!(meta["pad_index"], -1);
    Exported {
        layers,
        activation: meta["activation"].as_str().unwrap().to_string(),
        head_rows: (head * head_dim, (head + 1) * head_dim),
        input_map,
        divisor: meta["input_divisor"].as_f64().unwrap() as f32,
        classes,
    }
}

impl Exported {
    /// The head's logits for one 28×28 image, in f64 from the f32 inputs and weights.
    fn logits(&self, image: &[u8]) -> Vec<f64> {
        let mut h: Vec<f64> = self
            .input_map
            .iter()
            .map(|&m| {
                if m < 0 {
                    0.0
                } else {
                    f64::from(f32::from(image[m as usize]) / self.divisor)
                }
            })
            .collect();
        let last = self.layers.len() - 1;
        for (l, (out, inp, w, b)) in self.layers.iter().enumerate() {
            let rows = if l == last {
                self.head_rows.0..self.head_rows.1
            } else {
                0..*out
            };
            let z: Vec<f64> = rows
                .map(|r| {
                    let row = &w[r * inp..(r + 1) * inp];
                    f64::from(b[r])
                        + row
                            .iter()
                            .zip(&h)
                            .map(|(&a, &x)| f64::from(a) * x)
                            .sum::<f64>()
                })
                .collect();
            h = if l == last {
                z
            } else {
                z.into_iter()
                    .map(|v| activate(&self.activation, v))
                    .collect()
            };
        }
        h
    }

    /// Correct predictions and samples among the test images whose digit is one of the
    /// classes.
    fn count_correct(&self, images: &[u8], labels: &[u8]) -> (usize, usize) {
        let (mut correct, mut n) = (0, 0);
        for (image, &label) in images.chunks_exact(28 * 28).zip(labels) {
            let Some(want) = self.classes.iter().position(|&c| c == label) else {
                continue;
            };
            let logits = self.logits(image);
            let mut best = 0;
            for (i, &v) in logits.iter().enumerate() {
                if v > logits[best] {
                    best = i;
                }
            }
            correct += usize::from(best == want);
            n += 1;
        }
        (correct, n)
    }
}

fn activate(name: &str, x: f64) -> f64 {
    match name {
        "relu" => x.max(0.0),
        "elu" => {
            if x > 0.0 {
                x
            } else {
                x.exp_m1()
            }
        }
        "sigmoid" => 1.0 / (1.0 + (-x).exp()),
        "tanh" => x.tanh(),
        other => panic!("unknown activation {other}"),
    }
}

/// Runs `benchmark` with `method` in `scenario` for two short tasks, exports task 1 and checks
/// the rebuilt classifier's test accuracy against `eval`'s with the task given.
fn export_reproduces_accuracy(benchmark: &str, method: &str, scenario: &str, extra: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let run = hypertape()
        .args(["run", benchmark, "--method", method, "--scenario", scenario])
        .args(["--tasks", "2", "--iterations", "50"])
        .args(extra)
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let task = 1;
    let export_to = |name: &str| {
        let file = tmp.path().join(name);
        let export = hypertape()
            .arg("export")
            .arg(&dir)
            .args(["--task", &task.to_string(), "--out"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(export.status.success(), "{}", text(&export.stderr));
        file
    };
    let file = export_to("task1.safetensors");
    let again = export_to("again.safetensors");
    assert!(
        std::fs::read(&file).unwrap() == std::fs::read(&again).unwrap(),
        "the same task exported twice gives other bytes"
    );

    // The reference: what `hypertape eval` reports with the task identity given.
    let state = RunState::load(&dir).unwrap();
    let data = state.load_learned_data(None).unwrap();
    let reported = state.evaluate(&data).unwrap()[task].with_task_id;
    if scenario == "cl1" {
        let results: Value =
            serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
        assert_eq!(results["accuracy_matrix"][task][task], reported);
    }

    // The rebuilt classifier, from the file and the raw IDX test files only.
    let bytes = std::fs::read(&file).unwrap();
    let meta = metadata(&bytes);
    assert_eq!(meta["benchmark"], benchmark);
    assert_eq!(meta["method"], method);
    assert_eq!(meta["scenario"], scenario);
    assert_eq!(meta["format"], "hypertape-export");
    assert_eq!(meta["format_version"], 2);
    let exported = load_export(&bytes);
    let (dims, images) = read_idx_gz(&mnist_dir().join("t10k-images-idx3-ubyte.gz"));
    assert_eq!(dims, [10000, 28, 28]);
    let (_, labels) = read_idx_gz(&mnist_dir().join("t10k-labels-idx1-ubyte.gz"));
    let (correct, n) = exported.count_correct(&images, &labels);
    let rebuilt = 100.0 * correct as f64 / n as f64;
    println!("{benchmark} {method} {scenario} task {task}: rebuilt {correct}/{n} = {rebuilt}%, hypertape {reported}%");
    assert_eq!(
        rebuilt, reported,
        "{correct} of {n} correct from the exported file"
    );

    // The input map is what the model reads: the task's own pixel map (PermutedMNIST) or the
    // image as it is (SplitMNIST).
    let view = &data[task].test;
    match view.pixel_map() {
        Some(map) => {
            let expected: Vec<i32> = map
                .iter()
                .map(|&p| {
                    if p == hypertape::data::PAD {
                        -1
                    } else {
                        p as i32
                    }
                })
                .collect();
            assert_eq!(exported.input_map, expected);
        }
        None => assert_eq!(exported.input_map, (0..784).collect::<Vec<i32>>()),
    }
}

#[test]
fn a_permuted_mnist_task_of_the_hypernetwork_is_reproduced_from_its_export() {
    export_reproduces_accuracy(
        "permuted-mnist",
        "hnet",
        "cl1",
        &["--target-hidden", "60,40", "--lr", "1e-3"],
    );
}

#[test]
fn a_permuted_mnist_task_of_a_baseline_is_reproduced_from_its_export() {
    export_reproduces_accuracy(
        "permuted-mnist",
        "finetune",
        "cl1",
        &["--target-hidden", "60,40", "--lr", "1e-3"],
    );
}

#[test]
fn a_split_mnist_task_of_the_hypernetwork_in_cl2_is_reproduced_from_its_export() {
    export_reproduces_accuracy(
        "split-mnist",
        "hnet",
        "cl2",
        &["--target-hidden", "50,30", "--chunk-size", "3000"],
    );
}

#[test]
fn a_split_mnist_task_of_a_baseline_in_cl3_is_reproduced_from_its_export() {
    export_reproduces_accuracy("split-mnist", "si", "cl3", &["--target-hidden", "50,30"]);
}

#[test]
fn the_permuted_input_map_pads_and_permutes_every_source_pixel_once() {
    use hypertape::data::TaskSpec;
    use hypertape::run::export::input_map;
    let (map, padding) = input_map(&TaskSpec::Permuted {
        seed: None,
        index: 0,
    });
    assert_eq!(padding, 2);
    // Unpermuted: row r, column c of the 32×32 input is pixel (r − 2, c − 2).
    assert_eq!(map[2 * 32 + 2], 0);
    assert_eq!(map[29 * 32 + 29], 27 * 28 + 27);
    assert_eq!(map[0], -1);
    let (map, _) = input_map(&TaskSpec::Permuted {
        seed: Some(42),
        index: 1,
    });
    assert_eq!(map.len(), 1024);
    assert_eq!(map.iter().filter(|&&m| m == -1).count(), 1024 - 784);
    let mut pixels: Vec<i32> = map.iter().copied().filter(|&m| m >= 0).collect();
    pixels.sort();
    assert_eq!(pixels, (0..784).collect::<Vec<i32>>());
    assert_ne!(
        map,
        input_map(&TaskSpec::Permuted {
            seed: Some(42),
            index: 2
        })
        .0
    );
}

#[test]
fn export_of_an_unlearned_task_names_the_flag_and_the_learned_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let run = hypertape()
        .args(["run", "split-mnist", "--tasks", "2", "--iterations", "5"])
        .args(["--target-hidden", "20", "--chunk-size", "3000"])
        .arg("--data-dir")
        .arg(mnist_dir())
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run.stderr));
    let export = hypertape()
        .arg("export")
        .arg(&dir)
        .args(["--task", "7", "--out"])
        .arg(tmp.path().join("w.safetensors"))
        .output()
        .unwrap();
    assert!(!export.status.success());
    let err = text(&export.stderr);
    assert!(
        err.contains("--task 7: the run has learned tasks 0 and 1"),
        "{err}"
    );
    assert!(!tmp.path().join("w.safetensors").exists());
}
