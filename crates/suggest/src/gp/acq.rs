//! Acquisition functions on the GP posterior, written in log space where the
//! plain form underflows (log-EI and log-PI after Ament et al., "Unexpected
//! Improvements to Expected Improvement", NeurIPS 2023): far from the
//! incumbent EI is below 1e-300 and its gradient vanishes, so a local
//! optimiser started there would never move; its logarithm stays smooth.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// ln(sqrt(2 pi)).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Which acquisition to maximise. All of them are "higher is better".
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Acquisition {
    /// ln E[max(best - xi - f, 0)].
    LogEi { xi: f64 },
    /// ln P[f < best - xi].
    LogPi { xi: f64 },
    /// -(mu - kappa sigma): the negated lower confidence bound.
    Lcb { kappa: f64 },
}

impl Acquisition {
    /// The acquisition at a point with posterior mean `mu` and variance `var`
    /// (standardised units), given the incumbent `best`.
    pub(crate) fn value(self, mu: f64, var: f64, best: f64) -> f64 {
        self.value_grad(mu, var, best).0
    }

    /// The acquisition and its partial derivatives with respect to the
    /// posterior mean and variance: `(a, da/dmu, da/dvar)`.
    pub(crate) fn value_grad(self, mu: f64, var: f64, best: f64) -> (f64, f64, f64) {
        let var = var.max(1e-18);
        let sd = var.sqrt();
        match self {
            Acquisition::LogEi { xi } => {
                let z = (best - xi - mu) / sd;
                let (lh, dlh) = log_h(z);
                // a = ln h(z) + ln sd; dz/dmu = -1/sd; dz/dsd = -z/sd.
                let a = lh + sd.ln();
                let da_dmu = -dlh / sd;
                let da_dsd = (1.0 - dlh * z) / sd;
                (a, da_dmu, da_dsd / (2.0 * sd))
            }
            Acquisition::LogPi { xi } => {
                let z = (best - xi - mu) / sd;
                let (lp, dlp) = log_ndtr(z);
                (lp, -dlp / sd, -dlp * z / sd / (2.0 * sd))
            }
            Acquisition::Lcb { kappa } => (-mu + kappa * sd, -1.0, kappa / (2.0 * sd)),
        }
    }
}

/// erfcx(x) = exp(x^2) erfc(x) for x >= 0, from the Chebyshev fit of
/// Numerical Recipes (3rd ed., `Erf::erfccheb`), which computes
/// erfc(x) = t exp(-x^2 + P(t)): dropping the exp(-x^2) factor gives erfcx
/// without overflow or underflow, to about 1e-16 relative error.
fn erfcx_pos(x: f64) -> f64 {
    // The coefficients as published (a few digits beyond f64).
    #[allow(clippy::excessive_precision)]
    const COF: [f64; 28] = [
        -1.302_653_719_781_709_4,
        6.419_697_923_564_902_6e-1,
        1.947_647_320_418_583_6e-2,
        -9.561_514_786_808_631e-3,
        -9.465_953_444_820_36e-4,
        3.668_394_978_527_61e-4,
        4.252_332_480_690_7e-5,
        -2.027_857_811_253_4e-5,
        -1.624_290_004_647e-6,
        1.303_655_835_580e-6,
        1.562_644_172_2e-8,
        -8.523_809_591_5e-8,
        6.529_054_439e-9,
        5.059_343_495e-9,
        -9.913_641_56e-10,
        -2.273_651_22e-10,
        9.646_791_1e-11,
        2.394_038e-12,
        -6.886_027e-12,
        8.944_87e-13,
        3.130_92e-13,
        -1.127_08e-13,
        3.81e-16,
        7.106e-15,
        -1.523e-15,
        -9.4e-17,
        1.21e-16,
        -2.8e-17,
    ];
    debug_assert!(x >= 0.0);
    let t = 2.0 / (2.0 + x);
    let ty = 4.0 * t - 2.0;
    let (mut d, mut dd) = (0.0, 0.0);
    for &c in COF[1..].iter().rev() {
        let tmp = d;
        d = ty * d - dd + c;
        dd = tmp;
    }
    t * (0.5 * (COF[0] + ty * d) - dd).exp()
}

/// erfc(x) for any real x.
pub(crate) fn erfc(x: f64) -> f64 {
    if x >= 0.0 {
        erfcx_pos(x) * (-x * x).exp()
    } else {
        2.0 - erfcx_pos(-x) * (-x * x).exp()
    }
}

/// Standard normal CDF.
pub(crate) fn ndtr(z: f64) -> f64 {
    0.5 * erfc(-z * FRAC_1_SQRT_2)
}

/// Phi(z) / phi(z) for z <= 0 (Mills' ratio of the lower tail), without
/// underflow: sqrt(pi/2) erfcx(-z/sqrt(2)).
fn mills_lower(z: f64) -> f64 {
    (PI / 2.0).sqrt() * erfcx_pos(-z * FRAC_1_SQRT_2)
}

/// ln Phi(z) and its derivative phi(z)/Phi(z).
pub(crate) fn log_ndtr(z: f64) -> (f64, f64) {
    if z < -1.0 {
        let r = mills_lower(z);
        // Phi = phi r.
        (-0.5 * z * z - LN_SQRT_2PI + r.ln(), 1.0 / r)
    } else {
        let p = ndtr(z);
        let phi = (-0.5 * z * z - LN_SQRT_2PI).exp();
        // For large z, Phi = 1 - Phi(-z): ln_1p keeps the tiny complement.
        let lp = if z > 3.0 { (-ndtr(-z)).ln_1p() } else { p.ln() };
        (lp, phi / p)
    }
}

/// ln h(z) with h(z) = phi(z) + z Phi(z) (EI = sd h(z)), and its derivative
/// h'(z)/h(z) = Phi(z)/h(z).
pub(crate) fn log_h(z: f64) -> (f64, f64) {
    if z > -1.0 {
        let p = ndtr(z);
        let phi = (-0.5 * z * z - LN_SQRT_2PI).exp();
        let h = phi + z * p;
        (h.ln(), p / h)
    } else {
        // h = phi (1 + z r) with r = Phi/phi. 1 + z r cancels for very
        // negative z, where its asymptotic series is exact to rounding.
        let (one_zr, r) = if z < -40.0 {
            let w = 1.0 / (z * z);
            let s = w * (1.0 - w * (3.0 - w * (15.0 - w * 105.0)));
            let r = -(1.0 - w * (1.0 - w * (3.0 - w * 15.0))) / z;
            (s, r)
        } else {
            let r = mills_lower(z);
            (1.0 + z * r, r)
        };
        (-0.5 * z * z - LN_SQRT_2PI + one_zr.ln(), r / one_zr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) {
        assert!((a - b).abs() <= rel * b.abs().max(1e-300), "{a} vs {b}");
    }

    #[test]
    fn erfc_matches_reference_values() {
        // Reference values from Python's math.erfc / scipy.special.erfcx.
        close(erfc(0.0), 1.0, 1e-15);
        close(erfc(0.5), 0.479_500_122_186_953_5, 1e-14);
        close(erfc(-1.3), 1.934_007_944_940_652, 1e-14);
        close(erfc(3.0), 2.209_049_699_858_544e-5, 1e-13);
        close(erfc(10.0), 2.088_487_583_762_545e-45, 1e-12);
        close(erfcx_pos(30.0), 0.018_795_888_861_416_75, 1e-13);
        close(erfcx_pos(1e6), 5.641_895_835_474_742e-7, 1e-12);
    }

    #[test]
    fn log_h_is_smooth_across_branches_and_far_out() {
        for &z in &[-1.0 - 1e-9, -40.0 - 1e-9] {
            let (a, da) = log_h(z);
            let (b, db) = log_h(z + 2e-9);
            assert!((a - b).abs() < 1e-6, "{z}: {a} {b}");
            assert!((da - db).abs() < 1e-4 * da.abs(), "{z}: {da} {db}");
        }
        // h(z) = phi(z) (1/z^2 - 3/z^4 + ...) for z -> -inf.
        close(
            log_h(-1e3).0,
            -5e5 - LN_SQRT_2PI - 2.0 * 1e3f64.ln() + (-3e-6f64).ln_1p(),
            1e-14,
        );
        // h(0) = phi(0).
        close(log_h(0.0).0, -LN_SQRT_2PI, 1e-14);
        // Derivative against a finite difference.
        for &z in &[-30.0, -5.0, -0.5, 2.0] {
            let e = 1e-6;
            let fd = (log_h(z + e).0 - log_h(z - e).0) / (2.0 * e);
            close(log_h(z).1, fd, 1e-5);
        }
    }

    #[test]
    fn log_ndtr_matches_direct_form_and_tails() {
        close(log_ndtr(0.0).0, 0.5f64.ln(), 1e-15);
        close(log_ndtr(-2.0).0, 0.022_750_131_948_179_2f64.ln(), 1e-12);
        // ln Phi(-40) = -804.6084420137538 (mpmath).
        close(log_ndtr(-40.0).0, -804.608_442_013_753_8, 1e-12);
        assert!(log_ndtr(10.0).0 < 0.0 && log_ndtr(10.0).0 > -1e-20);
    }

    #[test]
    fn acquisition_gradients_match_finite_differences() {
        for acq in [
            Acquisition::LogEi { xi: 0.0 },
            Acquisition::LogPi { xi: 0.01 },
            Acquisition::Lcb { kappa: 1.96 },
        ] {
            for &(mu, var) in &[(0.3, 0.04), (-1.0, 1.0), (4.0, 0.01)] {
                let (_, dmu, dvar) = acq.value_grad(mu, var, -0.5);
                let e = 1e-7;
                let fmu = (acq.value(mu + e, var, -0.5) - acq.value(mu - e, var, -0.5)) / (2.0 * e);
                let fvar =
                    (acq.value(mu, var + e, -0.5) - acq.value(mu, var - e, -0.5)) / (2.0 * e);
                assert!(
                    (dmu - fmu).abs() < 1e-4 * (1.0 + fmu.abs()),
                    "{acq:?} {mu} {var}: {dmu} {fmu}"
                );
                assert!(
                    (dvar - fvar).abs() < 1e-4 * (1.0 + fvar.abs()),
                    "{acq:?} {mu} {var}: {dvar} {fvar}"
                );
            }
        }
    }
}
