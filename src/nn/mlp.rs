//! The target network: an MLP (ReLU hidden layers unless told otherwise) with one output head
//! per task, whose weights are given to it as a flat buffer rather than owned.

use super::{Activation, ParamLayout};
use crate::engine::tape::{Tape, Var};
use crate::engine::tensor::Float;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// An MLP `input → hidden… → heads × head_dim`, weights passed in; hidden units are ReLU by
/// default ([`Mlp::with_activation`] changes that).
///
/// Weight order in the flat buffer (the order a hypernetwork generates): for each layer, the
/// weight matrix [out×in] then the bias \[out\]; the output layer holds all heads, head h being
/// rows h·head_dim..(h+1)·head_dim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    input_dim: usize,
    hidden: Vec<usize>,
    head_dim: usize,
    num_heads: usize,
    layout: ParamLayout,
    /// Hidden nonlinearity (ReLU for configurations saved before it existed).
    #[serde(default = "relu")]
    activation: Activation,
}

fn relu() -> Activation {
    Activation::Relu
}

impl Mlp {
    /// An MLP with the given sizes.
    pub fn new(input_dim: usize, hidden: &[usize], head_dim: usize, num_heads: usize) -> Self {
        let mut layout = ParamLayout::default();
        let mut fan_in = input_dim;
        for (l, &h) in hidden.iter().enumerate() {
            layout.push(format!("layer{l}.weight"), &[h, fan_in]);
            layout.push(format!("layer{l}.bias"), &[h]);
            fan_in = h;
        }
        let out = head_dim * num_heads;
        layout.push("heads.weight", &[out, fan_in]);
        layout.push("heads.bias", &[out]);
        Self {
            input_dim,
            hidden: hidden.to_vec(),
            head_dim,
            num_heads,
            layout,
            activation: Activation::Relu,
        }
    }

    /// The same network with hidden nonlinearity `activation`.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// The hidden nonlinearity.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Weights for training the network directly (the baselines): PyTorch's default for
    /// `nn.Linear`, every weight and bias U(−1/√fan_in, 1/√fan_in).
    pub fn init_weights<F: Float>(&self, rng: &mut Rng) -> Vec<F> {
        let mut w = vec![F::ZERO; self.num_weights()];
        let n = self.layout.entries().len();
        for l in 0..n / 2 {
            let fan_in = self.layout.entry(2 * l).shape[1];
            let a = 1.0 / (fan_in as f64).sqrt();
            for i in [2 * l, 2 * l + 1] {
                let e = self.layout.entry(i);
                w[e.range()]
                    .iter_mut()
                    .for_each(|v| *v = F::from_f64(rng.uniform_range(-a, a)));
            }
        }
        w
    }

    /// Number of weights (all layers, all heads).
    pub fn num_weights(&self) -> usize {
        self.layout.len()
    }

    /// The named weight tensors.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Input width.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// Hidden widths.
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }

    /// Outputs per head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Number of heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// Logits of head `head` for the batch `x` [B×input], with weights read from the flat
    /// `weights` (at least `num_weights()` elements; only views are taken).
    pub fn forward<F: Float>(
        &self,
        tape: &mut Tape<'_, F>,
        weights: Var,
        x: Var,
        head: usize,
    ) -> Var {
        self.forward_heads(tape, weights, x, head..head + 1)
    }

    /// Logits of the consecutive heads `heads`, side by side: [B × heads.len()·head_dim], head
    /// h's outputs in columns (h − heads.start)·head_dim…; one product for all of them.
    pub fn forward_heads<F: Float>(
        &self,
        tape: &mut Tape<'_, F>,
        weights: Var,
        x: Var,
        heads: std::ops::Range<usize>,
    ) -> Var {
        self.forward_heads_with(tape, weights, x, heads, |_, _, z| z)
    }

    /// The last hidden layer's activations for the batch `x` (the input itself without hidden
    /// layers): what every head reads.
    pub fn hidden_features<F: Float>(&self, tape: &mut Tape<'_, F>, weights: Var, x: Var) -> Var {
        self.hidden_with(tape, weights, x, &mut |_, _, z| z)
    }

    /// [`Mlp::forward_heads`] with `hook(tape, input, z)` called on every layer's input
    /// and pre-activation z, in layer order (the last z: the logits); the layer goes on with
    /// the Var the hook returns. For reading per-layer quantities such as per-sample gradients.
    pub fn forward_heads_with<F: Float>(
        &self,
        tape: &mut Tape<'_, F>,
        weights: Var,
        x: Var,
        heads: std::ops::Range<usize>,
        mut hook: impl FnMut(&mut Tape<'_, F>, Var, Var) -> Var,
    ) -> Var {
        let h = self.hidden_with(tape, weights, x, &mut hook);
        let z = self.head_outputs(tape, weights, h, heads);
        hook(tape, h, z)
    }

    fn hidden_with<F: Float>(
        &self,
        tape: &mut Tape<'_, F>,
        weights: Var,
        x: Var,
        hook: &mut impl FnMut(&mut Tape<'_, F>, Var, Var) -> Var,
    ) -> Var {
        let mut h = x;
        for l in 0..self.hidden.len() {
            let w = self.layout.view(tape, weights, 2 * l);
            let b = self.layout.view(tape, weights, 2 * l + 1);
            let z = tape.linear(h, w, Some(b));
            let z = hook(tape, h, z);
            h = self.activation.apply(tape, z);
        }
        h
    }

    /// The outputs of the consecutive heads `heads` side by side for hidden features `h`
    /// ([`Mlp::hidden_features`]); one product for all of them.
    pub fn head_outputs<F: Float>(
        &self,
        tape: &mut Tape<'_, F>,
        weights: Var,
        h: Var,
        heads: std::ops::Range<usize>,
    ) -> Var {
        let block = self.layer_block(self.hidden.len(), heads);
        let w = tape.view(weights, block.weight, &[block.outputs, block.inputs]);
        let b = tape.view(weights, block.bias, &[block.outputs]);
        tape.linear(h, w, Some(b))
    }

    /// Where layer `layer` (`hidden().len()`: the output layer, restricted to the consecutive
    /// heads `heads`; ignored for hidden layers) sits in the flat weights.
    ///
    /// # Panics
    /// If `layer` is past the output layer or `heads` is empty or out of range.
    pub fn layer_block(&self, layer: usize, heads: std::ops::Range<usize>) -> LayerBlock {
        let w = self.layout.entry(2 * layer);
        let b = self.layout.entry(2 * layer + 1);
        let (outputs, inputs) = (w.shape[0], w.shape[1]);
        if layer < self.hidden.len() {
            return LayerBlock {
                weight: w.offset,
                bias: b.offset,
                outputs,
                inputs,
            };
        }
        assert!(
            heads.start < heads.end && heads.end <= self.num_heads,
            "heads {heads:?} of {}",
            self.num_heads
        );
        let rows = heads.start * self.head_dim;
        LayerBlock {
            weight: w.offset + rows * inputs,
            bias: b.offset + rows,
            outputs: heads.len() * self.head_dim,
            inputs,
        }
    }
}

/// A layer's place in the flat weights: its [outputs × inputs] matrix at `weight`, its bias
/// at `bias`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerBlock {
    /// Offset of the row-major weight matrix.
    pub weight: usize,
    /// Offset of the bias.
    pub bias: usize,
    /// Rows of the matrix (outputs of the layer).
    pub outputs: usize,
    /// Columns of the matrix (inputs of the layer).
    pub inputs: usize,
}
