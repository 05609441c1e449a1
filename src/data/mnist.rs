//! Loading the MNIST digits (LeCun, Cortes, Burges) from a directory of IDX files, after
//! checking them against the directory's `SHA256SUMS` when it has one. Only 28×28 images
//! with digit labels, one label per image, are accepted.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::idx::{read_idx_with, MAX_IDX_DATA};
use crate::error::{Error, Result};

/// Rows of an MNIST image: the benchmarks' networks take 28×28 inputs (784 raw pixels, or
/// 1024 once padded to 32×32), so the loader refuses any other size.
pub const MNIST_ROWS: usize = 28;
/// Columns of an MNIST image.
pub const MNIST_COLS: usize = 28;

/// The four MNIST files, without the `.gz` a directory may give them.
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// Labelled grey-scale images: image `i` is `pixels[i*rows*cols..(i+1)*rows*cols]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
    /// The file the labels were read from (empty for a set made in memory), named by
    /// errors about the set's content.
    pub labels_path: PathBuf,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image (`rows * cols`).
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`, row-major.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }
}

/// The MNIST training (60000) and test (10000) sets.
#[derive(Clone, Debug)]
pub struct Mnist {
    pub train: Arc<ImageSet>,
    pub test: Arc<ImageSet>,
}

/// The default directory of the MNIST files: `data/mnist` under the working directory when
/// it exists, else the `data/mnist` bundled with the source tree this program was built from
/// (so that a binary built from a clone finds its data wherever it is started), else
/// `data/mnist` (which [`load_mnist`] then reports as missing). Absolute when it exists, so
/// that a run stored with it can be continued from another directory.
pub fn default_mnist_dir() -> PathBuf {
    let local = PathBuf::from("data/mnist");
    let bundled = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("mnist");
    [local.clone(), bundled]
        .into_iter()
        .find(|d| d.is_dir())
        .map(|d| std::path::absolute(&d).unwrap_or(d))
        .unwrap_or(local)
}

/// Loads MNIST from `dir`: `NAME.gz` or `NAME` for each of the four files (`.gz` preferred).
/// If `dir/SHA256SUMS` exists, every file it lists is verified first and each of the four
/// must be listed there (under the name that is read: with or without `.gz`).
pub fn load_mnist(dir: &Path) -> Result<Mnist> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::format(
                dir,
                "not a directory: expected the directory of the MNIST IDX files (give it with --data-dir DIR)",
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Error::format(
                dir,
                format!(
                    "no such directory: expected the MNIST IDX files ({TRAIN_IMAGES}[.gz], {TRAIN_LABELS}[.gz], {TEST_IMAGES}[.gz], {TEST_LABELS}[.gz]) there; give their directory with --data-dir DIR (the default is ./data/mnist, else the data bundled with the source tree this program was built from)"
                ),
            ))
        }
        Err(e) => return Err(Error::io(dir, e)),
    }
    let listed = verify_listed(dir)?;
    let file = |name: &str| find_file(dir, name, listed.as_deref());
    let train = load_set(&file(TRAIN_IMAGES)?, &file(TRAIN_LABELS)?)?;
    let test = load_set(&file(TEST_IMAGES)?, &file(TEST_LABELS)?)?;
    Ok(Mnist {
        train: Arc::new(train),
        test: Arc::new(test),
    })
}

/// Checks every file listed in `dir/SHA256SUMS` (sha256sum format); no such file is not
/// an error.
pub fn verify_checksums(dir: &Path) -> Result<()> {
    verify_listed(dir).map(|_| ())
}

/// Checks every file listed in `dir/SHA256SUMS` and returns their names, or `None` if
/// there is no `SHA256SUMS`.
fn verify_listed(dir: &Path) -> Result<Option<Vec<String>>> {
    let sums_path = dir.join("SHA256SUMS");
    let sums = match std::fs::read_to_string(&sums_path) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&sums_path, e)),
    };
    let mut listed = Vec::new();
    for (line_no, line) in sums.lines().enumerate() {
        let line_no = line_no + 1;
        if line.trim().is_empty() {
            continue;
        }
        // sha256sum writes "HASH  NAME" (text mode) or "HASH *NAME" (binary mode).
        let parsed = line
            .split_once(char::is_whitespace)
            .and_then(|(hash, name)| {
                let name = name.trim_start_matches([' ', '*']);
                let valid = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
                (valid && !name.is_empty()).then_some((hash, name))
            });
        let (expected, name) = parsed.ok_or_else(|| {
            Error::format(
                &sums_path,
                format!(
                    "line {line_no}: expected \"<64 hex digits>  <file name>\", found {line:?}"
                ),
            )
        })?;
        let path = dir.join(name);
        if !path.exists() {
            return Err(missing_listed(dir, &sums_path, line_no, name));
        }
        let found = crate::fsio::sha256_file(&path)?;
        if !found.eq_ignore_ascii_case(expected) {
            return Err(Error::Checksum {
                path,
                expected: expected.to_ascii_lowercase(),
                found,
            });
        }
        // `sha256sum ./NAME` lists "./NAME"; the loader looks for "NAME".
        listed.push(name.trim_start_matches("./").to_string());
    }
    Ok(Some(listed))
}

/// The error for the file `name` that line `line_no` of `sums_path` lists and `dir` lacks;
/// it says so when `dir` has the file gunzipped (or gzipped) instead.
fn missing_listed(dir: &Path, sums_path: &Path, line_no: usize, name: &str) -> Error {
    let (other, hint) = match name.strip_suffix(".gz") {
        Some(plain) => (
            plain.to_string(),
            format!(
                "update SHA256SUMS to list {plain} (sha256sum {plain}) or put the original {name} back"
            ),
        ),
        None => (
            format!("{name}.gz"),
            format!(
                "update SHA256SUMS to list {name}.gz (sha256sum {name}.gz) or put the original {name} back"
            ),
        ),
    };
    if dir.join(&other).is_file() {
        Error::format(
            sums_path,
            format!("line {line_no} lists {name}, which is missing; {other} is there: {hint}"),
        )
    } else {
        let message = format!(
            "expected the file that line {line_no} of {} lists, found neither it nor {other}",
            sums_path.display()
        );
        Error::io(
            dir.join(name),
            std::io::Error::new(ErrorKind::NotFound, message),
        )
    }
}

/// The file to read for `name`: with `SHA256SUMS` (`listed` = the names it lists, all
/// verified) the listed one of `dir/NAME.gz` and `dir/NAME` (`.gz` if both are), an error if
/// neither is listed; without, `dir/NAME.gz` if it exists, else `dir/NAME`, an Io error
/// naming both if neither does.
fn find_file(dir: &Path, name: &str, listed: Option<&[String]>) -> Result<PathBuf> {
    let gz_name = format!("{name}.gz");
    let gz = dir.join(&gz_name);
    let plain = dir.join(name);
    if let Some(listed) = listed {
        let is_listed = |n: &str| listed.iter().any(|l| l == n);
        return if is_listed(&gz_name) {
            Ok(gz)
        } else if is_listed(name) {
            Ok(plain)
        } else {
            let there = [&gz_name, name]
                .into_iter()
                .find(|n| dir.join(n).is_file())
                .map_or("neither is in the directory".to_string(), |n| {
                    format!("{n} is there unverified: add its line (sha256sum {n}) or remove SHA256SUMS")
                });
            Err(Error::format(
                dir.join("SHA256SUMS"),
                format!("expected a line for {gz_name} or {name}, found neither; {there}"),
            ))
        };
    }
    if gz.is_file() {
        Ok(gz)
    } else if plain.is_file() {
        Ok(plain)
    } else {
        let message = format!("expected {gz_name} or {name}, found neither");
        Err(Error::io(
            plain,
            std::io::Error::new(ErrorKind::NotFound, message),
        ))
    }
}

/// Loads one images/labels pair, checking the labels (rank 1, digits 0..=9) and then the
/// images' header (rank 3, 28×28, one per label) before their pixels are read.
fn load_set(images_path: &Path, labels_path: &Path) -> Result<ImageSet> {
    let labels = read_idx_with(labels_path, |dims| {
        let &[count] = dims else {
            return Err(Error::format(
                labels_path,
                format!("expected rank 1 for labels, found rank {}", dims.len()),
            ));
        };
        // One label per image, and the images must fit the reader's limit.
        let most = MAX_IDX_DATA / (MNIST_ROWS * MNIST_COLS);
        if count > most {
            return Err(Error::format(
                labels_path,
                format!(
                    "expected at most {most} labels (as many {MNIST_ROWS}x{MNIST_COLS} images as fit in {MAX_IDX_DATA} bytes), found a header announcing {count}"
                ),
            ));
        }
        Ok(())
    })?;
    if let Some(i) = labels.data.iter().position(|&l| l > 9) {
        return Err(Error::format(
            labels_path,
            format!(
                "expected digit labels from 0 to 9, found {} at index {i}",
                labels.data[i]
            ),
        ));
    }
    let images = read_idx_with(images_path, |dims| {
        let &[count, rows, cols] = dims else {
            return Err(Error::format(
                images_path,
                format!(
                    "expected rank 3 (count x rows x cols) for images, found rank {}",
                    dims.len()
                ),
            ));
        };
        if (rows, cols) != (MNIST_ROWS, MNIST_COLS) {
            return Err(Error::format(
                images_path,
                format!(
                    "expected {MNIST_ROWS}x{MNIST_COLS} images (the size of MNIST, which the networks take), found {rows}x{cols}"
                ),
            ));
        }
        if count != labels.data.len() {
            return Err(Error::format(
                images_path,
                format!(
                    "expected as many images as labels in {}, found {count} images and {} labels",
                    labels_path.display(),
                    labels.data.len()
                ),
            ));
        }
        Ok(())
    })?;
    Ok(ImageSet {
        pixels: images.data,
        labels: labels.data,
        rows: MNIST_ROWS,
        cols: MNIST_COLS,
        labels_path: labels_path.to_path_buf(),
    })
}
