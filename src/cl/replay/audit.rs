//! The f64 gradient audit of the replay model's loss.

use crate::engine::gradcheck::{GradCheckOptions, GradCheckReport};
use crate::engine::tape::Tape;
use crate::nn::{Activation, Hnet, HnetConfig, Mlp};
use crate::rng::Rng;
use crate::Tensor;

/// The f64 audit of the VAE loss of HNET+R/HNET+TIR (\[`vae_loss`\]) with fixed
/// noise ε: a tiny encoder's weights, the θ of the chunked hypernetwork that generates the
/// decoder, and the task embedding, element by element against central differences. Random
/// state from `seed`.
pub fn vae_audit(seed: u64, options: &GradCheckOptions) -> GradCheckReport {
    let (dim, latent, conds, rows) = (6, 3, 2, 4);
    let encoder = Mlp::new(dim, &[5], latent, 2);
    let decoder = Mlp::new(latent + conds, &[4], dim, 1);
    let hnet = Hnet::new(
        &HnetConfig {
            task_emb_dim: 3,
            hidden: vec![4],
            activation: Activation::Elu,
            chunk_size: Some(20),
            chunk_emb_dim: 2,
        },
        decoder.num_weights(),
    );
    let mut rng = Rng::derived(seed, "vae-audit", 0);
    let enc_w: Vec<f64> = encoder.init_weights(&mut rng);
    let theta: Vec<f64> = hnet.init_params(&mut rng);
    let emb: Vec<f64> = hnet.init_task_embedding(&mut rng);
    let x = Tensor::from_fn(&[rows, dim], |_| rng.uniform());
    let eps = Tensor::from_fn(&[rows, latent], |_| rng.normal());
    let mut cond = vec![0.0f64; rows * conds];
    cond.chunks_exact_mut(conds).for_each(|r| r[1] = 1.0);
    let inputs = vec![
        Tensor::from_vec(&[enc_w.len()], enc_w),
        Tensor::from_vec(&[theta.len()], theta),
        Tensor::from_vec(&[1, emb.len()], emb),
    ];
    crate::engine::gradcheck::gradcheck(
        &inputs,
        |tape: &mut Tape<'_, f64>, v| {
            let out = hnet.forward(tape, v[1], v[2]);
            let dec_w = hnet.task_weights(tape, out, 0);
            let xv = tape.constant(x.clone());
            let c = tape.constant(Tensor::from_vec(&[rows, conds], cond.clone()));
            let e = tape.constant(eps.clone());
            super::vae_loss(tape, &encoder, v[0], &decoder, dec_w, xv, c, e).total
        },
        options,
    )
}
