//! PermutedMNIST: every task is MNIST zero-padded to 32×32 with one fixed permutation of
//! the 1024 input pixels; task 0 is unpermuted, as in the official hypercl code.

use std::sync::Arc;

use super::mnist::{ImageSet, Mnist};
use super::task::{hold_out, ClassificationTask, TaskView, PAD};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Zero padding on each side of the 28×28 images (to 32×32).
pub const PADDING: usize = 2;

/// The map that pads a `rows`×`cols` image by `pad` zero pixels on each side.
pub fn padding_map(rows: usize, cols: usize, pad: usize) -> Vec<u32> {
    let (out_rows, out_cols) = (rows + 2 * pad, cols + 2 * pad);
    (0..out_rows * out_cols)
        .map(|i| {
            let (r, c) = (i / out_cols, i % out_cols);
            let inside = (pad..pad + rows).contains(&r) && (pad..pad + cols).contains(&c);
            if inside {
                ((r - pad) * cols + (c - pad)) as u32
            } else {
                PAD
            }
        })
        .collect()
}

/// `num_tasks` PermutedMNIST tasks; task k >= 1 permutes with
/// `Rng::derived(seed, "permutation", k)`. The last `validation` training samples are
/// held out when `validation > 0`.
pub fn permuted_mnist(
    mnist: &Mnist,
    num_tasks: usize,
    seed: u64,
    validation: usize,
) -> Result<Vec<ClassificationTask>> {
    if num_tasks == 0 {
        return Err(Error::config(
            "num_tasks",
            "expected at least 1 task, found 0",
        ));
    }
    let (train, held) = hold_out(all_samples(&mnist.train), validation)?;
    let test = all_samples(&mnist.test);
    let padded = padding_map(mnist.train.rows, mnist.train.cols, PADDING);
    let classes: Vec<u8> = (0..10).collect();
    (0..num_tasks)
        .map(|k| {
            let map: Arc<[u32]> = if k == 0 {
                padded.clone().into()
            } else {
                let perm = Rng::derived(seed, "permutation", k as u64).permutation(padded.len());
                perm.iter().map(|&p| padded[p]).collect()
            };
            let view = |source: &Arc<ImageSet>, samples: Vec<u32>| {
                TaskView::new(source.clone(), samples, Some(map.clone()), classes.clone())
            };
            Ok(ClassificationTask {
                name: format!("permuted-mnist-{k}"),
                train: view(&mnist.train, train.clone())?,
                test: view(&mnist.test, test.clone())?,
                validation: held.clone().map(|h| view(&mnist.train, h)).transpose()?,
            })
        })
        .collect()
}

/// Indices of every sample of `set` (IDX counts are u32, so they fit).
pub(crate) fn all_samples(set: &ImageSet) -> Vec<u32> {
    (0..set.len() as u32).collect()
}
