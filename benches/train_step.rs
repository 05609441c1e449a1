//! One training step of the PermutedMNIST-10 configuration (`hypertape::run::bench::step_fixture`,
//! the setting of the PyTorch reference) at 0, 1 and 9 previous tasks. Criterion's
//! elements/s is the step's matmul FLOP/s (`step_matmul_flops`).

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use hypertape::run::bench::{step_fixture, step_matmul_flops, BenchSetup};
use std::time::Duration;

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for prev in [0usize, 1, 9] {
        let setup = BenchSetup::default();
        let mut fixture = step_fixture(setup, prev, 42);
        group.throughput(Throughput::Elements(step_matmul_flops(setup, prev) as u64));
        group.bench_function(format!("previous_tasks/{prev}"), |b| {
            b.iter(|| fixture.step())
        });
    }
    group.finish();
}

criterion_group!(benches, train_step);
criterion_main!(benches);
