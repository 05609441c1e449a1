//! f32 matrix products in GFLOP/s: criterion's throughput is set to the FLOP count (2·m·n·k)
//! as elements, so its elements/s is FLOP/s.
//!
//! - `square/{sgemm,kernels,engine}/n`: n×n by n×n through bare `matrixmultiply::sgemm`,
//!   `hypertape::engine::kernels::gemm`, and `Tape::matmul` (no-grad tape, output allocated per call);
//! - `method/…`: the products of one training step of the PermutedMNIST configuration — the
//!   hypernetwork's output layer (28 chunk rows, or 252 rows for 9 regularized tasks, by
//!   25 → 78 000) and the target's input layer (batch 128, 1024 → 1000), forward as
//!   `Tape::linear` computes it (x·Wᵀ) and the two backward products of `linear`
//!   (dW = gᵀ·x, dx = g·W), through `kernels::gemm` and bare sgemm, and the forward also
//!   through the engine's `linear`.

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use hypertape::engine::kernels::gemm;
use hypertape::rng::Rng;
use hypertape::Tape;
use std::hint::black_box;
use std::time::Duration;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..len)
        .map(|_| rng.uniform_range(-1.0, 1.0) as f32)
        .collect()
}

/// C (m×n) = op(A)·op(B) through bare sgemm, row-major, transposes by strides (as
/// `kernels::gemm` passes them).
#[allow(clippy::too_many_arguments)]
fn raw_sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    ta: bool,
    b: &[f32],
    tb: bool,
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let (rsa, csa) = if ta { (1, m) } else { (k, 1) };
    let (rsb, csb) = if tb { (1, k) } else { (n, 1) };
    // SAFETY: the assert above keeps every element reached through these strides inside its
    // slice; c is a unique borrow, disjoint from a and b.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

fn flops(m: usize, n: usize, k: usize) -> u64 {
    2 * (m * n * k) as u64
}

fn square(c: &mut Criterion) {
    let mut group = c.benchmark_group("square");
    configure(&mut group);
    for n in [128usize, 512, 1024, 2048] {
        let a = random(n * n, 1);
        let b = random(n * n, 2);
        let mut out = vec![0.0f32; n * n];
        group.throughput(Throughput::Elements(flops(n, n, n)));
        group.bench_function(format!("sgemm/{n}"), |bch| {
            bch.iter(|| raw_sgemm(n, n, n, &a, false, &b, false, black_box(&mut out)))
        });
        group.bench_function(format!("kernels/{n}"), |bch| {
            bch.iter(|| gemm(n, n, n, 1.0, &a, false, &b, false, 0.0, black_box(&mut out)))
        });
        group.bench_function(format!("engine/{n}"), |bch| {
            bch.iter(|| {
                let mut tape = Tape::<f32>::no_grad();
                let av = tape.constant_ref(&[n, n], &a);
                let bv = tape.constant_ref(&[n, n], &b);
                let cv = tape.matmul(av, bv);
                black_box(tape.value(cv)[0])
            })
        });
    }
    group.finish();
}

/// One dense layer y = x·Wᵀ + b with x [rows×inp] and W [out×inp]: its forward and the two
/// products of its backward.
fn layer(c: &mut Criterion, name: &str, rows: usize, inp: usize, out: usize) {
    let mut group = c.benchmark_group(format!("method/{name}"));
    configure(&mut group);
    let x = random(rows * inp, 3);
    let w = random(out * inp, 4);
    let bias = random(out, 5);
    let g = random(rows * out, 6);
    let mut y = vec![0.0f32; rows * out];
    let mut dw = vec![0.0f32; out * inp];
    let mut dx = vec![0.0f32; rows * inp];
    group.throughput(Throughput::Elements(flops(rows, out, inp)));
    // Forward: y [rows×out] = x·Wᵀ.
    group.bench_function("forward/kernels", |b| {
        b.iter(|| {
            gemm(
                rows,
                out,
                inp,
                1.0,
                &x,
                false,
                &w,
                true,
                0.0,
                black_box(&mut y),
            )
        })
    });
    group.bench_function("forward/sgemm", |b| {
        b.iter(|| raw_sgemm(rows, out, inp, &x, false, &w, true, black_box(&mut y)))
    });
    group.bench_function("forward/engine_linear", |b| {
        b.iter(|| {
            let mut tape = Tape::<f32>::no_grad();
            let xv = tape.constant_ref(&[rows, inp], &x);
            let wv = tape.constant_ref(&[out, inp], &w);
            let bv = tape.constant_ref(&[out], &bias);
            let yv = tape.linear(xv, wv, Some(bv));
            black_box(tape.value(yv)[0])
        })
    });
    // dW [out×inp] = gᵀ·x.
    group.bench_function("backward_dw/kernels", |b| {
        b.iter(|| {
            gemm(
                out,
                inp,
                rows,
                1.0,
                &g,
                true,
                &x,
                false,
                0.0,
                black_box(&mut dw),
            )
        })
    });
    group.bench_function("backward_dw/sgemm", |b| {
        b.iter(|| raw_sgemm(out, inp, rows, &g, true, &x, false, black_box(&mut dw)))
    });
    // dx [rows×inp] = g·W.
    group.bench_function("backward_dx/kernels", |b| {
        b.iter(|| {
            gemm(
                rows,
                inp,
                out,
                1.0,
                &g,
                false,
                &w,
                false,
                0.0,
                black_box(&mut dx),
            )
        })
    });
    group.bench_function("backward_dx/sgemm", |b| {
        b.iter(|| raw_sgemm(rows, inp, out, &g, false, &w, false, black_box(&mut dx)))
    });
    group.finish();
}

fn method(c: &mut Criterion) {
    layer(c, "hnet_out_28x25x78000", 28, 25, 78_000);
    layer(c, "hnet_out_252x25x78000", 252, 25, 78_000);
    layer(c, "target_in_128x1024x1000", 128, 1024, 1000);
}

criterion_group!(benches, square, method);
criterion_main!(benches);
