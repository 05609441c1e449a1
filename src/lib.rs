//! hypertape: reverse-mode automatic differentiation from scratch, and continual learning with
//! task-conditioned hypernetworks (von Oswald et al., ICLR 2020) on the CPU.
//!
//! The layers, bottom up (each imports only the ones above it in this list):
//! - [`engine`]: tensors, the matrix-product kernels, the define-by-run [`Tape`] and the
//!   finite-difference audits ([`gradcheck`]), generic over f32 (training) and f64 (audits).
//! - [`nn`]: parameter layouts, the [`nn::Mlp`] (weights passed in) and the (chunked)
//!   hypernetwork; [`optim`]: Adam and the look-ahead Δθ.
//! - [`data`]: IDX files, MNIST, PermutedMNIST, SplitMNIST, the toy regression.
//! - [`cl`]: the continual-learning methods behind one [`cl::Learner`] trait: the
//!   hypernetwork (with the output regularizer and HNET+ENT), the baselines, generative
//!   replay.
//! - [`report`]: figures and files from plain results (SVG, CSV, PNG).
//! - [`run`]: experiments: configuration, the run loop and its state, checkpoints, results,
//!   export, grids of runs, the toy regression, the step benchmark.
//!
//! Leaves used everywhere: [`error`], [`rng`] (seeded streams that are the same on every
//! machine), [`fsio`] (atomic writes, checksums).
//!
//! ```
//! use hypertape::{Tape, Tensor};
//!
//! // d/dx Σ (x ⊙ x) = 2x
//! let mut tape = Tape::<f64>::new();
//! let x = tape.leaf(Tensor::from_vec(&[3], vec![1.0, -2.0, 0.5]));
//! let y = tape.mul(x, x);
//! let loss = tape.sum(y);
//! let mut grads = tape.backward(loss);
//! assert_eq!(grads.take(x).unwrap(), vec![2.0, -4.0, 1.0]);
//! ```
//!
//! Where to start with the engine: [`Tensor`] (construction), [`Tape`] (leaves, the ops, and
//! [`Tape::backward`], after which the tape can be backpropagated again), [`Gradients`], and
//! [`gradcheck`]: finite-difference checks of scalar functions ([`gradcheck::gradcheck`],
//! [`gradcheck::directional_check`]) and of Jacobians ([`gradcheck::jacobian_check`],
//! [`gradcheck::jacobian_projection_check`]), in f64, with closures that may borrow their data.
//! `examples/custom_model.rs` defines a model and checks it with each of them and a proptest
//! property.

pub mod cl;
pub mod data;
pub mod engine;
pub mod error;
pub mod fsio;
pub mod nn;
pub mod optim;
pub mod report;
pub mod rng;
pub mod run;

pub use engine::{gradcheck, Float, Gradients, Tape, Tensor, Var};
pub use error::{Error, Result};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
