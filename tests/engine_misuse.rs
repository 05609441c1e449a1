//! The engine refuses misuse: every failing input of a fault kind, with the behaviour that is
//! right. The convention (see the tape's module documentation): ops and accessors panic on
//! misuse, at the caller's line and naming the op; fallible constructors return `None`/`Err`;
//! numbers are never refused (NaN propagates, a mean of nothing is NaN).
//!
//! - shapes are checked exactly, not by element count (the only broadcast is a row);
//! - a `Var` carries its tape's id, checked on every use;
//! - sizes computed from shapes never overflow: no safe function reaches undefined behaviour;
//! - log-softmax and the cross-entropies subtract the max first, exact at any logit;
//! - NaN propagates through relu and the max-based ops; empty reductions are defined.

use hypertape::engine::kernels;
use hypertape::engine::tape::DistanceTarget;
use hypertape::engine::tensor::shape_len;
use hypertape::gradcheck::{gradcheck, op_cases, GradCheckOptions};
use hypertape::{Tape, Tensor, Var};
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe, Location};
use std::sync::Once;

// ---------------------------------------------------------------------------------------------
// Catching a panic with its message and location

thread_local! {
    /// Set while [`panic_of`] expects a panic on this thread: its hook then records the
    /// location instead of printing.
    static EXPECTING: Cell<bool> = const { Cell::new(false) };
    static LOCATION: RefCell<Option<(String, u32)>> = const { RefCell::new(None) };
}

/// A caught panic.
struct Caught {
    message: String,
    file: String,
    line: u32,
}

/// Runs `f`, which must panic, and returns its panic. The hook is per thread in effect (it
/// records into thread-locals), so tests running in parallel do not see each other's panics.
fn panic_of<R>(f: impl FnOnce() -> R) -> Caught {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if EXPECTING.with(Cell::get) {
                let at = info.location().map(|l| (l.file().to_string(), l.line()));
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                default(info);
            }
        }));
    });
    EXPECTING.with(|e| e.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    EXPECTING.with(|e| e.set(false));
    let Err(payload) = result else {
        panic!("expected a panic, the call returned normally");
    };
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let (file, line) = LOCATION
        .with(|l| l.borrow_mut().take())
        .expect("the panic's location");
    Caught {
        message,
        file,
        line,
    }
}

/// Asserts that `f` panics with a message containing `expected`, reported at the caller's
/// line in this file (the closure starts on the line of this call or a few lines below).
#[track_caller]
fn assert_misuse<R>(f: impl FnOnce() -> R, expected: &str) -> String {
    let caller = Location::caller();
    let p = panic_of(f);
    assert!(
        p.message.contains(expected),
        "the panic {:?} does not say {expected:?}",
        p.message
    );
    assert!(
        p.file == caller.file() && (caller.line()..caller.line() + 12).contains(&p.line),
        "the panic {:?} is reported at {}:{}, not at the caller's line near {}:{}",
        p.message,
        p.file,
        p.line,
        caller.file(),
        caller.line()
    );
    p.message
}

fn ramp(shape: &[usize]) -> Tensor<f64> {
    Tensor::from_fn(shape, |i| i as f64 * 0.5 - 1.0)
}

const BIG: usize = 1 << 32;

// ---------------------------------------------------------------------------------------------
// 14. Shapes are checked exactly, not by element count

#[test]
fn elementwise_ops_refuse_transposed_shapes() {
    // Before: each combined the flat buffers of [2, 3] and [3, 2] (add gave
    // [0, 2, 4, 6, 8, 10] under the shape [2, 3]), and gradcheck passed on it.
    let mut t = Tape::new();
    let a = t.leaf(ramp(&[2, 3]));
    let b = t.leaf(ramp(&[3, 2]));
    assert_misuse(|| t.add(a, b), "add: shapes [2, 3] and [3, 2] differ");
    assert_misuse(|| t.sub(a, b), "sub: shapes [2, 3] and [3, 2] differ");
    assert_misuse(|| t.mul(a, b), "mul: shapes [2, 3] and [3, 2] differ");
    assert_misuse(|| t.div(a, b), "div: shapes [2, 3] and [3, 2] differ");
    // Equal counts under ranks that differ are refused too: [6] is not [2, 3].
    let flat = t.leaf(ramp(&[6]));
    assert_misuse(|| t.add(a, flat), "add: shapes [2, 3] and [6] differ");
    let row = t.leaf(ramp(&[1, 3]));
    let vector = t.leaf(ramp(&[3]));
    assert_misuse(|| t.mul(row, vector), "mul: shapes [1, 3] and [3] differ");
    // Equal shapes still work.
    let c = t.add(a, a);
    assert_eq!(t.shape(c), &[2, 3]);
}

#[test]
fn squared_distance_refuses_a_target_of_another_shape() {
    // Before: Σ (a − b)² of [2, 3] against [6, 1] holding the same numbers was 0.
    let mut t = Tape::new();
    let a = t.leaf(ramp(&[2, 3]));
    let b = t.constant(ramp(&[6, 1]));
    assert_misuse(
        || t.squared_distance(a, b),
        "squared_distance: shapes [2, 3] and [6, 1] differ",
    );
    let b = t.constant(ramp(&[3, 2]));
    assert_misuse(|| t.squared_distance(a, b), "squared_distance");
}

#[test]
fn bce_with_logits_refuses_targets_of_another_shape() {
    let mut t = Tape::new();
    let x = t.leaf(ramp(&[2, 3]));
    let y = t.constant(Tensor::filled(&[3, 2], 0.5));
    assert_misuse(
        || t.bce_with_logits(x, y),
        "bce_with_logits: shapes [2, 3] and [3, 2] differ",
    );
}

#[test]
fn the_one_broadcast_is_a_row_added_to_every_row() {
    let mut t = Tape::new();
    let x = t.leaf(ramp(&[2, 3]));
    let w = t.leaf(ramp(&[3, 3]));
    // A row is [n] or [1, n]; a column [n, 1] of n elements is not (before: accepted).
    let column = t.leaf(ramp(&[3, 1]));
    assert_misuse(
        || t.add_row(x, column),
        "add_row: row of shape [3, 1], expected [3] or [1, 3]",
    );
    assert_misuse(
        || t.linear(x, w, Some(column)),
        "linear: bias of shape [3, 1], expected [3] or [1, 3]",
    );
    let short = t.leaf(ramp(&[2]));
    assert_misuse(|| t.add_row(x, short), "add_row: row of shape [2]");
    // Both forms of a row give the same result.
    let r1 = t.leaf(ramp(&[3]));
    let r2 = t.leaf(ramp(&[1, 3]));
    let (y1, y2) = (t.add_row(x, r1), t.add_row(x, r2));
    assert_eq!(t.value(y1), t.value(y2));
    let (z1, z2) = (t.linear(x, w, Some(r1)), t.linear(x, w, Some(r2)));
    assert_eq!(t.value(z1), t.value(z2));
}

#[test]
fn matrix_ops_refuse_rank_3() {
    // Before: leading dimensions were folded into rows without a word: [2, 2, 3]·[3, 2] was a
    // [4, 2] product.
    let mut t = Tape::new();
    let cube = t.leaf(ramp(&[2, 2, 3]));
    let m = t.leaf(ramp(&[3, 2]));
    let w = t.leaf(ramp(&[2, 3]));
    let e = "expected a matrix (rank 1 or 2), got shape [2, 2, 3]";
    assert_misuse(|| t.matmul(cube, m), &format!("matmul: {e}"));
    assert_misuse(|| t.matmul_t(m, cube, true, true), &format!("matmul: {e}"));
    assert_misuse(|| t.linear(cube, w, None), &format!("linear: {e}"));
    assert_misuse(|| t.linear(m, cube, None), &format!("linear: {e}"));
    assert_misuse(|| t.add_row(cube, m), &format!("add_row: {e}"));
    assert_misuse(|| t.concat_rows(&[w, cube]), &format!("concat_rows: {e}"));
    assert_misuse(|| t.concat_cols(&[cube]), &format!("concat_cols: {e}"));
    assert_misuse(|| t.gather_rows(cube, &[0]), &format!("gather_rows: {e}"));
    assert_misuse(|| t.repeat_rows(cube, 2), &format!("repeat_rows: {e}"));
    assert_misuse(|| t.narrow_rows(cube, 0, 1), &format!("narrow_rows: {e}"));
    assert_misuse(|| t.row_sums(cube), &format!("reduce: {e}"));
    assert_misuse(|| t.col_means(cube), &format!("reduce: {e}"));
    assert_misuse(|| t.log_softmax(cube), &format!("log_softmax: {e}"));
    assert_misuse(
        || t.softmax_cross_entropy(cube, &[0, 0, 0, 0]),
        &format!("softmax_cross_entropy: {e}"),
    );
    assert_misuse(
        || t.linear_squared_distance(cube, w, None, m, 1),
        &format!("linear_squared_distance: {e}"),
    );
    // Whole-tensor ops take any rank; an explicit reshape makes the matrix.
    let s = t.sum(cube);
    assert_eq!(t.item(s), t.value(cube).iter().sum::<f64>());
    let flat = t.reshape(cube, &[4, 3]);
    let p = t.matmul(flat, m);
    assert_eq!(t.shape(p), &[4, 2]);
}

#[test]
fn products_and_concatenations_name_both_shapes() {
    let mut t = Tape::new();
    let a = t.leaf(ramp(&[2, 3]));
    let b = t.leaf(ramp(&[2, 3]));
    assert_misuse(
        || t.matmul(a, b),
        "matmul: inner dimensions 3 and 2 differ (shapes [2, 3] and [2, 3])",
    );
    let c = t.leaf(ramp(&[2, 4]));
    assert_misuse(
        || t.concat_rows(&[a, c]),
        "concat_rows: column counts 3 and 4",
    );
    let d = t.leaf(ramp(&[3, 3]));
    assert_misuse(|| t.concat_cols(&[a, d]), "concat_cols: row counts 2 and 3");
    assert_misuse(|| t.linear(a, c, None), "linear: input of shape [2, 3]");
}

#[test]
fn linear_squared_distance_checks_its_target_and_bias_shapes() {
    let mut t = Tape::new();
    let x = t.leaf(ramp(&[4, 2]));
    let w = t.leaf(ramp(&[3, 2]));
    // Before: a flat target of 12 elements for 2 groups was read as [2 × 6] (4602).
    let flat = t.constant(ramp(&[12]));
    assert_misuse(
        || t.linear_squared_distance(x, w, None, flat, 2),
        "linear_squared_distance: a target of shape [12] for 2 groups",
    );
    let target = t.constant(ramp(&[2, 6]));
    let d = t.linear_squared_distance(x, w, None, target, 2);
    assert!(t.item(d) > 0.0);
    // A dense target must be a layer of y's shape, with a row for bias.
    let wt = t.constant(ramp(&[4, 2]));
    let dense = DistanceTarget::Dense {
        x,
        w: wt,
        b: None,
        len: 6,
    };
    assert_misuse(
        || t.linear_squared_distance_to(x, w, None, dense, 2),
        "the target layer's output is 4×4, not 4×3",
    );
    let column = t.constant(ramp(&[3, 1]));
    let dense = DistanceTarget::Dense {
        x,
        w,
        b: Some(column),
        len: 6,
    };
    assert_misuse(
        || t.linear_squared_distance_to(x, w, None, dense, 2),
        "linear_squared_distance: bias of shape [3, 1]",
    );
}

#[test]
fn linear_squared_distance_checks_its_bias_on_the_panel_path() {
    // A wide output layer takes the panel path, which did not check the bias: one of 8201
    // elements for 8200 outputs was accepted and its last element ignored (loss 16400).
    let n = 8200;
    let mut t = Tape::<f32>::new();
    let x = t.leaf(Tensor::from_fn(&[2, 2], |i| i as f32));
    let w = t.leaf(Tensor::zeros(&[n, 2]));
    let b = t.leaf(Tensor::filled(&[n + 1], 1.0));
    let target = t.constant(Tensor::zeros(&[1, 2 * n]));
    assert_misuse(
        || t.linear_squared_distance(x, w, Some(b), target, 1),
        "linear_squared_distance: bias of shape [8201], expected [8200] or [1, 8200]",
    );
    let b = t.leaf(Tensor::filled(&[n], 1.0));
    let d = t.linear_squared_distance(x, w, Some(b), target, 1);
    assert_eq!(t.item(d), (2 * n) as f32);
}

#[test]
fn every_catalogue_op_still_passes_its_gradient_check() {
    for dims in [(1, 1, 1), (3, 2, 4)] {
        for case in op_cases() {
            let inputs = case.inputs(dims, 7);
            let report = case.check(&inputs, 7, &GradCheckOptions::default());
            assert!(report.passed(), "{} at {dims:?}:\n{report}", case.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 15. A Var belongs to one tape

/// Two tapes with a node of the same index, and a var of the first.
fn two_tapes() -> (Tape<'static, f64>, Tape<'static, f64>, Var, Var) {
    let mut t1 = Tape::new();
    let mut t2 = Tape::new();
    let a = t1.leaf(Tensor::from_vec(&[1], vec![1.0]));
    let b = t2.leaf(Tensor::from_vec(&[1], vec![5.0]));
    assert_eq!(a.index(), b.index());
    (t1, t2, a, b)
}

fn names_both(message: &str, var_tape: u64, used_on: u64) {
    assert!(
        message.contains(&format!("belongs to tape #{var_tape}"))
            && message.contains(&format!("not to tape #{used_on}")),
        "{message}"
    );
}

#[test]
fn tapes_have_unique_ids_carried_by_their_vars() {
    let (t1, t2, a, b) = two_tapes();
    assert_ne!(t1.id(), t2.id());
    assert_eq!(a.tape_id(), t1.id());
    assert_eq!(b.tape_id(), t2.id());
    assert_ne!(a, b, "same index, different tapes");
    assert!(t1.vars().all(|v| v.tape_id() == t1.id()));
    let no_grad = Tape::<f32>::no_grad();
    assert_ne!(no_grad.id(), t2.id());
}

#[test]
fn ops_refuse_a_var_of_another_tape() {
    // Before: t2.add(a, a) read t2's node 0 (5.0) and gave 10.
    let (t1, mut t2, a, b) = two_tapes();
    let (id1, id2) = (t1.id(), t2.id());
    names_both(&assert_misuse(|| t2.add(a, a), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.add(b, a), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.matmul(b, a), "Var %0"), id1, id2);
    names_both(
        &assert_misuse(|| t2.linear(b, b, Some(a)), "Var %0"),
        id1,
        id2,
    );
    names_both(
        &assert_misuse(|| t2.concat_rows(&[b, a]), "Var %0"),
        id1,
        id2,
    );
    names_both(&assert_misuse(|| t2.relu(a), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.view(a, 0, &[1]), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.sum(a), "Var %0"), id1, id2);
    names_both(
        &assert_misuse(|| t2.softmax_cross_entropy(a, &[0]), "Var %0"),
        id1,
        id2,
    );
    let dense = DistanceTarget::Dense {
        x: b,
        w: a,
        b: None,
        len: 1,
    };
    names_both(
        &assert_misuse(
            || t2.linear_squared_distance_to(b, b, None, dense, 1),
            "Var %0",
        ),
        id1,
        id2,
    );
    // The tape is unchanged by the refused ops.
    assert_eq!(t2.len(), 1);
}

#[test]
fn accessors_refuse_a_var_of_another_tape() {
    let (t1, t2, a, _) = two_tapes();
    let (id1, id2) = (t1.id(), t2.id());
    names_both(&assert_misuse(|| t2.value(a).len(), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.shape(a).len(), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.dims(a), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.item(a), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.tensor(a), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.requires_grad(a), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| t2.op(a).name(), "Var %0"), id1, id2);
}

#[test]
fn backward_refuses_a_loss_of_another_tape() {
    let (mut t1, mut t2, a, b) = two_tapes();
    let (id1, id2) = (t1.id(), t2.id());
    let loss = t1.sum(a);
    let _ = t2.sum(b); // t2 has a node of loss's index too
    names_both(&assert_misuse(|| t2.backward(loss), "Var %1"), id1, id2);
    names_both(
        &assert_misuse(|| t2.backward_with_seed(loss, &[1.0]), "Var %1"),
        id1,
        id2,
    );
}

#[test]
fn gradients_refuse_a_var_of_another_tape() {
    // Before: the gradients of t2 answered for t1's var with t2's node of the same index
    // (Some([2.0])).
    let (t1, mut t2, a, b) = two_tapes();
    let (id1, id2) = (t1.id(), t2.id());
    let c = t2.add(b, b);
    let loss = t2.sum(c);
    let mut g = t2.backward(loss);
    assert_eq!(g.get(b), Some(&[2.0][..]));
    names_both(&assert_misuse(|| g.get(a).is_some(), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| g.get_or_zeros(a, 1), "Var %0"), id1, id2);
    names_both(&assert_misuse(|| g.take(a), "Var %0"), id1, id2);
    assert_eq!(g.take(b), Some(vec![2.0]));
}

// ---------------------------------------------------------------------------------------------
// 16. No safe function reaches undefined behaviour: sizes are computed without overflow

#[test]
fn tensor_new_refuses_a_shape_whose_size_overflows() {
    // Before: Some (2³²·2³² wrapped to 0 elements), and a matmul on it was a segfault.
    assert!(Tensor::<f32>::new(&[BIG, BIG], vec![]).is_none());
    assert!(Tensor::<f32>::new(&[BIG, BIG, 0], vec![]).is_none());
    assert!(Tensor::<f32>::new(&[usize::MAX, 2], vec![]).is_none());
    assert_eq!(shape_len(&[BIG, BIG]), None);
    assert_eq!(shape_len(&[BIG, 0]), Some(0));
    assert_eq!(shape_len(&[]), Some(1));
    assert!(Tensor::<f32>::zeros(&[0]).reshaped(&[BIG, BIG]).is_none());
    // Valid empty shapes stay valid.
    assert_eq!(Tensor::<f32>::new(&[BIG, 0], vec![]).unwrap().len(), 0);
}

#[test]
fn tensor_constructors_panic_on_a_shape_whose_size_overflows() {
    // Before: zeros(&[2³², 2³²]) was a tensor of that shape holding 0 elements.
    assert_misuse(|| Tensor::<f32>::zeros(&[BIG, BIG]), "size overflows usize");
    assert_misuse(|| Tensor::<f32>::filled(&[BIG, BIG], 1.0), "overflows");
    assert_misuse(|| Tensor::<f32>::from_fn(&[BIG, BIG], |_| 0.0), "overflows");
    assert_misuse(|| Tensor::<f32>::from_vec(&[BIG, BIG], vec![]), "overflows");
    assert_misuse(
        || Tensor::<f32>::from_vec(&[2, 3], vec![0.0; 5]),
        "shape [2, 3] needs 6 elements",
    );
}

#[test]
fn tape_refuses_borrowed_data_under_an_overflowing_shape() {
    let mut t = Tape::<f32>::new();
    assert_misuse(|| t.leaf_ref(&[BIG, BIG], &[]), "overflows");
    assert_misuse(|| t.constant_ref(&[BIG, BIG], &[]), "overflows");
    assert_misuse(|| t.leaf_ref(&[2, 2], &[1.0]), "does not hold 1 elements");
}

#[test]
fn matmul_of_empty_operands_with_an_overflowing_output_panics() {
    // [2³² × 0]·[0 × 2³²] are valid empty operands whose product has 2⁶⁴ elements. Before: the
    // size wrapped to 0, the bounds checks passed, and the product wrote past its buffer
    // (segfault).
    let mut t = Tape::<f32>::new();
    let a = t.leaf(Tensor::zeros(&[BIG, 0]));
    let b = t.leaf(Tensor::zeros(&[0, BIG]));
    assert_misuse(
        || t.matmul(a, b),
        "matmul: an output of 4294967296×4294967296 elements overflows usize",
    );
    let bt = t.leaf(Tensor::zeros(&[BIG, 0]));
    assert_misuse(|| t.matmul_t(a, bt, false, true), "overflows usize");
    // Empty products that fit are fine.
    let c = t.leaf(Tensor::zeros(&[0, 3]));
    let d = t.leaf(Tensor::zeros(&[3, 0]));
    let p = t.matmul(c, d);
    assert_eq!(t.shape(p), &[0, 0]);
}

#[test]
fn linear_with_an_overflowing_output_panics() {
    // Before: segfault, as for matmul.
    let mut t = Tape::<f32>::new();
    let x = t.leaf(Tensor::zeros(&[BIG, 0]));
    let w = t.leaf(Tensor::zeros(&[BIG, 0]));
    assert_misuse(
        || t.linear(x, w, None),
        "linear: an output of 4294967296×4294967296 elements overflows usize",
    );
    let target = t.constant(Tensor::zeros(&[1, 1]));
    assert_misuse(
        || t.linear_squared_distance(x, w, None, target, 1),
        "linear_squared_distance: an output of 4294967296×4294967296 elements",
    );
}

#[test]
fn gemm_refuses_sizes_that_overflow() {
    // Before: m·k, k·n and m·n all wrapped to 0, the bounds checks passed, and matrixmultiply
    // read and wrote far outside the slices (segfault).
    let a = [1.0f32; 4];
    let mut c = [0.0f32; 4];
    assert_misuse(
        || kernels::gemm(BIG, BIG, BIG, 1.0, &a, false, &a, false, 0.0, &mut c),
        "gemm: A of 4294967296×4294967296 elements overflows usize",
    );
    // k = 0 and an output of 2³³ × 2³¹.
    let mut empty: [f32; 0] = [];
    assert_misuse(
        || {
            kernels::gemm(
                1 << 33,
                1 << 31,
                0,
                1.0,
                &[],
                false,
                &[],
                false,
                0.0,
                &mut empty,
            )
        },
        "gemm: C of 8589934592×2147483648 elements overflows usize",
    );
    // Short buffers of sizes that fit are refused as before.
    assert_misuse(
        || kernels::gemm(2, 2, 3, 1.0, &a, false, &a, true, 0.0, &mut c),
        "gemm: A has 4 elements, needs 2×3 = 6",
    );
}

#[test]
fn panel_kernels_refuse_sizes_that_overflow() {
    assert_misuse(
        || kernels::panel_scratch_len(usize::MAX / 2, 9000, 1, false),
        "overflow",
    );
    let mut scratch = [0.0f32; 16];
    assert_misuse(
        || {
            kernels::dense_backward_panels(
                BIG,
                9000,
                BIG,
                &[],
                &[],
                |_, _| 0.0,
                kernels::DenseGrads::default(),
                &mut scratch,
            )
        },
        "dense panels: 4294967296×4294967296 elements overflow usize",
    );
}

#[test]
fn views_past_the_end_or_of_an_overflowing_size_are_refused() {
    let mut t = Tape::<f32>::new();
    let x = t.leaf(Tensor::zeros(&[4]));
    // Before: offset + len wrapped to 1 ≤ 4, the view was made, and reading it panicked
    // inside the tape ("range start index … out of range").
    assert_misuse(
        || t.view(x, usize::MAX, &[2]),
        "view of [2] (2 elements) at 18446744073709551615 exceeds the 4 elements",
    );
    assert_misuse(|| t.narrow_flat(x, 3, 2), "exceeds the 4 elements");
    // Before: a view of shape [2³², 2³²] (size wrapped to 0) was made, and a matmul on it was a
    // segfault.
    assert_misuse(|| t.view(x, 0, &[BIG, BIG]), "size overflows usize");
    let empty = t.leaf(Tensor::zeros(&[0]));
    assert_misuse(|| t.reshape(empty, &[BIG, BIG]), "reshape of [0]");
    let m = t.leaf(Tensor::zeros(&[3, 2]));
    assert_misuse(|| t.narrow_rows(m, usize::MAX, 2), "narrow_rows: rows");
    assert_misuse(|| t.narrow_rows(m, 2, 2), "narrow_rows: rows 2+2 of 3 rows");
}

#[test]
fn concatenations_and_repeats_refuse_sizes_that_overflow() {
    let mut t = Tape::<f32>::new();
    // Before: each of these made a node of shape [0, 0] (the size wrapped).
    let wide = t.leaf(Tensor::zeros(&[0, 1 << 63]));
    assert_misuse(
        || t.concat_cols(&[wide, wide]),
        "concat_cols: the column count overflows usize",
    );
    let tall = t.leaf(Tensor::zeros(&[1 << 63, 0]));
    assert_misuse(
        || t.concat_rows(&[tall, tall]),
        "concat_rows: the row count overflows usize",
    );
    let x = t.leaf(Tensor::zeros(&[2, 0]));
    assert_misuse(
        || t.repeat_rows(x, 1 << 63),
        "repeat_rows: 9223372036854775808×2 rows",
    );
}

// ---------------------------------------------------------------------------------------------
// 17. Log-softmax and the cross-entropies are exact at large logits

/// (loss, gradient) of softmax cross-entropy (smoothed by `eps`) of one row.
fn cross_entropy<F: hypertape::Float>(logits: &[F], label: usize, eps: f64) -> (F, Vec<F>) {
    let mut t = Tape::<F>::new();
    let x = t.leaf(Tensor::from_vec(&[1, logits.len()], logits.to_vec()));
    let loss = if eps == 0.0 {
        t.softmax_cross_entropy(x, &[label])
    } else {
        t.softmax_cross_entropy_smoothed(x, &[label], eps)
    };
    let g = t.backward(loss);
    (t.item(loss), g.get(x).unwrap().to_vec())
}

#[test]
fn cross_entropy_is_exact_at_logits_of_1e8_in_f32() {
    // Before: loss 0 and gradient [1, 0] (the max + ln 2 rounded to the max).
    let (loss, grad) = cross_entropy(&[1e8f32, 1e8], 1, 0.0);
    assert_eq!(loss, std::f32::consts::LN_2);
    assert_eq!(grad, [0.5, -0.5]);
    // Before: already 2e-3 off at 1e5 (0.6953125).
    let (loss, grad) = cross_entropy(&[1e5f32, 1e5], 1, 0.0);
    assert_eq!(loss, std::f32::consts::LN_2);
    assert_eq!(grad, [0.5, -0.5]);
}

#[test]
fn smoothed_cross_entropy_is_exact_at_logits_of_1e8_in_f32() {
    // Before: loss 0 and gradient [0.9, 0.1]. With ε = 0.1 in two classes q = [0.1, 0.9]:
    // loss Σ q·ln 2 = ln 2, gradient softmax − q = [0.4, −0.4].
    let (loss, grad) = cross_entropy(&[1e8f32, 1e8], 1, 0.1);
    assert!((loss - std::f32::consts::LN_2).abs() < 1e-7, "{loss}");
    assert!(
        (grad[0] - 0.4).abs() < 1e-7 && (grad[1] + 0.4).abs() < 1e-7,
        "{grad:?}"
    );
}

#[test]
fn cross_entropy_is_exact_at_logits_of_1e16_and_1e300_in_f64() {
    // Before: loss 0 and gradient [1, 0] at both.
    for big in [1e16f64, 1e300] {
        let (loss, grad) = cross_entropy(&[big, big], 1, 0.0);
        assert_eq!(loss, std::f64::consts::LN_2, "at {big}");
        assert_eq!(grad, [0.5, -0.5], "at {big}");
        let (loss, grad) = cross_entropy(&[big, big], 1, 0.1);
        assert!((loss - std::f64::consts::LN_2).abs() < 1e-15, "at {big}");
        assert!((grad[0] - 0.4).abs() < 1e-15 && (grad[1] + 0.4).abs() < 1e-15);
    }
}

#[test]
fn cross_entropy_is_invariant_to_a_shift_of_the_logits() {
    // x − max is exact for these, so the shifted logits give the same bits.
    let small = [1.0f64, 3.0, -2.0, 0.5];
    let shifted: Vec<f64> = small.iter().map(|v| v + 1e8).collect();
    for eps in [0.0, 0.05] {
        for label in 0..4 {
            assert_eq!(
                cross_entropy(&small, label, eps),
                cross_entropy(&shifted, label, eps)
            );
        }
    }
}

#[test]
fn log_softmax_is_exact_at_large_logits() {
    // Before: [0, 0] at both (log-probabilities of 1 for two equal logits).
    let mut t = Tape::<f32>::new();
    let x = t.leaf(Tensor::from_vec(&[1, 2], vec![1e8, 1e8]));
    let y = t.log_softmax(x);
    assert_eq!(t.value(y), [-std::f32::consts::LN_2; 2]);
    let mut t = Tape::<f64>::new();
    let x = t.leaf(Tensor::from_vec(
        &[2, 2],
        vec![1e300, 1e300, -1e300, -1e300],
    ));
    let y = t.log_softmax(x);
    assert_eq!(t.value(y), [-std::f64::consts::LN_2; 4]);
    // Logits 8 apart at 1e8 (one f32 ulp): −8 − ln(1 + e⁻⁸) and −ln(1 + e⁻⁸).
    let mut t = Tape::<f32>::new();
    let x = t.leaf(Tensor::from_vec(&[1, 2], vec![1e8, 1e8 + 8.0]));
    let y = t.log_softmax(x);
    let l = (1.0f64 + (-8.0f64).exp()).ln();
    let want = [-8.0 - l, -l];
    for (got, want) in t.value(y).iter().zip(want) {
        assert!((f64::from(*got) - want).abs() < 2e-6, "{got} vs {want}");
    }
}

// ---------------------------------------------------------------------------------------------
// 18. NaN propagates; empty reductions are defined

#[test]
fn relu_propagates_nan_forward_and_backward() {
    // Before: relu(NaN) = 0 with gradient 0, so the NaN vanished.
    let mut t = Tape::<f32>::new();
    let x = t.leaf(Tensor::from_vec(&[4], vec![f32::NAN, 1.5, -1.0, -0.0]));
    let y = t.relu(x);
    let v = t.value(y);
    assert!(v[0].is_nan());
    assert_eq!(
        v[1..].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        [1.5f32.to_bits(), 0.0f32.to_bits(), 0.0f32.to_bits()]
    );
    let loss = t.sum(y);
    let g = t.backward(loss);
    let g = g.get(x).unwrap();
    assert!(g[0].is_nan());
    assert_eq!(&g[1..], [1.0, 0.0, 0.0]);
}

#[test]
fn max_based_ops_propagate_nan() {
    let mut t = Tape::<f64>::new();
    let x = t.leaf(Tensor::from_vec(
        &[2, 3],
        vec![1.0, f64::NAN, 2.0, 1.0, 0.0, 2.0],
    ));
    let y = t.log_softmax(x);
    assert!(
        t.value(y)[..3].iter().all(|v| v.is_nan()),
        "{:?}",
        t.value(y)
    );
    assert!(t.value(y)[3..].iter().all(|v| v.is_finite()));
    for eps in [0.0, 0.1] {
        let (loss, grad) = cross_entropy(&[1.0, f64::NAN, 2.0], 0, eps);
        assert!(loss.is_nan());
        assert!(grad.iter().all(|v| v.is_nan()));
    }
    let (loss, _) = cross_entropy(&[f64::INFINITY, 0.0], 0, 0.0);
    assert!(loss.is_nan(), "∞ − ∞");
    let e = t.elu(x, 1.0);
    assert!(t.value(e)[1].is_nan());
}

#[test]
fn empty_reductions_are_zero_sums_and_nan_means() {
    // Before: every one of these was ±0 (the mean of nothing −0).
    let mut t = Tape::<f32>::new();
    let empty = t.leaf(Tensor::zeros(&[0]));
    let s = t.sum(empty);
    assert_eq!(t.item(s).to_bits(), 0.0f32.to_bits(), "+0");
    let m = t.mean(empty);
    assert!(t.item(m).is_nan());
    let rows = t.leaf(Tensor::zeros(&[2, 0]));
    let rm = t.row_means(rows);
    assert!(t.value(rm).len() == 2 && t.value(rm).iter().all(|v| v.is_nan()));
    let rs = t.row_sums(rows);
    assert_eq!(t.value(rs), [0.0, 0.0]);
    assert!(t.value(rs).iter().all(|v| v.is_sign_positive()));
    let cols = t.leaf(Tensor::zeros(&[0, 3]));
    let cm = t.col_means(cols);
    assert!(t.value(cm).len() == 3 && t.value(cm).iter().all(|v| v.is_nan()));
    let cs = t.col_sums(cols);
    assert_eq!(t.value(cs), [0.0; 3]);
    // The losses that are means: of zero rows, of zero elements.
    let ce = t.softmax_cross_entropy(cols, &[]);
    assert!(t.item(ce).is_nan());
    let ce = t.softmax_cross_entropy_smoothed(cols, &[], 0.1);
    assert!(t.item(ce).is_nan());
    let bce = t.bce_with_logits(cols, cols);
    assert!(t.item(bce).is_nan());
    let d = t.squared_distance(cols, cols);
    assert_eq!(t.item(d).to_bits(), 0.0f32.to_bits(), "a sum: +0");
    // Backward through them is defined (no elements to reach).
    let g = t.backward(m);
    assert_eq!(g.get(empty), Some(&[][..]));
}

#[test]
fn gradcheck_reports_a_nan_gradient_as_an_infinite_error() {
    // Before: the report's max abs error was 0 (f64::max dropped the NaN).
    let x = Tensor::from_vec(&[1], vec![1.0f64]);
    let report = gradcheck(
        &[x],
        |t, xs| {
            let nan = t.constant(Tensor::from_vec(&[1], vec![f64::NAN]));
            let z = t.mul(xs[0], nan);
            let z = t.relu(z);
            t.sum(z)
        },
        &GradCheckOptions::default(),
    );
    assert!(!report.passed());
    assert_eq!(report.inputs[0].max_abs_error, f64::INFINITY, "{report}");
}

// ---------------------------------------------------------------------------------------------
// 19. One convention: ops panic on misuse, at the caller's line

#[test]
fn both_cross_entropies_panic_on_a_bad_label() {
    // Before: the plain loss panicked inside hypertape (src/engine/tape/ops.rs), the smoothed
    // one returned an Err.
    let mut t = Tape::<f32>::new();
    let x = t.leaf(Tensor::zeros(&[1, 2]));
    assert_misuse(
        || t.softmax_cross_entropy(x, &[5]),
        "softmax_cross_entropy: label 5 for 2 classes",
    );
    assert_misuse(
        || t.softmax_cross_entropy_smoothed(x, &[5], 0.1),
        "softmax_cross_entropy_smoothed: label 5 for 2 classes",
    );
    assert_misuse(
        || t.softmax_cross_entropy(x, &[0, 1]),
        "softmax_cross_entropy: 2 labels for 1 rows",
    );
    assert_misuse(
        || t.softmax_cross_entropy_smoothed(x, &[], 0.1),
        "softmax_cross_entropy_smoothed: 0 labels for 1 rows",
    );
    for eps in [1.0, -0.1, f64::NAN] {
        assert_misuse(
            || t.softmax_cross_entropy_smoothed(x, &[0], eps),
            "softmax_cross_entropy_smoothed: a smoothing ε of",
        );
    }
    // Valid input: the smoothed loss at ε = 0 is the plain one.
    let y = t.leaf(Tensor::from_vec(
        &[2, 3],
        vec![1.0, -2.0, 0.5, 3.0, 3.0, -1.0],
    ));
    let a = t.softmax_cross_entropy_smoothed(y, &[2, 0], 0.0);
    let b = t.softmax_cross_entropy(y, &[2, 0]);
    assert_eq!(t.item(a), t.item(b));
}

#[test]
fn misuse_panics_report_the_callers_line() {
    // Before: each of these panicked at a line inside hypertape (src/engine/...).
    let mut t = Tape::<f64>::new();
    let a = t.leaf(ramp(&[2, 3]));
    let b = t.leaf(ramp(&[3, 2]));
    let s = t.sum(a);
    assert_misuse(|| t.item(a), "item() of a node of shape [2, 3]");
    assert_misuse(|| t.backward(a), "backward() needs a one-element loss");
    assert_misuse(
        || t.backward_with_seed(s, &[1.0, 2.0]),
        "a seed of 2 elements",
    );
    assert_misuse(
        || t.gather_rows(a, &[0, 2]),
        "gather_rows: index 2 of 2 rows",
    );
    assert_misuse(|| t.concat_rows(&[]), "concat_rows of nothing");
    let w = t.leaf(ramp(&[4, 3]));
    assert_misuse(
        || t.linear_squared_distance(a, w, None, b, 0),
        "do not form 0 groups",
    );
    assert_misuse(|| Tensor::<f64>::zeros(&[2]).item(), "item() of a tensor");
    assert_misuse(
        || {
            kernels::gemm(
                2,
                2,
                2,
                1.0,
                &[1.0f64],
                false,
                &[1.0],
                false,
                0.0,
                &mut [0.0; 4],
            )
        },
        "gemm: A has 1 elements",
    );
}
