//! eˣ − 1 in f32 without a library call, so that elementwise loops over it (the ELU of a
//! hypernetwork's hidden layers) compile to vector instructions.
//!
//! x = k·ln 2 + r with k = round(x / ln 2) and |r| ≤ ln 2 / 2 (Cody–Waite: ln 2 split in a
//! high part with few significant bits, so k·ln2_hi is exact); eʳ − 1 by its Taylor
//! polynomial to r⁸ (truncation below 7e-10 relative); then eˣ − 1 = 2ᵏ(eʳ − 1) + (2ᵏ − 1).
//! With k = 0 the result is the polynomial itself, accurate near 0; for k ≠ 0 it is at least
//! 0.29 in magnitude, so the sum does not cancel. 2ᵏ is built from its exponent bits, and k
//! is read off the bits of a float rounded by adding 1.5·2²³: no float-to-integer conversion.
//! Maximum error 1 ulp (a test checks it against f64 over [−20, 88] and near 0).

/// ln 2, high part: 355/512 = 0.693359375 (9 significant bits, so k·LN2_HI is exact for
/// |k| < 2¹⁵).
const LN2_HI: f32 = 355.0 / 512.0;
/// ln 2 − LN2_HI.
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2²³: adding it rounds a float of magnitude below 2²² to an integer (to nearest, ties
/// to even), whose value is then in the low bits of the sum.
const ROUNDER: f32 = 12_582_912.0;
/// Below this eˣ − 1 rounds to −1 in f32 (e⁻¹⁸ < 2⁻²⁵); inputs are clamped here so that 2ᵏ
/// stays a normal number.
const LOW: f32 = -18.0;
/// Above this eˣ overflows f32.
const HIGH: f32 = 88.722_84;

/// eˣ − 1 for f32: −1 below about −17.3, +∞ above 88.72, NaN for NaN, ±0 for ±0.
#[inline]
pub(crate) fn exp_m1_f32(x: f32) -> f32 {
    let c = x.clamp(LOW, HIGH);
    let shifted = c * std::f32::consts::LOG2_E + ROUNDER;
    let k = shifted - ROUNDER;
    // k in [−26, 128]: its integer value is the difference of the sum's bits from ROUNDER's.
    let ki = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let r = (c - k * LN2_HI) - k * LN2_LO;
    // eʳ − 1 = r + r²(1/2 + r(1/6 + … + r/8!)).
    let q = 1.0 / 40_320.0;
    let q = q * r + 1.0 / 5_040.0;
    let q = q * r + 1.0 / 720.0;
    let q = q * r + 1.0 / 120.0;
    let q = q * r + 1.0 / 24.0;
    let q = q * r + 1.0 / 6.0;
    let q = q * r + 0.5;
    let p = r + (r * r) * q;
    // 2ᵏ for k up to 127; k = 128 only for x just below HIGH: 2¹²⁷ then, and the result
    // doubled (exactly, or to +∞ where eˣ rounds above f32::MAX).
    let scale = f32::from_bits(((ki.min(127) + 127) as u32) << 23);
    let y = scale * p + (scale - 1.0);
    let y = if ki > 127 { y * 2.0 } else { y };
    if x == 0.0 {
        x
    } else if x > HIGH {
        f32::INFINITY
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between `a` and the f32 nearest to `exact`.
    fn ulps(a: f32, exact: f64) -> u32 {
        let e = exact as f32;
        if a == e {
            return 0;
        }
        let key = |v: f32| {
            let b = v.to_bits() as i32;
            if b < 0 {
                i32::MIN - b
            } else {
                b
            }
        };
        key(a).abs_diff(key(e))
    }

    #[test]
    fn within_one_ulp_of_the_f64_result_over_the_range() {
        let mut worst = (0, 0.0f32);
        let n = 2_000_000;
        for i in 0..=n {
            let x = -20.0 + 108.0 * i as f32 / n as f32;
            let u = ulps(exp_m1_f32(x), (x as f64).exp_m1());
            if u > worst.0 {
                worst = (u, x);
            }
        }
        // Near 0, where accuracy is relative: [−1e-3, 1e-3] in steps of 1e-8.
        for i in -100_000..=100_000 {
            let x = i as f32 * 1e-8;
            let u = ulps(exp_m1_f32(x), (x as f64).exp_m1());
            if u > worst.0 {
                worst = (u, x);
            }
        }
        assert!(worst.0 <= 1, "{} ulps at x = {}", worst.0, worst.1);
    }

    #[test]
    fn special_values() {
        assert_eq!(exp_m1_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(exp_m1_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert!(exp_m1_f32(f32::NAN).is_nan());
        assert_eq!(exp_m1_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(exp_m1_f32(-18.0), -1.0);
        assert_eq!(exp_m1_f32(-1e30), -1.0);
        assert_eq!(exp_m1_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_m1_f32(89.0), f32::INFINITY);
        assert!(exp_m1_f32(88.72).is_finite());
        assert_eq!(exp_m1_f32(1e-30), 1e-30);
        assert_eq!(exp_m1_f32(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
        assert!(ulps(exp_m1_f32(1.0), 1f64.exp_m1()) <= 1);
        assert!(ulps(exp_m1_f32(-1.0), (-1f64).exp_m1()) <= 1);
    }
}
