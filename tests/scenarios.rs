//! Scenarios and baselines on short SplitMNIST runs: HNET+ENT's batched task inference against
//! a per-input reference, the shape of CL2/CL3 results, the baselines' penalties (f64
//! gradient checks, values by hand, the SI and online-EWC bookkeeping), and that EWC protects
//! an earlier task better than fine-tuning.

mod common;

use common::{split_tasks, TinySplit};
use hypertape::cl::baselines::{diagonal_fisher, mlp_diagonal_fisher};
use hypertape::cl::baselines::{BaselineConfig, Consolidation};
use hypertape::cl::eval::argmax;
use hypertape::cl::hnet::entropy::{entropy, entropy_at};
use hypertape::cl::hnet::{
    entropy_inference, logit_gap_temperature, train_task, EntropyCalibration, HnetModel,
};
use hypertape::cl::{Method, Scenario};
use hypertape::data::ClassificationTask;
use hypertape::gradcheck::{gradcheck, GradCheckOptions};
use hypertape::nn::{Hnet, Mlp};
use hypertape::rng::Rng;
use hypertape::run::{self, ExperimentConfig};
use hypertape::{Tape, Tensor};
use proptest::prelude::*;

fn small_config(scenario: Scenario, method: Method) -> ExperimentConfig {
    let tiny = TinySplit {
        tasks: 3,
        hidden: 30,
        chunk_size: 2000,
        iterations: 60,
    };
    let mut c = tiny.config(method, scenario);
    c.baseline.fisher_samples = 100;
    c
}

/// The three tasks of [`small_config`].
fn tasks() -> &'static [ClassificationTask] {
    split_tasks(3)
}

/// HNET+ENT one input at a time, straight from the definition.
fn reference_inference(
    model: &HnetModel<f32>,
    scenario: Scenario,
    j: usize,
    learned: usize,
) -> (f64, f64) {
    let data = &tasks()[j].test;
    let n = 300.min(data.len());
    let dim = data.input_dim();
    let mut x = vec![0.0f32; dim];
    let mut label = [0usize];
    let mut correct = 0;
    let mut inferred = 0;
    let weights: Vec<Vec<f32>> = (0..learned).map(|k| model.generated_weights(k)).collect();
    for i in 0..n {
        data.fill_batch(&[i], &mut x, &mut label);
        let mut best = (f64::INFINITY, 0, 0);
        for (k, w) in weights.iter().enumerate() {
            let mut tape = Tape::no_grad();
            let wv = tape.constant_ref(&[w.len()], w);
            let xv = tape.constant_ref(&[1, dim], &x);
            let logits = model.target.forward(&mut tape, wv, xv, scenario.head(k));
            let h = entropy(tape.value(logits));
            if h < best.0 {
                best = (h, k, argmax(tape.value(logits)));
            }
        }
        inferred += usize::from(best.1 == j);
        let ok = match scenario {
            Scenario::Cl2 => best.2 == label[0],
            _ => best.1 == j && best.2 == label[0],
        };
        correct += usize::from(ok);
    }
    (
        100.0 * correct as f64 / n as f64,
        100.0 * inferred as f64 / n as f64,
    )
}

#[test]
fn batched_entropy_inference_matches_one_input_at_a_time() {
    for scenario in [Scenario::Cl2, Scenario::Cl3] {
        let mut c = small_config(scenario, Method::Hnet);
        c.train.iterations = 30;
        let target = c.target();
        assert_eq!(target.num_heads(), scenario.num_heads(3));
        let hnet = Hnet::new(&c.hnet, target.num_weights());
        let mut model = HnetModel::new(target, hnet, 3);
        for t in 0..2 {
            train_task(
                &mut model,
                t,
                scenario.head(t),
                &tasks()[t].train,
                &c.train,
                &mut |_| {},
            )
            .unwrap();
        }
        // The reference covers the first 300 inputs: compare on a view of those.
        let views: Vec<_> = (0..2)
            .map(|j| {
                let d = &tasks()[j].test;
                hypertape::data::TaskView::new(
                    mnist_test(),
                    d.samples()[..300].to_vec(),
                    None,
                    d.classes().to_vec(),
                )
                .unwrap()
            })
            .collect();
        let refs: Vec<_> = views.iter().collect();
        let batched = entropy_inference(&model, 2, scenario, &refs, &[]);
        for (j, b) in batched.iter().enumerate() {
            let (acc, inf) = reference_inference(&model, scenario, j, 2);
            assert!(
                (b.accuracy - acc).abs() < 1e-9,
                "{scenario:?} task {j}: {} vs {acc}",
                b.accuracy
            );
            assert!((b.task_inference_accuracy - inf).abs() < 1e-9);
            let total: f64 = b.picks.iter().sum();
            assert!((total - 100.0).abs() < 1e-9);
            assert!((b.picks[j] - inf).abs() < 1e-9);
        }
    }
}

#[test]
fn temperatures_scale_the_entropies_and_steer_the_picks() {
    let row = [2.0f32, -1.0, 0.5];
    let scaled: Vec<f32> = row.iter().map(|v| v / 4.0).collect();
    assert!((entropy_at(&row, 4.0) - entropy(&scaled)).abs() < 1e-12);
    assert_eq!(entropy_at(&row, 1.0), entropy(&row));

    let scenario = Scenario::Cl3;
    let mut c = small_config(scenario, Method::Hnet);
    c.train.iterations = 30;
    let target = c.target();
    let hnet = Hnet::new(&c.hnet, target.num_weights());
    let mut model = HnetModel::new(target, hnet, 3);
    for t in 0..2 {
        train_task(&mut model, t, t, &tasks()[t].train, &c.train, &mut |_| {}).unwrap();
    }
    let gaps: Vec<f64> = (0..2)
        .map(|k| logit_gap_temperature(&model, k, k, &tasks()[k].train))
        .collect();
    assert!(gaps.iter().all(|&g| g > 0.0 && g.is_finite()), "{gaps:?}");
    let refs: Vec<_> = tasks()[..2].iter().map(|t| &t.test).collect();
    // A huge temperature flattens task 0's predictions: every input goes to task 1.
    for e in entropy_inference(&model, 2, scenario, &refs, &[1e6, 1.0]) {
        assert_eq!(e.picks, vec![0.0, 100.0]);
    }
    let plain = entropy_inference(&model, 2, scenario, &refs, &[]);
    assert_eq!(
        plain,
        entropy_inference(&model, 2, scenario, &refs, &[1.0, 1.0])
    );
    assert!(plain[0].picks[0] > 50.0, "{:?}", plain[0].picks);
}

#[test]
fn a_validation_run_holds_out_samples_and_reports_on_them() {
    let mut c = small_config(Scenario::Cl3, Method::Hnet);
    c.num_tasks = 2;
    c.train.iterations = 20;
    c.validation = 300;
    c.entropy_calibration = EntropyCalibration::LogitGap;
    let tasks = c.load_tasks().unwrap();
    for (t, full) in tasks.iter().zip(self::tasks()) {
        assert_eq!(t.train.len() + 300, full.train.len());
        assert_eq!(t.validation.as_ref().unwrap().len(), 300);
    }
    let r = run::run(&c, &tasks, &mut |_| {}, &mut |_, _| {})
        .unwrap()
        .results;
    assert_eq!(r.validation_accuracy.as_ref().unwrap().len(), 2);
    assert_eq!(r.validation_task_picks.as_ref().unwrap()[1].len(), 2);
    assert_eq!(r.task_temperatures.as_ref().unwrap().len(), 2);
    let inf = r.validation_task_inference_accuracy.unwrap();
    let mean = r.validation_mean_accuracy.unwrap();
    assert!(mean <= (inf[0] + inf[1]) / 2.0 + 1e-9);
    // Without validation sets the fields stay empty.
    c.validation = 0;
    let r = run::run(&c, &self::tasks()[..2], &mut |_| {}, &mut |_, _| {})
        .unwrap()
        .results;
    assert!(r.validation_accuracy.is_none() && r.validation_task_picks.is_none());
    // Label smoothing is the hypernetwork's; ε must be in [0, 1).
    c.train.label_smoothing = 1.0;
    assert!(c.validate().is_err());
    c.train.label_smoothing = 0.05;
    c.validate().unwrap();
    c.method = Method::Ewc;
    assert!(c.validate().is_err());
}

/// The MNIST test images.
fn mnist_test() -> std::sync::Arc<hypertape::data::ImageSet> {
    common::mnist().test.clone()
}

#[test]
fn runs_report_task_inference_only_without_task_identity() {
    for scenario in [Scenario::Cl1, Scenario::Cl2, Scenario::Cl3] {
        let mut c = small_config(scenario, Method::Hnet);
        c.num_tasks = 2;
        c.train.iterations = 20;
        let r = run::run(&c, &tasks()[..2], &mut |_| {}, &mut |_, _| {})
            .unwrap()
            .results;
        assert_eq!(r.accuracy_matrix.len(), 2);
        assert!(r.backward_transfer.is_some() && r.forgetting.unwrap() >= 0.0);
        match scenario {
            Scenario::Cl1 => assert!(r.task_inference_matrix.is_none()),
            _ => {
                let inf = r.final_task_inference_accuracy.clone().unwrap();
                let picks = r.final_task_picks.clone().unwrap();
                assert_eq!(inf.len(), 2);
                assert_eq!(picks[1].len(), 2);
                if scenario == Scenario::Cl3 {
                    // Right class needs the right task.
                    for (a, i) in r.final_accuracy.iter().zip(&inf) {
                        assert!(a <= i, "{a} > {i}");
                    }
                }
                let json = serde_json::to_string(&r).unwrap();
                assert!(json.contains("\"task_inference_matrix\":[["));
            }
        }
    }
}

fn random_vec(n: usize, rng: &mut Rng, positive: bool) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let v = rng.normal();
            if positive {
                v.abs() + 0.1
            } else {
                v
            }
        })
        .collect()
}

/// A consolidation with random state, every kind, f64.
fn consolidations(n: usize, seed: u64) -> Vec<(&'static str, Consolidation<f64>)> {
    let mut rng = Rng::new(seed);
    let cfg = BaselineConfig {
        ewc_lambda: 3.0,
        online_ewc_gamma: 0.7,
        si_c: 0.4,
        si_xi: 0.1,
        fisher_samples: 10,
        fisher_true_labels: false,
    };
    let mut ewc = Consolidation::new(Method::Ewc, &cfg, n);
    let mut online = Consolidation::new(Method::OnlineEwc, &cfg, n);
    let mut si = Consolidation::new(Method::Si, &cfg, n);
    for _ in 0..2 {
        let theta = random_vec(n, &mut rng, false);
        let f = random_vec(n, &mut rng, true);
        ewc.end_task(&theta, Some(f.clone()));
        online.end_task(&theta, Some(f));
        si.begin_task(&random_vec(n, &mut rng, false));
        let g = random_vec(n, &mut rng, false);
        let before = random_vec(n, &mut rng, false);
        si.record_step(&g, &before, &theta);
        si.end_task(&theta, None);
    }
    vec![("ewc", ewc), ("online-ewc", online), ("si", si)]
}

#[test]
fn every_penalty_passes_an_f64_gradient_check() {
    let n = 13;
    for (name, c) in consolidations(n, 5) {
        let theta = Tensor::from_vec(&[n], random_vec(n, &mut Rng::new(9), false));
        let report = gradcheck(
            &[theta],
            |tape, v| c.penalty(tape, v[0]).expect("state to protect"),
            &GradCheckOptions::default(),
        );
        assert!(report.passed(), "{name}:\n{report}");
    }
}

#[test]
fn fused_penalty_gradient_matches_the_tape() {
    let n = 40_000; // more than one parallel block
    for (name, c) in consolidations(n, 6) {
        let theta = random_vec(n, &mut Rng::new(10), false);
        let mut tape = Tape::new();
        let v = tape.leaf_ref(&[n], &theta);
        let p = c.penalty(&mut tape, v).expect("state to protect");
        let want_value = tape.item(p);
        let grads = tape.backward(p);
        let want = grads.get(v).unwrap();
        let mut grad = vec![0.5; n];
        let value = c.add_penalty_gradient(&theta, &mut grad);
        assert!(
            (value - want_value).abs() <= 1e-12 * want_value.abs().max(1.0),
            "{name}: {value} vs {want_value}"
        );
        for (g, w) in grad.iter().zip(want) {
            assert!(
                (g - 0.5 - w).abs() <= 1e-12 * w.abs().max(1.0),
                "{name}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn penalties_match_their_formulas() {
    let n = 4;
    let theta: [f64; 4] = [0.5, -1.0, 2.0, 0.0];
    let cfg = BaselineConfig {
        ewc_lambda: 2.0,
        online_ewc_gamma: 0.5,
        si_c: 3.0,
        si_xi: 0.5,
        fisher_samples: 1,
        fisher_true_labels: false,
    };
    let (a1, f1): (Vec<f64>, Vec<f64>) = (vec![0.0; n], vec![1.0, 2.0, 0.0, 1.0]);
    let (a2, f2): (Vec<f64>, Vec<f64>) = (vec![1.0; n], vec![1.0; n]);
    // EWC: (λ/2) Σ_tasks Σ F (θ − θ*)².
    let mut ewc = Consolidation::new(Method::Ewc, &cfg, n);
    assert_eq!(ewc.value(&theta), 0.0);
    ewc.end_task(&a1, Some(f1.clone()));
    ewc.end_task(&a2, Some(f2.clone()));
    let t1: f64 = (0..n).map(|i| f1[i] * (theta[i] - a1[i]).powi(2)).sum();
    let t2: f64 = (0..n).map(|i| f2[i] * (theta[i] - a2[i]).powi(2)).sum();
    assert!((ewc.value(&theta) - (t1 + t2)).abs() < 1e-12);
    // Online EWC: F = γ F1 + F2, anchor the last θ*.
    let mut online = Consolidation::new(Method::OnlineEwc, &cfg, n);
    online.end_task(&a1, Some(f1.clone()));
    online.end_task(&a2, Some(f2.clone()));
    let expected: f64 = (0..n)
        .map(|i| (0.5 * f1[i] + f2[i]) * (theta[i] - a2[i]).powi(2))
        .sum();
    assert!((online.value(&theta) - expected).abs() < 1e-12);
    // SI: one step from 0 to 1 with task gradient −2 → ω = 2, Ω = 2 / (1 + ξ).
    let mut si = Consolidation::new(Method::Si, &cfg, n);
    si.begin_task(&[0.0; 4]);
    si.record_step(&[-2.0; 4], &[0.0; 4], &[1.0; 4]);
    assert_eq!(
        si.value(&theta),
        0.0,
        "nothing to protect during the first task"
    );
    si.end_task(&[1.0; 4], None);
    let omega = 2.0 / 1.5;
    let expected: f64 = theta.iter().map(|t| 3.0 * omega * (t - 1.0).powi(2)).sum();
    assert!((si.value(&theta) - expected).abs() < 1e-12);
}

#[test]
fn ewc_keeps_the_first_task_better_than_fine_tuning() {
    let mut finals = Vec::new();
    for method in [Method::Finetune, Method::Ewc] {
        let mut c = small_config(Scenario::Cl2, method);
        c.num_tasks = 2;
        c.train.iterations = 150;
        // Strong enough to hold task 0 in 150 steps, weak enough to learn task 1.
        c.baseline.ewc_lambda = 1e6;
        let r = run::run(&c, &tasks()[..2], &mut |_| {}, &mut |_, _| {})
            .unwrap()
            .results;
        assert!(
            r.during_accuracy.iter().all(|&a| a > 80.0),
            "{method:?} {r:?}"
        );
        assert!(r.num_hnet_params == 0);
        finals.push(r.final_accuracy[0]);
    }
    assert!(
        finals[1] > finals[0] + 5.0,
        "EWC {} vs fine-tuning {} on task 0",
        finals[1],
        finals[0]
    );
}

/// The batched Fisher of a target MLP against one tape per sample, in f64: random sizes,
/// heads and labels (true or predicted), over more rows than one batched tape holds.
fn fisher_agrees(hidden: &[usize], heads: (usize, usize), n: usize, true_labels: bool, seed: u64) {
    let (input, head_dim, num_heads) = (7, 3, 4);
    let (first, count) = heads;
    let target = Mlp::new(input, hidden, head_dim, num_heads);
    let mut rng = Rng::new(seed);
    let weights: Vec<f64> = target.init_weights(&mut rng);
    let x: Vec<f64> = (0..n * input).map(|_| rng.normal()).collect();
    let classes = count * head_dim;
    let labels: Vec<usize> = (0..n).map(|_| rng.below(classes)).collect();
    let heads = first..first + count;
    let pick = |s: usize, logits: &[f64]| {
        if true_labels {
            labels[s]
        } else {
            (0..logits.len())
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
                .unwrap()
        }
    };
    let samples: Vec<usize> = (0..n).collect();
    let want = diagonal_fisher(&weights, &samples, |tape, w, s| {
        let xs = x[s * input..(s + 1) * input].to_vec();
        let xv = tape.constant(Tensor::from_vec(&[1, input], xs));
        let logits = target.forward_heads(tape, w, xv, heads.clone());
        let y = pick(s, tape.value(logits));
        tape.softmax_cross_entropy(logits, &[y])
    });
    let got = mlp_diagonal_fisher(&target, &weights, &x, heads.clone(), pick);
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 * scale,
            "weight {i}: batched {g} vs per sample {w} (hidden {hidden:?}, heads {heads:?})"
        );
    }
    // Other heads' weights get nothing.
    let out = target.layer_block(hidden.len(), 0..num_heads);
    let ours = target.layer_block(hidden.len(), heads.clone());
    let ours = ours.weight..ours.weight + ours.outputs * ours.inputs;
    let all = out.weight..out.weight + out.outputs * out.inputs;
    for (i, &g) in got.iter().enumerate().take(all.end).skip(all.start) {
        if !ours.contains(&i) {
            assert_eq!(g, 0.0, "weight {i} of another head");
        }
    }
}

#[test]
fn batched_fisher_matches_per_sample_fisher_across_tapes() {
    // 1100 samples: three batched tapes (500 rows each at most).
    fisher_agrees(&[9, 5], (1, 2), 1100, false, 3);
    fisher_agrees(&[6], (0, 4), 1100, true, 4);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn batched_fisher_matches_per_sample_fisher(
        hidden in proptest::collection::vec(1usize..12, 0..3),
        first in 0usize..4,
        count in 1usize..4,
        n in 1usize..40,
        true_labels: bool,
        seed in 0u64..1000,
    ) {
        let count = count.min(4 - first);
        fisher_agrees(&hidden, (first, count), n, true_labels, seed);
    }
}
