//! The search space: Katib's `spec.parameters`, already parsed into numbers.

/// Katib's `feasibleSpace.distribution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Distribution {
    #[default]
    Uniform,
    LogUniform,
    /// Normal with mean (min+max)/2 and sigma (max-min)/6, clipped to [min, max]
    /// (hyperopt's mapping, which Katib uses).
    Normal,
    /// Log-normal with the same rule applied to ln(min), ln(max).
    LogNormal,
}

/// The feasible values of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    Double {
        min: f64,
        max: f64,
        step: Option<f64>,
        distribution: Distribution,
    },
    Int {
        min: i64,
        max: i64,
        step: Option<i64>,
        distribution: Distribution,
    },
    /// `parameterType: discrete`: a list of numbers, kept as written.
    Discrete { list: Vec<String>, values: Vec<f64> },
    /// `parameterType: categorical`: a list of strings.
    Categorical { list: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub domain: Domain,
}

/// Parameters in the experiment's order; assignments follow the same order.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    pub params: Vec<Param>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parameter {name:?}: {message}")]
pub struct SpaceError {
    pub name: String,
    pub message: String,
}

impl SearchSpace {
    /// Checks the invariants every algorithm relies on (min < max, finite
    /// numbers, positive steps, log distributions above zero, non-empty lists).
    pub fn new(params: Vec<Param>) -> Result<Self, SpaceError> {
        for p in &params {
            let err = |message: String| SpaceError {
                name: p.name.clone(),
                message,
            };
            match &p.domain {
                Domain::Double {
                    min,
                    max,
                    step,
                    distribution,
                } => {
                    if !min.is_finite() || !max.is_finite() {
                        return Err(err("min and max must be finite numbers".into()));
                    }
                    if min > max {
                        return Err(err(format!("min {min} is greater than max {max}")));
                    }
                    if let Some(s) = step
                        && !(s.is_finite() && *s > 0.0)
                    {
                        return Err(err(format!("step {s} must be a positive number")));
                    }
                    if matches!(
                        distribution,
                        Distribution::LogUniform | Distribution::LogNormal
                    ) && *min <= 0.0
                    {
                        return Err(err(format!("min {min} must be > 0 for a log distribution")));
                    }
                }
                Domain::Int {
                    min,
                    max,
                    step,
                    distribution,
                } => {
                    if min > max {
                        return Err(err(format!("min {min} is greater than max {max}")));
                    }
                    if let Some(s) = step
                        && *s <= 0
                    {
                        return Err(err(format!("step {s} must be a positive integer")));
                    }
                    if matches!(
                        distribution,
                        Distribution::LogUniform | Distribution::LogNormal
                    ) && *min <= 0
                    {
                        return Err(err(format!("min {min} must be > 0 for a log distribution")));
                    }
                }
                Domain::Discrete { list, values } => {
                    if list.is_empty() || list.len() != values.len() {
                        return Err(err("list must not be empty".into()));
                    }
                }
                Domain::Categorical { list } => {
                    if list.is_empty() {
                        return Err(err("list must not be empty".into()));
                    }
                }
            }
        }
        Ok(Self { params })
    }
}

use crate::{Assignment, Value};
use rand::{Rng, RngExt};
use rand_distr::{Distribution as _, Normal};

impl Param {
    /// Whether the parameter is numeric (double or int), i.e. has a position
    /// in the unit interval ([`Param::to_unit`]); lists do not.
    pub fn is_numeric(&self) -> bool {
        matches!(self.domain, Domain::Double { .. } | Domain::Int { .. })
    }

    /// Number of choices of a discrete or categorical parameter.
    pub fn choices(&self) -> Option<usize> {
        match &self.domain {
            Domain::Discrete { list, .. } | Domain::Categorical { list } => Some(list.len()),
            _ => None,
        }
    }

    fn log_scale(&self) -> bool {
        match self.domain {
            Domain::Double { distribution, .. } | Domain::Int { distribution, .. } => {
                matches!(
                    distribution,
                    Distribution::LogUniform | Distribution::LogNormal
                )
            }
            _ => false,
        }
    }

    /// The numeric range in the space the algorithms model: `ln` for log
    /// distributions. Stepped parameters (every int, doubles with `step`) are
    /// widened by half a step on each side of their first and last grid point,
    /// so that snapping gives every grid point the same share of the interval.
    fn model_range(&self) -> Option<(f64, f64)> {
        let (lo, hi) = match &self.domain {
            Domain::Double {
                min,
                max,
                step: None,
                ..
            } => (*min, *max),
            Domain::Double {
                min, step: Some(s), ..
            } => {
                let top = min + self.grid_steps()? as f64 * s;
                (min - s / 2.0, top + s / 2.0)
            }
            Domain::Int { min, step, .. } => {
                let s = step.unwrap_or(1) as f64;
                let top = *min as f64 + self.grid_steps()? as f64 * s;
                (*min as f64 - s / 2.0, top + s / 2.0)
            }
            _ => return None,
        };
        if self.log_scale() {
            // A log range must stay above zero (min > 0 is checked).
            let min = match self.domain {
                Domain::Double { min, .. } => min,
                Domain::Int { min, .. } => min as f64,
                _ => return None,
            };
            Some((lo.max(min / 2.0).ln(), hi.ln()))
        } else {
            Some((lo, hi))
        }
    }

    /// Index of the last grid point (`(max - min) / step`, rounded down) of a
    /// stepped parameter; `None` for continuous doubles and lists.
    fn grid_steps(&self) -> Option<u64> {
        match &self.domain {
            Domain::Double {
                min,
                max,
                step: Some(s),
                ..
            } => Some(((max - min) / s + 1e-9).floor() as u64),
            Domain::Int { min, max, step, .. } => Some(((max - min) / step.unwrap_or(1)) as u64),
            _ => None,
        }
    }

    /// Every feasible value in increasing order, when there are finitely
    /// many: ints (step 1 unless given), doubles with a `step`
    /// (`min + k·step` up to `max`, Katib's grid) and lists (every choice).
    /// `None` for a double without a step.
    pub fn grid(&self) -> Option<Vec<Value>> {
        match &self.domain {
            Domain::Double {
                min, step: Some(s), ..
            } => {
                let k = self.grid_steps()?;
                Some(
                    (0..=k)
                        .map(|k| Value::Double(self.tidy(min + k as f64 * s)))
                        .collect(),
                )
            }
            Domain::Int { min, step, .. } => {
                let k = self.grid_steps()? as i64;
                Some(
                    (0..=k)
                        .map(|k| Value::Int(min + k * step.unwrap_or(1)))
                        .collect(),
                )
            }
            Domain::Discrete { list, .. } | Domain::Categorical { list } => {
                Some((0..list.len()).map(Value::Choice).collect())
            }
            Domain::Double { step: None, .. } => None,
        }
    }

    /// The interval of unit positions that [`Param::from_unit`] snaps onto
    /// `v`, for stepped parameters (ints, doubles with a step); `None` for
    /// continuous doubles and lists. Used to turn densities into
    /// probability masses.
    pub fn unit_bin(&self, v: &Value) -> Option<(f64, f64)> {
        let (x, half) = match (&self.domain, v) {
            (Domain::Double { step: Some(s), .. }, Value::Double(x)) => (*x, s / 2.0),
            (Domain::Int { step, .. }, Value::Int(i)) => {
                (*i as f64, step.unwrap_or(1) as f64 / 2.0)
            }
            _ => return None,
        };
        let (lo, hi) = self.model_range()?;
        if hi <= lo {
            return Some((0.0, 1.0));
        }
        let pos = |y: f64| {
            let y = if self.log_scale() {
                y.max(f64::MIN_POSITIVE).ln()
            } else {
                y
            };
            ((y - lo) / (hi - lo)).clamp(0.0, 1.0)
        };
        Some((pos(x - half), pos(x + half)))
    }

    /// Rounds a grid value `min + k·step` to the decimals that `min` and
    /// `step` are written with, so that `0.1 + 2·0.1` is `0.3` and not
    /// `0.30000000000000004` (what numpy's `arange` gives Katib).
    fn tidy(&self, x: f64) -> f64 {
        let Domain::Double {
            min,
            max,
            step: Some(s),
            ..
        } = &self.domain
        else {
            return x;
        };
        let decimals = |v: f64| {
            let t = format!("{v}");
            t.split_once('.').map_or(0, |(_, d)| d.len())
        };
        let d = decimals(*min).max(decimals(*s));
        if d > 15 {
            return x;
        }
        format!("{x:.d$}")
            .parse::<f64>()
            .map_or(x, |y| y.clamp(*min, *max))
    }

    /// Position of a numeric value in [0, 1] (log-scaled for log
    /// distributions). `None` for list parameters or a value of another kind.
    pub fn to_unit(&self, v: &Value) -> Option<f64> {
        let x = match (&self.domain, v) {
            (Domain::Double { .. }, Value::Double(x)) => *x,
            (Domain::Int { .. }, Value::Int(i)) => *i as f64,
            _ => return None,
        };
        let (lo, hi) = self.model_range()?;
        let x = if self.log_scale() { x.ln() } else { x };
        if hi <= lo {
            return Some(0.5);
        }
        Some(((x - lo) / (hi - lo)).clamp(0.0, 1.0))
    }

    /// The feasible value nearest to unit position `u` (clamped to [0, 1]),
    /// snapped to `step` and rounded for integers. `None` for list parameters.
    pub fn from_unit(&self, u: f64) -> Option<Value> {
        let (lo, hi) = self.model_range()?;
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let m = lo + u * (hi - lo);
        let x = if self.log_scale() { m.exp() } else { m };
        Some(self.snap(x))
    }

    /// Snaps a raw number onto the parameter's feasible set: the nearest
    /// grid point for stepped parameters (never past the last one below
    /// `max`), clamped to `[min, max]` otherwise.
    fn snap(&self, x: f64) -> Value {
        match &self.domain {
            Domain::Double { min, max, step, .. } => {
                let x = x.clamp(*min, *max);
                match (step, self.grid_steps()) {
                    (Some(s), Some(top)) => {
                        let k = ((x - min) / s).round().clamp(0.0, top as f64);
                        Value::Double(self.tidy(min + k * s))
                    }
                    _ => Value::Double(x),
                }
            }
            Domain::Int { min, max, step, .. } => {
                let s = step.unwrap_or(1);
                let top = ((max - min) / s) as f64;
                let k = ((x - *min as f64) / s as f64).round();
                let k = if k.is_finite() {
                    k.clamp(0.0, top)
                } else {
                    0.0
                };
                Value::Int(min + k as i64 * s)
            }
            _ => Value::Choice(0),
        }
    }

    /// A draw from the parameter's prior: its `distribution` for numbers
    /// (normal ones centred with sigma = range/6, clipped), uniform over lists.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Value {
        if let Some(n) = self.choices() {
            return Value::Choice(rng.random_range(0..n));
        }
        let normal = match &self.domain {
            Domain::Double { distribution, .. } | Domain::Int { distribution, .. } => {
                matches!(distribution, Distribution::Normal | Distribution::LogNormal)
            }
            _ => false,
        };
        let u = if normal {
            // Centre 0.5, sigma 1/6 of the (possibly log) range.
            let z: f64 = Normal::new(0.5, 1.0 / 6.0)
                .expect("valid normal")
                .sample(rng);
            z.clamp(0.0, 1.0)
        } else {
            rng.random::<f64>()
        };
        self.from_unit(u).expect("numeric parameter")
    }
}

impl SearchSpace {
    /// A draw from every parameter's prior.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Assignment {
        self.params.iter().map(|p| p.sample(rng)).collect()
    }

    /// Whether `a` has one value of the right kind per parameter, inside its
    /// domain.
    pub fn contains(&self, a: &Assignment) -> bool {
        a.len() == self.params.len()
            && self
                .params
                .iter()
                .zip(a)
                .all(|(p, v)| match (&p.domain, v) {
                    (Domain::Double { min, max, .. }, Value::Double(x)) => x >= min && x <= max,
                    (Domain::Int { min, max, .. }, Value::Int(i)) => i >= min && i <= max,
                    (
                        Domain::Discrete { list, .. } | Domain::Categorical { list },
                        Value::Choice(c),
                    ) => *c < list.len(),
                    _ => false,
                })
    }

    /// The number of distinct assignments, if the space is finite (every
    /// parameter is a list, an int, or a double with a step).
    pub fn size(&self) -> Option<u128> {
        let mut total: u128 = 1;
        for p in &self.params {
            let n: u128 = match &p.domain {
                Domain::Discrete { list, .. } | Domain::Categorical { list } => list.len() as u128,
                Domain::Int { min, max, step, .. } => ((max - min) / step.unwrap_or(1)) as u128 + 1,
                Domain::Double {
                    min,
                    max,
                    step: Some(s),
                    ..
                } => ((max - min) / s + 1e-9).floor() as u128 + 1,
                Domain::Double { .. } => return None,
            };
            total = total.saturating_mul(n);
        }
        Some(total)
    }
}

/// Whether two assignments are the same point (exact equality: every
/// algorithm snaps values onto the feasible set, so equal points compare equal).
pub fn same_point(a: &Assignment, b: &Assignment) -> bool {
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(domain: Domain) -> Param {
        Param {
            name: "p".into(),
            domain,
        }
    }

    fn int(min: i64, max: i64, step: Option<i64>) -> Param {
        p(Domain::Int {
            min,
            max,
            step,
            distribution: Distribution::Uniform,
        })
    }

    fn double(min: f64, max: f64, step: Option<f64>) -> Param {
        p(Domain::Double {
            min,
            max,
            step,
            distribution: Distribution::Uniform,
        })
    }

    #[test]
    fn snapping_stays_on_the_step_grid_at_the_top() {
        // 1, 5, 9 with max 10: the top of the unit interval is 9, never 10.
        let q = int(1, 10, Some(4));
        assert_eq!(q.from_unit(1.0), Some(Value::Int(9)));
        assert_eq!(q.from_unit(0.0), Some(Value::Int(1)));
        let q = double(0.0, 1.0, Some(0.3));
        assert_eq!(q.from_unit(1.0), Some(Value::Double(0.9)));
        assert_eq!(q.grid().unwrap().len(), 4);
    }

    #[test]
    fn every_grid_point_gets_the_same_share() {
        // Three values, each a third of the unit interval.
        for q in [int(0, 2, None), double(0.1, 0.3, Some(0.1))] {
            let counts = (0..300).fold([0; 3], |mut c, i| {
                let v = q.from_unit((i as f64 + 0.5) / 300.0).unwrap();
                let k = q.grid().unwrap().iter().position(|g| *g == v).unwrap();
                c[k] += 1;
                c
            });
            assert_eq!(counts, [100, 100, 100], "{q:?}");
        }
    }

    #[test]
    fn stepped_doubles_have_clean_values() {
        let q = double(0.1, 0.3, Some(0.1));
        assert_eq!(
            q.grid().unwrap(),
            vec![Value::Double(0.1), Value::Double(0.2), Value::Double(0.3)]
        );
        assert_eq!(q.from_unit(0.9), Some(Value::Double(0.3)));
        let q = double(0.001, 0.01, Some(0.001));
        let g = q.grid().unwrap();
        assert_eq!(
            (g.len(), g[8].clone(), g[9].clone()),
            (10, Value::Double(0.009), Value::Double(0.01))
        );
    }

    #[test]
    fn unit_bins_tile_the_interval() {
        let q = int(1, 3, None);
        assert_eq!(q.unit_bin(&Value::Int(1)), Some((0.0, 1.0 / 3.0)));
        let (l, r) = q.unit_bin(&Value::Int(3)).unwrap();
        assert!((l - 2.0 / 3.0).abs() < 1e-12 && r == 1.0);
        assert_eq!(double(0.0, 1.0, None).unit_bin(&Value::Double(0.5)), None);
        // Log scale: the bins of 1..4 follow ln(0.5), ln(1.5), …, ln(4.5).
        let q = p(Domain::Int {
            min: 1,
            max: 4,
            step: None,
            distribution: Distribution::LogUniform,
        });
        let (l, r) = q.unit_bin(&Value::Int(1)).unwrap();
        assert_eq!(l, 0.0);
        assert!((r - (1.5f64 / 0.5).ln() / (4.5f64 / 0.5).ln()).abs() < 1e-12);
    }

    #[test]
    fn round_trip_through_the_unit_interval() {
        let q = p(Domain::Double {
            min: 1e-4,
            max: 1e-1,
            step: None,
            distribution: Distribution::LogUniform,
        });
        let v = Value::Double(1e-3);
        let Some(Value::Double(x)) = q.from_unit(q.to_unit(&v).unwrap()) else {
            panic!()
        };
        assert!((x - 1e-3).abs() < 1e-15);
        assert_eq!(q.to_unit(&Value::Double(1e-4)), Some(0.0));
        assert_eq!(q.to_unit(&Value::Int(1)), None);
    }
}
