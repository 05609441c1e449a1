//! The target network: an MLP with ReLU hidden layers and one output head per task, whose
//! weights are given to it as a flat buffer rather than owned.

use super::ParamLayout;
use crate::tape::{Tape, Var};
use crate::tensor::Float;
use serde::{Deserialize, Serialize};

/// An MLP `input → hidden… → heads × head_dim` with ReLU, weights passed in.
///
/// Weight order in the flat buffer (the order a hypernetwork generates): for each layer, the
/// weight matrix [out×in] then the bias [out]; the output layer holds all heads, head h being
/// rows h·head_dim..(h+1)·head_dim.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetMlp {
    input_dim: usize,
    hidden: Vec<usize>,
    head_dim: usize,
    num_heads: usize,
    layout: ParamLayout,
}

impl TargetMlp {
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
        }
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
        assert!(head < self.num_heads, "head {head} of {}", self.num_heads);
        let mut h = x;
        for l in 0..self.hidden.len() {
            let w = self.layout.view(tape, weights, 2 * l);
            let b = self.layout.view(tape, weights, 2 * l + 1);
            let z = tape.linear(h, w, Some(b));
            h = tape.relu(z);
        }
        let out_w = self.layout.entry(2 * self.hidden.len());
        let out_b = self.layout.entry(2 * self.hidden.len() + 1);
        let fan_in = out_w.shape[1];
        let rows = head * self.head_dim;
        let w = tape.view(
            weights,
            out_w.offset + rows * fan_in,
            &[self.head_dim, fan_in],
        );
        let b = tape.view(weights, out_b.offset + rows, &[self.head_dim]);
        tape.linear(h, w, Some(b))
    }
}
