//! The output regularizer (β/|S|) Σ_{t∈S} ‖h(e_t, θ*) − h(e_t, θ)‖² against the formula worked
//! by hand on hypernetworks without hidden layers (h(e) = W·e + b, or per chunk
//! W·[e; c_i] + b), for precomputed and online targets and subsets of the previous tasks; its
//! f64 gradient with Δθ held fixed; and the gradient of a whole step against its two parts
//! computed separately.

use hypertape::cl::hnet::{
    step_gradients, task_loss, HnetModel, Lookahead, OutputRegularizer, RegTargets, StepInput,
    StepWorkspace,
};
use hypertape::gradcheck::{gradcheck, GradCheckOptions};
use hypertape::nn::{Activation, Hnet, HnetConfig, Mlp};
use hypertape::optim::{sgd_delta, Adam};
use hypertape::rng::Rng;
use hypertape::{Tape, Tensor};

const SEED: u64 = 17;

fn model(chunk_size: Option<usize>, hidden: Vec<usize>, tasks: usize) -> HnetModel<f64> {
    let target = Mlp::new(3, &[2], 2, 3);
    let config = HnetConfig {
        task_emb_dim: 2,
        hidden,
        activation: Activation::Tanh,
        chunk_size,
        chunk_emb_dim: 2,
    };
    let hnet = Hnet::new(&config, target.num_weights());
    let mut m = HnetModel::new(target, hnet, SEED);
    for _ in 0..tasks {
        m.add_task(SEED);
    }
    // Non-zero biases, so the hand formula's bias term is exercised.
    let mut rng = Rng::new(SEED);
    m.theta.iter_mut().for_each(|v| *v += 0.3 * rng.normal());
    m
}

/// θ* moved by N(0, 0.2²) noise.
fn moved(theta: &[f64], seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    theta.iter().map(|v| v + 0.2 * rng.normal()).collect()
}

/// h(e, θ) by hand for a hypernetwork without hidden layers: for chunk i,
/// W·[e; c_i] + b (no c_i when unchunked), the chunks concatenated and cut to num_weights.
fn by_hand(hnet: &Hnet, theta: &[f64], e: &[f64]) -> Vec<f64> {
    assert!(hnet.config().hidden.is_empty());
    let layout = hnet.layout();
    let w = layout.entry(0);
    let b = layout.entry(1);
    assert_eq!(
        (w.name.as_str(), b.name.as_str()),
        ("output.weight", "output.bias")
    );
    let (rows, cols) = (w.shape[0], w.shape[1]);
    let mut out = Vec::new();
    for i in 0..hnet.num_chunks() {
        let mut input = e.to_vec();
        if let Some(c) = layout.entries().get(2) {
            assert_eq!(c.name, "chunk_embeddings");
            let d = c.shape[1];
            input.extend_from_slice(&theta[c.offset + i * d..c.offset + (i + 1) * d]);
        }
        assert_eq!(input.len(), cols);
        for r in 0..rows {
            let mut s = theta[b.offset + r];
            for (k, x) in input.iter().enumerate() {
                s += theta[w.offset + r * cols + k] * x;
            }
            out.push(s);
        }
    }
    out.truncate(hnet.num_weights());
    out
}

fn expected_loss(
    m: &HnetModel<f64>,
    theta_star: &[f64],
    theta: &[f64],
    subset: &[usize],
    beta: f64,
) -> f64 {
    let total: f64 = subset
        .iter()
        .map(|&t| {
            let a = by_hand(&m.hnet, theta_star, &m.task_embs[t]);
            let b = by_hand(&m.hnet, theta, &m.task_embs[t]);
            a.iter()
                .zip(&b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f64>()
        })
        .sum();
    beta / subset.len() as f64 * total
}

fn reg_loss(reg: &OutputRegularizer<f64>, hnet: &Hnet, theta: &[f64], subset: &[usize]) -> f64 {
    let mut tape = Tape::new();
    let th = tape.leaf_ref(&[theta.len()], theta);
    let loss = reg.loss(&mut tape, hnet, th, subset);
    tape.item(loss)
}

const SUBSETS: [&[usize]; 5] = [&[0, 1, 2], &[0], &[2], &[0, 2], &[2, 1]];

#[test]
fn regularizer_equals_the_formula_by_hand() {
    for chunk in [None, Some(5)] {
        let mut m = model(chunk, vec![], 3);
        if chunk.is_some() {
            assert!(m.hnet.num_chunks() > 1);
        }
        let theta_star = m.theta.clone();
        let theta = moved(&theta_star, 1);
        for online in [false, true] {
            let beta = 0.37;
            let reg = OutputRegularizer::new(&m, 3, beta, online);
            assert_eq!(reg.num_prev(), 3);
            assert_eq!(reg.beta(), beta);
            match (reg.targets(), online) {
                (RegTargets::Precomputed(ts), false) => {
                    assert_eq!(ts.len(), 3 * m.hnet.num_weights());
                    for t in 0..3 {
                        let target = reg.precomputed_target(t).unwrap();
                        let hand = by_hand(&m.hnet, &theta_star, &m.task_embs[t]);
                        for (a, b) in target.iter().zip(&hand) {
                            assert!((a - b).abs() <= 1e-12, "target of task {t}");
                        }
                    }
                }
                (RegTargets::Online { theta_star: ts }, true) => assert_eq!(ts, &theta_star),
                _ => panic!("online = {online} gave the other kind of targets"),
            }
            for subset in SUBSETS {
                let got = reg_loss(&reg, &m.hnet, &theta, subset);
                let want = expected_loss(&m, &theta_star, &theta, subset, beta);
                assert!(want > 1e-3, "the test needs θ ≠ θ*");
                assert!(
                    (got - want).abs() <= 1e-12 * want.max(1.0),
                    "chunk {chunk:?}, online {online}, subset {subset:?}: {got} vs {want}"
                );
            }
            // The regularizer holds θ*: moving the model afterwards does not move its targets.
            let saved = m.theta.clone();
            m.theta = moved(&saved, 9);
            let again = reg_loss(&reg, &m.hnet, &theta, &[0, 1, 2]);
            let want = expected_loss(&m, &theta_star, &theta, &[0, 1, 2], beta);
            assert!((again - want).abs() <= 1e-12 * want.max(1.0));
            m.theta = saved;
        }
    }
}

#[test]
fn regularizer_is_exactly_zero_at_theta_star() {
    for (chunk, hidden) in [(None, vec![]), (Some(5), vec![]), (Some(7), vec![4, 3])] {
        let m = model(chunk, hidden, 3);
        for online in [false, true] {
            let reg = OutputRegularizer::new(&m, 3, 1.5, online);
            for subset in SUBSETS {
                let got = reg_loss(&reg, &m.hnet, &m.theta, subset);
                assert_eq!(
                    got, 0.0,
                    "chunk {chunk:?}, online {online}, subset {subset:?}"
                );
            }
        }
    }
}

#[test]
fn precomputed_and_online_targets_agree_with_hidden_layers() {
    let m = model(Some(7), vec![4, 3], 3);
    let theta = moved(&m.theta, 2);
    let pre = OutputRegularizer::new(&m, 3, 0.5, false);
    let online = OutputRegularizer::new(&m, 3, 0.5, true);
    for subset in SUBSETS {
        let a = reg_loss(&pre, &m.hnet, &theta, subset);
        let b = reg_loss(&online, &m.hnet, &theta, subset);
        assert!(a > 0.0);
        assert!(
            (a - b).abs() <= 1e-12 * a.max(1.0),
            "{subset:?}: {a} vs {b}"
        );
    }
}

#[test]
fn regularizer_gradient_with_fixed_lookahead_passes_the_gradient_check() {
    for (chunk, hidden) in [(None, vec![]), (Some(5), vec![]), (Some(7), vec![4, 3])] {
        let m = model(chunk, hidden, 3);
        let theta = moved(&m.theta, 3);
        let mut rng = Rng::new(4);
        let delta: Vec<f64> = theta.iter().map(|_| 0.01 * rng.normal()).collect();
        for online in [false, true] {
            // OutputRegularizer::loss ties the regularizer's borrow to the tape's lifetime, and
            // gradcheck's closure is generic over that lifetime: the regularizer must be 'static.
            let reg: &'static OutputRegularizer<f64> =
                Box::leak(Box::new(OutputRegularizer::new(&m, 3, 0.8, online)));
            for subset in [&[0usize, 1, 2][..], &[1]] {
                let report = gradcheck(
                    &[Tensor::from_vec(&[theta.len()], theta.clone())],
                    |tape, v| {
                        let d = tape.constant(Tensor::from_vec(&[delta.len()], delta.clone()));
                        let shifted = tape.add(v[0], d);
                        reg.loss(tape, &m.hnet, shifted, subset)
                    },
                    &GradCheckOptions::default(),
                );
                assert!(
                    report.passed(),
                    "chunk {chunk:?}, online {online}, subset {subset:?}:\n{report}"
                );
            }
        }
    }
}

/// A model with two previous tasks protected by a regularizer at θ*, θ moved, the current task
/// added, a batch and an Adam state with history.
struct Step {
    model: HnetModel<f64>,
    reg: OutputRegularizer<f64>,
    opt: Adam<f64>,
    x: Vec<f64>,
    labels: Vec<usize>,
}

fn step_setup() -> Step {
    let mut m = model(Some(7), vec![4, 3], 2);
    let reg = OutputRegularizer::new(&m, 2, 0.6, false);
    m.theta = moved(&m.theta, 5);
    m.add_task(SEED);
    let mut rng = Rng::new(6);
    let mut opt = Adam::new(m.theta.len(), 0.02);
    let mut scratch = m.theta.clone();
    for _ in 0..3 {
        let g: Vec<f64> = scratch.iter().map(|_| rng.normal()).collect();
        opt.step(&mut scratch, &g);
    }
    let x = (0..5 * 3).map(|_| rng.uniform()).collect();
    let labels = (0..5).map(|_| rng.below(2)).collect();
    Step {
        model: m,
        reg,
        opt,
        x,
        labels,
    }
}

#[test]
fn step_gradients_is_task_gradient_plus_regularizer_gradient_at_the_lookahead() {
    let s = step_setup();
    let m = &s.model;
    let task = 2;
    // 1. The task gradient on its own tape.
    let (task_value, gt, ge) = {
        let mut tape = Tape::new();
        let th = tape.leaf_ref(&[m.theta.len()], &m.theta);
        let e = tape.leaf_ref(&[1, 2], &m.task_embs[task]);
        let x = tape.constant_ref(&[5, 3], &s.x);
        let loss = task_loss(&mut tape, m, th, e, x, &s.labels, task);
        let g = tape.backward(loss);
        (
            tape.item(loss),
            g.get(th).unwrap().to_vec(),
            g.get(e).unwrap().to_vec(),
        )
    };
    for lookahead in [Lookahead::Off, Lookahead::Adam, Lookahead::Sgd] {
        for subset in [&[0usize, 1][..], &[1]] {
            // 2. Δθ from the task gradient.
            let mut delta = vec![0.0; m.theta.len()];
            match lookahead {
                Lookahead::Off => {}
                Lookahead::Adam => s.opt.lookahead_delta(&gt, &mut delta),
                Lookahead::Sgd => sgd_delta(s.opt.lr, &gt, &mut delta),
            }
            let shifted: Vec<f64> = m.theta.iter().zip(&delta).map(|(t, d)| t + d).collect();
            // 3. The regularizer's gradient at θ + Δθ.
            let (reg_value, gr) = {
                let mut tape = Tape::new();
                let th = tape.leaf_ref(&[shifted.len()], &shifted);
                let loss = s.reg.loss(&mut tape, &m.hnet, th, subset);
                (
                    tape.item(loss),
                    tape.backward(loss).get(th).unwrap().to_vec(),
                )
            };
            let opt_before = s.opt.clone();
            let mut scratch = StepWorkspace::new();
            let input = StepInput {
                x: &s.x,
                labels: &s.labels,
                task,
                head: task,
            };
            let g = step_gradients(
                m,
                input,
                Some((&s.reg, subset)),
                lookahead,
                &s.opt,
                &mut scratch,
            );
            assert_eq!(s.opt, opt_before, "step_gradients changed the optimizer");
            assert_eq!(
                scratch.shifted_theta(),
                shifted.as_slice(),
                "{lookahead:?}: θ + Δθ"
            );
            assert_eq!(g.task_loss, task_value);
            assert_eq!(g.reg_loss, reg_value);
            assert!(reg_value > 0.0);
            assert_eq!(g.task_emb, ge);
            for i in 0..gt.len() {
                assert_eq!(
                    g.theta[i],
                    gt[i] + gr[i],
                    "{lookahead:?} {subset:?} element {i}"
                );
            }
        }
    }
    // Without a regularizer (or with an empty subset) the step gradient is the task gradient.
    let input = StepInput {
        x: &s.x,
        labels: &s.labels,
        task,
        head: task,
    };
    for reg in [None, Some((&s.reg, &[][..]))] {
        let g = step_gradients(
            m,
            input,
            reg,
            Lookahead::Adam,
            &s.opt,
            &mut StepWorkspace::new(),
        );
        assert_eq!(g.theta, gt);
        assert_eq!(g.task_emb, ge);
        assert_eq!(g.reg_loss, 0.0);
    }
}

#[test]
fn lookahead_changes_the_step_gradient() {
    // The regularizer's gradient is taken at θ + Δθ, not at θ: the three look-aheads differ.
    let s = step_setup();
    let input = StepInput {
        x: &s.x,
        labels: &s.labels,
        task: 2,
        head: 2,
    };
    let g = |l| {
        step_gradients(
            &s.model,
            input,
            Some((&s.reg, &[0, 1][..])),
            l,
            &s.opt,
            &mut StepWorkspace::new(),
        )
        .theta
    };
    let (off, adam, sgd) = (g(Lookahead::Off), g(Lookahead::Adam), g(Lookahead::Sgd));
    assert_ne!(off, adam);
    assert_ne!(off, sgd);
    assert_ne!(adam, sgd);
}
