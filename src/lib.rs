//! hypertape: reverse-mode automatic differentiation from scratch, and continual learning with
//! task-conditioned hypernetworks (von Oswald et al., ICLR 2020) on the CPU.
//!
//! The map, bottom up:
//! - [`tensor`]: dense row-major [`Tensor`]s and the [`Float`] trait (f32 for training, f64 for
//!   audits); [`kernels`]: the matrix product on `matrixmultiply` and elementwise loops.
//! - [`tape`]: the define-by-run [`Tape`]; every op's forward and backward rule side by side.
//! - [`gradcheck`]: finite-difference audits in f64, per op and for whole pipelines.
//! - [`nn`]: parameter layouts, the target MLP (weights passed in) and the (chunked)
//!   hypernetwork; [`optim`]: Adam and the look-ahead Δθ.
//! - [`cl`]: the model state, the output regularizer, one training step, the task loop, the
//!   end-to-end audit, task inference and generative replay (HNET+R, HNET+TIR);
//!   [`experiment`]: the paper's benchmarks from data to accuracies.
//! - [`data`]: IDX files, MNIST, PermutedMNIST, SplitMNIST, the toy regression;
//!   [`report`]: atomic writes and result files; [`bench`]: step and matmul timing;
//!   [`rng`]: seeded random streams that are the same everywhere.

pub mod bench;
pub mod checkpoint;
pub mod cl;
pub mod compare;
pub mod data;
pub mod error;
pub mod experiment;
pub mod gradcheck;
pub mod kernels;
pub mod nn;
pub mod optim;
pub mod report;
pub mod rng;
pub mod tape;
pub mod tensor;
pub mod toy;

pub use error::{Error, Result};
pub use tape::{Gradients, Tape, Var};
pub use tensor::{Float, Tensor};
