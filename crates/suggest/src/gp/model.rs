//! The Gaussian-process surrogate: a Matérn-5/2 kernel with one lengthscale
//! per parameter (ARD) and Gaussian noise, hyperparameters fitted by
//! maximising the marginal likelihood plus log-priors (MAP) with L-BFGS on
//! log-parameters, and a posterior that can take "kriging believer"
//! fantasies for running trials.
//!
//! Inputs are the encoded points of `super::Encoder`: numeric parameters in
//! [0, 1] and categorical ones as a choice index, whose kernel distance is
//! 0 when equal and 1 otherwise (one lengthscale per categorical parameter,
//! the "overlap" kernel, instead of one per one-hot column).

use super::lbfgs;

/// How one encoded input column enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A position in [0, 1]; distance (a - b)^2.
    Numeric,
    /// A choice index; distance 0 when equal, 1 otherwise.
    Categorical,
}

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// Fitted kernel hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hyper {
    /// 1 / lengthscale^2, per input column.
    pub inv_ls2: Vec<f64>,
    /// Signal variance.
    pub signal: f64,
    /// Noise variance (in standardised output units).
    pub noise: f64,
}

/// Matérn 5/2 of a squared scaled distance: (1 + s + s^2/3) e^-s, s = sqrt(5 r2),
/// and the factor g with dk/d(r2) = -g/2, i.e. g = (5/3)(1 + s) e^-s.
#[inline]
fn matern(r2: f64) -> (f64, f64) {
    let s = (5.0 * r2).sqrt();
    let e = (-s).exp();
    ((1.0 + s + s * s / 3.0) * e, 5.0 / 3.0 * (1.0 + s) * e)
}

#[inline]
fn sqdist(kinds: &[Kind], w: &[f64], a: &[f64], b: &[f64]) -> f64 {
    let mut r2 = 0.0;
    for d in 0..kinds.len() {
        let t = match kinds[d] {
            Kind::Numeric => {
                let u = a[d] - b[d];
                u * u
            }
            Kind::Categorical => f64::from(u8::from(a[d] != b[d])),
        };
        r2 += t * w[d];
    }
    r2
}

/// Priors and bounds of the hyperparameters (on their logarithms).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Priors {
    /// Mean and sd of ln(lengthscale) (log-normal prior).
    pub ls_mu: f64,
    pub ls_sd: f64,
    /// Mean and sd of ln(signal variance).
    pub signal_mu: f64,
    pub signal_sd: f64,
    /// Gamma(shape, rate) prior on the noise variance.
    pub noise_shape: f64,
    pub noise_rate: f64,
    /// Smallest noise variance: keeps the Cholesky factor well conditioned.
    pub noise_min: f64,
}

impl Priors {
    /// Lengthscale prior widening with the dimension (as in Hvarfner et al.,
    /// "Vanilla Bayesian optimization performs great in high dimensions",
    /// 2024): with more inputs, each one explains less of the variation, so
    /// the surrogate should start smoother.
    pub(crate) fn for_dim(dim: usize) -> Self {
        let d = dim.max(1) as f64;
        Priors {
            ls_mu: (0.2f64).ln() + 0.25 * d.ln(),
            ls_sd: 1.0,
            signal_mu: 0.0,
            signal_sd: 1.0,
            noise_shape: 1.1,
            noise_rate: 30.0,
            noise_min: 1e-6,
        }
    }

    fn lower(&self, p: usize) -> Vec<f64> {
        let mut lo = vec![(0.01f64).ln(); p];
        lo.push((0.05f64).ln());
        lo.push(self.noise_min.ln());
        lo
    }

    fn upper(&self, p: usize) -> Vec<f64> {
        let mut hi = vec![(20.0f64).ln(); p];
        hi.push((20.0f64).ln());
        hi.push((0.5f64).ln());
        hi
    }
}

/// Training data with the pairwise distances the fit needs, precomputed.
pub(crate) struct FitProblem<'a> {
    kinds: &'a [Kind],
    n: usize,
    y: Vec<f64>,
    /// Per pair (i < j), row-major, the per-column squared distance.
    pair_d: Vec<f64>,
    priors: Priors,
}

impl<'a> FitProblem<'a> {
    pub(crate) fn new(kinds: &'a [Kind], x: &[Vec<f64>], y: &[f64], priors: Priors) -> Self {
        let n = x.len();
        let p = kinds.len();
        let mut pair_d = Vec::with_capacity(n * n.saturating_sub(1) / 2 * p);
        for i in 0..n {
            for j in i + 1..n {
                for d in 0..p {
                    pair_d.push(match kinds[d] {
                        Kind::Numeric => (x[i][d] - x[j][d]).powi(2),
                        Kind::Categorical => f64::from(u8::from(x[i][d] != x[j][d])),
                    });
                }
            }
        }
        FitProblem {
            kinds,
            n,
            y: y.to_vec(),
            pair_d,
            priors,
        }
    }

    fn hyper(&self, theta: &[f64]) -> Hyper {
        let p = self.kinds.len();
        Hyper {
            inv_ls2: theta[..p].iter().map(|l| (-2.0 * l).exp()).collect(),
            signal: theta[p].exp(),
            noise: theta[p + 1].exp(),
        }
    }

    /// Negative log posterior of the log-hyperparameters `theta` =
    /// (ln lengthscale per column, ln signal, ln noise), and its gradient.
    pub(crate) fn neg_log_post(&self, theta: &[f64], grad: &mut [f64]) -> f64 {
        let p = self.kinds.len();
        let n = self.n;
        let h = self.hyper(theta);
        // K as a dense row-major matrix, and per pair the factor of dK/d r2.
        let mut k = vec![0.0; n * n];
        let mut gfac = Vec::with_capacity(n * n.saturating_sub(1) / 2);
        let mut idx = 0;
        for i in 0..n {
            for j in i + 1..n {
                let row = &self.pair_d[idx * p..(idx + 1) * p];
                let r2: f64 = row.iter().zip(&h.inv_ls2).map(|(a, b)| a * b).sum();
                let (m, g) = matern(r2);
                k[i * n + j] = h.signal * m;
                k[j * n + i] = h.signal * m;
                gfac.push(h.signal * g);
                idx += 1;
            }
            k[i * n + i] = h.signal + h.noise;
        }
        let Some(l) = dense::cholesky(&k, n) else {
            grad.iter_mut().for_each(|g| *g = 0.0);
            return f64::INFINITY;
        };
        let mut alpha = self.y.clone();
        dense::forward(&l, n, &mut alpha);
        dense::backward(&l, n, &mut alpha);
        let kinv = dense::inverse_from_cholesky(&l, n);
        let logdet_half: f64 = (0..n).map(|i| l[i * n + i].ln()).sum();
        let lml = -0.5 * self.y.iter().zip(&alpha).map(|(a, b)| a * b).sum::<f64>()
            - logdet_half
            - 0.5 * n as f64 * LN_2PI;

        // d lml / d theta = 1/2 tr(W dK/dtheta), W = alpha alpha^T - K^-1.
        let mut g_ls = vec![0.0; p];
        let mut g_signal = 0.0;
        let mut g_noise = 0.0;
        let mut idx = 0;
        for i in 0..n {
            let wii = alpha[i] * alpha[i] - kinv[i * n + i];
            g_signal += 0.5 * wii * h.signal;
            g_noise += 0.5 * wii * h.noise;
            for j in i + 1..n {
                let wij = alpha[i] * alpha[j] - kinv[i * n + j];
                // Off-diagonal pairs count twice in the trace, halved by the 1/2.
                g_signal += wij * k[i * n + j];
                let c = wij * gfac[idx];
                let row = &self.pair_d[idx * p..(idx + 1) * p];
                for d in 0..p {
                    g_ls[d] += c * row[d];
                }
                idx += 1;
            }
        }
        // dK_ij/d ln l_d = signal g (r2 contribution of d) w_d: chain rule of
        // r2 = sum_d D_d exp(-2 ln l_d) through dk/dr2 = -signal g / 2.
        for (g, w) in g_ls.iter_mut().zip(&h.inv_ls2) {
            *g *= w;
        }

        // Log priors.
        let pr = &self.priors;
        let mut lp = 0.0;
        for d in 0..p {
            let z = (theta[d] - pr.ls_mu) / pr.ls_sd;
            lp -= 0.5 * z * z;
            g_ls[d] -= z / pr.ls_sd;
        }
        let z = (theta[p] - pr.signal_mu) / pr.signal_sd;
        lp -= 0.5 * z * z;
        g_signal -= z / pr.signal_sd;
        // Gamma(shape, rate) on the noise variance v = e^theta (MAP in v).
        lp += (pr.noise_shape - 1.0) * theta[p + 1] - pr.noise_rate * h.noise;
        g_noise += (pr.noise_shape - 1.0) - pr.noise_rate * h.noise;

        for d in 0..p {
            grad[d] = -g_ls[d];
        }
        grad[p] = -g_signal;
        grad[p + 1] = -g_noise;
        -(lml + lp)
    }

    /// MAP hyperparameters: L-BFGS from `warm` (if given) and then from the
    /// first `starts` of a fixed set of starting points, each run limited
    /// to `max_evals` evaluations. Returns the hyperparameters, their
    /// log-parameters and the negative log posterior reached; `None` only if
    /// every start failed.
    pub(crate) fn fit(
        &self,
        warm: Option<&[f64]>,
        starts: usize,
        max_evals: usize,
    ) -> Option<Fitted> {
        let p = self.kinds.len();
        let lo = self.priors.lower(p);
        let hi = self.priors.upper(p);
        let mu = self.priors.ls_mu;
        // (ln lengthscale offset from the prior mean, ln signal, ln noise).
        let inits: [(f64, f64, f64); 4] = [
            (0.0, 0.0, -6.0),
            (-1.0, 0.0, -9.0),
            (1.0, 0.0, -4.0),
            (-2.0, 0.5, -12.0),
        ];
        let mut x0s: Vec<Vec<f64>> = warm.map(<[f64]>::to_vec).into_iter().collect();
        for &(dl, s, nz) in inits.iter().take(starts) {
            let mut x0 = vec![mu + dl; p];
            x0.push(s);
            x0.push(nz);
            x0s.push(x0);
        }
        let opt = lbfgs::Options {
            max_evals,
            first_step: 1.0,
            ftol: 1e-7,
            gtol: 1e-5,
        };
        let mut best: Option<lbfgs::Minimum> = None;
        for x0 in &x0s {
            let m = lbfgs::minimize(&mut |t, g| self.neg_log_post(t, g), x0, &lo, &hi, opt);
            if m.f.is_finite() && best.as_ref().is_none_or(|b| m.f < b.f) {
                best = Some(m);
            }
        }
        best.map(|m| Fitted {
            hyper: self.hyper(&m.x),
            theta: m.x,
            nlp: m.f,
        })
    }
}

/// The result of [`FitProblem::fit`].
#[derive(Debug, Clone)]
pub(crate) struct Fitted {
    pub hyper: Hyper,
    /// ln lengthscales, ln signal, ln noise.
    pub theta: Vec<f64>,
    /// Negative log posterior at `theta`.
    pub nlp: f64,
}

/// The posterior of a fitted GP, with the Cholesky factor kept as packed
/// lower-triangular rows so that fantasies can be appended in O(n^2).
#[derive(Debug, Clone)]
pub(crate) struct Posterior {
    kinds: Vec<Kind>,
    hyper: Hyper,
    /// Training inputs (observations, then fantasies), row-major.
    x: Vec<Vec<f64>>,
    y: Vec<f64>,
    /// Packed rows of L: row i holds `L[i][0..=i]` at offset i(i+1)/2.
    l: Vec<f64>,
    alpha: Vec<f64>,
}

impl Posterior {
    /// Conditions the GP on `(x, y)`. `None` if the kernel matrix is not
    /// positive definite even with the fitted noise.
    pub(crate) fn new(kinds: &[Kind], hyper: Hyper, x: Vec<Vec<f64>>, y: Vec<f64>) -> Option<Self> {
        let mut post = Posterior {
            kinds: kinds.to_vec(),
            hyper,
            x: Vec::with_capacity(x.len()),
            y: Vec::with_capacity(y.len()),
            l: Vec::new(),
            alpha: Vec::new(),
        };
        for (xi, yi) in x.into_iter().zip(y) {
            post.append(xi, yi)?;
        }
        post.refresh_alpha();
        Some(post)
    }

    #[cfg(test)]
    pub(crate) fn hyper(&self) -> &Hyper {
        &self.hyper
    }

    pub(crate) fn len(&self) -> usize {
        self.x.len()
    }

    fn row(&self, i: usize) -> &[f64] {
        let o = i * (i + 1) / 2;
        &self.l[o..o + i + 1]
    }

    /// Solves L v = b in place.
    fn forward(&self, b: &mut [f64]) {
        for i in 0..b.len() {
            let r = self.row(i);
            let s: f64 = r[..i].iter().zip(&b[..i]).map(|(a, c)| a * c).sum();
            b[i] = (b[i] - s) / r[i];
        }
    }

    /// Solves L^T v = b in place.
    fn backward(&self, b: &mut [f64]) {
        for i in (0..b.len()).rev() {
            let r = self.row(i);
            b[i] /= r[i];
            let bi = b[i];
            for (bj, lij) in b[..i].iter_mut().zip(&r[..i]) {
                *bj -= lij * bi;
            }
        }
    }

    /// Adds a training point by extending the Cholesky factor with one row.
    fn append(&mut self, xq: Vec<f64>, yq: f64) -> Option<()> {
        let mut c = self.kernel_vec(&xq);
        self.forward(&mut c);
        let diag2 = self.hyper.signal + self.hyper.noise - c.iter().map(|v| v * v).sum::<f64>();
        if diag2.is_nan() || diag2 <= 0.0 {
            return None;
        }
        c.push(diag2.sqrt());
        self.l.extend_from_slice(&c);
        self.x.push(xq);
        self.y.push(yq);
        Some(())
    }

    fn refresh_alpha(&mut self) {
        let mut a = self.y.clone();
        self.forward(&mut a);
        self.backward(&mut a);
        self.alpha = a;
    }

    /// Kriging believer: a running trial at `xq` is taken to return the
    /// posterior mean there. The mean elsewhere is unchanged; the variance
    /// near `xq` collapses, so the next suggestion of a batch goes elsewhere.
    pub(crate) fn add_fantasy(&mut self, xq: &[f64]) {
        let (mu, _) = self.predict(xq);
        // A fantasy on top of an existing point is already "known": skipping
        // it keeps the factor positive definite.
        if self.append(xq.to_vec(), mu).is_some() {
            self.refresh_alpha();
        }
    }

    fn kernel_vec(&self, xq: &[f64]) -> Vec<f64> {
        let h = &self.hyper;
        self.x
            .iter()
            .map(|xi| h.signal * matern(sqdist(&self.kinds, &h.inv_ls2, xq, xi)).0)
            .collect()
    }

    /// Posterior mean and variance of the latent function at `xq`.
    pub(crate) fn predict(&self, xq: &[f64]) -> (f64, f64) {
        let mut k = self.kernel_vec(xq);
        let mu: f64 = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        self.forward(&mut k);
        let var = self.hyper.signal - k.iter().map(|v| v * v).sum::<f64>();
        (mu, var.max(1e-12 * self.hyper.signal))
    }

    /// Mean and variance with their gradients with respect to the numeric
    /// columns of `xq` (categorical entries of the gradients are left 0).
    pub(crate) fn predict_grad(&self, xq: &[f64], dmu: &mut [f64], dvar: &mut [f64]) -> (f64, f64) {
        let h = &self.hyper;
        let n = self.x.len();
        let p = self.kinds.len();
        let mut k = Vec::with_capacity(n);
        let mut g = Vec::with_capacity(n);
        for xi in &self.x {
            let (m, gf) = matern(sqdist(&self.kinds, &h.inv_ls2, xq, xi));
            k.push(h.signal * m);
            g.push(h.signal * gf);
        }
        let mu: f64 = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let mut v = k;
        self.forward(&mut v);
        let var = h.signal - v.iter().map(|t| t * t).sum::<f64>();
        let mut beta = v;
        self.backward(&mut beta);
        dmu.iter_mut().for_each(|t| *t = 0.0);
        dvar.iter_mut().for_each(|t| *t = 0.0);
        // dk_i/dx_d = -g_i (x_d - x_id) w_d.
        for i in 0..n {
            let xi = &self.x[i];
            let (ca, cb) = (g[i] * self.alpha[i], g[i] * beta[i]);
            for d in 0..p {
                if self.kinds[d] == Kind::Numeric {
                    let diff = (xq[d] - xi[d]) * h.inv_ls2[d];
                    dmu[d] -= ca * diff;
                    // var = s - k^T K^-1 k: dvar = -2 (dk)^T beta.
                    dvar[d] += 2.0 * cb * diff;
                }
            }
        }
        let floor = 1e-12 * h.signal;
        if var < floor {
            dvar.iter_mut().for_each(|t| *t = 0.0);
        }
        (mu, var.max(floor))
    }
}

/// Dense linear algebra on row-major `n x n` slices, used instead of
/// nalgebra's `Cholesky` because the fit calls it ~50 times per suggestion:
/// with contiguous rows and unrolled inner products one evaluation of the
/// marginal likelihood and its gradient at n = 100 took half the time of
/// the same code on nalgebra (`cholesky()` + `inverse()`), measured here.
mod dense {
    fn dot(a: &[f64], b: &[f64]) -> f64 {
        // Four accumulators break the dependency chain.
        let mut s = [0.0; 4];
        let chunks = a.len() / 4;
        for c in 0..chunks {
            for k in 0..4 {
                s[k] += a[4 * c + k] * b[4 * c + k];
            }
        }
        let mut t = (s[0] + s[1]) + (s[2] + s[3]);
        for i in 4 * chunks..a.len() {
            t += a[i] * b[i];
        }
        t
    }

    /// Lower Cholesky factor L (row-major, upper part zero), or `None` if
    /// `k` is not numerically positive definite.
    pub(super) fn cholesky(k: &[f64], n: usize) -> Option<Vec<f64>> {
        let mut l = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let s = k[i * n + j] - dot(&l[i * n..i * n + j], &l[j * n..j * n + j]);
                if i == j {
                    if s.is_nan() || s <= 0.0 {
                        return None;
                    }
                    l[i * n + i] = s.sqrt();
                } else {
                    l[i * n + j] = s / l[j * n + j];
                }
            }
        }
        Some(l)
    }

    /// Solves L v = b in place.
    pub(super) fn forward(l: &[f64], n: usize, b: &mut [f64]) {
        for i in 0..n {
            b[i] = (b[i] - dot(&l[i * n..i * n + i], &b[..i])) / l[i * n + i];
        }
    }

    /// Solves L^T v = b in place.
    pub(super) fn backward(l: &[f64], n: usize, b: &mut [f64]) {
        for i in (0..n).rev() {
            b[i] /= l[i * n + i];
            let bi = b[i];
            for (bj, lij) in b[..i].iter_mut().zip(&l[i * n..i * n + i]) {
                *bj -= lij * bi;
            }
        }
    }

    /// K^-1 from the Cholesky factor of K: U = L^-T (upper, row-major rows
    /// are the columns of L^-1), then K^-1_ij = sum_k>=max(i,j) U_ik U_jk.
    pub(super) fn inverse_from_cholesky(l: &[f64], n: usize) -> Vec<f64> {
        // Columns of L^-1 by forward substitution, stored as rows of u.
        let mut u = vec![0.0; n * n];
        for j in 0..n {
            let col = &mut u[j * n..(j + 1) * n];
            col[j] = 1.0 / l[j * n + j];
            for i in j + 1..n {
                col[i] = -dot(&l[i * n + j..i * n + i], &col[j..i]) / l[i * n + i];
            }
        }
        let mut inv = vec![0.0; n * n];
        for i in 0..n {
            for j in i..n {
                let v = dot(&u[i * n + j..(i + 1) * n], &u[j * n + j..(j + 1) * n]);
                inv[i * n + j] = v;
                inv[j * n + i] = v;
            }
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> (Vec<Kind>, Vec<Vec<f64>>, Vec<f64>) {
        let kinds = vec![Kind::Numeric, Kind::Numeric, Kind::Categorical];
        let x: Vec<Vec<f64>> = (0..12)
            .map(|i| {
                let t = i as f64 / 11.0;
                vec![t, (7.0 * t).fract(), (i % 3) as f64]
            })
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|v| (6.0 * v[0]).sin() + v[1] * v[1] + 0.3 * v[2])
            .collect();
        let m = y.iter().sum::<f64>() / y.len() as f64;
        (kinds, x, y.iter().map(|v| v - m).collect())
    }

    #[test]
    fn marginal_likelihood_gradient_matches_finite_differences() {
        let (kinds, x, y) = data();
        let prob = FitProblem::new(&kinds, &x, &y, Priors::for_dim(3));
        let theta = vec![-1.0, -0.5, 0.3, 0.2, -5.0];
        let mut g = vec![0.0; 5];
        prob.neg_log_post(&theta, &mut g);
        for d in 0..5 {
            let e = 1e-6;
            let mut a = theta.clone();
            let mut b = theta.clone();
            a[d] += e;
            b[d] -= e;
            let mut tmp = vec![0.0; 5];
            let fd =
                (prob.neg_log_post(&a, &mut tmp) - prob.neg_log_post(&b, &mut tmp)) / (2.0 * e);
            assert!(
                (fd - g[d]).abs() < 1e-4 * (1.0 + fd.abs()),
                "d={d}: {} vs {fd}",
                g[d]
            );
        }
    }

    #[test]
    fn posterior_interpolates_training_data() {
        let (kinds, x, y) = data();
        let prob = FitProblem::new(&kinds, &x, &y, Priors::for_dim(3));
        let hyper = prob.fit(None, 3, 150).expect("fit").hyper;
        assert!(
            hyper.noise < 1e-2,
            "a noiseless function should get little noise: {hyper:?}"
        );
        let post = Posterior::new(&kinds, hyper, x.clone(), y.clone()).expect("posterior");
        let sd_y = (y.iter().map(|v| v * v).sum::<f64>() / y.len() as f64).sqrt();
        for (xi, yi) in x.iter().zip(&y) {
            let (mu, var) = post.predict(xi);
            assert!((mu - yi).abs() < 0.05 * sd_y, "mean {mu} vs {yi}");
            assert!(
                var < 0.05 * post.hyper().signal,
                "variance {var} at a training point"
            );
        }
        // Between the data the variance is larger than at it.
        let (_, var) = post.predict(&[0.5, 0.05, 1.0]);
        assert!(var > 0.05 * post.hyper().signal, "{var} {:?}", post.hyper());
    }

    #[test]
    fn predictive_gradient_matches_finite_differences() {
        let (kinds, x, y) = data();
        let hyper = Hyper {
            inv_ls2: vec![4.0, 2.0, 1.0],
            signal: 1.3,
            noise: 1e-4,
        };
        let post = Posterior::new(&kinds, hyper, x, y).expect("posterior");
        let xq = [0.37, 0.61, 1.0];
        let (mut dmu, mut dvar) = (vec![0.0; 3], vec![0.0; 3]);
        post.predict_grad(&xq, &mut dmu, &mut dvar);
        for d in 0..2 {
            let e = 1e-6;
            let mut a = xq;
            let mut b = xq;
            a[d] += e;
            b[d] -= e;
            let (ma, va) = post.predict(&a);
            let (mb, vb) = post.predict(&b);
            assert!((dmu[d] - (ma - mb) / (2.0 * e)).abs() < 1e-5, "dmu {d}");
            assert!((dvar[d] - (va - vb) / (2.0 * e)).abs() < 1e-5, "dvar {d}");
        }
    }

    #[test]
    fn a_fantasy_keeps_the_mean_and_removes_the_variance() {
        let (kinds, x, y) = data();
        let hyper = Hyper {
            inv_ls2: vec![4.0, 2.0, 1.0],
            signal: 1.0,
            noise: 1e-6,
        };
        let mut post = Posterior::new(&kinds, hyper, x, y).expect("posterior");
        let xq = [0.33, 0.9, 2.0];
        let probe = [0.34, 0.88, 2.0];
        let (mu0, var0) = post.predict(&probe);
        post.add_fantasy(&xq);
        let (mu1, var1) = post.predict(&probe);
        assert!((mu0 - mu1).abs() < 1e-6, "{mu0} {mu1}");
        assert!(var1 < 0.2 * var0, "{var0} -> {var1}");
        assert_eq!(post.len(), 13);
    }
}
