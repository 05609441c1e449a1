//! Data sets for the continual-learning experiments: the MNIST IDX reader, PermutedMNIST
//! and SplitMNIST as cheap views over one shared copy of the images, and the 1-D toy
//! regression tasks.

pub mod idx;
pub mod mnist;
pub mod permuted;
pub mod regression;
pub mod spec;
pub mod split;
pub mod task;

pub use idx::{parse_idx, read_idx, read_idx_with, IdxArray, MAX_IDX_DATA};
pub use mnist::{
    default_mnist_dir, load_mnist, verify_checksums, ImageSet, Mnist, MNIST_COLS, MNIST_ROWS,
};
pub use permuted::{padding_map, permuted_mnist, permuted_pixel_map, permuted_task, PADDING};
pub use regression::{toy_regression, RegressionTask};
pub use spec::TaskSpec;
pub use split::{split_mnist, split_task};
pub use task::{ClassificationTask, TaskView, PAD};

use crate::Result;
use std::path::Path;

/// The tasks `specs`, read from the MNIST files in `data_dir`, each with `validation` training
/// samples held out (0: no validation sets). Every task's training, test and validation sets
/// are checked to hold each of its classes here, before anything trains.
pub fn load_tasks(
    data_dir: &Path,
    specs: &[TaskSpec],
    validation: usize,
) -> Result<Vec<ClassificationTask>> {
    let mnist: Mnist = load_mnist(data_dir)?;
    specs.iter().map(|s| s.load(&mnist, validation)).collect()
}

impl TaskSpec {
    /// The task's data, read from `mnist`; the last `validation` training samples are held
    /// out when `validation > 0`. An error naming the spec if `validation` leaves no training
    /// samples, or if the training, test or validation set lacks one of the task's classes.
    pub fn load(&self, mnist: &Mnist, validation: usize) -> Result<ClassificationTask> {
        self.validate()?;
        match *self {
            TaskSpec::Split { classes } => split_task(mnist, classes, validation),
            TaskSpec::Permuted { seed, index } => {
                permuted_task(mnist, seed.map(|s| (s, index)), validation)
            }
        }
    }
}
