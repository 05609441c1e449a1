//! hypertape: reverse-mode automatic differentiation from scratch, and continual learning with
//! task-conditioned hypernetworks (von Oswald et al., ICLR 2020) on the CPU.

pub mod bench;
pub mod checkpoint;
pub mod cl;
pub mod data;
pub mod error;
pub mod experiment;
pub mod gradcheck;
pub mod report;
pub mod rng;

pub use error::{Error, Result};
pub mod kernels;
pub mod nn;
pub mod optim;
pub mod tape;
pub mod tensor;

pub use tape::{Gradients, Tape, Var};
pub use tensor::{Float, Tensor};
