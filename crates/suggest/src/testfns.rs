//! Standard black-box test functions with known optima (the problems of
//! `../shared/bench/hpo/functions.py`), for tests and the HPO benchmark.

use crate::{Assignment, Distribution, Domain, Param, SearchSpace, Value};

/// A problem to minimise over a box of doubles.
#[derive(Debug, Clone, Copy)]
pub struct Problem {
    pub name: &'static str,
    /// (min, max) per dimension, parameters named x0, x1, ….
    pub bounds: &'static [(f64, f64)],
    pub f: fn(&[f64]) -> f64,
    pub f_opt: f64,
}

impl Problem {
    pub fn space(&self) -> SearchSpace {
        SearchSpace::new(
            self.bounds
                .iter()
                .enumerate()
                .map(|(i, &(min, max))| Param {
                    name: format!("x{i}"),
                    domain: Domain::Double {
                        min,
                        max,
                        step: None,
                        distribution: Distribution::Uniform,
                    },
                })
                .collect(),
        )
        .expect("valid test problem")
    }

    /// The objective at an assignment of [`Problem::space`].
    pub fn eval(&self, a: &Assignment) -> f64 {
        let x: Vec<f64> = a
            .iter()
            .map(|v| match v {
                Value::Double(x) => *x,
                Value::Int(i) => *i as f64,
                Value::Choice(c) => *c as f64,
            })
            .collect();
        (self.f)(&x)
    }
}

pub fn branin(x: &[f64]) -> f64 {
    use std::f64::consts::PI;
    let (x1, x2) = (x[0], x[1]);
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const H6_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const H6_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];
const H6_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

pub fn hartmann6(x: &[f64]) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6)
                .map(|j| H6_A[i][j] * (x[j] - H6_P[i][j]).powi(2))
                .sum();
            H6_ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

pub fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
        .sum()
}

pub const BRANIN: Problem = Problem {
    name: "branin2",
    bounds: &[(-5.0, 10.0), (0.0, 15.0)],
    f: branin,
    f_opt: 0.397_887_357_729_738_16,
};

pub const HARTMANN6: Problem = Problem {
    name: "hartmann6",
    bounds: &[(0.0, 1.0); 6],
    f: hartmann6,
    f_opt: -3.322_368_011_415_515,
};

pub const ROSENBROCK5: Problem = Problem {
    name: "rosenbrock5",
    bounds: &[(-5.0, 10.0); 5],
    f: rosenbrock,
    f_opt: 0.0,
};

pub const PROBLEMS: [Problem; 3] = [BRANIN, HARTMANN6, ROSENBROCK5];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optima_are_where_the_literature_says() {
        assert!((branin(&[std::f64::consts::PI, 2.275]) - BRANIN.f_opt).abs() < 1e-9);
        let h = [
            0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730054,
        ];
        assert!((hartmann6(&h) - HARTMANN6.f_opt).abs() < 1e-6);
        assert_eq!(rosenbrock(&[1.0; 5]), 0.0);
    }
}
