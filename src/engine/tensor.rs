//! Dense row-major tensors and the [`Float`] trait that makes the engine generic over f32
//! (training) and f64 (gradient audits).

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point element type: f32 for training, f64 for audits. It also routes the
/// matrix product to `sgemm` or `dgemm`.
pub trait Float:
    Copy
    + Send
    + Sync
    + 'static
    + Debug
    + Display
    + Default
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Name of the type ("f32" or "f64").
    const NAME: &'static str;
    /// Nearest representable value.
    fn from_f64(x: f64) -> Self;
    /// Exact widening (f32) or identity (f64).
    fn to_f64(self) -> f64;
    /// eˣ.
    fn exp(self) -> Self;
    /// eˣ − 1, accurate near 0 (f32: within 1 ulp, computed without a library call so that
    /// loops over it vectorize; f64: the standard library's).
    fn exp_m1(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// self·a + b with one rounding (a fused multiply-add: the same bits with or without an
    /// FMA instruction).
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// self raised to the power p.
    fn powf(self, p: Self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Larger of two values (NaN-ignoring like `f32::max`).
    fn max(self, other: Self) -> Self;
    /// True if NaN.
    fn is_nan(self) -> bool;
    /// True unless NaN or infinite.
    fn is_finite(self) -> bool;
    /// Raw strided gemm: C ← α·A·B + β·C with A m×k, B k×n, C m×n given by pointers and
    /// row/column strides (a transpose is a swap of strides).
    ///
    /// # Safety
    /// The pointers and strides must describe valid, non-overlapping (C) memory regions.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $gemm:path, $exp_m1:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAME: &'static str = $name;
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn exp_m1(self) -> Self {
                $exp_m1(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn mul_add(self, a: Self, b: Self) -> Self {
                <$t>::mul_add(self, a, b)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn powf(self, p: Self) -> Self {
                <$t>::powf(self, p)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
            }
        }
    };
}

// f32's eˣ − 1 is the engine's own (within 1 ulp, and vectorizable in elementwise loops);
// f64's the standard library's, for audits.
impl_float!(
    f32,
    "f32",
    matrixmultiply::sgemm,
    crate::engine::expm1::exp_m1_f32
);
impl_float!(f64, "f64", matrixmultiply::dgemm, f64::exp_m1);

/// A dense row-major tensor: a shape and a contiguous buffer of its elements.
///
/// Every tensor's shape is valid: the product of its nonzero dimensions fits in `usize` (see
/// [`shape_len`]), so that no size computed from it (its element count, its rows as a
/// matrix) wraps around. Constructors that take a shape and data return `None` when they do
/// not fit ([`Tensor::new`], [`Tensor::reshaped`]); the others panic, at the caller's line.
///
/// ```
/// use hypertape::Tensor;
///
/// let m = Tensor::from_vec(&[2, 3], vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// assert_eq!(m.shape(), &[2, 3]);
/// assert_eq!(m.data()[4], 5.0); // row 1, column 1
/// assert_eq!(m.matrix_dims(), (2, 3));
///
/// // Validated construction for data from outside: None if the shape does not fit.
/// assert!(Tensor::new(&[4], vec![1.0f32, 2.0]).is_none());
///
/// let ramp = Tensor::<f64>::from_fn(&[4], |i| i as f64 * 0.5);
/// assert_eq!(ramp.data(), &[0.0, 0.5, 1.0, 1.5]);
/// assert_eq!(Tensor::<f32>::zeros(&[2, 2]).len(), 4);
/// assert_eq!(Tensor::scalar(3.0f64).item(), 3.0);
/// let narrow: Tensor<f32> = m.cast(); // f64 → f32, as to run an f64-checked model in f32
/// assert_eq!(narrow.data()[5], 6.0f32);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<F> {
    shape: Vec<usize>,
    data: Vec<F>,
}

impl<F: Float> Tensor<F> {
    /// A tensor of `shape` over `data`; `None` if the element count does not match or the
    /// shape's size overflows `usize`.
    pub fn new(shape: &[usize], data: Vec<F>) -> Option<Self> {
        (shape_len(shape) == Some(data.len())).then(|| Self {
            shape: shape.to_vec(),
            data,
        })
    }

    /// A tensor of `shape` over `data`.
    ///
    /// # Panics
    /// If the element count does not match (a programming error, not user input).
    #[track_caller]
    pub fn from_vec(shape: &[usize], data: Vec<F>) -> Self {
        let n = checked_shape_len(shape);
        assert_eq!(n, data.len(), "shape {shape:?} needs {n} elements");
        Self {
            shape: shape.to_vec(),
            data,
        }
    }

    /// All zeros.
    ///
    /// # Panics
    /// If the shape's size overflows `usize`.
    #[track_caller]
    pub fn zeros(shape: &[usize]) -> Self {
        Self::filled(shape, F::ZERO)
    }

    /// Every element `value`.
    ///
    /// # Panics
    /// If the shape's size overflows `usize`.
    #[track_caller]
    pub fn filled(shape: &[usize], value: F) -> Self {
        Self {
            shape: shape.to_vec(),
            data: vec![value; checked_shape_len(shape)],
        }
    }

    /// Element i (flat, row-major) is `f(i)`.
    ///
    /// # Panics
    /// If the shape's size overflows `usize`.
    #[track_caller]
    pub fn from_fn(shape: &[usize], f: impl FnMut(usize) -> F) -> Self {
        let n = checked_shape_len(shape);
        Self {
            shape: shape.to_vec(),
            data: (0..n).map(f).collect(),
        }
    }
    /// A scalar (shape `[]`).
    pub fn scalar(value: F) -> Self {
        Self {
            shape: vec![],
            data: vec![value],
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements, row-major.
    pub fn data(&self) -> &[F] {
        &self.data
    }

    /// The elements, row-major, mutable.
    pub fn data_mut(&mut self) -> &mut [F] {
        &mut self.data
    }

    /// The buffer, consuming the tensor.
    pub fn into_data(self) -> Vec<F> {
        self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// (rows, cols) seen as a matrix: see [`matrix_dims`].
    #[track_caller]
    pub fn matrix_dims(&self) -> (usize, usize) {
        matrix_dims(&self.shape)
    }

    /// The same elements under another shape with the same count (`None` otherwise).
    pub fn reshaped(mut self, shape: &[usize]) -> Option<Self> {
        (shape_len(shape) == Some(self.data.len())).then(|| {
            self.shape = shape.to_vec();
            self
        })
    }

    /// The value of a one-element tensor.
    #[track_caller]
    pub fn item(&self) -> F {
        assert_eq!(
            self.data.len(),
            1,
            "item() of a tensor of shape {:?}",
            self.shape
        );
        self.data[0]
    }

    /// Converts every element to another float type.
    pub fn cast<G: Float>(&self) -> Tensor<G> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(|x| G::from_f64(x.to_f64())).collect(),
        }
    }
}

/// The number of elements of `shape`, or `None` if it overflows `usize`. A shape is valid if
/// the product of its nonzero dimensions fits (then so does every partial product, such as
/// the rows of [`matrix_dims`]); a valid shape with a zero dimension holds no elements.
pub fn shape_len(shape: &[usize]) -> Option<usize> {
    let mut nonzero = 1usize;
    let mut empty = false;
    for &d in shape {
        if d == 0 {
            empty = true;
        } else {
            nonzero = nonzero.checked_mul(d)?;
        }
    }
    Some(if empty { 0 } else { nonzero })
}

/// [`shape_len`], panicking (at the caller's line) if the size overflows.
#[track_caller]
pub(crate) fn checked_shape_len(shape: &[usize]) -> usize {
    // `match`, not `unwrap_or_else`: a closure would report its own line, not the caller's.
    match shape_len(shape) {
        Some(n) => n,
        None => panic!("shape {shape:?}: its size overflows usize"),
    }
}

/// A shape seen as a matrix: rank 2 is (rows, cols), rank 1 `[n]` is one row (1, n), rank 0 is
/// (1, 1); higher ranks fold all leading dimensions into rows.
///
/// # Panics
/// If the rows overflow `usize` (never for the shape of a [`Tensor`] or a tape node).
#[track_caller]
pub fn matrix_dims(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [lead @ .., last] => (checked_shape_len(lead), *last),
    }
}
