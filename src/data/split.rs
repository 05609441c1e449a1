//! SplitMNIST: five binary tasks on the digit pairs {0,1}, {2,3}, {4,5}, {6,7}, {8,9},
//! with the 784 raw pixels as inputs and local labels 0/1.

use std::sync::Arc;

use super::mnist::{ImageSet, Mnist};
use super::spec::TaskSpec;
use super::task::{hold_out, ClassificationTask, TaskView};
use crate::error::{Error, Result};

/// The first `num_tasks` (1..=5) SplitMNIST tasks; the last `validation` samples of each
/// task's training subset are held out when `validation > 0`.
pub fn split_mnist(
    mnist: &Mnist,
    num_tasks: usize,
    validation: usize,
) -> Result<Vec<ClassificationTask>> {
    if !(1..=5).contains(&num_tasks) {
        return Err(Error::config(
            "num_tasks",
            format!("expected 1 to 5 SplitMNIST tasks, found {num_tasks}"),
        ));
    }
    (0..num_tasks as u8)
        .map(|k| split_task(mnist, [2 * k, 2 * k + 1], validation))
        .collect()
}

/// The task of the digits `classes` (local labels 0 and 1); the last `validation` samples of
/// its training subset are held out when `validation > 0`. An error if its training, test
/// or validation set lacks one of the two digits.
pub fn split_task(
    mnist: &Mnist,
    classes: [u8; 2],
    validation: usize,
) -> Result<ClassificationTask> {
    let spec = TaskSpec::Split { classes }.to_string();
    let classes = classes.to_vec();
    let (train, held) = hold_out(samples_of(&mnist.train, &classes), validation, &spec)?;
    let view = |source: &Arc<ImageSet>, samples: Vec<u32>| {
        TaskView::new(source.clone(), samples, None, classes.clone())
    };
    let task = ClassificationTask {
        name: format!("split-mnist-{}-{}", classes[0], classes[1]),
        train: view(&mnist.train, train)?,
        test: view(&mnist.test, samples_of(&mnist.test, &classes))?,
        validation: held.map(|h| view(&mnist.train, h)).transpose()?,
    };
    task.check_classes(&spec, validation)?;
    Ok(task)
}

/// Indices of the samples of `set` whose digit is in `classes`, in order.
fn samples_of(set: &ImageSet, classes: &[u8]) -> Vec<u32> {
    (0..set.len() as u32)
        .filter(|&i| classes.contains(&set.labels[i as usize]))
        .collect()
}
