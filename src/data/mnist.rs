//! Loading the MNIST digits (LeCun, Cortes, Burges) from a directory of IDX files, after
//! checking them against the directory's `SHA256SUMS` when it has one.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::idx::read_idx;
use crate::error::{Error, Result};

/// Labelled grey-scale images: image `i` is `pixels[i*rows*cols..(i+1)*rows*cols]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
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

/// Loads MNIST from `dir` (`NAME.gz` preferred over `NAME`), verifying `dir/SHA256SUMS`
/// first if it exists.
pub fn load_mnist(dir: &Path) -> Result<Mnist> {
    std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    verify_checksums(dir)?;
    let train = load_set(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let test = load_set(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        return Err(Error::format(
            dir,
            format!(
                "expected test images of the training size {}x{}, found {}x{}",
                train.rows, train.cols, test.rows, test.cols
            ),
        ));
    }
    Ok(Mnist {
        train: Arc::new(train),
        test: Arc::new(test),
    })
}

/// Checks every file listed in `dir/SHA256SUMS` (sha256sum format); no such file is not
/// an error.
pub fn verify_checksums(dir: &Path) -> Result<()> {
    let sums_path = dir.join("SHA256SUMS");
    let sums = match std::fs::read_to_string(&sums_path) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&sums_path, e)),
    };
    for (line_no, line) in sums.lines().enumerate() {
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
                    "line {}: expected \"<64 hex digits>  <file name>\", found {line:?}",
                    line_no + 1
                ),
            )
        })?;
        let path = dir.join(name);
        let found = sha256_file(&path)?;
        if !found.eq_ignore_ascii_case(expected) {
            return Err(Error::Checksum {
                path,
                expected: expected.to_ascii_lowercase(),
                found,
            });
        }
    }
    Ok(())
}

/// The lowercase hex SHA-256 of the file at `path`, read in chunks.
fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `dir/NAME.gz` if it exists, else `dir/NAME`; an Io error naming both if neither does.
fn find_file(dir: &Path, name: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{name}.gz"));
    let plain = dir.join(name);
    if gz.is_file() {
        Ok(gz)
    } else if plain.is_file() {
        Ok(plain)
    } else {
        let message = format!("expected {name}.gz or {name}, found neither");
        Err(Error::io(
            plain,
            std::io::Error::new(ErrorKind::NotFound, message),
        ))
    }
}

/// Loads one images/labels pair and checks ranks, counts and label range.
fn load_set(dir: &Path, images_name: &str, labels_name: &str) -> Result<ImageSet> {
    let images_path = find_file(dir, images_name)?;
    let labels_path = find_file(dir, labels_name)?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    if images.dims.len() != 3 {
        return Err(Error::format(
            &images_path,
            format!(
                "expected rank 3 (count x rows x cols) for images, found rank {}",
                images.dims.len()
            ),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(Error::format(
            &labels_path,
            format!(
                "expected rank 1 for labels, found rank {}",
                labels.dims.len()
            ),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(Error::format(
            &images_path,
            format!(
                "expected as many images as labels in {}, found {} images and {} labels",
                labels_path.display(),
                images.dims[0],
                labels.dims[0]
            ),
        ));
    }
    if let Some(i) = labels.data.iter().position(|&l| l > 9) {
        return Err(Error::format(
            &labels_path,
            format!(
                "expected digit labels 0..=9, found {} at index {i}",
                labels.data[i]
            ),
        ));
    }
    Ok(ImageSet {
        pixels: images.data,
        labels: labels.data,
        rows: images.dims[1],
        cols: images.dims[2],
    })
}
