//! Tests of the data module: IDX parsing, MNIST loading and verification, the
//! PermutedMNIST / SplitMNIST task views and the toy regression.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use flate2::write::GzEncoder;
use flate2::Compression;
use hypertape::data::{
    load_mnist, padding_map, parse_idx, permuted_mnist, read_idx, split_mnist, toy_regression,
    ImageSet, Mnist, TaskView, PAD,
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
fn missing_dir_is_an_io_error_naming_it() {
    let err = load_mnist(Path::new("/no/such/mnist-dir")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("/no/such/mnist-dir"));
}

/// Writes a tiny uncompressed MNIST (no SHA256SUMS) with the given test labels.
fn tiny_mnist(dir: &Path, test_images: u32, test_labels: &[u8]) {
    let write = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
    write(
        "train-images-idx3-ubyte",
        idx_bytes(&[2, 2, 2], &[0, 1, 2, 3, 4, 5, 6, 7]),
    );
    write("train-labels-idx1-ubyte", idx_bytes(&[2], &[3, 9]));
    let pixels = vec![0; test_images as usize * 4];
    write(
        "t10k-images-idx3-ubyte",
        idx_bytes(&[test_images, 2, 2], &pixels),
    );
    let n = test_labels.len() as u32;
    write("t10k-labels-idx1-ubyte", idx_bytes(&[n], test_labels));
}

#[test]
fn uncompressed_files_load_and_bad_sets_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    tiny_mnist(dir.path(), 1, &[4]);
    let m = load_mnist(dir.path()).unwrap();
    assert_eq!(
        (m.train.len(), m.train.rows, m.test.labels.clone()),
        (2, 2, vec![4])
    );

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
    assert_contains(&msg, &["t10k-labels-idx1-ubyte", "0..=9", "found 10"]);

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
