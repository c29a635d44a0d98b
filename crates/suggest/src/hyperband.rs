//! `hyperband`: Katib's Hyperband — successive-halving brackets run one
//! after the other, from the most aggressive (many configurations, little
//! resource) to plain random search at full resource.
//!
//! With `s_max = floor(log_eta(r_l))`, bracket `s` (from `s_max` down to 0)
//! starts `n = ceil((s_max + 1) · eta^s / (s + 1))` random configurations
//! with resource `r_l · eta^-s`; rung `i` of the bracket runs the best
//! `ceil(n_{i-1} / eta)` configurations of rung `i - 1` with resource
//! `r_l · eta^(i-s)` (Katib's rounding). For `eta = 3, r_l = 9`: 9 configs
//! at 1, 3 at 3, 1 at 9; then 5 at 3, 2 at 9; then 3 at 9.
//!
//! The resource is the value of the parameter named by `resource_name`,
//! overwritten in every suggestion (truncated to an integer for `int`
//! parameters, as Katib's `int()` does). The state lives in the suggestions'
//! tags (`hyperband/bracket`, `hyperband/rung`, `hyperband/config`), so it is
//! rebuilt from the history on every call: no settings are written back,
//! unlike Katib, and a rung is never lost.
//!
//! A rung is promoted once all of its trials have finished; until then the
//! algorithm returns fewer suggestions (possibly none), never the next rung
//! early. Failed trials and trials without a loss are not promoted; if a
//! whole rung fails the bracket ends there. When the last bracket is done
//! the algorithm is exhausted.

use std::collections::BTreeMap;

use crate::common::{Taken, check_history, completed_loss, pick_unique, rng_for};
use crate::settings::{Settings, bad};
use crate::{
    Algorithm, Assignment, Budget, Domain, Outcome, SearchSpace, SettingsError, SuggestError,
    Suggestion, TrialRecord, Value,
};

pub(crate) const BRACKET_TAG: &str = "hyperband/bracket";
pub(crate) const RUNG_TAG: &str = "hyperband/rung";
pub(crate) const CONFIG_TAG: &str = "hyperband/config";
const STREAM: u64 = 7;

#[derive(Debug)]
pub(crate) struct Hyperband {
    space: SearchSpace,
    seed: u64,
    /// Index of the resource parameter.
    resource: usize,
    brackets: Vec<Bracket>,
}

/// One bracket: its number `s` and the sizes and resources of its rungs.
#[derive(Debug, Clone, PartialEq)]
struct Bracket {
    s: u32,
    /// Target number of configurations per rung.
    sizes: Vec<usize>,
    /// The resource value of each rung, already in the parameter's type.
    resources: Vec<Value>,
}

impl Hyperband {
    /// Settings: `resource_name` (required, names a parameter), `r_l`
    /// (required, float > 0), `eta` (int >= 2, default 3), `random_state` /
    /// `seed`. Like Katib, requires `parallelTrialCount >= eta^s_max`.
    pub(crate) fn new(
        settings: &[(String, String)],
        space: &SearchSpace,
        budget: Budget,
        seed: u64,
    ) -> Result<Self, SettingsError> {
        let s = Settings::new(
            "hyperband",
            settings,
            &["resource_name", "r_l", "eta", "random_state", "seed"],
        )?;
        let name = s.raw("resource_name").ok_or_else(|| {
            bad(
                "resource_name",
                "is required: name the parameter that carries the budget (e.g. epochs)",
            )
        })?;
        let resource = space
            .params
            .iter()
            .position(|p| p.name == name)
            .ok_or_else(|| {
                bad(
                    "resource_name",
                    format!("{name:?} is not one of the experiment's parameters"),
                )
            })?;
        let r_l = s
            .float("r_l", |x| (x <= 0.0).then_some("must be greater than 0"))?
            .ok_or_else(|| bad("r_l", "is required: the maximum resource of one trial"))?;
        let eta = s.int("eta", 2)?.unwrap_or(3) as u32;
        // floor(log(r_l) / log(eta)), with a little slack so that exact powers
        // (log(1000)/log(10) = 2.9999999999999996) are not rounded down.
        let s_max = ((r_l.ln() / f64::from(eta).ln()) + 1e-9).floor().max(0.0) as u32;
        let need = u64::from(eta).saturating_pow(s_max);
        if u64::from(budget.parallel_trial_count) < need {
            return Err(SettingsError::Space(format!(
                "hyperband with eta {eta} and r_l {r_l} needs parallelTrialCount >= {need} (eta^{s_max}); it is {}",
                budget.parallel_trial_count
            )));
        }
        let param = &space.params[resource];
        let mut brackets = Vec::new();
        for s in (0..=s_max).rev() {
            let eta_f = f64::from(eta);
            let n =
                (f64::from(s_max + 1) * eta_f.powi(s as i32) / f64::from(s + 1)).ceil() as usize;
            let r = r_l * eta_f.powi(-(s as i32));
            let mut sizes = vec![n];
            for _ in 1..=s {
                let prev = *sizes.last().unwrap_or(&n);
                sizes.push(prev.div_ceil(eta as usize));
            }
            let resources = (0..=s)
                .map(|i| {
                    let r_i = r * eta_f.powi(i as i32);
                    resource_value(&param.domain, r_i).ok_or_else(|| {
                        bad(
                            "resource_name",
                            format!(
                                "parameter {name:?} cannot take the resource {r_i} of bracket {s}, rung {i}; \
                                 a resource parameter is an int or a double, or a discrete list that holds every budget"
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            brackets.push(Bracket {
                s,
                sizes,
                resources,
            });
        }
        let alg = Self {
            space: space.clone(),
            seed: s.seed(seed)?,
            resource,
            brackets,
        };
        Ok(alg)
    }
}

/// The resource `r` as a value of the resource parameter: truncated for
/// ints (Katib's `int(r)`), exact for doubles, the list entry equal to it
/// for discrete lists. `None` when the parameter cannot carry it.
///
/// As in Katib, the parameter's declared range does not limit the budget:
/// the algorithm overwrites the value (Katib's own example declares
/// `num-epochs` 1..1 with `r_l: 2`).
fn resource_value(domain: &Domain, r: f64) -> Option<Value> {
    match domain {
        Domain::Int { .. } => Some(Value::Int((r + 1e-9).floor() as i64)),
        Domain::Double { .. } => Some(Value::Double(r)),
        Domain::Discrete { values, .. } => values
            .iter()
            .position(|v| (v - r).abs() <= 1e-9 * r.abs().max(1.0))
            .map(Value::Choice),
        Domain::Categorical { .. } => None,
    }
}

fn tag<'a>(t: &'a TrialRecord, key: &str) -> Option<&'a str> {
    t.tags.get(key).map(String::as_str)
}

impl Hyperband {
    fn tags(&self, b: &Bracket, rung: usize, config: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (BRACKET_TAG.to_string(), b.s.to_string()),
            (RUNG_TAG.to_string(), rung.to_string()),
            (CONFIG_TAG.to_string(), config.to_string()),
        ])
    }
}

impl Algorithm for Hyperband {
    fn suggest(&self, history: &[TrialRecord], n: usize) -> Result<Vec<Suggestion>, SuggestError> {
        check_history(&self.space, history)?;
        let mut taken = Taken::new(history);
        let mut out = Vec::new();
        for b in &self.brackets {
            let s = b.s.to_string();
            let in_rung = |i: usize| -> Vec<&TrialRecord> {
                let i = i.to_string();
                history
                    .iter()
                    .filter(|t| {
                        tag(t, BRACKET_TAG) == Some(s.as_str())
                            && tag(t, RUNG_TAG) == Some(i.as_str())
                    })
                    .collect()
            };
            // Rung 0: random configurations.
            let rung0 = in_rung(0);
            if rung0.len() < b.sizes[0] {
                let mut rng = rng_for(self.seed, history.len(), STREAM);
                for k in rung0.len()..b.sizes[0] {
                    if out.len() == n {
                        break;
                    }
                    let resource = &b.resources[0];
                    let picked = pick_unique(&self.space, &mut taken, &mut rng, |rng, _| {
                        let mut a = self.space.sample(rng);
                        a[self.resource] = resource.clone();
                        vec![a]
                    });
                    let Some(a) = picked else { return Ok(out) };
                    let mut sg = Suggestion::new(a);
                    sg.tags = self.tags(b, 0, &format!("{}-{k}", b.s));
                    out.push(sg);
                }
                return Ok(out);
            }
            // Later rungs: the best finished configurations of the rung before.
            let mut prev = rung0;
            for i in 1..b.sizes.len() {
                if prev.iter().any(|t| t.outcome == Outcome::Pending) {
                    // The rung before is still running: wait for it.
                    return Ok(out);
                }
                let mut ranked: Vec<(f64, &TrialRecord)> = prev
                    .iter()
                    .filter_map(|t| completed_loss(&t.outcome).map(|y| (y, *t)))
                    .collect();
                ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
                ranked.truncate(b.sizes[i]);
                let current = in_rung(i);
                let started: Vec<&str> =
                    current.iter().filter_map(|t| tag(t, CONFIG_TAG)).collect();
                for (_, t) in &ranked {
                    if out.len() == n {
                        return Ok(out);
                    }
                    let Some(config) = tag(t, CONFIG_TAG) else {
                        continue;
                    };
                    if started.contains(&config) {
                        continue;
                    }
                    let mut a: Assignment = t.assignment.clone();
                    a[self.resource] = b.resources[i].clone();
                    taken.insert(&a);
                    let mut sg = Suggestion::new(a);
                    sg.tags = self.tags(b, i, config);
                    out.push(sg);
                }
                if !out.is_empty() {
                    return Ok(out);
                }
                prev = current;
            }
            // Every rung of this bracket is started; the next bracket begins
            // once its last rung has finished.
            if prev.iter().any(|t| t.outcome == Outcome::Pending) {
                return Ok(out);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::test_support::*;
    use crate::{Distribution, Param};

    fn space() -> SearchSpace {
        SearchSpace::new(vec![
            Param {
                name: "lr".into(),
                domain: Domain::Double {
                    min: 0.0,
                    max: 1.0,
                    step: None,
                    distribution: Distribution::Uniform,
                },
            },
            Param {
                name: "epochs".into(),
                domain: Domain::Int {
                    min: 1,
                    max: 9,
                    step: None,
                    distribution: Distribution::Uniform,
                },
            },
        ])
        .unwrap()
    }

    fn settings(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn hb(parallel: u32) -> Result<Hyperband, SettingsError> {
        Hyperband::new(
            &settings(&[("resource_name", "epochs"), ("r_l", "9"), ("eta", "3")]),
            &space(),
            Budget {
                max_trial_count: None,
                parallel_trial_count: parallel,
            },
            0,
        )
    }

    fn lr(a: &Assignment) -> f64 {
        match a[0] {
            Value::Double(x) => x,
            _ => panic!(),
        }
    }

    #[test]
    fn brackets_for_eta_3_and_r_l_9() {
        let h = hb(9).unwrap();
        let shape: Vec<(u32, Vec<usize>, Vec<Value>)> = h
            .brackets
            .iter()
            .map(|b| (b.s, b.sizes.clone(), b.resources.clone()))
            .collect();
        use Value::Int as I;
        assert_eq!(
            shape,
            vec![
                (2, vec![9, 3, 1], vec![I(1), I(3), I(9)]),
                (1, vec![5, 2], vec![I(3), I(9)]),
                (0, vec![3], vec![I(9)]),
            ]
        );
    }

    /// Runs the whole schedule with `parallel` workers; the loss is the
    /// learning rate divided by the resource, so the best configurations
    /// are known. Returns the history.
    fn run(h: &Hyperband, parallel: usize) -> Vec<TrialRecord> {
        let mut history: Vec<TrialRecord> = Vec::new();
        for _ in 0..200 {
            let running = history
                .iter()
                .filter(|t| t.outcome == Outcome::Pending)
                .count();
            let batch = h.suggest(&history, parallel - running).unwrap();
            for s in &batch {
                history.push(record(s, Outcome::Pending));
            }
            // Finish the oldest running trial.
            let Some(t) = history.iter_mut().find(|t| t.outcome == Outcome::Pending) else {
                break;
            };
            let epochs = match t.assignment[1] {
                Value::Int(e) => e as f64,
                _ => panic!(),
            };
            t.outcome = Outcome::Completed(lr(&t.assignment) / epochs);
        }
        history
    }

    #[test]
    fn runs_every_bracket_and_promotes_the_best() {
        let h = hb(9).unwrap();
        let history = run(&h, 9);
        assert!(history.iter().all(|t| t.outcome != Outcome::Pending));
        assert_eq!(history.len(), 9 + 3 + 1 + 5 + 2 + 3);
        let rung = |s: &str, i: &str| -> Vec<&TrialRecord> {
            history
                .iter()
                .filter(|t| tag(t, BRACKET_TAG) == Some(s) && tag(t, RUNG_TAG) == Some(i))
                .collect()
        };
        // Bracket 2, rung 1 runs the three smallest learning rates of rung 0 at 3 epochs.
        let mut r0: Vec<f64> = rung("2", "0").iter().map(|t| lr(&t.assignment)).collect();
        r0.sort_by(f64::total_cmp);
        let mut r1: Vec<f64> = rung("2", "1").iter().map(|t| lr(&t.assignment)).collect();
        r1.sort_by(f64::total_cmp);
        assert_eq!(r1, r0[..3].to_vec());
        assert!(
            rung("2", "1")
                .iter()
                .all(|t| t.assignment[1] == Value::Int(3))
        );
        let r2: Vec<f64> = rung("2", "2").iter().map(|t| lr(&t.assignment)).collect();
        assert_eq!(r2, vec![r0[0]]);
        assert_eq!(rung("1", "0").len(), 5);
        assert!(
            rung("1", "1")
                .iter()
                .all(|t| t.assignment[1] == Value::Int(9))
        );
        assert_eq!(rung("0", "0").len(), 3);
        // Exhausted afterwards.
        assert!(h.suggest(&history, 5).unwrap().is_empty());
    }

    #[test]
    fn waits_for_a_rung_and_never_deadlocks_with_few_workers() {
        let h = hb(9).unwrap();
        // Nine running: nothing more until they finish.
        let first = h.suggest(&[], 20).unwrap();
        assert_eq!(first.len(), 9, "one rung at a time");
        let mut history: Vec<TrialRecord> =
            first.iter().map(|s| record(s, Outcome::Pending)).collect();
        assert!(h.suggest(&history, 3).unwrap().is_empty());
        for (i, t) in history.iter_mut().enumerate().take(8) {
            t.outcome = if i == 0 {
                Outcome::Failed
            } else {
                Outcome::Completed(i as f64)
            };
        }
        assert!(
            h.suggest(&history, 3).unwrap().is_empty(),
            "one trial of the rung still runs"
        );
        history[8].outcome = Outcome::Completed(0.5);
        let next = h.suggest(&history, 1).unwrap();
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].tags[RUNG_TAG], "1");
        assert_eq!(
            lr(&next[0].assignment),
            lr(&history[8].assignment),
            "best first; the failed one is skipped"
        );
        // Two workers get through the whole schedule as well.
        assert_eq!(run(&h, 2).len(), 23);
    }

    #[test]
    fn settings_are_validated() {
        let b = Budget {
            max_trial_count: None,
            parallel_trial_count: 9,
        };
        let err = |v: &[(&str, &str)], b: Budget| match Hyperband::new(&settings(v), &space(), b, 0)
        {
            Err(SettingsError::Setting { name, .. }) => name,
            Err(e) => e.to_string(),
            Ok(_) => "ok".into(),
        };
        assert_eq!(err(&[("r_l", "9")], b), "resource_name");
        assert_eq!(
            err(&[("resource_name", "steps"), ("r_l", "9")], b),
            "resource_name"
        );
        assert_eq!(err(&[("resource_name", "epochs")], b), "r_l");
        assert_eq!(err(&[("resource_name", "epochs"), ("r_l", "-1")], b), "r_l");
        assert_eq!(
            err(
                &[("resource_name", "epochs"), ("r_l", "9"), ("eta", "1")],
                b
            ),
            "eta"
        );
        let wide = Budget {
            max_trial_count: None,
            parallel_trial_count: 27,
        };
        // As in Katib, the budget overwrites the value whatever the declared
        // range: 27 epochs with epochs declared 1..9 is fine.
        assert_eq!(
            err(&[("resource_name", "epochs"), ("r_l", "27")], wide),
            "ok"
        );
        let small = Budget {
            max_trial_count: None,
            parallel_trial_count: 3,
        };
        assert!(
            err(&[("resource_name", "epochs"), ("r_l", "9")], small)
                .contains("parallelTrialCount >= 9")
        );
        assert!(hb(9).is_ok());
    }

    #[test]
    fn mixed_space_suggestions_stay_inside() {
        let space = mixed_space();
        let h = Hyperband::new(
            &settings(&[("resource_name", "layers"), ("r_l", "8"), ("eta", "2")]),
            &space,
            Budget {
                max_trial_count: None,
                parallel_trial_count: 8,
            },
            0,
        );
        // layers is an int 2..10 step 2; the budgets 1, 2, 4, 8 overwrite it
        // anyway (Katib's semantics), every other parameter stays inside.
        let h = h.expect("the declared range does not limit the budget");
        let got = h.suggest(&[], 8).unwrap();
        assert!(!got.is_empty());
        let layers = space
            .params
            .iter()
            .position(|p| p.name == "layers")
            .unwrap();
        for s in &got {
            let Value::Int(budget) = s.assignment[layers] else {
                panic!("layers is an int: {:?}", s.assignment)
            };
            assert!([1, 2, 4, 8].contains(&budget), "{budget}");
            let mut rest = s.assignment.clone();
            rest[layers] = Value::Int(2);
            assert!(space.contains(&rest), "{:?}", s.assignment);
        }
    }
}
