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

pub use idx::{parse_idx, read_idx, IdxArray};
pub use mnist::{load_mnist, verify_checksums, ImageSet, Mnist};
pub use permuted::{padding_map, permuted_mnist, permuted_task};
pub use regression::{toy_regression, RegressionTask};
pub use spec::TaskSpec;
pub use split::{split_mnist, split_task};
pub use task::{ClassificationTask, TaskView, PAD};
