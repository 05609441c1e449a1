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
            w: &w,
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
            w: &w,
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
                w: &ws,
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
