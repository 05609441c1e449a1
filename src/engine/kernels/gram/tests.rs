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
                onto: None,
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

#[test]
fn same_bits_on_one_and_two_threads() {
    let (m, k, n, rpg) = (8, 7, 20_000, 4);
    let len = rpg * n - 1234;
    let (x, w, b) = (values(m * k, 1), values(n * k, 2), values(n, 3));
    let (xt, wt, bt) = (values(m * k, 4), values(n * k, 5), values(n, 6));
    let xs: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let ws: Vec<f32> = w.iter().map(|&v| v as f32).collect();
    let bs: Vec<f32> = b.iter().map(|&v| v as f32).collect();
    let xts: Vec<f32> = xt.iter().map(|&v| v as f32).collect();
    let wts: Vec<f32> = wt.iter().map(|&v| v as f32).collect();
    let bts: Vec<f32> = bt.iter().map(|&v| v as f32).collect();
    let tg = TargetGram::new(&wts, n, k, len);
    let run = |threads: usize, cached: bool| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (mut gx, mut gw, mut gb) = (vec![0f32; m * k], vec![0f32; n * k], vec![0f32; n]);
            let p = LayerPair {
                m,
                k,
                n,
                x: &xs,
                w: Weights::Stored(&ws),
                b: Some(&bs),
                xt: &xts,
                wt: &wts,
                bt: Some(&bts),
                rows_per_group: rpg,
                len,
            };
            let grads = PairGrads {
                x: Some(&mut gx),
                w: Some(&mut gw),
                b: Some(&mut gb),
                ..PairGrads::default()
            };
            let v = factored_squared_distance_with(p, cached.then_some(&tg), grads);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (v.to_bits(), bits(&gx), bits(&gw), bits(&gb))
        })
    };
    for cached in [false, true] {
        assert_eq!(run(1, cached), run(2, cached), "cached G*: {cached}");
    }
}

#[test]
fn made_rows_and_a_gradient_added_onto_give_the_same_bits() {
    // W made a range at a time and ∂/∂W, ∂/∂b written as onto + factor·∂ equal W stored and
    // the gradients added afterwards, bit for bit; also when rows of W are read by no row
    // (cut groups) and when no row is compared at all.
    for &(m, k, n, rpg, len) in &[
        (8, 7, 20_000, 4, 4 * 20_000 - 1234),
        (6, 3, 700, 3, 700 + 5),
        (4, 5, 300, 2, 0),
    ] {
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let (x, w, b) = (f(values(m * k, 1)), f(values(n * k, 2)), f(values(n, 3)));
        let (xt, wt, bt) = (f(values(m * k, 4)), f(values(n * k, 5)), f(values(n, 6)));
        let (onto_w, onto_b) = (f(values(n * k, 7)), f(values(n, 8)));
        let factor = 0.37f32;
        let make =
            |start: usize, out: &mut [f32]| out.copy_from_slice(&w[start..start + out.len()]);
        let run = |weights: Weights<'_, f32>, onto: bool| {
            let (mut gx, mut gw, mut gb) = (vec![0f32; m * k], vec![9f32; n * k], vec![9f32; n]);
            let p = LayerPair {
                m,
                k,
                n,
                x: &x,
                w: weights,
                b: Some(&b),
                xt: &xt,
                wt: &wt,
                bt: Some(&bt),
                rows_per_group: rpg,
                len,
            };
            let grads = PairGrads {
                x: Some(&mut gx),
                w: Some(&mut gw),
                b: Some(&mut gb),
                onto: onto.then_some(GradOnto {
                    w: &onto_w,
                    b: Some(&onto_b),
                    factor,
                }),
                ..PairGrads::default()
            };
            let v = factored_squared_distance(p, grads);
            (v.to_bits(), gx, gw, gb)
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (v0, gx0, gw0, gb0) = run(Weights::Stored(&w), false);
        let (v1, gx1, gw1, gb1) = run(Weights::Made(&make), true);
        assert_eq!(v0, v1, "{m}×{k}×{n}: value");
        assert_eq!(bits(&gx0), bits(&gx1), "{m}×{k}×{n}: ∂/∂x");
        let added = |onto: &[f32], g: &[f32]| -> Vec<u32> {
            onto.iter()
                .zip(g)
                .map(|(&a, &d)| (a + factor * d).to_bits())
                .collect()
        };
        assert_eq!(added(&onto_w, &gw0), bits(&gw1), "{m}×{k}×{n}: ∂/∂W");
        assert_eq!(added(&onto_b, &gb0), bits(&gb1), "{m}×{k}×{n}: ∂/∂b");
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
