//! Tests of the data module: IDX parsing, MNIST loading and verification, the
//! PermutedMNIST / SplitMNIST task views and the toy regression.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use flate2::write::GzEncoder;
use flate2::Compression;
use hypertape::data::{
    load_mnist, load_tasks, padding_map, parse_idx, permuted_mnist, read_idx, split_mnist,
    toy_regression, ImageSet, Mnist, TaskSpec, TaskView, PAD,
};
use hypertape::Error;
use proptest::prelude::*;

fn mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")
}

/// The bundled MNIST, loaded once per test binary.
fn mnist() -> &'static Mnist {
    static MNIST: OnceLock<Mnist> = OnceLock::new();
    MNIST.get_or_init(|| load_mnist(&mnist_dir()).expect("bundled MNIST loads"))
}

/// An unsigned-byte IDX file with the given dims and data.
fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

/// The message of a parse error, asserting it names the file.
fn parse_err(bytes: &[u8]) -> String {
    let msg = parse_idx(bytes, Path::new("some/file.idx"))
        .expect_err("should fail")
        .to_string();
    assert!(msg.contains("some/file.idx"), "{msg}");
    msg
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "{msg:?} lacks {p:?}");
    }
}

/// The padded 32x32 image of one source image (zero border), as floats.
fn pad_reference(image: &[u8]) -> Vec<f32> {
    let mut out = vec![0.0; 32 * 32];
    for r in 0..28 {
        for c in 0..28 {
            out[(r + 2) * 32 + c + 2] = f32::from(image[r * 28 + c]) / 255.0;
        }
    }
    out
}

fn fill_one(view: &TaskView, i: usize) -> (Vec<f32>, usize) {
    let mut x = vec![0.0; view.input_dim()];
    let mut y = [0];
    view.fill_batch(&[i], &mut x, &mut y);
    (x, y[0])
}

// ---- IDX ----

#[test]
fn idx1_and_idx3_round_trip() {
    let a = parse_idx(&idx_bytes(&[3], &[7, 8, 9]), Path::new("x")).unwrap();
    assert_eq!((a.dims, a.data), (vec![3], vec![7, 8, 9]));
    let data: Vec<u8> = (0..24).collect();
    let a = parse_idx(&idx_bytes(&[2, 3, 4], &data), Path::new("x")).unwrap();
    assert_eq!((a.dims, a.data), (vec![2, 3, 4], data));
}

#[test]
fn idx_errors_say_expected_and_found() {
    assert_contains(
        &parse_err(&[0, 0, 8]),
        &["expected", "found a file of 3 bytes"],
    );
    assert_contains(
        &parse_err(&[0, 0, 8, 3, 0, 0, 0, 1, 0]),
        &["expected a 16-byte header", "found only 9 bytes"],
    );
    assert_contains(
        &parse_err(&idx_bytes(&[2, 2, 2], &[0; 5])),
        &["expected 8 bytes of data", "found 5", "truncated"],
    );
    assert_contains(
        &parse_err(&idx_bytes(&[2], &[0; 5])),
        &["expected 2 bytes of data", "found 5", "3 trailing bytes"],
    );
    assert_contains(
        &parse_err(&[0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0]),
        &["magic 0x0000080N", "expected, found 0x12345678"],
    );
    assert_contains(
        &parse_err(&[0, 0, 0x0d, 1, 0, 0, 0, 0]),
        &["type byte 0x08", "found 0x0d"],
    );
    assert_contains(
        &parse_err(&[0, 0, 8, 0]),
        &["rank 1 to 3 expected, found rank 0"],
    );
    assert_contains(
        &parse_err(&idx_bytes(&[1, 1, 1, 1], &[0])),
        &["rank 1 to 3 expected, found rank 4"],
    );
    let huge = u32::MAX;
    assert_contains(
        &parse_err(&idx_bytes(&[huge, huge, huge], &[])),
        &["expected dimensions", "found an overflow"],
    );
}

#[test]
fn gzip_files_load_and_corrupt_gzip_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = idx_bytes(&[2, 2], &[1, 2, 3, 4]);
    let gz_path = dir.path().join("a.idx.gz");
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(&bytes).unwrap();
    let gz = enc.finish().unwrap();
    std::fs::write(&gz_path, &gz).unwrap();
    assert_eq!(read_idx(&gz_path).unwrap().data, [1, 2, 3, 4]);

    let plain = dir.path().join("a.idx");
    std::fs::write(&plain, &bytes).unwrap();
    assert_eq!(read_idx(&plain).unwrap().dims, [2, 2]);

    let bad = dir.path().join("bad.gz");
    std::fs::write(&bad, [0x1f, 0x8b, 0x08, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]).unwrap();
    let err = read_idx(&bad).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert_contains(&err.to_string(), &["bad.gz", "corrupt gzip"]);

    let truncated = dir.path().join("truncated.gz");
    std::fs::write(&truncated, &gz[..gz.len() - 10]).unwrap();
    assert!(matches!(read_idx(&truncated), Err(Error::Format { .. })));
}

proptest! {
    #[test]
    fn parse_idx_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_idx(&bytes, Path::new("p"));
    }

    #[test]
    fn parse_idx_on_valid_headers_never_panics(
        dims in proptest::collection::vec(0u32..6, 1..=3),
        data in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let bytes = idx_bytes(&dims, &data);
        let expected: usize = dims.iter().map(|&d| d as usize).product();
        let parsed = parse_idx(&bytes, Path::new("p"));
        prop_assert_eq!(parsed.is_ok(), data.len() == expected);
    }
}

// ---- MNIST ----

#[test]
fn bundled_mnist_loads() {
    let m = mnist();
    for (set, n) in [(&m.train, 60000), (&m.test, 10000)] {
        assert_eq!((set.len(), set.rows, set.cols), (n, 28, 28));
        assert_eq!(set.pixels.len(), n * 784);
        assert!(set.labels.iter().all(|&l| l <= 9));
        assert!((0..10).all(|d| set.labels.contains(&d)));
    }
}

#[test]
fn altered_file_is_a_checksum_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(mnist_dir()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if path.ends_with("t10k-labels-idx1-ubyte.gz") {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 1;
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), bytes).unwrap();
    }
    let err = load_mnist(dir.path()).unwrap_err();
    match &err {
        Error::Checksum {
            path,
            expected,
            found,
        } => {
            assert!(path.ends_with("t10k-labels-idx1-ubyte.gz"));
            assert_eq!(
                expected,
                "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b"
            );
            assert_ne!(expected, found);
        }
        other => panic!("expected a checksum error, found {other:?}"),
    }
    assert!(err.to_string().contains("t10k-labels-idx1-ubyte.gz"));

    // A listed file that is missing is an Io error naming it.
    let labels = "t10k-labels-idx1-ubyte.gz";
    std::fs::copy(mnist_dir().join(labels), dir.path().join(labels)).unwrap();
    std::fs::remove_file(dir.path().join("train-images-idx3-ubyte.gz")).unwrap();
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains("train-images-idx3-ubyte.gz"),
        "{err}"
    );
}

#[test]
fn missing_dir_is_an_error_naming_it_and_the_option() {
    let err = load_mnist(Path::new("/no/such/mnist-dir")).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    let msg = err.to_string();
    assert_contains(
        &msg,
        &[
            "/no/such/mnist-dir: no such directory",
            "train-images-idx3-ubyte",
            "--data-dir DIR",
        ],
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = load_mnist(file.path()).unwrap_err().to_string();
    assert_contains(&err, &["not a directory", "--data-dir DIR"]);
}

/// IDX bytes of `n` 28x28 images, image `i` filled with the byte `i`.
fn images_idx(n: u32) -> Vec<u8> {
    let pixels: Vec<u8> = (0..n).flat_map(|i| [i as u8; 784]).collect();
    idx_bytes(&[n, 28, 28], &pixels)
}

/// Writes a tiny uncompressed MNIST (no SHA256SUMS) with the given test labels.
fn tiny_mnist(dir: &Path, test_images: u32, test_labels: &[u8]) {
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
    write("train-images-idx3-ubyte", images_idx(2));
    write("train-labels-idx1-ubyte", idx_bytes(&[2], &[3, 9]));
    write("t10k-images-idx3-ubyte", images_idx(test_images));
    let n = test_labels.len() as u32;
    write("t10k-labels-idx1-ubyte", idx_bytes(&[n], test_labels));
}

#[test]
fn uncompressed_files_load_and_bad_sets_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    tiny_mnist(dir.path(), 1, &[4]);
    let m = load_mnist(dir.path()).unwrap();
    assert_eq!(
        (
            m.train.len(),
            m.train.rows,
            m.train.cols,
            m.test.labels.clone()
        ),
        (2, 28, 28, vec![4])
    );
    assert_eq!(m.train.image(1), [1; 784]);

    tiny_mnist(dir.path(), 2, &[4]);
    let msg = load_mnist(dir.path()).unwrap_err().to_string();
    assert_contains(
        &msg,
        &[
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
            "2 images",
            "1 labels",
        ],
    );

    tiny_mnist(dir.path(), 1, &[10]);
    let msg = load_mnist(dir.path()).unwrap_err().to_string();
    assert_contains(&msg, &["t10k-labels-idx1-ubyte", "from 0 to 9", "found 10"]);

    std::fs::write(
        dir.path().join("t10k-labels-idx1-ubyte"),
        idx_bytes(&[1, 1], &[1]),
    )
    .unwrap();
    let msg = load_mnist(dir.path()).unwrap_err().to_string();
    assert_contains(
        &msg,
        &["t10k-labels-idx1-ubyte", "expected rank 1", "found rank 2"],
    );

    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let msg = load_mnist(dir.path()).unwrap_err().to_string();
    assert_contains(
        &msg,
        &["t10k-labels-idx1-ubyte.gz or t10k-labels-idx1-ubyte"],
    );
}

// ---- PermutedMNIST ----

#[test]
fn permutations_are_seeded() {
    let m = mnist();
    let a = permuted_mnist(m, 3, 42, 0).unwrap();
    let b = permuted_mnist(m, 3, 42, 0).unwrap();
    let c = permuted_mnist(m, 3, 43, 0).unwrap();
    let map = |t: &[hypertape::data::ClassificationTask], k: usize| {
        t[k].train.pixel_map().unwrap().to_vec()
    };
    assert_eq!(map(&a, 0), padding_map(28, 28, 2));
    assert_eq!(map(&a, 0), map(&c, 0), "task 0 is not permuted");
    for k in 1..3 {
        assert_eq!(map(&a, k), map(&b, k));
        assert_ne!(map(&a, k), map(&c, k));
        assert_ne!(map(&a, k), map(&a, 0));
    }
    assert_ne!(map(&a, 1), map(&a, 2));
}

#[test]
fn task_zero_is_padded_and_the_others_permute_it() {
    let m = mnist();
    let tasks = permuted_mnist(m, 4, 7, 0).unwrap();
    assert_eq!(tasks.len(), 4);
    for t in &tasks {
        assert_eq!((t.train.input_dim(), t.train.num_classes()), (1024, 10));
        assert_eq!((t.train.len(), t.test.len()), (60000, 10000));
        assert_eq!(t.train.classes(), (0..10).collect::<Vec<u8>>());
        assert!(t.validation.is_none());
    }
    for i in [0, 1, 59999] {
        let (x0, y0) = fill_one(&tasks[0].train, i);
        assert_eq!(x0, pad_reference(m.train.image(i)));
        assert_eq!(y0, usize::from(m.train.labels[i]));
        let mut sorted0 = x0.clone();
        sorted0.sort_by(f32::total_cmp);
        for t in &tasks[1..] {
            let (mut x, y) = fill_one(&t.train, i);
            assert_eq!(y, y0);
            assert_ne!(x, x0);
            x.sort_by(f32::total_cmp);
            assert_eq!(x, sorted0);
        }
    }
}

#[test]
fn train_validation_and_test_share_the_map() {
    let m = mnist();
    let tasks = permuted_mnist(m, 2, 5, 1000).unwrap();
    let t = &tasks[1];
    let val = t.validation.as_ref().unwrap();
    assert_eq!((t.train.len(), val.len()), (59000, 1000));
    assert_eq!(val.samples()[0], 59000);
    // Push one training image through the test view's map: it must match the train view.
    let map = t.test.pixel_map().cloned();
    let via_test_map = TaskView::new(m.train.clone(), vec![3], map, (0..10).collect()).unwrap();
    assert_eq!(fill_one(&via_test_map, 0), fill_one(&t.train, 3));
    let map = val.pixel_map().cloned();
    let via_val_map = TaskView::new(m.train.clone(), vec![3], map, (0..10).collect()).unwrap();
    assert_eq!(fill_one(&via_val_map, 0), fill_one(&t.train, 3));
}

#[test]
fn permuted_config_errors_name_the_field() {
    let m = mnist();
    let msg = permuted_mnist(m, 0, 1, 0).unwrap_err().to_string();
    assert!(msg.contains("num_tasks"), "{msg}");
    let msg = permuted_mnist(m, 1, 1, 60000).unwrap_err().to_string();
    assert_contains(&msg, &["validation", "60000"]);
}

#[test]
fn fill_batch_writes_a_whole_batch() {
    let tasks = permuted_mnist(mnist(), 2, 1, 0).unwrap();
    let view = &tasks[1].train;
    let indices: Vec<usize> = (0..128).map(|i| i * 400).collect();
    let mut x = vec![-1.0; 128 * 1024];
    let mut y = vec![99; 128];
    view.fill_batch(&indices, &mut x, &mut y);
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(y.iter().all(|&l| l < 10));
    assert_eq!(
        y,
        indices
            .iter()
            .map(|&i| view.labels()[i])
            .collect::<Vec<_>>()
    );
}

// ---- SplitMNIST ----

#[test]
fn split_tasks_have_pairs_binary_labels_and_full_counts() {
    let m = mnist();
    let tasks = split_mnist(m, 5, 0).unwrap();
    let (mut train, mut test) = (0, 0);
    for (k, t) in tasks.iter().enumerate() {
        let k = k as u8;
        assert_eq!(t.train.classes(), [2 * k, 2 * k + 1]);
        assert_eq!((t.train.input_dim(), t.train.num_classes()), (784, 2));
        for view in [&t.train, &t.test] {
            let labels = view.labels();
            assert!(labels.contains(&0) && labels.contains(&1));
            assert!(labels.iter().all(|&l| l < 2));
        }
        let (x, y) = fill_one(&t.train, 0);
        let src = t.train.samples()[0] as usize;
        assert_eq!(m.train.labels[src], 2 * k + y as u8);
        let expected: Vec<f32> = m
            .train
            .image(src)
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect();
        assert_eq!(x, expected);
        train += t.train.len();
        test += t.test.len();
    }
    assert_eq!((train, test), (60000, 10000));
}

#[test]
fn split_validation_and_config_errors() {
    let m = mnist();
    let full = split_mnist(m, 2, 0).unwrap();
    let held = split_mnist(m, 2, 500).unwrap();
    for (f, h) in full.iter().zip(&held) {
        let v = h.validation.as_ref().unwrap();
        assert_eq!((h.train.len() + 500, v.len()), (f.train.len(), 500));
        assert_eq!(v.samples(), &f.train.samples()[f.train.len() - 500..]);
        assert_eq!(h.test.len(), f.test.len());
    }
    assert!(split_mnist(m, 0, 0)
        .unwrap_err()
        .to_string()
        .contains("num_tasks"));
    assert!(split_mnist(m, 6, 0)
        .unwrap_err()
        .to_string()
        .contains("num_tasks"));
    let msg = split_mnist(m, 1, 20000).unwrap_err().to_string();
    assert!(msg.contains("validation"), "{msg}");
}

// ---- Toy regression ----

#[test]
fn toy_regression_matches_the_paper() {
    let tasks = toy_regression(3);
    let f = [
        |x: f64| x + 3.0,
        |x: f64| 2.0 * x * x - 1.0,
        |x: f64| (x - 3.0).powi(3),
    ];
    let domains = [(-4.0, -2.0), (-1.0, 1.0), (2.0, 4.0)];
    assert_eq!(tasks.len(), 3);
    for ((t, f), d) in tasks.iter().zip(f).zip(domains) {
        assert_eq!(t.domain, d);
        assert_eq!((t.train_x.len(), t.train_y.len()), (100, 100));
        assert_eq!((t.test_x.len(), t.test_y.len()), (50, 50));
        let inside = |x: &f64| (d.0..=d.1).contains(x);
        assert!(t.train_x.iter().chain(&t.test_x).all(inside));
        assert_eq!((t.test_x[0], t.test_x[49]), d);
        for (x, y) in t.test_x.iter().zip(&t.test_y) {
            assert_eq!(*y, f(*x));
        }
        let resid: Vec<f64> = t
            .train_x
            .iter()
            .zip(&t.train_y)
            .map(|(x, y)| y - f(*x))
            .collect();
        let std = (resid.iter().map(|r| r * r).sum::<f64>() / 100.0).sqrt();
        assert!((0.03..0.07).contains(&std), "noise std {std}");
    }
    assert_eq!(toy_regression(3), tasks);
    assert_ne!(toy_regression(4)[0].train_x, tasks[0].train_x);
    assert_ne!(
        tasks[0].train_x,
        tasks[1].train_x.iter().map(|x| x - 3.0).collect::<Vec<_>>()
    );
}

#[test]
fn image_set_accessors() {
    let s = ImageSet {
        pixels: vec![1, 2, 3, 4, 5, 6],
        labels: vec![0, 1, 2],
        rows: 1,
        cols: 2,
        labels_path: PathBuf::new(),
    };
    assert_eq!((s.len(), s.image_len(), s.image(2)), (3, 2, &[5u8, 6][..]));
    let v = TaskView::new(Arc::new(s), vec![], Some(Arc::from(vec![PAD])), vec![0]).unwrap();
    assert!(v.is_empty());
}

#[test]
fn task_specs_load_the_benchmark_tasks() {
    use hypertape::run::{Benchmark, ExperimentConfig};
    let mnist = load_mnist(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mnist")).unwrap();
    let mut c = ExperimentConfig::paper_defaults(Benchmark::PermutedMnist);
    c.num_tasks = 3;
    c.data_seed = 7;
    let reference = permuted_mnist(&mnist, 3, 7, 0).unwrap();
    for (spec, task) in c.task_specs().iter().zip(&reference) {
        let t = spec.load(&mnist, 0).unwrap();
        assert_eq!(t.train.pixel_map(), task.train.pixel_map(), "{spec}");
        assert_eq!(t.test.samples(), task.test.samples(), "{spec}");
    }
    let c = ExperimentConfig::paper_defaults(Benchmark::SplitMnist);
    for (spec, task) in c
        .task_specs()
        .iter()
        .zip(&split_mnist(&mnist, 5, 0).unwrap())
    {
        let t = spec.load(&mnist, 0).unwrap();
        assert_eq!(t.train.samples(), task.train.samples(), "{spec}");
        assert_eq!(t.train.classes(), task.train.classes(), "{spec}");
    }
}

// ---- Gzip members, bounded reads, image size, checksummed names, task splits ----

/// One gzip member holding `bytes`.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// The names of the four MNIST files, in the order of the bundled SHA256SUMS.
const MNIST_FILES: [&str; 4] = [
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
];

/// Writes a SHA256SUMS in `dir` listing `names` (in that order) with their checksums.
fn write_sums(dir: &Path, names: &[&str]) {
    use sha2::{Digest, Sha256};
    let mut sums = String::new();
    for name in names {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        sums += &format!("{hex}  {name}\n");
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
}

/// Writes a small MNIST of 28x28 images with the given labels to `dir` (image `i` of each
/// set filled with the byte `i`): every file gzipped as `NAME.gz` and listed in SHA256SUMS
/// if `gz`, else uncompressed without SHA256SUMS.
fn write_mnist(dir: &Path, train_labels: &[u8], test_labels: &[u8], gz: bool) {
    let contents = [
        images_idx(test_labels.len() as u32),
        idx_bytes(&[test_labels.len() as u32], test_labels),
        images_idx(train_labels.len() as u32),
        idx_bytes(&[train_labels.len() as u32], train_labels),
    ];
    let mut names = Vec::new();
    for (name, bytes) in MNIST_FILES.iter().zip(contents) {
        for stale in [name.to_string(), format!("{name}.gz")] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        if gz {
            names.push(format!("{name}.gz"));
            std::fs::write(dir.join(format!("{name}.gz")), gzip(&bytes)).unwrap();
        } else {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let _ = std::fs::remove_file(dir.join("SHA256SUMS"));
    if gz {
        write_sums(dir, &names.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// The digits 0..=9 `times` times over.
fn digits(times: usize) -> Vec<u8> {
    (0..10 * times).map(|i| (i % 10) as u8).collect()
}

fn specs(specs: &[&str]) -> Vec<TaskSpec> {
    specs.iter().map(|s| s.parse().unwrap()).collect()
}

/// The five SplitMNIST tasks.
fn split_specs() -> Vec<TaskSpec> {
    specs(&[
        "split:0,1",
        "split:2,3",
        "split:4,5",
        "split:6,7",
        "split:8,9",
    ])
}

fn load_err(dir: &Path, specs: &[TaskSpec], validation: usize) -> Error {
    load_tasks(dir, specs, validation).expect_err("should fail")
}

#[test]
fn multi_member_gzip_is_read_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("multi.gz");
    let data: Vec<u8> = (0..12).collect();
    let bytes = idx_bytes(&[3, 4], &data);
    // `cat a.gz b.gz c.gz`, cut in the magic, the header and the data, with an empty member.
    for cut in [2, 10, 17] {
        let mut gz = gzip(&bytes[..cut]);
        gz.extend(gzip(&[]));
        gz.extend(gzip(&bytes[cut..]));
        std::fs::write(&path, &gz).unwrap();
        let array = read_idx(&path).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!((array.dims, array.data), (vec![3, 4], data.clone()));
    }

    // An MNIST directory whose training images are two members loads in full.
    write_mnist(dir.path(), &digits(2), &digits(1), false);
    let images = images_idx(20);
    let mut gz = gzip(&images[..5000]);
    gz.extend(gzip(&images[5000..]));
    let name = "train-images-idx3-ubyte";
    std::fs::remove_file(dir.path().join(name)).unwrap();
    std::fs::write(dir.path().join(format!("{name}.gz")), gz).unwrap();
    let m = load_mnist(dir.path()).unwrap();
    assert_eq!(m.train.pixels, images[16..]);

    // Stopping at the announced size still checks the last member's CRC.
    let mut gz = gzip(&bytes[..10]);
    gz.extend(gzip(&bytes[10..]));
    let crc = gz.len() - 8;
    gz[crc] ^= 1;
    std::fs::write(&path, &gz).unwrap();
    assert_contains(
        &read_idx(&path).unwrap_err().to_string(),
        &["multi.gz", "corrupt gzip"],
    );

    // More data in a later member than the header announces is an error, not ignored.
    let mut gz = gzip(&bytes);
    gz.extend(gzip(&[7, 7, 7]));
    std::fs::write(&path, &gz).unwrap();
    let err = read_idx(&path).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert_contains(
        &err.to_string(),
        &[
            "multi.gz",
            "expected 12 bytes of data",
            "found more",
            "trailing",
        ],
    );

    // Bytes after the last member that are no gzip member: a corrupt file, not ignored.
    let mut gz = gzip(&bytes);
    gz.extend_from_slice(b"not gzip");
    std::fs::write(&path, &gz).unwrap();
    let err = read_idx(&path).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert_contains(&err.to_string(), &["multi.gz", "corrupt gzip"]);
}

/// A gzip file (about 3 MB) of one member: `idx` then `gib` GiB of zeros. The trailer's CRC
/// and size are wrong (computing them would take seconds); a reader that stops at the size
/// the IDX header announces never gets there.
fn gzip_bomb(idx: &[u8], gib: usize) -> Vec<u8> {
    use flate2::write::DeflateEncoder;
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::default());
    enc.write_all(idx).unwrap();
    enc.flush().unwrap();
    let start = enc.get_ref().len();
    enc.write_all(&vec![0; 1 << 20]).unwrap();
    enc.flush().unwrap();
    // Byte-aligned non-final blocks that write 1 MiB of zeros after at least 32 KiB of them.
    let zeros = enc.get_ref()[start..].to_vec();
    let mut deflate = enc.finish().unwrap();
    let tail = deflate.split_off(start + zeros.len());
    deflate.truncate(start);
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gz.extend(deflate);
    for _ in 0..gib << 10 {
        gz.extend_from_slice(&zeros);
    }
    gz.extend(tail);
    gz.extend_from_slice(&[0; 8]);
    gz
}

#[test]
fn gzip_bomb_is_read_only_to_the_size_the_header_announces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.gz");
    // 4 announced bytes, then 3 GiB in one member (as a 13 MB file expanding to 3 GB).
    std::fs::write(&path, gzip_bomb(&idx_bytes(&[4], &[1, 2, 3, 4]), 3)).unwrap();
    let start = std::time::Instant::now();
    let err = read_idx(&path).unwrap_err();
    assert_contains(
        &err.to_string(),
        &[
            "bomb.gz",
            "expected 4 bytes of data",
            "found more",
            "trailing",
        ],
    );
    // Decompressing 3 GiB takes seconds; stopping after 5 bytes, milliseconds.
    assert!(start.elapsed().as_secs_f64() < 2.0, "{:?}", start.elapsed());

    // 3 GiB more in 3072 further members of 1 MiB.
    let one = gzip(&vec![0; 1 << 20]);
    let mut gz = gzip(&idx_bytes(&[4], &[1, 2, 3, 4]));
    for _ in 0..3072 {
        gz.extend_from_slice(&one);
    }
    std::fs::write(&path, gz).unwrap();
    let start = std::time::Instant::now();
    assert_contains(&read_idx(&path).unwrap_err().to_string(), &["found more"]);
    assert!(start.elapsed().as_secs_f64() < 2.0, "{:?}", start.elapsed());

    // The same as the labels of an MNIST directory.
    write_mnist(dir.path(), &digits(2), &digits(1), false);
    let name = "t10k-labels-idx1-ubyte";
    std::fs::remove_file(dir.path().join(name)).unwrap();
    let bomb = gzip_bomb(&idx_bytes(&[10], &digits(1)), 3);
    std::fs::write(dir.path().join(format!("{name}.gz")), bomb).unwrap();
    let msg = load_mnist(dir.path()).unwrap_err().to_string();
    assert_contains(&msg, &[name, "expected 10 bytes of data", "found more"]);
}

#[test]
fn absurd_headers_are_refused_before_the_data_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.gz");
    // 47 MB announced by a gzip file of a few dozen bytes: more than deflate can expand it to.
    let gz = gzip(&idx_bytes(&[60000, 28, 28], &[]));
    std::fs::write(&path, &gz).unwrap();
    let msg = read_idx(&path).unwrap_err().to_string();
    let most = format!("at most {} bytes", gz.len() * 1032);
    assert_contains(
        &msg,
        &["claims.gz", &most, "announcing 47040000", "truncated"],
    );

    // 3.4 TB announced (no overflow on 64 bits): beyond the reader's 1 GiB limit.
    let claim = u32::MAX as usize * 784;
    let announcing = format!("announcing {claim}");
    let header = idx_bytes(&[u32::MAX, 28, 28], &[]);
    for (name, bytes) in [("claims.idx", header.clone()), ("claims.gz", gzip(&header))] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let msg = read_idx(&path).unwrap_err().to_string();
        assert_contains(&msg, &[name, "at most 1073741824 bytes", &announcing]);
    }
    assert_contains(&parse_err(&header), &["at most 1073741824", &announcing]);

    // MNIST labels announcing more images than the images file may hold.
    write_mnist(dir.path(), &digits(2), &digits(1), false);
    let labels = dir.path().join("train-labels-idx1-ubyte");
    std::fs::write(&labels, idx_bytes(&[2_000_000], &[])).unwrap();
    let msg = load_mnist(dir.path()).unwrap_err().to_string();
    assert_contains(
        &msg,
        &[
            "train-labels-idx1-ubyte",
            "expected at most 1369568 labels",
            "announcing 2000000",
        ],
    );
}

#[test]
fn images_of_another_size_than_28x28_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    for (name, rows, cols) in [
        ("train-images-idx3-ubyte", 20, 20),
        ("t10k-images-idx3-ubyte", 32, 32),
        ("t10k-images-idx3-ubyte", 28, 27),
    ] {
        write_mnist(dir.path(), &digits(2), &digits(1), true);
        let n = if name.starts_with("train") { 20 } else { 10 };
        let images = idx_bytes(&[n, rows, cols], &vec![0; (n * rows * cols) as usize]);
        std::fs::write(dir.path().join(format!("{name}.gz")), gzip(&images)).unwrap();
        write_sums(
            dir.path(),
            &MNIST_FILES
                .map(|f| format!("{f}.gz"))
                .each_ref()
                .map(String::as_str),
        );
        let found = format!("found {rows}x{cols}");
        let err = load_mnist(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{err:?}");
        assert_contains(&err.to_string(), &[name, "expected 28x28 images", &found]);
        // What `run`, `eval` and `learn` load.
        let msg = load_err(dir.path(), &specs(&["permuted:none"]), 0).to_string();
        assert_contains(&msg, &[name, "expected 28x28 images", &found]);
    }
    // Both sets 32x32 (consistent with each other, and a tape shape panic later before).
    write_mnist(dir.path(), &digits(2), &digits(1), false);
    for (name, n) in [
        ("train-images-idx3-ubyte", 20),
        ("t10k-images-idx3-ubyte", 10),
    ] {
        let images = idx_bytes(&[n, 32, 32], &vec![0; n as usize * 1024]);
        std::fs::write(dir.path().join(name), images).unwrap();
    }
    let msg = load_err(dir.path(), &split_specs(), 0).to_string();
    assert_contains(
        &msg,
        &[
            "train-images-idx3-ubyte",
            "expected 28x28 images",
            "found 32x32",
        ],
    );

    // Image and label counts that differ, and labels beyond 9, are named too.
    write_mnist(dir.path(), &digits(2), &digits(1), false);
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), images_idx(19)).unwrap();
    let msg = load_mnist(dir.path()).unwrap_err().to_string();
    assert_contains(
        &msg,
        &["train-images-idx3-ubyte", "19 images and 20 labels"],
    );
    write_mnist(
        dir.path(),
        &digits(2),
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 12],
        false,
    );
    let msg = load_mnist(dir.path()).unwrap_err().to_string();
    assert_contains(
        &msg,
        &[
            "t10k-labels-idx1-ubyte",
            "from 0 to 9",
            "found 12 at index 9",
        ],
    );
}

#[test]
fn gunzipped_files_are_named_with_their_sums_line() {
    let dir = tempfile::tempdir().unwrap();
    write_mnist(dir.path(), &digits(2), &digits(1), true);
    load_mnist(dir.path()).unwrap();
    // `gunzip train-images-idx3-ubyte.gz`, SHA256SUMS unchanged.
    let name = "train-images-idx3-ubyte";
    let gz_path = dir.path().join(format!("{name}.gz"));
    let gz = std::fs::read(&gz_path).unwrap();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut plain)
        .unwrap();
    std::fs::write(dir.path().join(name), &plain).unwrap();
    std::fs::remove_file(&gz_path).unwrap();
    let err = load_mnist(dir.path()).unwrap_err();
    match &err {
        Error::Format { path, .. } => assert!(path.ends_with("SHA256SUMS"), "{err}"),
        other => panic!("expected a format error on SHA256SUMS, found {other:?}"),
    }
    assert_contains(
        &err.to_string(),
        &[
            "SHA256SUMS: line 3 lists train-images-idx3-ubyte.gz, which is missing",
            "train-images-idx3-ubyte is there",
            "update SHA256SUMS",
        ],
    );
    // `gzip t10k-labels-idx1-ubyte` where SHA256SUMS lists the uncompressed name.
    write_mnist(dir.path(), &digits(2), &digits(1), false);
    write_sums(dir.path(), &MNIST_FILES);
    let labels = dir.path().join("t10k-labels-idx1-ubyte");
    let gz = gzip(&std::fs::read(&labels).unwrap());
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte.gz"), gz).unwrap();
    std::fs::remove_file(&labels).unwrap();
    let msg = load_mnist(dir.path()).unwrap_err().to_string();
    assert_contains(
        &msg,
        &[
            "SHA256SUMS: line 2 lists t10k-labels-idx1-ubyte, which is missing",
            "t10k-labels-idx1-ubyte.gz is there",
        ],
    );
    // Missing in both forms: an Io error naming the file and the line.
    std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let err = load_mnist(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_contains(
        &err.to_string(),
        &[
            "t10k-labels-idx1-ubyte",
            "line 2 of",
            "SHA256SUMS",
            "found neither",
        ],
    );
}

#[test]
fn checksums_cover_the_files_that_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_mnist(d, &digits(2), &digits(1), false);
    let expected = load_mnist(d).unwrap();
    // Uncompressed files listed under their own names are verified and load.
    write_sums(d, &MNIST_FILES);
    let m = load_mnist(d).unwrap();
    assert_eq!(
        (m.train.pixels.clone(), m.test.labels.clone()),
        (expected.train.pixels.clone(), expected.test.labels.clone())
    );
    // ... and an altered one is a checksum error.
    let images = d.join("train-images-idx3-ubyte");
    let mut bytes = std::fs::read(&images).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&images, &bytes).unwrap();
    match load_mnist(d).unwrap_err() {
        Error::Checksum { path, .. } => assert!(path.ends_with("train-images-idx3-ubyte")),
        other => panic!("expected a checksum error, found {other:?}"),
    }
    bytes[100] ^= 1;
    std::fs::write(&images, &bytes).unwrap();
    // A file the loader would read that SHA256SUMS does not list is not read unverified.
    write_sums(d, &MNIST_FILES[..3]);
    let err = load_mnist(d).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert_contains(
        &err.to_string(),
        &[
            "SHA256SUMS",
            "expected a line for train-labels-idx1-ubyte.gz or train-labels-idx1-ubyte",
            "train-labels-idx1-ubyte is there unverified",
        ],
    );
    // With both forms there, the listed one is read, not an unlisted .gz beside it.
    write_sums(d, &MNIST_FILES);
    let other = images_idx(20).iter().map(|b| b ^ 0xff).collect::<Vec<u8>>();
    std::fs::write(d.join("train-images-idx3-ubyte.gz"), gzip(&other)).unwrap();
    assert_eq!(load_mnist(d).unwrap().train.pixels, expected.train.pixels);
}

#[test]
fn evaluation_sets_without_a_class_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The test set has no 8s and 9s: task split:8,9 would be evaluated on nothing.
    write_mnist(d, &digits(2), &[0, 1, 2, 3, 4, 5, 6, 7], false);
    let err = load_err(d, &split_specs(), 0);
    match &err {
        Error::Format { path, .. } => assert!(path.ends_with("t10k-labels-idx1-ubyte")),
        other => panic!("expected a format error naming the test labels, found {other:?}"),
    }
    assert_contains(
        &err.to_string(),
        &[
            "task split:8,9: no samples of classes 8, 9 in the test set",
            "found 8: 0, 9: 0",
        ],
    );
    // No 9s only, for SplitMNIST and PermutedMNIST.
    write_mnist(d, &digits(2), &[0, 1, 2, 3, 4, 5, 6, 7, 8], true);
    let msg = load_err(d, &split_specs(), 0).to_string();
    assert_contains(
        &msg,
        &[
            "task split:8,9: no samples of class 9 in the test set",
            "8: 1, 9: 0",
        ],
    );
    let msg = load_err(d, &specs(&["permuted:none", "permuted:3/1"]), 0).to_string();
    assert_contains(
        &msg,
        &["task permuted:none: no samples of class 9 in the test set"],
    );
    // A test file of 0 images: every test set empty.
    write_mnist(d, &digits(2), &[], false);
    let msg = load_err(d, &split_specs(), 0).to_string();
    assert_contains(
        &msg,
        &[
            "t10k-labels-idx1-ubyte",
            "task split:0,1: the test set is empty",
            "found a file of 0 samples",
        ],
    );
    // With every class everywhere, every task loads.
    write_mnist(d, &digits(2), &digits(1), false);
    assert_eq!(load_tasks(d, &split_specs(), 0).unwrap().len(), 5);
}

#[test]
fn a_missing_training_class_is_refused_before_any_task_trains() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train: Vec<u8> = digits(2).into_iter().filter(|&l| l != 5).collect();
    write_mnist(d, &train, &digits(1), false);
    // The third of five tasks: refused when the data is loaded, not when it starts.
    let err = load_err(d, &split_specs(), 0);
    match &err {
        Error::Format { path, .. } => assert!(path.ends_with("train-labels-idx1-ubyte")),
        other => panic!("expected a format error naming the training labels, found {other:?}"),
    }
    assert_contains(
        &err.to_string(),
        &[
            "task split:4,5: no samples of class 5 in the training set",
            "4: 2, 5: 0",
        ],
    );
    let m = load_mnist(d).unwrap();
    let spec: TaskSpec = "permuted:7/3".parse().unwrap();
    let msg = spec.load(&m, 0).unwrap_err().to_string();
    assert_contains(
        &msg,
        &["task permuted:7/3: no samples of class 5 in the training set"],
    );
}

#[test]
fn validation_must_leave_training_samples_of_every_class() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_mnist(d, &digits(2), &digits(1), false);
    let split89 = specs(&["split:8,9"]);
    // split:8,9 has 4 training samples (8, 9, 8, 9).
    let err = load_err(d, &split89, 4);
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert_contains(
        &err.to_string(),
        &[
            "validation",
            "task split:8,9",
            "4 training samples",
            "found 4",
            "leaves no training samples",
        ],
    );
    let msg = load_err(d, &split89, 5).to_string();
    assert_contains(
        &msg,
        &["task split:8,9", "found 5", "more than the task has"],
    );
    let msg = load_err(d, &specs(&["permuted:none"]), 25).to_string();
    assert_contains(
        &msg,
        &["task permuted:none", "20 training samples", "found 25"],
    );
    // A validation set of the last sample only (a 9) has no 8.
    let msg = load_err(d, &split89, 1).to_string();
    assert_contains(
        &msg,
        &["task split:8,9: no samples of class 8 in the validation set (the last 1 training samples)"],
    );
    // Holding out the last 8 leaves training without it.
    let train = [0, 1, 2, 3, 4, 5, 6, 7, 9, 8];
    write_mnist(d, &train, &digits(1), false);
    let msg = load_err(d, &split89, 1).to_string();
    assert_contains(
        &msg,
        &["task split:8,9: no samples of class 8 in the training set (after holding out the last 1 for validation)"],
    );
    // Enough of each class on both sides: loads.
    write_mnist(d, &digits(2), &digits(1), false);
    let tasks = load_tasks(d, &split89, 2).unwrap();
    assert_eq!(
        (
            tasks[0].train.len(),
            tasks[0].validation.as_ref().unwrap().len()
        ),
        (2, 2)
    );
}
