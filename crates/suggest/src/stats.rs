//! Normal-distribution helpers shared by the samplers: log-CDF, probability
//! mass of an interval (stable in the tails) and the inverse CDF.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// `ln(1/sqrt(2π))`.
pub(crate) const LN_INV_SQRT_2PI: f64 = -0.918_938_533_204_672_8;

/// `ln Φ(x)` for the standard normal CDF Φ, accurate far into the lower tail.
pub(crate) fn log_ndtr(x: f64) -> f64 {
    if x > 6.0 {
        // Φ(x) = 1 - Φ(-x) with Φ(-x) < 1e-9: ln(1 - t) ≈ -t.
        return -0.5 * libm::erfc(x * FRAC_1_SQRT_2);
    }
    if x > -20.0 {
        return (0.5 * libm::erfc(-x * FRAC_1_SQRT_2)).ln();
    }
    // Asymptotic series: Φ(x) ≈ φ(x)/(-x) · (1 - 1/x² + 3/x⁴ - 15/x⁶).
    let x2 = x * x;
    let series = 1.0 - 1.0 / x2 + 3.0 / (x2 * x2) - 15.0 / (x2 * x2 * x2);
    -0.5 * x2 + LN_INV_SQRT_2PI - (-x).ln() + series.ln()
}

/// `ln(Φ(b) - Φ(a))` for `a <= b`, without cancellation in either tail.
pub(crate) fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if b <= a {
        return f64::NEG_INFINITY;
    }
    if a > 0.0 {
        // Mirror the upper tail onto the lower one, where Φ is small and exact.
        return log_gauss_mass(-b, -a);
    }
    if b <= 0.0 {
        // Both in the lower tail: ln Φ(b) + ln(1 - Φ(a)/Φ(b)).
        let (la, lb) = (log_ndtr(a), log_ndtr(b));
        return lb + (-(la - lb).exp()).ln_1p();
    }
    // a <= 0 < b: the mass is 1 minus both tails.
    let left = 0.5 * libm::erfc(-a * FRAC_1_SQRT_2);
    let right = 0.5 * libm::erfc(b * FRAC_1_SQRT_2);
    (1.0 - left - right).max(f64::MIN_POSITIVE).ln()
}

/// Φ⁻¹(p), the standard normal quantile (Acklam's rational approximation
/// refined by one Halley step; relative error around 1e-15).
pub(crate) fn ndtri(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let x = if p < 0.024_25 {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - 0.024_25 {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step on Φ(x) - p.
    let e = 0.5 * libm::erfc(-x * FRAC_1_SQRT_2) - p;
    let u = e * (2.0 * PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

/// `ln(Σ exp(v))`, stable; `-inf` for an empty or all `-inf` input.
pub(crate) fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ndtr(x: f64) -> f64 {
        0.5 * libm::erfc(-x * FRAC_1_SQRT_2)
    }

    #[test]
    fn log_ndtr_matches_the_cdf_and_its_tail() {
        for x in [-10.0, -3.0, -0.5, 0.0, 1.0, 4.0] {
            assert!((log_ndtr(x) - ndtr(x).ln()).abs() < 1e-12, "{x}");
        }
        // ln Φ(-30) = -454.3212439563... (Python's math.erfc agrees).
        assert!((log_ndtr(-30.0) + 454.321_243_956_3).abs() < 1e-9);
        // Continuity at the switch to the asymptotic series.
        assert!((log_ndtr(-20.0 - 1e-9) - log_ndtr(-20.0 + 1e-9)).abs() < 1e-6);
    }

    #[test]
    fn gauss_mass_is_the_cdf_difference_even_in_the_tails() {
        let check = |a: f64, b: f64| {
            let want = (ndtr(b) - ndtr(a)).ln();
            assert!((log_gauss_mass(a, b) - want).abs() < 1e-9, "[{a}, {b}]");
        };
        check(-1.0, 1.0);
        check(-3.0, -2.0);
        check(2.0, 3.0);
        check(0.1, 0.2);
        // Far tail, where the plain difference would be 0 - 0.
        let m = log_gauss_mass(40.0, 41.0);
        assert!(m.is_finite() && m < -800.0);
        assert_eq!(log_gauss_mass(1.0, 1.0), f64::NEG_INFINITY);
    }

    #[test]
    fn ndtri_inverts_the_cdf() {
        for p in [1e-12, 1e-5, 0.01, 0.3, 0.5, 0.77, 0.99, 1.0 - 1e-9] {
            let x = ndtri(p);
            assert!(((ndtr(x) - p) / p).abs() < 1e-9, "{p} -> {x}");
        }
        assert_eq!(ndtri(0.5), 0.0);
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
    }
}
