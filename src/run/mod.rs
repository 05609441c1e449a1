//! Experiments: everything between the command line and the methods. No argument parsing and
//! no printing here; the binary does both.
//!
//! - [`config`]: a run's configuration with the official code's defaults per benchmark.
//! - [`runner`]: [`RunState`] and the one run loop every method goes through; it saves the
//!   run after every task.
//! - [`store`]: checkpoints on disk (one schema for every method, atomic generations);
//!   [`rundir`]: a run directory and its one writer (an exclusive lock); [`session`]: which
//!   process and build learned which tasks of a run.
//! - [`record`]: the record of a run, its results and metrics (BWT, forgetting), result files;
//!   [`curves`]: the training curves of every task; [`figures`]: the titles of a run's figures.
//! - [`export`]: one task's target weights as safetensors.
//! - [`compare`]: a grid of methods × scenarios × seeds, each cell a resumable run.
//! - [`toy`]: the 1-D toy regression; \[`bench`\]: one training step's time and GFLOP/s.

pub mod bench;
pub mod compare;
pub mod config;
pub mod curves;
pub mod export;
pub mod figures;
pub mod record;
pub mod rundir;
pub mod runner;
pub mod session;
pub mod store;
pub mod toy;

pub use config::{Benchmark, ExperimentConfig, LONG_SEQUENCE_TASKS};
pub use record::{History, RunResults, TaskAccuracy};
pub use rundir::RunDir;
pub use runner::{new_learner, run, RunOutput, RunState};
