//! A small box-constrained L-BFGS (projected quasi-Newton with Armijo
//! backtracking), enough for the ~10-parameter problems of this module: the
//! kernel hyperparameters and the acquisition's position in the unit box.

/// Limits for one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// Most objective evaluations (the unit of cost), line searches included.
    pub max_evals: usize,
    /// Largest coordinate change of the very first step (before curvature is known).
    pub first_step: f64,
    /// Stop when one step improves the objective by less than this, relative.
    pub ftol: f64,
    /// Stop when the projected gradient's largest entry is below this.
    pub gtol: f64,
}

/// Result of one run.
#[derive(Debug, Clone)]
pub(crate) struct Minimum {
    pub x: Vec<f64>,
    pub f: f64,
}

const MEMORY: usize = 8;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Minimises `f` (which writes its gradient into the second argument and
/// returns the value; a non-finite value means "outside the domain") over
/// the box `[lo, hi]`, starting at `x0`.
pub(crate) fn minimize(
    f: &mut dyn FnMut(&[f64], &mut [f64]) -> f64,
    x0: &[f64],
    lo: &[f64],
    hi: &[f64],
    opt: Options,
) -> Minimum {
    let n = x0.len();
    let project = |x: &mut [f64]| {
        for i in 0..n {
            x[i] = x[i].clamp(lo[i], hi[i]);
        }
    };
    let mut x = x0.to_vec();
    project(&mut x);
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut evals = 1;
    if !fx.is_finite() {
        return Minimum { x, f: fx };
    }
    let mut s_mem: Vec<Vec<f64>> = Vec::new();
    let mut y_mem: Vec<Vec<f64>> = Vec::new();
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    while evals < opt.max_evals {
        // Variables pinned at a bound by their gradient stay put this step.
        let free: Vec<bool> = (0..n)
            .map(|i| !((x[i] <= lo[i] && g[i] > 0.0) || (x[i] >= hi[i] && g[i] < 0.0)))
            .collect();
        let pg: Vec<f64> = (0..n).map(|i| if free[i] { g[i] } else { 0.0 }).collect();
        if pg.iter().all(|v| v.abs() < opt.gtol) {
            break;
        }
        // Two-loop recursion on the free variables.
        let mut q = pg.clone();
        let mut alphas = Vec::with_capacity(s_mem.len());
        for (s, y) in s_mem.iter().zip(&y_mem).rev() {
            let a = dot(s, &q) / dot(s, y);
            for i in 0..n {
                q[i] -= a * y[i];
            }
            alphas.push(a);
        }
        let gamma = match (s_mem.last(), y_mem.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0,
        };
        for v in &mut q {
            *v *= gamma;
        }
        for ((s, y), a) in s_mem.iter().zip(&y_mem).zip(alphas.iter().rev()) {
            let b = dot(y, &q) / dot(s, y);
            for i in 0..n {
                q[i] += s[i] * (a - b);
            }
        }
        let mut d: Vec<f64> = (0..n).map(|i| if free[i] { -q[i] } else { 0.0 }).collect();
        if dot(&d, &pg) >= 0.0 {
            d = pg.iter().map(|v| -v).collect();
            s_mem.clear();
            y_mem.clear();
        }
        let mut t = if s_mem.is_empty() {
            let m = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            if m > 0.0 {
                (opt.first_step / m).min(1.0)
            } else {
                1.0
            }
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..30 {
            if evals >= opt.max_evals {
                break;
            }
            for i in 0..n {
                xn[i] = x[i] + t * d[i];
            }
            project(&mut xn);
            let gd: f64 = (0..n).map(|i| g[i] * (xn[i] - x[i])).sum();
            if gd >= 0.0 {
                // The projection left no descent along this direction.
                t *= 0.5;
                continue;
            }
            let fnew = f(&xn, &mut gn);
            evals += 1;
            if fnew.is_finite() && fnew <= fx + 1e-4 * gd {
                accepted = Some(fnew);
                break;
            }
            t *= if fnew.is_finite() { 0.5 } else { 0.1 };
        }
        let Some(fnew) = accepted else { break };
        let s: Vec<f64> = (0..n).map(|i| xn[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
        let sy = dot(&s, &y);
        if sy > 1e-12 * dot(&s, &s).sqrt() * dot(&y, &y).sqrt() {
            if s_mem.len() == MEMORY {
                s_mem.remove(0);
                y_mem.remove(0);
            }
            s_mem.push(s);
            y_mem.push(y);
        }
        let improvement = fx - fnew;
        std::mem::swap(&mut x, &mut xn);
        std::mem::swap(&mut g, &mut gn);
        fx = fnew;
        if improvement <= opt.ftol * fx.abs().max(1.0) {
            break;
        }
    }
    Minimum { x, f: fx }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_constrained_minimum_of_a_rosenbrock_valley() {
        // Unconstrained minimum (1, 1) lies outside the box; the constrained
        // one sits on the bound x0 = 0.5 at x1 = 0.25.
        let mut f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let opt = Options {
            max_evals: 500,
            first_step: 0.1,
            ftol: 0.0,
            gtol: 1e-9,
        };
        let m = minimize(&mut f, &[-1.0, 1.0], &[-2.0, -2.0], &[0.5, 2.0], opt);
        assert!(
            (m.x[0] - 0.5).abs() < 1e-6 && (m.x[1] - 0.25).abs() < 1e-4,
            "{:?}",
            m.x
        );
        let m = minimize(&mut f, &[-1.0, 1.0], &[-2.0, -2.0], &[2.0, 2.0], opt);
        assert!(
            (m.x[0] - 1.0).abs() < 1e-4 && (m.x[1] - 1.0).abs() < 1e-4,
            "{:?}",
            m.x
        );
    }
}
