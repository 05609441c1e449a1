//! The layers in f64: gradient checks of the target MLP (every head, weights and input) and of
//! the hypernetwork (unchunked and chunked, every activation, one and several task embeddings
//! per batch), the batched hypernetwork against separate forwards, and the parameter counts of
//! the paper's configurations.

mod common;

use common::{normal_tensor, weighted_sum};
use hypertape::gradcheck::{gradcheck, GradCheckOptions};
use hypertape::nn::{Activation, Hnet, HnetConfig, Mlp};
use hypertape::rng::Rng;
use hypertape::run::{Benchmark, ExperimentConfig};
use hypertape::{Tape, Tensor};
use proptest::prelude::*;

const ACTIVATIONS: [Activation; 4] = [
    Activation::Relu,
    Activation::Elu,
    Activation::Sigmoid,
    Activation::Tanh,
];

/// θ from the hypernetwork's own initialisation, moved off the zero biases.
fn hnet_theta(hnet: &Hnet, seed: u64) -> Tensor<f64> {
    let mut rng = Rng::new(seed);
    let mut theta: Vec<f64> = hnet.init_params(&mut rng);
    theta.iter_mut().for_each(|v| *v += 0.1 * rng.normal());
    Tensor::from_vec(&[theta.len()], theta)
}

#[test]
fn target_mlp_gradient_check_every_head() {
    let target = Mlp::new(5, &[4], 3, 2);
    assert_eq!(target.num_weights(), 4 * 5 + 4 + 6 * 4 + 6);
    let mut rng = Rng::new(7);
    let weights = normal_tensor(&[target.num_weights()], 0.7, &mut rng);
    let x = normal_tensor(&[6, 5], 1.0, &mut rng);
    for head in 0..target.num_heads() {
        let report = gradcheck(
            &[weights.clone(), x.clone()],
            |tape, v| {
                let logits = target.forward(tape, v[0], v[1], head);
                assert_eq!(tape.shape(logits), [6, 3]);
                weighted_sum(tape, logits, head as u64)
            },
            &GradCheckOptions::default(),
        );
        assert!(report.passed(), "head {head}:\n{report}");
    }
}

#[test]
fn target_mlp_heads_read_only_their_own_rows() {
    // The gradient of head h's logits must be zero on the other head's output rows and bias.
    let target = Mlp::new(5, &[6, 5], 3, 2);
    let mut rng = Rng::new(8);
    let weights = normal_tensor(&[target.num_weights()], 0.7, &mut rng);
    let x = normal_tensor(&[8, 5], 1.0, &mut rng);
    let layout = target.layout();
    let (ow, ob) = (layout.entry(4).clone(), layout.entry(5).clone());
    assert_eq!(
        (ow.name.as_str(), ob.name.as_str()),
        ("heads.weight", "heads.bias")
    );
    for head in 0..2 {
        let mut tape = Tape::new();
        let w = tape.leaf_ref(&[weights.len()], weights.data());
        let xv = tape.constant_ref(&[8, 5], x.data());
        let logits = target.forward(&mut tape, w, xv, head);
        let loss = weighted_sum(&mut tape, logits, 3);
        let g = tape.backward(loss).get(w).unwrap().to_vec();
        let fan_in = ow.shape[1];
        for other in 0..2 {
            let rows = other * 3..(other + 1) * 3;
            let wsum: f64 = g[ow.offset + rows.start * fan_in..ow.offset + rows.end * fan_in]
                .iter()
                .map(|v| v.abs())
                .sum();
            let bsum: f64 = g[ob.offset + rows.start..ob.offset + rows.end]
                .iter()
                .map(|v| v.abs())
                .sum();
            if other == head {
                assert!(
                    wsum > 0.0 && bsum > 0.0,
                    "head {head} has no gradient: {wsum} {bsum}"
                );
            } else {
                assert_eq!((wsum, bsum), (0.0, 0.0), "head {head} leaks to {other}");
            }
        }
    }
}

fn check_hnet(config: &HnetConfig, num_weights: usize, n: usize, seed: u64) {
    let hnet = Hnet::new(config, num_weights);
    let theta = hnet_theta(&hnet, seed);
    let mut rng = Rng::derived(seed, "embeddings", 0);
    let embs = normal_tensor(&[n, config.task_emb_dim], 1.0, &mut rng);
    let report = gradcheck(
        &[theta, embs],
        |tape, v| {
            let out = hnet.forward(tape, v[0], v[1]);
            assert_eq!(tape.shape(out), [n, hnet.row_stride()]);
            weighted_sum(tape, out, seed)
        },
        &GradCheckOptions::default(),
    );
    assert!(
        report.passed(),
        "{config:?}, {num_weights} weights, n = {n}:\n{report}"
    );
}

#[test]
fn unchunked_hnet_gradient_check_every_activation() {
    for activation in ACTIVATIONS {
        for n in [1, 3] {
            let config = HnetConfig {
                task_emb_dim: 3,
                hidden: vec![5, 4],
                activation,
                chunk_size: None,
                chunk_emb_dim: 0,
            };
            check_hnet(&config, 11, n, 1);
        }
    }
}

#[test]
fn chunked_hnet_gradient_check_every_activation() {
    for activation in ACTIVATIONS {
        for n in [1, 3] {
            // 23 weights in chunks of 7: 4 chunks, the last one padded.
            let config = HnetConfig {
                task_emb_dim: 3,
                hidden: vec![5, 4],
                activation,
                chunk_size: Some(7),
                chunk_emb_dim: 2,
            };
            let hnet = Hnet::new(&config, 23);
            assert_eq!((hnet.num_chunks(), hnet.row_stride()), (4, 28));
            check_hnet(&config, 23, n, 2);
        }
    }
}

fn activation_strategy() -> impl Strategy<Value = Activation> {
    prop::sample::select(ACTIVATIONS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn chunked_hnet_gradient_check_over_sizes(
        task_emb_dim in 1usize..4,
        chunk_emb_dim in 1usize..4,
        hidden in prop::collection::vec(1usize..6, 0..3),
        activation in activation_strategy(),
        num_weights in 1usize..30,
        chunk in 1usize..12,
        n in 1usize..4,
        seed in any::<u64>(),
    ) {
        let config = HnetConfig {
            task_emb_dim,
            hidden,
            activation,
            chunk_size: Some(chunk),
            chunk_emb_dim,
        };
        check_hnet(&config, num_weights, n, seed);
    }
}

/// The rows of one batched forward against one forward per embedding.
fn batched_equals_separate(config: &HnetConfig, num_weights: usize, n: usize, seed: u64) {
    let hnet = Hnet::new(config, num_weights);
    let theta = hnet_theta(&hnet, seed);
    let mut rng = Rng::derived(seed, "embeddings", 1);
    let embs = normal_tensor(&[n, config.task_emb_dim], 1.0, &mut rng);
    let mut tape = Tape::no_grad();
    let th = tape.constant_ref(theta.shape(), theta.data());
    let e = tape.constant_ref(embs.shape(), embs.data());
    let out = hnet.forward(&mut tape, th, e);
    let stride = hnet.row_stride();
    for j in 0..n {
        let row = &embs.data()[j * config.task_emb_dim..(j + 1) * config.task_emb_dim];
        let ej = tape.constant_ref(&[1, config.task_emb_dim], row);
        let single = hnet.forward(&mut tape, th, ej);
        let batched = tape.value(out)[j * stride..(j + 1) * stride].to_vec();
        for (i, (a, b)) in batched.iter().zip(tape.value(single)).enumerate() {
            let err = (a - b).abs() / a.abs().max(1.0);
            assert!(err <= 1e-12, "{config:?} row {j} element {i}: {a} vs {b}");
        }
        // task_weights is the row's first num_weights elements.
        let w = hnet.task_weights(&mut tape, out, j);
        assert_eq!(tape.value(w), &batched[..num_weights]);
    }
}

#[test]
fn batched_hnet_forward_equals_separate_forwards() {
    for activation in ACTIVATIONS {
        for chunk in [None, Some(7), Some(40)] {
            let config = HnetConfig {
                task_emb_dim: 4,
                hidden: vec![6, 5],
                activation,
                chunk_size: chunk,
                chunk_emb_dim: 3,
            };
            batched_equals_separate(&config, 37, 5, 3);
        }
    }
    // A larger chunked case, where the gemm blocks rows differently for n = 1 and n = 6.
    let config = HnetConfig {
        task_emb_dim: 24,
        hidden: vec![25, 25],
        activation: Activation::Elu,
        chunk_size: Some(900),
        chunk_emb_dim: 8,
    };
    batched_equals_separate(&config, 5000, 6, 4);
}

#[test]
fn paper_parameter_counts() {
    let split = ExperimentConfig::paper_defaults(Benchmark::SplitMnist);
    let target = split.target();
    assert_eq!(target.num_weights(), 478_410);
    let hnet = Hnet::new(&split.hnet, target.num_weights());
    assert_eq!(hnet.num_chunks(), 12);
    assert_eq!(hnet.num_params(), 465_192);

    let permuted = ExperimentConfig::paper_defaults(Benchmark::PermutedMnist);
    let target = permuted.target();
    assert_eq!(target.num_weights(), 2_126_100);
    let hnet = Hnet::new(&permuted.hnet, target.num_weights());
    assert_eq!(hnet.num_chunks(), 28);
    assert_eq!(hnet.num_params(), 2_029_699);

    // The same counts from explicit configurations, independent of paper_defaults.
    let explicit = |input, hidden: &[usize], head, heads, emb, cemb, hh: &[usize], chunk| {
        let t = Mlp::new(input, hidden, head, heads);
        let c = HnetConfig {
            task_emb_dim: emb,
            hidden: hh.to_vec(),
            activation: Activation::Relu,
            chunk_size: Some(chunk),
            chunk_emb_dim: cemb,
        };
        (t.num_weights(), Hnet::new(&c, t.num_weights()).num_params())
    };
    assert_eq!(
        explicit(784, &[400, 400], 2, 5, 96, 96, &[10, 10], 42_000),
        (478_410, 465_192)
    );
    assert_eq!(
        explicit(1024, &[1000, 1000], 10, 10, 24, 8, &[25, 25], 78_000),
        (2_126_100, 2_029_699)
    );
}

#[test]
fn hnet_layout_covers_theta_without_gaps() {
    let config = HnetConfig {
        task_emb_dim: 3,
        hidden: vec![5],
        activation: Activation::Tanh,
        chunk_size: Some(4),
        chunk_emb_dim: 2,
    };
    let hnet = Hnet::new(&config, 10);
    let mut next = 0;
    for e in hnet.layout().entries() {
        assert_eq!(e.offset, next, "{}", e.name);
        next += e.len();
    }
    assert_eq!(next, hnet.num_params());
    let names: Vec<&str> = hnet
        .layout()
        .entries()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "layer0.weight",
            "layer0.bias",
            "output.weight",
            "output.bias",
            "chunk_embeddings"
        ]
    );
    assert_eq!(hnet.layout().entry(4).shape, [3, 2]);
}

#[test]
fn hyperfan_init_gives_generated_weights_the_fan_in_variance() {
    // Without hidden layers the hypernetwork's input is the N(0, 1) embedding itself, so the
    // generated weights of a target layer with fan-in f have variance 1/f, its biases 1.
    use hypertape::cl::hnet::HnetModel;
    use hypertape::nn::HnetInit;
    let target = Mlp::new(40, &[10], 3, 2);
    let config = HnetConfig {
        task_emb_dim: 64,
        hidden: vec![],
        activation: Activation::Relu,
        chunk_size: None,
        chunk_emb_dim: 0,
    };
    let hnet = Hnet::new(&config, target.num_weights());
    let mut sums = vec![(0.0f64, 0usize); target.layout().entries().len()];
    for seed in 0..40u64 {
        let mut model =
            HnetModel::<f64>::with_init(target.clone(), hnet.clone(), seed, HnetInit::Hyperfan);
        model.add_task(seed);
        let mut tape = Tape::no_grad();
        let th = tape.constant_ref(&[model.theta.len()], &model.theta);
        let e = tape.constant_ref(&[1, 64], &model.task_embs[0]);
        let out = model.hnet.forward(&mut tape, th, e);
        let w = tape.value(out);
        for (i, entry) in target.layout().entries().iter().enumerate() {
            sums[i].0 += w[entry.range()].iter().map(|v| v * v).sum::<f64>();
            sums[i].1 += entry.len();
        }
    }
    for (entry, (sq, count)) in target.layout().entries().iter().zip(sums) {
        let variance = sq / count as f64;
        let expected = if entry.shape.len() == 2 {
            1.0 / entry.shape[1] as f64
        } else {
            1.0
        };
        assert!(
            (variance / expected - 1.0).abs() < 0.25,
            "{}: variance {variance}, expected {expected}",
            entry.name
        );
    }
}
