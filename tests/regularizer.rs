//! The output regularizer (β/|S|) Σ_{t∈S} ‖h(e_t, θ*) − h(e_t, θ)‖² against the formula worked
//! by hand on hypernetworks without hidden layers (h(e) = W·e + b, or per chunk
//! W·[e; c_i] + b), for precomputed and online targets and subsets of the previous tasks; its
//! f64 gradient with Δθ held fixed; and the gradient of a whole step against its two parts
//! computed separately. Every test runs the direct and the factored form (and the automatic
//! choice); the factored op has its own literal test, and a property test and a sweep hold the
//! two forms equal in f64 over shapes, chunk counts, partial last chunks and task subsets.

mod common;

use hypertape::cl::hnet::{
    last_width, step_gradients, task_loss, HnetModel, Lookahead, OutputRegularizer, RegTargets,
    RegularizerForm, StepInput, StepWorkspace,
};
use hypertape::engine::tape::DistanceTarget;
use hypertape::gradcheck::{gradcheck, GradCheckOptions};
use hypertape::nn::{Activation, Hnet, HnetConfig, Mlp};
use hypertape::optim::{sgd_delta, Adam};
use hypertape::rng::Rng;
use hypertape::{Tape, Tensor};

const SEED: u64 = common::HNET_SEED;
use common::{hnet_model as model, moved};

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

const FORMS: [RegularizerForm; 3] = [
    RegularizerForm::Direct,
    RegularizerForm::Factored,
    RegularizerForm::Auto,
];

#[test]
fn regularizer_equals_the_formula_by_hand() {
    for chunk in [None, Some(5)] {
        let mut m = model(chunk, vec![], 3);
        if chunk.is_some() {
            assert!(m.hnet.num_chunks() > 1);
        }
        let theta_star = m.theta.clone();
        let theta = moved(&theta_star, 1);
        for (online, form) in [false, true]
            .into_iter()
            .flat_map(|o| FORMS.map(|f| (o, f)))
        {
            let beta = 0.37;
            let reg = OutputRegularizer::with_form(&m, 3, beta, online, form);
            assert_eq!(reg.num_prev(), 3);
            assert_eq!(reg.beta(), beta);
            assert_eq!(reg.form(), form);
            match (reg.targets(), online) {
                (RegTargets::Precomputed(ts), false) => {
                    assert_ne!(form, RegularizerForm::Factored);
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
                (
                    RegTargets::Factors {
                        theta_star: ts,
                        activations,
                    },
                    false,
                ) => {
                    assert_ne!(form, RegularizerForm::Direct);
                    assert_eq!(ts, &theta_star);
                    let per_task = m.hnet.num_chunks() * last_width(&m.hnet);
                    assert_eq!(activations.len(), 3 * per_task);
                    // θ*, a* and G* (the output layer's W*ᵀW*, rows before and after the
                    // cut of the last chunk apart).
                    let width = last_width(&m.hnet);
                    assert_eq!(
                        reg.stored_values(),
                        ts.len() + 3 * per_task + 2 * width * width
                    );
                }
                _ => panic!("online = {online} gave the other kind of targets"),
            }
            for subset in SUBSETS {
                let got = reg_loss(&reg, &m.hnet, &theta, subset);
                let want = expected_loss(&m, &theta_star, &theta, subset, beta);
                assert!(want > 1e-3, "the test needs θ ≠ θ*");
                assert!(
                    (got - want).abs() <= 1e-12 * want.max(1.0),
                    "chunk {chunk:?}, online {online}, {form:?}, subset {subset:?}: {got} vs {want}"
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
        for (online, form) in [false, true]
            .into_iter()
            .flat_map(|o| FORMS.map(|f| (o, f)))
        {
            let reg = OutputRegularizer::with_form(&m, 3, 1.5, online, form);
            for subset in SUBSETS {
                let got = reg_loss(&reg, &m.hnet, &m.theta, subset);
                assert_eq!(
                    got, 0.0,
                    "chunk {chunk:?}, online {online}, {form:?}, subset {subset:?}"
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
        for (online, form) in [false, true]
            .into_iter()
            .flat_map(|o| FORMS.map(|f| (o, f)))
        {
            // OutputRegularizer::loss ties the regularizer's borrow to the tape's lifetime, and
            // gradcheck's closure is generic over that lifetime: the regularizer must be 'static.
            let reg: &'static OutputRegularizer<f64> = Box::leak(Box::new(
                OutputRegularizer::with_form(&m, 3, 0.8, online, form),
            ));
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
                    "chunk {chunk:?}, online {online}, {form:?}, subset {subset:?}:\n{report}"
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
    step_setup_in(RegularizerForm::Direct, false)
}

fn step_setup_in(form: RegularizerForm, online: bool) -> Step {
    let mut m = model(Some(7), vec![4, 3], 2);
    let reg = OutputRegularizer::with_form(&m, 2, 0.6, online, form);
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
    // The direct form on a tape at a stored θ + Δθ; the factored form (stored a* and online)
    // in the fused pass that makes the output layer's rows of θ + Δθ as it reads them.
    for (form, online) in [
        (RegularizerForm::Direct, false),
        (RegularizerForm::Factored, false),
        (RegularizerForm::Factored, true),
    ] {
        step_gradients_case(&step_setup_in(form, online));
    }
}

fn step_gradients_case(s: &Step) {
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
            assert_eq!(g.task_loss, task_value);
            assert_eq!(g.reg_loss, reg_value);
            assert!(reg_value > 0.0);
            assert_eq!(g.task_emb, ge);
            // The regularizer's shares are added onto the task gradient one by one
            // (`Tape::backward_onto`), not summed apart first: equal up to that rounding.
            for i in 0..gt.len() {
                let want = gt[i] + gr[i];
                assert!(
                    (g.theta[i] - want).abs() <= 1e-14 * (gt[i].abs() + gr[i].abs()),
                    "{lookahead:?} {subset:?} element {i}: {} vs {want}",
                    g.theta[i]
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

// ---------------------------------------------------------------------------------------------
// The factored form

#[test]
fn factored_op_by_hand() {
    // x = [[1], [2]], W = [[3], [1]], b = [0.5, −1]; x_t = [[1.5], [1]], W_t = [[2], [1]],
    // b_t = [0, 0]; one group of two rows, len 3: row 1 is compared on its first output only.
    // y = [[3.5, 0], [6.5, 1]], y_t = [[3, 1.5], [2, 1]], r = [[0.5, −1.5], [4.5, ·]]:
    // value 0.25 + 2.25 + 20.25 = 22.75. With output gradient 0.5:
    // ∂x_i = 2·0.5·Σ_j r_ij W_j: x_0 = 0.5·3 − 1.5·1 = 0, x_1 = 4.5·3 = 13.5;
    // ∂W_j = Σ_i r_ij x_i: W_0 = 0.5·1 + 4.5·2 = 9.5, W_1 = −1.5·1 = −1.5;
    // ∂b_j = Σ_i r_ij: 5, −1.5;
    // ∂x_t,i = −Σ_j r_ij W_t,j: −(0.5·2 − 1.5·1) = 0.5, −(4.5·2) = −9;
    // ∂W_t,j = −Σ_i r_ij x_t,i: −(0.5·1.5 + 4.5·1) = −5.25, −(−1.5·1.5) = 2.25;
    // ∂b_t = −∂b.
    let t = |shape: &[usize], v: &[f64]| Tensor::from_vec(shape, v.to_vec());
    let inputs = [
        t(&[2, 1], &[1.0, 2.0]),
        t(&[2, 1], &[3.0, 1.0]),
        t(&[2], &[0.5, -1.0]),
        t(&[2, 1], &[1.5, 1.0]),
        t(&[2, 1], &[2.0, 1.0]),
        t(&[2], &[0.0, 0.0]),
    ];
    common::check_by_hand(
        &inputs,
        |tape, v| {
            let target = DistanceTarget::Dense {
                x: v[3],
                w: v[4],
                b: Some(v[5]),
                len: 3,
            };
            tape.linear_squared_distance_factored(v[0], v[1], Some(v[2]), target, 1)
        },
        &[0.5],
        &[22.75],
        &[
            &[0.0, 13.5],
            &[9.5, -1.5],
            &[5.0, -1.5],
            &[0.5, -9.0],
            &[-5.25, 2.25],
            &[-5.0, 1.5],
        ],
    );
}

/// The value and ∂/∂θ of `reg` over `subset` at θ = `theta`.
fn reg_value_and_grad(
    reg: &OutputRegularizer<f64>,
    hnet: &Hnet,
    theta: &[f64],
    subset: &[usize],
) -> (f64, Vec<f64>) {
    let mut tape = Tape::new();
    let th = tape.leaf_ref(&[theta.len()], theta);
    let loss = reg.loss(&mut tape, hnet, th, subset);
    let value = tape.item(loss);
    let grad = tape.backward(loss).get_or_zeros(th, theta.len());
    (value, grad)
}

/// Largest differences of the factored form from the direct one: (value abs, value rel,
/// gradient abs, gradient abs / ‖direct gradient‖∞).
#[derive(Clone, Copy, Debug, Default)]
struct Differences {
    value_abs: f64,
    value_rel: f64,
    grad_abs: f64,
    grad_rel: f64,
}

impl Differences {
    fn max(self, o: Self) -> Self {
        Self {
            value_abs: self.value_abs.max(o.value_abs),
            value_rel: self.value_rel.max(o.value_rel),
            grad_abs: self.grad_abs.max(o.grad_abs),
            grad_rel: self.grad_rel.max(o.grad_rel),
        }
    }
}

/// Both forms (precomputed or online targets) over `subset` at θ* moved by N(0, `step`²):
/// their differences.
fn compare_forms(
    m: &HnetModel<f64>,
    prev: usize,
    online: bool,
    subset: &[usize],
    step: f64,
    seed: u64,
) -> Differences {
    let direct = OutputRegularizer::with_form(m, prev, 0.7, online, RegularizerForm::Direct);
    let factored = OutputRegularizer::with_form(m, prev, 0.7, online, RegularizerForm::Factored);
    assert_eq!(
        factored.form_for(&m.hnet, subset.len()),
        RegularizerForm::Factored
    );
    let mut rng = Rng::new(seed);
    let theta: Vec<f64> = m.theta.iter().map(|v| v + step * rng.normal()).collect();
    let (vd, gd) = reg_value_and_grad(&direct, &m.hnet, &theta, subset);
    let (vf, gf) = reg_value_and_grad(&factored, &m.hnet, &theta, subset);
    assert!(vd > 0.0);
    let scale = gd.iter().fold(0.0f64, |a, g| a.max(g.abs()));
    let grad_abs = gd
        .iter()
        .zip(&gf)
        .fold(0.0f64, |a, (d, f)| a.max((d - f).abs()));
    Differences {
        value_abs: (vd - vf).abs(),
        value_rel: (vd - vf).abs() / vd.abs(),
        grad_abs,
        grad_rel: grad_abs / scale.max(f64::MIN_POSITIVE),
    }
}

/// A random small model: target MLP and hypernetwork shapes, activation, chunking (often with
/// a partial last chunk) all drawn from `rng`, with `tasks` task embeddings.
fn random_model(rng: &mut Rng, tasks: usize) -> HnetModel<f64> {
    let heads = 1 + rng.below(3);
    let target = Mlp::new(
        1 + rng.below(5),
        &[1 + rng.below(4)],
        1 + rng.below(3),
        heads,
    );
    let hidden: Vec<usize> = (0..rng.below(3)).map(|_| 1 + rng.below(6)).collect();
    let activation = [
        Activation::Elu,
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
    ][rng.below(4)];
    let chunk_size = match rng.below(4) {
        0 => None,
        _ => Some(1 + rng.below(target.num_weights())),
    };
    let config = HnetConfig {
        task_emb_dim: 1 + rng.below(4),
        hidden,
        activation,
        chunk_size,
        chunk_emb_dim: 1 + rng.below(3),
    };
    let hnet = Hnet::new(&config, target.num_weights());
    let mut m = HnetModel::new(target, hnet, rng.next_u64());
    for _ in 0..tasks {
        m.add_task(rng.next_u64());
    }
    // Non-zero biases.
    m.theta.iter_mut().for_each(|v| *v += 0.3 * rng.normal());
    m
}

/// A random non-empty subset of 0..n in random order.
fn random_subset(rng: &mut Rng, n: usize) -> Vec<usize> {
    let k = 1 + rng.below(n);
    rng.choose_distinct(n, k)
}

const EXACT: f64 = 1e-10;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// In f64 the factored form equals the direct one in value and gradient, for any shapes,
    /// chunk counts (partial last chunks included), task subsets and both kinds of targets.
    #[test]
    fn factored_equals_direct_in_f64(seed in 0u64..1_000_000, tasks in 1usize..6, online: bool) {
        let mut rng = Rng::new(seed);
        let m = random_model(&mut rng, tasks);
        let subset = random_subset(&mut rng, tasks);
        let d = compare_forms(&m, tasks, online, &subset, 0.1, seed);
        proptest::prop_assert!(
            d.value_rel <= EXACT && d.grad_rel <= EXACT,
            "{:?}, subset {:?}: {:?}", m.hnet.config(), subset, d
        );
    }
}

#[test]
fn factored_equals_direct_over_many_shapes() {
    let mut worst = Differences::default();
    let mut partial = 0;
    for seed in 0..300u64 {
        let mut rng = Rng::derived(seed, "forms", 0);
        let tasks = 1 + rng.below(6);
        let m = random_model(&mut rng, tasks);
        partial += usize::from(m.hnet.row_stride() > m.hnet.num_weights());
        let subset = random_subset(&mut rng, tasks);
        let online = rng.below(2) == 1;
        let d = compare_forms(&m, tasks, online, &subset, 0.1, seed);
        assert!(
            d.value_rel <= EXACT && d.grad_rel <= EXACT,
            "seed {seed}: {d:?}"
        );
        worst = worst.max(d);
    }
    assert!(partial > 100, "{partial} models with a partial last chunk");
    println!("factored vs direct, f64, 300 random models: {worst:?}");
}

#[test]
fn factored_equals_direct_at_the_paper_sizes_in_f64() {
    use hypertape::run::{Benchmark, ExperimentConfig};
    let c100 = ExperimentConfig::paper_defaults_for(Benchmark::PermutedMnist, 100);
    for (name, c) in [
        (
            "split-mnist",
            ExperimentConfig::paper_defaults(Benchmark::SplitMnist),
        ),
        (
            "permuted-mnist-10",
            ExperimentConfig::paper_defaults(Benchmark::PermutedMnist),
        ),
        ("permuted-mnist-100", c100),
    ] {
        let target = c.target();
        let hnet = Hnet::new(&c.hnet, target.num_weights());
        let mut m = HnetModel::<f64>::new(target, hnet, 3);
        for _ in 0..4 {
            m.add_task(3);
        }
        assert!(
            m.hnet.row_stride() > m.hnet.num_weights(),
            "a partial chunk"
        );
        // A look-ahead-sized step (1e-3) and a larger one.
        for (step, subset) in [(1e-3, &[0usize, 1, 2, 3][..]), (1e-2, &[3, 1])] {
            let d = compare_forms(&m, 4, false, subset, step, 9);
            println!("{name}, step {step}, subset {subset:?}: {d:?}");
            assert!(d.value_rel <= EXACT && d.grad_rel <= EXACT, "{name}: {d:?}");
        }
        let d = compare_forms(&m, 4, true, &[2, 0], 1e-3, 10);
        println!("{name}, online targets: {d:?}");
        assert!(d.value_rel <= EXACT && d.grad_rel <= EXACT, "{name}: {d:?}");
    }
}

#[test]
fn auto_form_follows_the_cost_model() {
    use hypertape::cl::hnet::RegularizerCost;
    use hypertape::run::{Benchmark, ExperimentConfig};
    let c = ExperimentConfig::paper_defaults(Benchmark::PermutedMnist);
    let target = c.target();
    let hnet = Hnet::new(&c.hnet, target.num_weights());
    // PermutedMNIST-10: n = 78 000, d = 25, 28 chunks. Stored targets: direct 3·28·n·d =
    // 164 M per task against (d + 1)(4d + 2)·n = 207 M once: direct for one task, factored
    // from two.
    let one = RegularizerCost::of(&hnet, 1, true);
    assert_eq!(one.direct, 3.0 * 28.0 * 78_000.0 * 25.0);
    assert_eq!(one.factored, 26.0 * 102.0 * 78_000.0 + 6.0 * 28.0 * 625.0);
    assert!(!one.factored_pays_off());
    assert!(RegularizerCost::of(&hnet, 2, true).factored_pays_off());
    assert!(RegularizerCost::of(&hnet, 99, false).factored_pays_off());
    // The automatic form stores targets for one previous task, factors for more.
    let mut m = HnetModel::<f32>::new(target, hnet, 1);
    for _ in 0..3 {
        m.add_task(1);
    }
    let one = OutputRegularizer::with_form(&m, 1, 0.1, false, RegularizerForm::Auto);
    assert!(matches!(one.targets(), RegTargets::Precomputed(_)));
    assert_eq!(one.form_for(&m.hnet, 1), RegularizerForm::Direct);
    let three = OutputRegularizer::with_form(&m, 3, 0.1, false, RegularizerForm::Auto);
    assert!(matches!(three.targets(), RegTargets::Factors { .. }));
    assert_eq!(three.form_for(&m.hnet, 3), RegularizerForm::Factored);
    // Over one task of the three, the direct form would make its targets from θ*
    // (4·28·n·d = 218 M) and the factored one costs 207 M.
    assert_eq!(three.form_for(&m.hnet, 1), RegularizerForm::Factored);
    // Memory: θ*, 28·25 activations per task and G* (2 · 25²), not 2.1 M targets per task.
    assert_eq!(
        three.stored_values(),
        m.theta.len() + 3 * 28 * 25 + 2 * 25 * 25,
        "factors"
    );
    let online = OutputRegularizer::with_form(&m, 3, 0.1, true, RegularizerForm::Auto);
    assert_eq!(online.stored_values(), m.theta.len() + 2 * 25 * 25);
    assert_eq!(online.form_for(&m.hnet, 3), RegularizerForm::Factored);
}

#[test]
fn permuted_mnist_from_100_tasks_takes_the_long_sequence_configuration() {
    use hypertape::run::{Benchmark, ExperimentConfig, LONG_SEQUENCE_TASKS};
    let ten = ExperimentConfig::paper_defaults(Benchmark::PermutedMnist);
    assert_eq!(LONG_SEQUENCE_TASKS, 100);
    for tasks in [10, 99] {
        let c = ExperimentConfig::paper_defaults_for(Benchmark::PermutedMnist, tasks);
        assert_eq!(
            (c.num_tasks, &c.hnet, c.train.beta),
            (tasks, &ten.hnet, 0.1)
        );
    }
    for tasks in [100, 250] {
        let c = ExperimentConfig::paper_defaults_for(Benchmark::PermutedMnist, tasks);
        assert_eq!(c.num_tasks, tasks);
        assert_eq!(c.hnet.hidden, vec![200, 250, 350]);
        assert_eq!(c.hnet.activation, Activation::Relu);
        assert_eq!(c.hnet.chunk_size, Some(7500));
        assert_eq!((c.hnet.task_emb_dim, c.hnet.chunk_emb_dim), (128, 12));
        assert_eq!(c.train.beta, 0.01);
        // Learning rate, batch, steps and the target network as for PermutedMNIST-10.
        assert_eq!(c.train.lr, ten.train.lr);
        assert_eq!(c.train.batch_size, ten.train.batch_size);
        assert_eq!(c.train.iterations, ten.train.iterations);
        assert_eq!(c.target_hidden, ten.target_hidden);
        assert_eq!(c.train.regularizer, RegularizerForm::Auto);
    }
    // SplitMNIST has no long-sequence configuration.
    let s = ExperimentConfig::paper_defaults_for(Benchmark::SplitMnist, 5);
    assert_eq!(s, ExperimentConfig::paper_defaults(Benchmark::SplitMnist));
}
