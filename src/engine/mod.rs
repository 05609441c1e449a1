//! The autodiff engine: dense tensors, the matrix-product kernels, the define-by-run tape with
//! every op's forward and backward rule side by side, and the finite-difference audits.
//!
//! - [`tensor`]: row-major [`Tensor`]s and the [`Float`] trait (f32 for training, f64 for
//!   audits).
//! - [`kernels`]: the matrix product on `matrixmultiply` and the elementwise loops (f32's eˣ − 1,
//!   which [`Float`] uses, is a leaf module of its own, `expm1`).
//! - [`tape`]: the [`Tape`]; one op's forward and backward are one entry of its catalogue.
//! - [`gradcheck`]: central finite differences in f64, per op and for whole pipelines, of
//!   gradients and of the Jacobians of tensor outputs.

mod expm1;
pub mod gradcheck;
pub mod kernels;
pub mod tape;
pub mod tensor;

pub use tape::{Gradients, Tape, Var};
pub use tensor::{Float, Tensor};
