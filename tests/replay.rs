//! HNET+R and HNET+TIR on tiny models: the f64 gradient audit of the VAE loss with fixed
//! noise, that the VAE learns and that the output regularizer keeps an earlier task's decoder
//! in place, the distillation targets, the shape and determinism of replay runs, and clear
//! errors for bad settings.

mod common;

use common::{split_tasks, TinySplit};
use hypertape::cl::hnet::{Lookahead, RegularizerForm};
use hypertape::cl::replay::audit::vae_audit;
use hypertape::cl::replay::{distillation_targets, vae_loss, ReplayConfig, UnseenClasses, Vae};
use hypertape::cl::{Method, Scenario, TrainConfig};
use hypertape::data::ClassificationTask;
use hypertape::gradcheck::GradCheckOptions;
use hypertape::nn::{Activation, HnetConfig, Mlp};
use hypertape::rng::Rng;
use hypertape::run::{self, runner::REPLAY_PICTURE_SAMPLES, Benchmark, ExperimentConfig};
use hypertape::Tape;

fn tiny_replay() -> ReplayConfig {
    ReplayConfig {
        latent_dim: 4,
        encoder_hidden: vec![20],
        decoder_hidden: vec![20],
        hnet: HnetConfig {
            task_emb_dim: 4,
            hidden: vec![6],
            activation: Activation::Elu,
            chunk_size: Some(3000),
            chunk_emb_dim: 4,
        },
        beta: 0.05,
        lr: 1e-3,
        replay_weight: 0.5,
        temperature: 2.0,
        unseen_classes: UnseenClasses::ZeroLogit,
    }
}

fn small_config(scenario: Scenario, method: Method) -> ExperimentConfig {
    let tiny = TinySplit {
        tasks: 3,
        hidden: 30,
        chunk_size: 2000,
        iterations: 40,
    };
    let mut c = tiny.config(method, scenario);
    c.replay = tiny_replay();
    c
}

/// The three tasks of [`small_config`].
fn tasks() -> &'static [ClassificationTask] {
    split_tasks(3)
}

/// The VAE loss with fixed noise ε, end to end in f64: encoder weights, θ of the decoder's
/// chunked hypernetwork and the task embedding against central differences, for a few seeds.
#[test]
fn vae_loss_passes_the_f64_gradient_check_with_fixed_noise() {
    for seed in 0..3 {
        let report = vae_audit(seed, &GradCheckOptions::default());
        assert_eq!(report.inputs.len(), 3);
        assert!(report.passed(), "seed {seed}:\n{report}");
    }
}

/// The loss's value from its definition: mean BCE of σ(logits) plus the KL term.
#[test]
fn vae_loss_value_matches_its_definition() {
    let (dim, latent, conds, rows) = (5, 2, 1, 3);
    let encoder = Mlp::new(dim, &[], latent, 2);
    let decoder = Mlp::new(latent + conds, &[], dim, 1);
    let mut rng = Rng::new(3);
    let enc_w: Vec<f64> = encoder.init_weights(&mut rng);
    let dec_w: Vec<f64> = decoder.init_weights(&mut rng);
    let x: Vec<f64> = (0..rows * dim).map(|i| (i % 4) as f64 / 3.0).collect();
    let eps: Vec<f64> = (0..rows * latent).map(|i| (i as f64).cos()).collect();
    let cond = vec![1.0f64; rows];
    let mut tape = Tape::new();
    let (ew, dw) = (
        tape.leaf_ref(&[enc_w.len()], &enc_w),
        tape.leaf_ref(&[dec_w.len()], &dec_w),
    );
    let xv = tape.constant_ref(&[rows, dim], &x);
    let c = tape.constant_ref(&[rows, conds], &cond);
    let e = tape.constant_ref(&[rows, latent], &eps);
    let loss = vae_loss(&mut tape, &encoder, ew, &decoder, dw, xv, c, e);
    // By hand: no hidden layers, so μ = xW_μᵀ + b_μ etc.
    let lin = |w: &[f64], b: &[f64], input: &[f64], out: usize| -> Vec<f64> {
        (0..out)
            .map(|o| {
                b[o] + (0..input.len())
                    .map(|i| w[o * input.len() + i] * input[i])
                    .sum::<f64>()
            })
            .collect()
    };
    let (we, be) = enc_w.split_at(2 * latent * dim);
    let (wd, bd) = dec_w.split_at(dim * (latent + conds));
    let (mut bce, mut kl) = (0.0, 0.0);
    for r in 0..rows {
        let xr = &x[r * dim..(r + 1) * dim];
        let out = lin(we, be, xr, 2 * latent);
        let (mu, lv) = out.split_at(latent);
        let mut zin: Vec<f64> = (0..latent)
            .map(|j| mu[j] + eps[r * latent + j] * (0.5 * lv[j]).exp())
            .collect();
        zin.push(1.0);
        let logits = lin(wd, bd, &zin, dim);
        for (l, &y) in logits.iter().zip(xr) {
            let p = 1.0 / (1.0 + (-l).exp());
            bce -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
        }
        for j in 0..latent {
            kl += 0.5 * (lv[j].exp() + mu[j] * mu[j] - 1.0 - lv[j]);
        }
    }
    let n = (rows * dim) as f64;
    assert!((tape.item(loss.reconstruction) - bce / n).abs() < 1e-12);
    assert!((tape.item(loss.kl) - kl / n).abs() < 1e-12);
    assert!((tape.item(loss.total) - (bce + kl) / n).abs() < 1e-12);
}

fn vae_train(beta: f64) -> TrainConfig {
    TrainConfig {
        iterations: 60,
        batch_size: 32,
        lr: 1e-3,
        emb_lr: 1e-3,
        beta,
        lookahead: Lookahead::Adam,
        reg_batch: None,
        online_targets: false,
        regularizer: RegularizerForm::Auto,
        label_smoothing: 0.0,
        seed: 5,
    }
}

/// Squared distance between two flat buffers.
fn dist2(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum()
}

/// The VAE's reconstruction improves while it learns, and the decoder hypernetwork's output
/// regularizer keeps task 0's generated decoder near where it was when task 1 is learned;
/// without it (β = 0) the decoder of task 0 drifts much further.
#[test]
fn vae_learns_and_the_regularizer_keeps_the_earlier_decoder() {
    let data = tasks();
    let mut drift = Vec::new();
    for beta in [0.0, 1.0] {
        let mut config = tiny_replay();
        config.beta = beta;
        let mut vae = Vae::new(&config, 784, 3, 11);
        let mut train = vae_train(beta);
        train.iterations = 5;
        let (early, _) = {
            let mut probe = vae.clone();
            probe
                .learn_task(0, &data[0].train, &train, &mut |_| {})
                .unwrap()
        };
        train.iterations = 150;
        let (late, _) = vae
            .learn_task(0, &data[0].train, &train, &mut |_| {})
            .unwrap();
        assert!(late < 0.8 * early, "reconstruction {early} -> {late}");
        let before = vae.decoder_weights(0);
        vae.learn_task(1, &data[1].train, &train, &mut |_| {})
            .unwrap();
        drift.push(dist2(&before, &vae.decoder_weights(0)));
        // Samples are pixel probabilities of the input's size.
        let w = vae.decoder_weights(1);
        let s = vae.sample(&w, 1, 3, &mut Rng::new(1));
        assert_eq!(s.len(), 3 * 784);
        assert!(s.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }
    assert!(
        drift[1] < 0.1 * drift[0],
        "drift of task 0's decoder: β=0 {}, β=1 {}",
        drift[0],
        drift[1]
    );
}

/// HNET+TIR infers the task in CL2 and CL3; HNET+R's classifier only in CL3, where the head
/// its argmax falls in names a task (CL2's shared head names none).
fn check_shape(r: &run::RunResults, method: Method, scenario: Scenario) {
    assert_eq!(r.accuracy_matrix.len(), 3);
    for (i, row) in r.accuracy_matrix.iter().enumerate() {
        assert_eq!(row.len(), i + 1);
        assert!(row.iter().all(|a| (0.0..=100.0).contains(a)));
    }
    let infers = match method {
        Method::HnetTir => scenario.infers_task(),
        _ => scenario == Scenario::Cl3,
    };
    assert_eq!(r.final_task_inference_accuracy.is_some(), infers);
}

/// HNET+R in every scenario and HNET+TIR in CL2/CL3: a complete run, learned (the last task
/// is classified well), with the VAE's samples for every task but the last; the same seed
/// gives the same results.
#[test]
fn replay_runs_have_the_shape_of_their_scenario_and_are_deterministic() {
    for (method, scenario) in [
        (Method::HnetR, Scenario::Cl1),
        (Method::HnetR, Scenario::Cl2),
        (Method::HnetR, Scenario::Cl3),
        (Method::HnetTir, Scenario::Cl2),
        (Method::HnetTir, Scenario::Cl3),
    ] {
        let c = small_config(scenario, method);
        let out = run::run(&c, tasks(), &mut |_| {}, &mut |_, _| {}).unwrap();
        let r = &out.results;
        check_shape(r, method, scenario);
        assert!(
            r.during_accuracy[2] > 80.0,
            "{method:?} {scenario:?}: {:?}",
            r.accuracy_matrix
        );
        assert_eq!(out.replay_samples.len(), 2, "VAE tasks (not the last)");
        for s in &out.replay_samples {
            assert_eq!(s.len(), REPLAY_PICTURE_SAMPLES * 784);
        }
        assert_eq!(r.vae_losses.as_ref().map(Vec::len), Some(2));
        if method == Method::HnetR && scenario == Scenario::Cl2 {
            let again = run::run(&c, tasks(), &mut |_| {}, &mut |_, _| {})
                .unwrap()
                .results;
            assert_eq!(again.accuracy_matrix, r.accuracy_matrix);
        }
    }
}

/// HNET+TIR in CL1 is the hypernetwork with the task given: no replay model, no inference.
#[test]
fn tir_in_cl1_trains_no_replay_model() {
    let c = small_config(Scenario::Cl1, Method::HnetTir);
    let out = run::run(&c, tasks(), &mut |_| {}, &mut |_, _| {}).unwrap();
    assert!(out.replay_samples.is_empty());
    assert!(out.results.vae_losses.is_none());
    assert!(out.results.final_task_inference_accuracy.is_none());
}

/// Bad replay settings are errors that name the setting.
#[test]
fn bad_replay_settings_are_named() {
    let mut c = small_config(Scenario::Cl2, Method::HnetR);
    c.replay.latent_dim = 0;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("latent-dim"), "{e}");
    let mut c = small_config(Scenario::Cl2, Method::HnetTir);
    c.replay.decoder_hidden = vec![10, 0];
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("decoder-hidden"), "{e}");
    let mut c = small_config(Scenario::Cl3, Method::HnetR);
    c.replay.beta = f64::NAN;
    let e = c.validate().unwrap_err().to_string();
    assert!(e.contains("replay-beta"), "{e}");
    // Other methods ignore the replay settings.
    let mut c = small_config(Scenario::Cl1, Method::Hnet);
    c.replay.latent_dim = 0;
    assert!(c.validate().is_ok());
}

/// The defaults follow the official code: HNET+TIR's decoder and β differ from HNET+R's.
#[test]
fn replay_defaults_follow_the_method() {
    let mut c = ExperimentConfig::paper_defaults(Benchmark::SplitMnist);
    c.set_method_and_scenario(Method::HnetR, Scenario::Cl1);
    assert_eq!(c.replay.decoder_hidden, vec![250, 350]);
    assert_eq!(c.replay.beta, 0.01);
    c.set_method_and_scenario(Method::HnetTir, Scenario::Cl1);
    assert_eq!(c.replay.decoder_hidden, vec![300, 150]);
    assert_eq!(c.replay.beta, 0.05);
    assert_eq!(c.replay.latent_dim, 100);
    assert_eq!(c.replay.encoder_hidden, vec![400, 400]);
    let mut p = ExperimentConfig::paper_defaults(Benchmark::PermutedMnist);
    p.set_method_and_scenario(Method::HnetR, Scenario::Cl1);
    assert_eq!(p.replay.decoder_hidden, vec![400, 400]);
    assert_eq!(p.replay.hnet.chunk_size, Some(85_000));
}

/// Distillation targets by hand: two rows of teacher logits over 2 of 4 outputs, T = 2.
#[test]
fn distillation_targets_give_unseen_outputs_logit_zero_or_probability_zero() {
    let logits = [2.0f32, -2.0, 0.0, 4.0];
    let (t, width) = (2.0f64, 4);
    let softmax = |l: &[f64]| {
        let e: Vec<f64> = l.iter().map(|v| (v / t).exp()).collect();
        let z: f64 = e.iter().sum();
        e.into_iter().map(|v| v / z).collect::<Vec<f64>>()
    };
    let zero_logit = distillation_targets(&logits, 2, width, t, UnseenClasses::ZeroLogit);
    let want: Vec<f64> = [
        softmax(&[2.0, -2.0, 0.0, 0.0]),
        softmax(&[0.0, 4.0, 0.0, 0.0]),
    ]
    .concat();
    let zero_prob = distillation_targets(&logits, 2, width, t, UnseenClasses::ZeroProbability);
    let mut want_prob = softmax(&[2.0, -2.0]);
    want_prob.extend([0.0, 0.0]);
    want_prob.extend(softmax(&[0.0, 4.0]));
    want_prob.extend([0.0, 0.0]);
    for (got, want) in [(&zero_logit, &want), (&zero_prob, &want_prob)] {
        assert_eq!(got.len(), 8);
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((f64::from(*g) - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
    // Where the teacher reads every output, both rules agree.
    assert_eq!(
        distillation_targets(&logits, 2, 2, t, UnseenClasses::ZeroLogit),
        distillation_targets(&logits, 2, 2, t, UnseenClasses::ZeroProbability)
    );
}

/// The default is the official code's rule; configurations saved before the choice existed
/// read as the rule they ran with.
#[test]
fn unseen_class_targets_default_to_zero_logit_and_old_configs_keep_theirs() {
    assert_eq!(
        ReplayConfig::split_mnist(false).unseen_classes,
        UnseenClasses::ZeroLogit
    );
    let mut json = serde_json::to_value(ReplayConfig::split_mnist(false)).unwrap();
    json.as_object_mut().unwrap().remove("unseen_classes");
    let old: ReplayConfig = serde_json::from_value(json).unwrap();
    assert_eq!(old.unseen_classes, UnseenClasses::ZeroProbability);
    assert_eq!("zero-logit".parse(), Ok(UnseenClasses::ZeroLogit));
    let e = "zero".parse::<UnseenClasses>().unwrap_err();
    assert!(e.contains("zero-logit, zero-probability"), "{e}");
}
