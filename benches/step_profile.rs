//! Training steps of the benchmark configuration for a profiler, without timing:
//! `cargo bench --bench step_profile -- PREVIOUS STEPS` (defaults 9 and 20), or the built
//! binary (`cargo bench --no-run`, target/release/deps/step_profile-*) under
//! `valgrind --tool=callgrind` or `perf record`. Runs the bench's warm-up steps, then STEPS
//! steps of `hypertape::run::bench::step_fixture` with PREVIOUS previous tasks.

use hypertape::run::bench::{step_fixture, BenchSetup, WARMUP_STEPS};

fn main() {
    // Cargo passes `--bench`; only the numbers count.
    let mut args = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse::<usize>().ok());
    let previous = args.next().unwrap_or(9);
    let steps = args.next().unwrap_or(20);
    let mut fixture = step_fixture(BenchSetup::default(), previous, 42);
    for _ in 0..WARMUP_STEPS {
        fixture.step();
    }
    let mut last = (0.0, 0.0);
    for _ in 0..steps {
        last = fixture.step();
    }
    println!("previous {previous}, {steps} steps: last losses {last:?}");
}
