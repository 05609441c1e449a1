//! PermutedMNIST: every task is MNIST zero-padded to 32×32 with one fixed permutation of
//! the 1024 input pixels; task 0 is unpermuted, as in the official hypercl code.

use std::sync::Arc;

use super::mnist::{ImageSet, Mnist};
use super::spec::TaskSpec;
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

/// The pixel map of a PermutedMNIST task on `rows`×`cols` images: network input `i` is
/// source pixel `map[i]` (row-major) or [`PAD`] (zero). The images are padded by [`PADDING`]
/// on each side, then permuted with `Rng::derived(seed, "permutation", index)` for
/// `permutation = Some((seed, index))`, or left in order for `None`.
pub fn permuted_pixel_map(rows: usize, cols: usize, permutation: Option<(u64, u64)>) -> Vec<u32> {
    let padded = padding_map(rows, cols, PADDING);
    match permutation {
        None => padded,
        Some((seed, index)) => {
            let perm = Rng::derived(seed, "permutation", index).permutation(padded.len());
            perm.iter().map(|&p| padded[p]).collect()
        }
    }
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
    (0..num_tasks)
        .map(|k| {
            let permutation = (k > 0).then_some((seed, k as u64));
            let mut task = permuted_task(mnist, permutation, validation)?;
            task.name = format!("permuted-mnist-{k}");
            Ok(task)
        })
        .collect()
}

/// One PermutedMNIST task: the zero-padded images, permuted with
/// `Rng::derived(seed, "permutation", index)` for `permutation = Some((seed, index))`, or
/// unpermuted for `None`. The last `validation` training samples are held out when
/// `validation > 0`. An error if its training, test or validation set lacks a digit.
pub fn permuted_task(
    mnist: &Mnist,
    permutation: Option<(u64, u64)>,
    validation: usize,
) -> Result<ClassificationTask> {
    let spec = TaskSpec::Permuted {
        seed: permutation.map(|(seed, _)| seed),
        index: permutation.map_or(0, |(_, index)| index),
    }
    .to_string();
    let (train, held) = hold_out(all_samples(&mnist.train), validation, &spec)?;
    let classes: Vec<u8> = (0..10).collect();
    let map: Arc<[u32]> =
        permuted_pixel_map(mnist.train.rows, mnist.train.cols, permutation).into();
    let view = |source: &Arc<ImageSet>, samples: Vec<u32>| {
        TaskView::new(source.clone(), samples, Some(map.clone()), classes.clone())
    };
    let name = match permutation {
        None => "permuted-mnist-none".to_string(),
        Some((seed, index)) => format!("permuted-mnist-{seed}-{index}"),
    };
    let task = ClassificationTask {
        name,
        train: view(&mnist.train, train)?,
        test: view(&mnist.test, all_samples(&mnist.test))?,
        validation: held.map(|h| view(&mnist.train, h)).transpose()?,
    };
    task.check_classes(&spec, validation)?;
    Ok(task)
}

/// Indices of every sample of `set` (IDX counts are u32, so they fit).
pub(crate) fn all_samples(set: &ImageSet) -> Vec<u32> {
    (0..set.len() as u32).collect()
}
