//! The training step's fused factored regularizer (`OutputRegularizer::loss_made`: the output
//! layer's rows of θ + Δθ made inside the one pass over them, their gradient added onto the
//! task's there) against the tape at a stored θ + Δθ with `backward_onto`: the same bits, in
//! f32 and f64, over hypernetwork shapes, stored and online targets, every look-ahead and
//! subsets of the previous tasks.

mod common;

use common::{hnet_model as model, moved, HNET_SEED as SEED};
use hypertape::cl::hnet::{
    step_gradients, HnetModel, Lookahead, OutputRegularizer, RegularizerForm, StepInput,
    StepWorkspace,
};
use hypertape::optim::{sgd_delta, Adam};
use hypertape::rng::Rng;
use hypertape::Tape;

/// `m` in precision F.
fn in_precision<F: hypertape::Float>(m: &HnetModel<f64>) -> HnetModel<F> {
    let f = |v: &[f64]| v.iter().map(|&x| F::from_f64(x)).collect::<Vec<F>>();
    HnetModel {
        target: m.target.clone(),
        hnet: m.hnet.clone(),
        theta: f(&m.theta),
        task_embs: m.task_embs.iter().map(|e| f(e)).collect(),
    }
}

/// The step's gradient and regularizer from the fused pass against the tape at a stored
/// θ + Δθ with the regularizer's gradient added onto the task's (`backward_onto`): the same
/// bits.
fn fused_case<F: hypertape::Float>(
    chunk_size: Option<usize>,
    hidden: Vec<usize>,
    online: bool,
    lookahead: Lookahead,
    subset: &[usize],
) {
    let what = format!("{chunk_size:?} {hidden:?} online {online} {lookahead:?} {subset:?}");
    let base = model(chunk_size, hidden, 2);
    let mut m: HnetModel<F> = in_precision(&base);
    let reg = OutputRegularizer::with_form(&m, 2, 0.6, online, RegularizerForm::Factored);
    let moved_theta = moved(&base.theta, 5);
    m.theta = moved_theta.iter().map(|&v| F::from_f64(v)).collect();
    m.add_task(SEED);
    let mut rng = Rng::new(6);
    let mut opt = Adam::new(m.theta.len(), 0.02);
    let mut scratch = m.theta.clone();
    for _ in 0..3 {
        let g: Vec<F> = scratch.iter().map(|_| F::from_f64(rng.normal())).collect();
        opt.step(&mut scratch, &g);
    }
    let x: Vec<F> = (0..5 * 3).map(|_| F::from_f64(rng.uniform())).collect();
    let labels: Vec<usize> = (0..5).map(|_| rng.below(2)).collect();
    let input = StepInput {
        x: &x,
        labels: &labels,
        task: 2,
        head: 2,
    };
    assert!(reg.fuses(&m.hnet, subset.len()), "{what}");
    let gt = step_gradients(&m, input, None, lookahead, &opt, &mut StepWorkspace::new()).theta;
    let mut shifted = m.theta.clone();
    match lookahead {
        Lookahead::Off => {}
        Lookahead::Adam => opt.lookahead_point(&m.theta, &gt, &mut shifted),
        Lookahead::Sgd => {
            sgd_delta(opt.lr, &gt, &mut shifted);
            shifted.iter_mut().zip(&m.theta).for_each(|(d, &t)| *d += t);
        }
    }
    let (value, want) = {
        let mut tape = Tape::new();
        let th = tape.leaf_ref(&[shifted.len()], &shifted);
        let loss = reg.loss(&mut tape, &m.hnet, th, subset);
        let mut grads = tape.backward_onto(loss, th, gt.clone());
        (tape.item(loss).to_f64(), grads.take(th).unwrap())
    };
    let got = step_gradients(
        &m,
        input,
        Some((&reg, subset)),
        lookahead,
        &opt,
        &mut StepWorkspace::new(),
    );
    let bits = |v: &[F]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
    assert_eq!(got.reg_loss.to_bits(), value.to_bits(), "{what}: value");
    assert_eq!(bits(&got.theta), bits(&want), "{what}: ∂/∂θ");
}

#[test]
fn the_fused_factored_step_gives_the_bits_of_the_tape_at_a_stored_lookahead() {
    // Chunked with hidden layers and a partial last chunk (7 does not divide the target's
    // weights), without hidden layers, not chunked; stored and online targets; every
    // look-ahead; both previous tasks, one, and both out of order.
    for (chunk, hidden) in [
        (Some(7), vec![4, 3]),
        (Some(5), vec![]),
        (None, vec![4]),
        (None, vec![]),
    ] {
        for online in [false, true] {
            for lookahead in [Lookahead::Off, Lookahead::Adam, Lookahead::Sgd] {
                for subset in [&[0usize, 1][..], &[1], &[1, 0]] {
                    fused_case::<f32>(chunk, hidden.clone(), online, lookahead, subset);
                    fused_case::<f64>(chunk, hidden.clone(), online, lookahead, subset);
                }
            }
        }
    }
}
