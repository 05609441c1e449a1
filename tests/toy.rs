//! The toy regression: the hypernetwork fits three tasks in sequence and keeps them (test MSE
//! well below fine-tuning's on the first task), the sigmoid target MLP passes an f64 gradient
//! check, and the SVG holds one panel per method.

mod common;

use common::assert_gradcheck;
use hypertape::cl::Method;
use hypertape::nn::{Activation, Mlp};
use hypertape::rng::Rng;
use hypertape::run::toy::{run_toy, svg, ToyConfig};
use hypertape::Tensor;

#[test]
fn hnet_keeps_the_first_task_where_fine_tuning_forgets_it() {
    // The paper's 4001 steps per task take about a second.
    let c = ToyConfig::default();
    let (r, tasks) = run_toy(&c, &[Method::Hnet, Method::Finetune]).unwrap();
    let (h, f) = (&r.methods[0], &r.methods[1]);
    assert!(h.mse.iter().all(|&m| m < 0.1), "hnet {:?}", h.mse);
    assert!(f.mse[0] > 10.0 * h.mse[0], "{:?} vs {:?}", f.mse, h.mse);
    assert!(f.mse_during.iter().all(|&m| m < 0.2), "{:?}", f.mse_during);
    let s = svg(&r, &tasks);
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    // One panel title "method: MSE …" per method.
    assert_eq!(s.matches(": MSE ").count(), 2);
}

#[test]
fn sigmoid_target_mlp_gradient_check_and_relu_default() {
    let t = Mlp::new(1, &[10, 10], 1, 1);
    assert_eq!(t.activation(), Activation::Relu);
    let t = t.with_activation(Activation::Sigmoid);
    let mut rng = Rng::new(1);
    let w = Tensor::from_vec(&[t.num_weights()], t.init_weights::<f64>(&mut rng));
    let x = Tensor::from_fn(&[5, 1], |i| i as f64 - 2.0);
    let y = Tensor::from_fn(&[5, 1], |i| (i as f64).sin());
    assert_gradcheck(&[w, x], |tape, v| {
        let out = t.forward(tape, v[0], v[1], 0);
        let yv = tape.constant(y.clone());
        let sq = tape.squared_distance(out, yv);
        tape.scale(sq, 0.2)
    });
}
