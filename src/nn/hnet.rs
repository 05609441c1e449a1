//! The hypernetwork: an MLP from a task embedding to the weights of a target network.
//!
//! Chunked (von Oswald et al. 2020, §2): the target weights are produced in `num_chunks`
//! pieces of `chunk_size`; the input of the MLP is [e(t), c(i)] with learned chunk embeddings
//! c(i), and all chunks of a task are one batch. The concatenated output is cut to the target
//! size. Without chunking the MLP maps e(t) to all weights at once (one chunk of the whole
//! size, no chunk embeddings).
//!
//! Several tasks are one batch too: [`Hnet::forward`] takes n embeddings and returns n rows of
//! weights, which is how the output regularizer protects all previous tasks in a single pass.

use super::{normal, uniform_with_variance, xavier_uniform, Activation, Mlp, ParamLayout};
use crate::engine::tape::{DistanceTarget, Tape, Var};
use crate::engine::tensor::Float;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// How θ is initialised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HnetInit {
    /// Xavier-uniform weights, zero biases (the official code's choice).
    #[default]
    Xavier,
    /// Hyperfan-in: generated weights start with the variance of a fan-in init of the target.
    Hyperfan,
}

/// The shape of a hypernetwork.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HnetConfig {
    /// Size of a task embedding e(t).
    pub task_emb_dim: usize,
    /// Hidden widths.
    pub hidden: Vec<usize>,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Weights produced per chunk; `None` for an unchunked hypernetwork.
    pub chunk_size: Option<usize>,
    /// Size of a chunk embedding (ignored without chunking).
    pub chunk_emb_dim: usize,
}

/// A (chunked) hypernetwork for a target network of `num_weights` weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hnet {
    config: HnetConfig,
    num_weights: usize,
    num_chunks: usize,
    chunk_size: usize,
    chunk_emb_dim: usize,
    layout: ParamLayout,
    chunk_embs: Option<usize>,
}

impl Hnet {
    /// The hypernetwork of `config` producing `num_weights` weights.
    pub fn new(config: &HnetConfig, num_weights: usize) -> Self {
        let (chunk_size, num_chunks, chunk_emb_dim) = match config.chunk_size {
            Some(c) => (c, num_weights.div_ceil(c), config.chunk_emb_dim),
            None => (num_weights, 1, 0),
        };
        let mut layout = ParamLayout::default();
        let mut fan_in = config.task_emb_dim + chunk_emb_dim;
        for (l, &h) in config.hidden.iter().enumerate() {
            layout.push(format!("layer{l}.weight"), &[h, fan_in]);
            layout.push(format!("layer{l}.bias"), &[h]);
            fan_in = h;
        }
        layout.push("output.weight", &[chunk_size, fan_in]);
        layout.push("output.bias", &[chunk_size]);
        let chunk_embs = (chunk_emb_dim > 0)
            .then(|| layout.push("chunk_embeddings", &[num_chunks, chunk_emb_dim]));
        Self {
            config: config.clone(),
            num_weights,
            num_chunks,
            chunk_size,
            chunk_emb_dim,
            layout,
            chunk_embs,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HnetConfig {
        &self.config
    }

    /// Number of trainable parameters θ (including chunk embeddings).
    pub fn num_params(&self) -> usize {
        self.layout.len()
    }

    /// The named tensors of θ.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Number of target weights produced per task.
    pub fn num_weights(&self) -> usize {
        self.num_weights
    }

    /// Number of chunks per task.
    pub fn num_chunks(&self) -> usize {
        self.num_chunks
    }

    /// Elements per task row of [`Hnet::forward`]'s output (≥ `num_weights`).
    pub fn row_stride(&self) -> usize {
        self.num_chunks * self.chunk_size
    }

    /// Matmul FLOPs of one forward pass for `tasks` embeddings (2·m·n·k per product).
    pub fn forward_flops(&self, tasks: usize) -> f64 {
        let rows = (tasks * self.num_chunks) as f64;
        self.layout
            .entries()
            .iter()
            .filter(|e| e.name.ends_with(".weight"))
            .map(|e| 2.0 * rows * (e.shape[0] * e.shape[1]) as f64)
            .sum()
    }

    /// θ initialised as the official code does: Xavier-uniform weights, zero biases, N(0, 1)
    /// chunk embeddings.
    pub fn init_params<F: Float>(&self, rng: &mut Rng) -> Vec<F> {
        let mut theta = vec![F::ZERO; self.layout.len()];
        for (i, e) in self.layout.entries().iter().enumerate() {
            let slot = &mut theta[e.range()];
            if Some(i) == self.chunk_embs {
                normal(slot, 1.0, rng);
            } else if e.shape.len() == 2 {
                xavier_uniform(slot, e.shape[1], e.shape[0], rng);
            }
        }
        theta
    }

    /// θ initialised with hyperfan-in (Chang et al., ICLR 2020) for the target `target`:
    /// hidden layers fan-in (Var = gain/fan_in, gain 2 for ReLU/ELU, 1 otherwise), zero
    /// biases, N(0, 1) chunk embeddings, and an output layer whose row for a generated target
    /// weight has Var = 2 / (2 · fan_in_target · fan_in_hidden) and for a generated bias
    /// Var = 2 / (2 · fan_in_hidden) (ReLU target, input variance 1), so that generated
    /// weights get about the variance a fan-in init of the target would give. With chunking,
    /// one output row serves the same position in every chunk, so its variance is the mean of
    /// those positions' variances.
    pub fn init_params_hyperfan<F: Float>(&self, target: &Mlp, rng: &mut Rng) -> Vec<F> {
        let mut theta = vec![F::ZERO; self.layout.len()];
        let gain = match self.config.activation {
            Activation::Relu | Activation::Elu => 2.0,
            Activation::Sigmoid | Activation::Tanh => 1.0,
        };
        let output = 2 * self.config.hidden.len();
        for (i, e) in self.layout.entries().iter().enumerate() {
            let slot = &mut theta[e.range()];
            if Some(i) == self.chunk_embs {
                normal(slot, 1.0, rng);
            } else if e.shape.len() == 2 && i != output {
                uniform_with_variance(slot, gain / e.shape[1] as f64, rng);
            } else if i == output {
                let fan_in_hidden = e.shape[1] as f64;
                let mut variance = vec![0.0f64; self.chunk_size];
                let mut count = vec![0usize; self.chunk_size];
                for entry in target.layout().entries() {
                    let is_weight = entry.shape.len() == 2;
                    let v = if is_weight {
                        2.0 / (2.0 * entry.shape[1] as f64 * fan_in_hidden)
                    } else {
                        2.0 / (2.0 * fan_in_hidden)
                    };
                    for j in entry.range() {
                        variance[j % self.chunk_size] += v;
                        count[j % self.chunk_size] += 1;
                    }
                }
                for (p, row) in slot.chunks_exact_mut(e.shape[1]).enumerate() {
                    uniform_with_variance(row, variance[p] / count[p].max(1) as f64, rng);
                }
            }
        }
        theta
    }

    /// A task embedding drawn from N(0, 1).
    pub fn init_task_embedding<F: Float>(&self, rng: &mut Rng) -> Vec<F> {
        let mut e = vec![F::ZERO; self.config.task_emb_dim];
        normal(&mut e, 1.0, rng);
        e
    }

    /// The generated weights of the n tasks whose embeddings are the rows of `embs`
    /// [n × task_emb_dim], from θ = `theta` (flat): an [n × row_stride] var whose row j begins
    /// with task j's `num_weights` weights (see [`Hnet::task_weights`]).
    pub fn forward<F: Float>(&self, tape: &mut Tape<'_, F>, theta: Var, embs: Var) -> Var {
        let n = tape.dims(embs).0;
        let h = self.last_hidden(tape, theta, embs);
        let (w, b) = self.output_layer(tape, theta);
        let out = tape.linear(h, w, Some(b));
        tape.reshape(out, &[n, self.row_stride()])
    }

    /// Σⱼ ‖h(eⱼ, θ) − tⱼ‖² over the rows eⱼ of `embs` and tⱼ of `targets` [n × num_weights],
    /// with the output layer and the distance fused (the generated weights are never stored
    /// apart from their difference to the targets).
    pub fn squared_distance_to<F: Float>(
        &self,
        tape: &mut Tape<'_, F>,
        theta: Var,
        embs: Var,
        targets: Var,
    ) -> Var {
        let n = tape.dims(embs).0;
        assert_eq!(
            tape.value(targets).len(),
            n * self.num_weights,
            "targets must be [tasks × num_weights]"
        );
        let h = self.last_hidden(tape, theta, embs);
        let (w, b) = self.output_layer(tape, theta);
        tape.linear_squared_distance(h, w, Some(b), targets, n)
    }

    /// Σⱼ ‖h(eⱼ, θ) − h(eⱼ, θ*)‖² over the rows eⱼ of `embs`, with θ* = `theta_star` (flat):
    /// [`Hnet::squared_distance_to`] with targets recomputed from θ*. Both output layers run
    /// in one fused node, so h(e, θ*) is never stored whole on the wide (panel) path.
    pub fn squared_distance_to_output_of<F: Float>(
        &self,
        tape: &mut Tape<'_, F>,
        theta: Var,
        embs: Var,
        theta_star: Var,
    ) -> Var {
        let n = tape.dims(embs).0;
        let h = self.last_hidden(tape, theta, embs);
        let (w, b) = self.output_layer(tape, theta);
        let h_star = self.last_hidden(tape, theta_star, embs);
        let (w_star, b_star) = self.output_layer(tape, theta_star);
        let target = DistanceTarget::Dense {
            x: h_star,
            w: w_star,
            b: Some(b_star),
            len: self.num_weights,
        };
        tape.linear_squared_distance_to(h, w, Some(b), target, n)
    }

    /// The input of the output layer for the n tasks whose embeddings are the rows of `embs`:
    /// [n·num_chunks × last hidden width], rows task-major (the output layer reads it whole).
    pub fn last_hidden<F: Float>(&self, tape: &mut Tape<'_, F>, theta: Var, embs: Var) -> Var {
        let (n, d) = tape.dims(embs);
        assert_eq!(d, self.config.task_emb_dim, "task embedding width");
        let mut h = if self.num_chunks == 1 && self.chunk_embs.is_none() {
            embs
        } else {
            let rows: Vec<usize> = (0..n)
                .flat_map(|j| std::iter::repeat_n(j, self.num_chunks))
                .collect();
            let e = tape.gather_rows(embs, &rows);
            match self.chunk_embs {
                Some(ci) => {
                    let c = self.layout.view(tape, theta, ci);
                    let c = tape.repeat_rows(c, n);
                    tape.concat_cols(&[e, c])
                }
                None => e,
            }
        };
        for l in 0..self.config.hidden.len() {
            let w = self.layout.view(tape, theta, 2 * l);
            let b = self.layout.view(tape, theta, 2 * l + 1);
            let z = tape.linear(h, w, Some(b));
            h = self.config.activation.apply(tape, z);
        }
        h
    }

    /// Views of the output layer's weight [chunk_size × last hidden width] and bias
    /// \[chunk_size\] in θ.
    pub fn output_layer<F: Float>(&self, tape: &mut Tape<'_, F>, theta: Var) -> (Var, Var) {
        let hidden = self.config.hidden.len();
        let w = self.layout.view(tape, theta, 2 * hidden);
        let b = self.layout.view(tape, theta, 2 * hidden + 1);
        (w, b)
    }

    /// The ranges of θ that hold the output layer's weight [chunk_size × last hidden width]
    /// and bias \[chunk_size\].
    pub fn output_ranges(&self) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let hidden = self.config.hidden.len();
        (
            self.layout.entry(2 * hidden).range(),
            self.layout.entry(2 * hidden + 1).range(),
        )
    }

    /// Task j's weights in the output of [`Hnet::forward`]: a flat view, no copy.
    pub fn task_weights<F: Float>(&self, tape: &mut Tape<'_, F>, out: Var, j: usize) -> Var {
        tape.view(out, j * self.row_stride(), &[self.num_weights])
    }
}
