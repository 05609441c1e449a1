//! The matrix-product FLOPs of one training step, counted from the shapes.

use super::{bench_config, BenchSetup, BATCH};
use crate::cl::hnet::{RegularizerCost, RegularizerForm};
use crate::nn::{Hnet, Mlp};

/// 2·m·n·k, the FLOPs of an m×k by k×n product.
pub(super) fn product(m: usize, n: usize, k: usize) -> f64 {
    2.0 * m as f64 * n as f64 * k as f64
}

/// The [out, in] shapes of the hypernetwork's weight matrices, input layer first.
fn hnet_weight_shapes(hnet: &Hnet) -> Vec<(usize, usize)> {
    hnet.layout()
        .entries()
        .iter()
        .filter(|e| e.name.ends_with(".weight"))
        .map(|e| (e.shape[0], e.shape[1]))
        .collect()
}

/// Matmul FLOPs of a hypernetwork pass over `tasks` embeddings: forward, and with `backward`
/// the backward too, where the gradient with respect to the input of the first layer is
/// computed only if `input_needs_grad`.
fn hnet_pass_flops(hnet: &Hnet, tasks: usize, backward: bool, input_needs_grad: bool) -> f64 {
    let rows = tasks * hnet.num_chunks();
    hnet_weight_shapes(hnet)
        .iter()
        .enumerate()
        .map(|(l, &(out, inp))| {
            let p = product(rows, out, inp);
            let backward = match (backward, l == 0 && !input_needs_grad) {
                (false, _) => 0.0,
                (true, true) => 1.0,
                (true, false) => 2.0,
            };
            p * (1.0 + backward)
        })
        .sum()
}

/// Matmul FLOPs of one training step of `target` and `hnet` with a batch of `batch` rows and
/// `previous_tasks` regularized tasks (2·m·n·k per product; every product of the step goes
/// through `Tape::linear`, y = x·Wᵀ + b with x [m×in] and W [out×in], whose backward does
/// dx = g·W and dW = gᵀ·x, each 2·m·in·out like the forward, and skips the one whose input
/// needs no gradient):
///
/// 1. the task loss, on the current task only:
///    - hypernetwork on 1 embedding, `num_chunks` rows: per layer, forward + dW + dx. The
///      first layer's input [e(T), c(i)] needs a gradient (e(T) is a leaf), so every layer
///      counts 3 products;
///    - target net on the batch: the input layer forward + dW only (x is a constant, no dx);
///      every other hidden layer forward + dW + dx; the output layer likewise but with the
///      current head's `head_dim` rows of W only (the other heads are neither read nor
///      differentiated);
/// 2. the look-ahead and the Adam steps: no products;
/// 3. the regularizer (only with previous tasks): the hypernetwork on all previous
///    embeddings as one batch, `previous_tasks · num_chunks` rows, forward + dW + dx per layer,
///    except that the first layer's dx is skipped when its input is constant (embeddings of
///    previous tasks are constants; with chunk embeddings, which belong to θ, it is not).
///    The distances to the targets are not products. In the factored `form` the output layer
///    is replaced by the products of [`RegularizerCost`] (its multiply-adds, times 2);
/// 4. with `online_targets`, the targets themselves: the hypernetwork at θ* on all previous
///    embeddings, forward only (in the factored form its hidden layers only).
pub fn step_matmul_flops_for(
    target: &Mlp,
    hnet: &Hnet,
    batch: usize,
    previous_tasks: usize,
    online_targets: bool,
    form: RegularizerForm,
) -> f64 {
    let mut flops = hnet_pass_flops(hnet, 1, true, true);
    let mut fan_in = target.input_dim();
    for (l, &h) in target.hidden().iter().enumerate() {
        let p = product(batch, h, fan_in);
        flops += if l == 0 { 2.0 * p } else { 3.0 * p };
        fan_in = h;
    }
    let head = product(batch, target.head_dim(), fan_in);
    flops += if target.hidden().is_empty() {
        2.0 * head
    } else {
        3.0 * head
    };
    if previous_tasks > 0 {
        let chunk_embs = hnet
            .layout()
            .entries()
            .iter()
            .any(|e| e.name == "chunk_embeddings");
        let pass = hnet_pass_flops(hnet, previous_tasks, true, chunk_embs);
        let online = hnet_pass_flops(hnet, previous_tasks, false, false);
        if form == RegularizerForm::Factored {
            // The output layer's products (two when it is the only layer and reads constant
            // embeddings) are replaced by the factored form's.
            let (out, inp) = *hnet_weight_shapes(hnet).last().expect("an output layer");
            let rows = previous_tasks * hnet.num_chunks();
            let output = product(rows, out, inp);
            let first_only = hnet_weight_shapes(hnet).len() == 1 && !chunk_embs;
            let direct_output = output * if first_only { 2.0 } else { 3.0 };
            let factored = 2.0 * RegularizerCost::of(hnet, previous_tasks, false).factored;
            flops += pass - direct_output + factored;
            if online_targets {
                flops += online - output;
            }
        } else {
            flops += pass;
            if online_targets {
                flops += online;
            }
        }
    }
    flops
}

/// Matmul FLOPs of one step of the fixture [`step_fixture`](super::step_fixture)`(setup, previous_tasks, _)` (see
/// [`step_matmul_flops_for`] for what is counted), in the form its regularizer takes.
/// PermutedMNIST-10 at 0 previous tasks: 0.33 GFLOP in the hypernetwork and 1.30 in the
/// target net; in the direct form each previous task adds 0.33 (4.58 GFLOP at 9), with online
/// targets 0.44; in the factored form the regularizer costs 0.41 GFLOP plus 2.4 MFLOP per task.
pub fn step_matmul_flops(setup: BenchSetup, previous_tasks: usize) -> f64 {
    let config = bench_config(setup, previous_tasks);
    let target = config.target();
    let hnet = Hnet::new(&config.hnet, target.num_weights());
    let form = resolved_form(setup, &hnet, previous_tasks);
    step_matmul_flops_for(
        &target,
        &hnet,
        BATCH,
        previous_tasks,
        setup.online_targets,
        form,
    )
}

/// The form the step's regularizer takes over `previous_tasks` tasks (as
/// [`crate::cl::hnet::OutputRegularizer::form_for`] decides for the regularizer the fixture
/// builds).
pub fn resolved_form(setup: BenchSetup, hnet: &Hnet, previous_tasks: usize) -> RegularizerForm {
    match setup.regularizer {
        RegularizerForm::Auto => {
            // Precomputed targets are stored (direct) when that is cheaper over all tasks.
            let stored = !setup.online_targets
                && !RegularizerCost::of(hnet, previous_tasks, true).factored_pays_off();
            if stored || !RegularizerCost::of(hnet, previous_tasks, false).factored_pays_off() {
                RegularizerForm::Direct
            } else {
                RegularizerForm::Factored
            }
        }
        form => form,
    }
}
