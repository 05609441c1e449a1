//! Literal checks of the factored distance against the outputs made whole.

use super::*;

fn values(len: usize, seed: usize) -> Vec<f64> {
    (0..len)
        .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f64 - 500.0) / 500.0)
        .collect()
}

/// Σ over groups of ‖first len of (x Wᵀ + b) − (x_t W_tᵀ + b_t)‖², made whole.
#[allow(clippy::too_many_arguments)]
fn direct(
    m: usize,
    k: usize,
    n: usize,
    x: &[f64],
    w: &[f64],
    b: &[f64],
    xt: &[f64],
    wt: &[f64],
    bt: &[f64],
    rpg: usize,
    len: usize,
) -> f64 {
    let mut total = 0.0;
    for i in 0..m {
        let r = i % rpg;
        for j in 0..n {
            if r * n + j >= len {
                continue;
            }
            let y: f64 = (0..k).map(|l| x[i * k + l] * w[j * k + l]).sum::<f64>() + b[j];
            let t: f64 = (0..k).map(|l| xt[i * k + l] * wt[j * k + l]).sum::<f64>() + bt[j];
            total += (y - t) * (y - t);
        }
    }
    total
}

#[test]
fn value_matches_the_outputs_made_whole() {
    for &(m, k, n, rpg, cut) in &[
        (6, 3, 7, 3, 4),
        (4, 2, 500, 2, 0),
        (6, 5, 300, 3, 299),
        (3, 1, 9, 1, 5),
        (8, 4, 700, 4, 1400),
    ] {
        let len = rpg * n - cut;
        let (x, w, b) = (values(m * k, 1), values(n * k, 2), values(n, 3));
        let (xt, wt, bt) = (values(m * k, 4), values(n * k, 5), values(n, 6));
        let p = LayerPair {
            m,
            k,
            n,
            x: &x,
            w: Weights::Stored(&w),
            b: Some(&b),
            xt: &xt,
            wt: &wt,
            bt: Some(&bt),
            rows_per_group: rpg,
            len,
        };
        let got = factored_squared_distance(p, PairGrads::default());
        let want = direct(m, k, n, &x, &w, &b, &xt, &wt, &bt, rpg, len);
        assert!(
            (got - want).abs() <= 1e-10 * want.max(1.0),
            "{m}×{k}×{n}, groups of {rpg}, len {len}: {got} vs {want}"
        );
    }
}

#[test]
fn a_given_target_gram_changes_nothing_but_rounding() {
    for &(m, k, n, rpg, cut) in &[(6, 3, 7, 3, 4), (4, 2, 5000, 2, 0), (6, 5, 3000, 3, 2999)] {
        let len = rpg * n - cut;
        let (x, w, b) = (values(m * k, 1), values(n * k, 2), values(n, 3));
        let (xt, wt, bt) = (values(m * k, 4), values(n * k, 5), values(n, 6));
        let p = LayerPair {
            m,
            k,
            n,
            x: &x,
            w: Weights::Stored(&w),
            b: Some(&b),
            xt: &xt,
            wt: &wt,
            bt: Some(&bt),
            rows_per_group: rpg,
            len,
        };
        let run = |tg: Option<&TargetGram<f64>>| {
            let (mut gx, mut gw, mut gb) = (vec![0.0; m * k], vec![0.0; n * k], vec![0.0; n]);
            let (mut gxt, mut gwt, mut gbt) = (vec![0.0; m * k], vec![0.0; n * k], vec![0.0; n]);
            let grads = PairGrads {
                x: Some(&mut gx),
                w: Some(&mut gw),
                b: Some(&mut gb),
                xt: Some(&mut gxt),
                wt: Some(&mut gwt),
                bt: Some(&mut gbt),
                add_onto: None,
            };
            let v = factored_squared_distance_with(p, tg, grads);
            (v, [gx, gw, gb, gxt, gwt, gbt])
        };
        let tg = TargetGram::new(&wt, n, k, len);
        let (v0, g0) = run(None);
        let (v1, g1) = run(Some(&tg));
        assert!((v0 - v1).abs() <= 1e-12 * v0.abs().max(1.0), "{v0} vs {v1}");
        for (a, b) in g0.iter().zip(&g1) {
            for (&a, &b) in a.iter().zip(b) {
                assert!((a - b).abs() <= 1e-11 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
    }
}

/// An f32 pair of layers with values from [`values`]: m rows of k inputs, n outputs, groups
/// of `rpg` rows comparing `len` elements.
struct Pair32 {
    shape: (usize, usize, usize),
    rpg: usize,
    len: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    xt: Vec<f32>,
    wt: Vec<f32>,
    bt: Vec<f32>,
}

impl Pair32 {
    fn new((m, k, n): (usize, usize, usize), rpg: usize, len: usize) -> Self {
        let f = |len: usize, seed: usize| -> Vec<f32> {
            values(len, seed).into_iter().map(|v| v as f32).collect()
        };
        Self {
            shape: (m, k, n),
            rpg,
            len,
            x: f(m * k, 1),
            w: f(n * k, 2),
            b: f(n, 3),
            xt: f(m * k, 4),
            wt: f(n * k, 5),
            bt: f(n, 6),
        }
    }

    /// The value's bits and ∂/∂x, ∂/∂W, ∂/∂b, with W given by `w`, G* by `tg`, and with
    /// `onto` = Some((g_W, g_b, factor)) the gradients added onto g_W, g_b (else written over
    /// buffers holding 9).
    fn run(
        &self,
        w: Weights<'_, f32>,
        tg: Option<&TargetGram<f32>>,
        onto: Option<(&[f32], &[f32], f32)>,
    ) -> (u64, Vec<f32>, Vec<f32>, Vec<f32>) {
        let (m, k, n) = self.shape;
        let mut gx = vec![0f32; m * k];
        let (mut gw, mut gb) = match onto {
            Some((w, b, _)) => (w.to_vec(), b.to_vec()),
            None => (vec![9f32; n * k], vec![9f32; n]),
        };
        let p = LayerPair {
            m,
            k,
            n,
            x: &self.x,
            w,
            b: Some(&self.b),
            xt: &self.xt,
            wt: &self.wt,
            bt: Some(&self.bt),
            rows_per_group: self.rpg,
            len: self.len,
        };
        let grads = PairGrads {
            x: Some(&mut gx),
            w: Some(&mut gw),
            b: Some(&mut gb),
            add_onto: onto.map(|(_, _, factor)| factor),
            ..PairGrads::default()
        };
        let v = factored_squared_distance_with(p, tg, grads);
        (v.to_bits(), gx, gw, gb)
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn same_bits_on_one_and_two_threads() {
    let (n, rpg) = (20_000, 4);
    let p = Pair32::new((8, 7, n), rpg, rpg * n - 1234);
    let tg = TargetGram::new(&p.wt, n, 7, p.len);
    let run = |threads: usize, cached: bool| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (v, gx, gw, gb) = p.run(Weights::Stored(&p.w), cached.then_some(&tg), None);
            (v, bits(&gx), bits(&gw), bits(&gb))
        })
    };
    for cached in [false, true] {
        assert_eq!(run(1, cached), run(2, cached), "cached G*: {cached}");
    }
}

#[test]
fn made_rows_and_a_gradient_added_onto_give_the_same_bits() {
    // W made a range at a time and factor·∂ added onto ∂/∂W's and ∂/∂b's buffers in place
    // equal W stored and the gradients added afterwards, bit for bit; also when rows of W are
    // read by no row (cut groups) and when no row is compared at all. The rows are made from
    // the ∂/∂W buffer's rows as they were before (as a look-ahead reads its gradient).
    for &(m, k, n, rpg, len) in &[
        (8, 7, 20_000, 4, 4 * 20_000 - 1234),
        (6, 3, 700, 3, 700 + 5),
        (4, 5, 300, 2, 0),
    ] {
        let p = Pair32::new((m, k, n), rpg, len);
        let (onto_w, onto_b) = (values(n * k, 7), values(n, 8));
        let onto_w: Vec<f32> = onto_w.into_iter().map(|v| v as f32).collect();
        let onto_b: Vec<f32> = onto_b.into_iter().map(|v| v as f32).collect();
        let factor = 0.37f32;
        let make = |start: usize, g: &[f32], out: &mut [f32]| {
            let range = start..start + out.len();
            assert_eq!(
                bits(g),
                bits(&onto_w[range.clone()]),
                "the rows before the pass"
            );
            out.copy_from_slice(&p.w[range]);
        };
        let onto = (&onto_w[..], &onto_b[..], factor);
        // With G* computed in the pass and given (as the training step gives it).
        let tg = TargetGram::new(&p.wt, n, k, len);
        for tg in [None, Some(&tg)] {
            let (v0, gx0, gw0, gb0) = p.run(Weights::Stored(&p.w), tg, None);
            let (v1, gx1, gw1, gb1) = p.run(Weights::Made(&make), tg, Some(onto));
            let what = format!("{m}×{k}×{n}, G* given: {}", tg.is_some());
            assert_eq!(v0, v1, "{what}: value");
            assert_eq!(bits(&gx0), bits(&gx1), "{what}: ∂/∂x");
            let added = |onto: &[f32], g: &[f32]| -> Vec<u32> {
                onto.iter()
                    .zip(g)
                    .map(|(&a, &d)| (a + factor * d).to_bits())
                    .collect()
            };
            assert_eq!(added(&onto_w, &gw0), bits(&gw1), "{what}: ∂/∂W");
            assert_eq!(added(&onto_b, &gb0), bits(&gb1), "{what}: ∂/∂b");
        }
    }
}

/// The register-tiled kernels against plain sums, and the FMA path against the portable one.
mod tiles {
    use super::super::tile::{self, Layout, Path, MR, RJ};
    use super::values;
    use crate::engine::tensor::Float;

    fn packed<F: Float>(rows: usize, width: usize, ws: usize, seed: usize) -> Vec<F> {
        let v = values(rows.next_multiple_of(RJ) * width, seed);
        let mut p = vec![F::ZERO; rows.next_multiple_of(RJ) * ws];
        for (r, row) in v.chunks_exact(width.max(1)).enumerate() {
            for (c, &x) in row.iter().enumerate() {
                p[r * ws + c] = F::from_f64(x);
            }
        }
        p
    }

    fn paths() -> Vec<Path> {
        Path::available()
    }

    fn gram_case<F: Float>(k: usize, rows: usize, c0_is_k: bool, tol: f64) {
        let width = 2 * k + 1;
        let c0 = if c0_is_k { k } else { 0 };
        let l = Layout::new::<F>(width, c0);
        let pack = packed::<F>(rows, width, l.ws, k + rows);
        let oc = l.out_cols::<F>();
        let mut outs = Vec::new();
        for path in paths() {
            let mut out = vec![F::ZERO; l.out_len::<F>()];
            // In two calls, as a lane's blocks.
            let half = rows / 2;
            tile::gram(path, &l, &pack, half, &mut out);
            tile::gram(path, &l, &pack[half * l.ws..], rows - half, &mut out);
            for i in 0..width {
                for c in c0..width {
                    let want: f64 = (0..rows)
                        .map(|j| pack[j * l.ws + i].to_f64() * pack[j * l.ws + c].to_f64())
                        .sum();
                    let got = out[i * oc + c - c0].to_f64();
                    assert!(
                        (got - want).abs() <= tol * (rows as f64),
                        "{path:?} k {k} rows {rows} ({i}, {c}): {got} vs {want}"
                    );
                }
            }
            assert!(width <= l.tiles * MR);
            outs.push(out);
        }
        let bits = |v: &[F]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        for o in &outs[1..] {
            assert_eq!(bits(o), bits(&outs[0]), "k {k} rows {rows}: paths differ");
        }
    }

    fn grad_case<F: Float>(k: usize, rows: usize, tol: f64) {
        let (width, kq) = (2 * k + 1, k + 1);
        let ws = Layout::new::<F>(width, k).ws;
        let pack = packed::<F>(rows, width, ws, 3 * k + rows);
        let s: Vec<F> = values(width * kq, 7).into_iter().map(F::from_f64).collect();
        let sp = tile::pack_s(&s, width, kq, kq);
        let two = F::ONE + F::ONE;
        let mut outs = Vec::new();
        for path in paths() {
            let (mut gm, mut gb) = (vec![F::ZERO; rows * k], vec![F::ZERO; rows]);
            tile::grad_rows(
                path,
                (width, ws, k),
                &pack,
                rows,
                &sp,
                -two,
                Some(&mut gm),
                Some(&mut gb),
            );
            for j in 0..rows {
                for c in 0..kq {
                    let want: f64 = -2.0
                        * (0..width)
                            .map(|l| pack[j * ws + l].to_f64() * s[l * kq + c].to_f64())
                            .sum::<f64>();
                    let got = if c < k { gm[j * k + c] } else { gb[j] }.to_f64();
                    assert!(
                        (got - want).abs() <= tol * width as f64,
                        "{path:?} k {k} row {j} col {c}: {got} vs {want}"
                    );
                }
            }
            outs.push((gm, gb));
        }
        let bits = |v: &[F]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        for (gm, gb) in &outs[1..] {
            assert_eq!(bits(gm), bits(&outs[0].0), "k {k}: paths differ");
            assert_eq!(bits(gb), bits(&outs[0].1), "k {k}: paths differ");
        }
    }

    #[test]
    fn gram_kernel_matches_plain_sums_on_every_path() {
        for &(k, rows) in &[
            (0, 5),
            (1, 7),
            (3, 130),
            (7, 300),
            (16, 40),
            (25, 257),
            (40, 20),
        ] {
            for c0_is_k in [false, true] {
                gram_case::<f64>(k, rows, c0_is_k, 1e-14);
                gram_case::<f32>(k, rows, c0_is_k, 1e-6);
            }
        }
    }

    #[test]
    fn gradient_kernel_matches_plain_sums_on_every_path() {
        for &(k, rows) in &[
            (0, 4),
            (1, 7),
            (3, 10),
            (15, 31),
            (16, 9),
            (25, 100),
            (40, 5),
        ] {
            grad_case::<f64>(k, rows, 1e-14);
            grad_case::<f32>(k, rows, 1e-6);
        }
    }
}
