//! The matrix product against a naive triple loop, for every transpose combination, odd sizes,
//! k = 0, and accumulation with β.

mod common;

use common::uniform_values;
use hypertape::engine::kernels::gemm;
use proptest::prelude::*;

/// C = α·op(A)·op(B) + β·C by the definition.
#[allow(clippy::too_many_arguments)]
fn naive(
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    a: &[f64],
    ta: bool,
    b: &[f64],
    tb: bool,
    beta: f64,
    c: &mut [f64],
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for l in 0..k {
                let av = if ta { a[l * m + i] } else { a[i * k + l] };
                let bv = if tb { b[j * k + l] } else { b[l * n + j] };
                s += av * bv;
            }
            c[i * n + j] = alpha * s + beta * c[i * n + j];
        }
    }
}

fn check(m: usize, n: usize, k: usize, ta: bool, tb: bool, beta: f64, seed: u64) {
    let a = uniform_values(m * k, seed);
    let b = uniform_values(k * n, seed + 1);
    let c0 = uniform_values(m * n, seed + 2);
    let mut expected = c0.clone();
    naive(m, n, k, 0.75, &a, ta, &b, tb, beta, &mut expected);
    let mut got = c0.clone();
    gemm(m, n, k, 0.75, &a, ta, &b, tb, beta, &mut got);
    for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
        assert!(
            (e - g).abs() <= 1e-12 * (1.0 + k as f64),
            "({m},{n},{k}) ta={ta} tb={tb} [{i}]: {e} vs {g}"
        );
    }
    // f32 against the f64 result.
    let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
    let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
    let mut got32: Vec<f32> = c0.iter().map(|&v| v as f32).collect();
    gemm(m, n, k, 0.75, &a32, ta, &b32, tb, beta as f32, &mut got32);
    for (e, g) in expected.iter().zip(&got32) {
        assert!((e - f64::from(*g)).abs() <= 1e-5 * (1.0 + k as f64));
    }
}

#[test]
fn odd_sizes_all_transposes() {
    let sizes = [1, 7, 33, 129];
    for &m in &sizes {
        for &n in &sizes {
            for &k in &sizes {
                for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                    check(m, n, k, ta, tb, 0.0, (m * 1000 + n * 10 + k) as u64);
                }
            }
        }
    }
}

#[test]
fn k_zero_scales_c_by_beta() {
    let mut c = vec![2.0f64; 6];
    gemm(2, 3, 0, 1.0, &[], false, &[], false, 0.5, &mut c);
    assert_eq!(c, vec![1.0; 6]);
    let mut c = vec![f64::NAN; 6];
    gemm(2, 3, 0, 1.0, &[], false, &[], false, 0.0, &mut c);
    assert_eq!(c, vec![0.0; 6]);
}

proptest! {
    #[test]
    fn matches_naive_with_accumulation(m in 1usize..40, n in 1usize..40, k in 0usize..40, ta: bool, tb: bool,
                                       beta in prop::sample::select(vec![0.0, 1.0, -0.5]), seed in any::<u64>()) {
        check(m, n, k, ta, tb, beta, seed % 1_000_000);
    }
}
