//! Parsing of Katib's `algorithmSettings` (name/value strings) with errors
//! that name the setting.

use crate::SettingsError;

/// The settings of one algorithm, checked against the names it accepts.
pub(crate) struct Settings<'a> {
    items: &'a [(String, String)],
}

pub(crate) fn bad(name: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Setting {
        name: name.to_string(),
        message: message.into(),
    }
}

impl<'a> Settings<'a> {
    /// Rejects names outside `accepted` and names given twice. `seed` and
    /// `random_state` are accepted by every caller that passes them.
    pub(crate) fn new(
        algorithm: &str,
        items: &'a [(String, String)],
        accepted: &[&str],
    ) -> Result<Self, SettingsError> {
        for (i, (name, _)) in items.iter().enumerate() {
            if !accepted.contains(&name.as_str()) {
                let list = if accepted.is_empty() {
                    "none".to_string()
                } else {
                    accepted.join(", ")
                };
                return Err(bad(
                    name,
                    format!(
                        "unknown setting for algorithm {algorithm:?}; accepted settings: {list}"
                    ),
                ));
            }
            if items[..i].iter().any(|(n, _)| n == name) {
                return Err(bad(name, "given more than once; keep one"));
            }
        }
        Ok(Self { items })
    }

    pub(crate) fn raw(&self, name: &str) -> Option<&'a str> {
        self.items
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
    }

    /// An integer setting, at least `min`.
    pub(crate) fn int(&self, name: &str, min: i64) -> Result<Option<i64>, SettingsError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let i: i64 = v
            .parse()
            .map_err(|_| bad(name, format!("{v:?} is not an integer")))?;
        if i < min {
            return Err(bad(name, format!("{i} must be at least {min}")));
        }
        Ok(Some(i))
    }

    /// A finite float setting that passes `check` (which says what is wrong).
    pub(crate) fn float(
        &self,
        name: &str,
        check: impl Fn(f64) -> Option<&'static str>,
    ) -> Result<Option<f64>, SettingsError> {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        let x: f64 = v
            .parse()
            .map_err(|_| bad(name, format!("{v:?} is not a number")))?;
        if !x.is_finite() {
            return Err(bad(name, format!("{v:?} is not a finite number")));
        }
        if let Some(why) = check(x) {
            return Err(bad(name, format!("{x} {why}")));
        }
        Ok(Some(x))
    }

    /// The seed: `random_state` or `seed` (an integer >= 0) when given,
    /// `default` otherwise. Giving both is an error.
    pub(crate) fn seed(&self, default: u64) -> Result<u64, SettingsError> {
        let a = self.int("random_state", 0)?;
        let b = self.int("seed", 0)?;
        match (a, b) {
            (Some(_), Some(_)) => Err(bad("seed", "give either random_state or seed, not both")),
            (Some(s), None) | (None, Some(s)) => Ok(s as u64),
            (None, None) => Ok(default),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn name_of(e: SettingsError) -> String {
        match e {
            SettingsError::Setting { name, .. } => name,
            other => panic!("not a setting error: {other}"),
        }
    }

    #[test]
    fn unknown_and_repeated_names_are_named() {
        let it = items(&[("random_state", "1"), ("gama", "0.2")]);
        let e = Settings::new("tpe", &it, &["random_state", "gamma"])
            .err()
            .unwrap();
        assert_eq!(name_of(e.clone()), "gama");
        assert!(
            e.to_string()
                .contains("accepted settings: random_state, gamma"),
            "{e}"
        );
        let it = items(&[("seed", "1"), ("seed", "2")]);
        assert_eq!(
            name_of(Settings::new("random", &it, &["seed"]).err().unwrap()),
            "seed"
        );
    }

    #[test]
    fn values_are_parsed_and_checked() {
        let it = items(&[("n", "x"), ("m", "-1"), ("f", "2"), ("g", "nan")]);
        let s = Settings::new("a", &it, &["n", "m", "f", "g"]).unwrap();
        assert_eq!(name_of(s.int("n", 0).unwrap_err()), "n");
        assert_eq!(name_of(s.int("m", 0).unwrap_err()), "m");
        assert_eq!(s.int("m", -1).unwrap(), Some(-1));
        assert_eq!(s.int("absent", 0).unwrap(), None);
        let lt1 = |x: f64| (x >= 1.0).then_some("must be below 1");
        assert_eq!(name_of(s.float("f", lt1).unwrap_err()), "f");
        assert_eq!(name_of(s.float("g", |_| None).unwrap_err()), "g");
    }

    #[test]
    fn seed_comes_from_random_state_or_seed() {
        let it = items(&[("random_state", "7")]);
        assert_eq!(
            Settings::new("a", &it, &["random_state", "seed"])
                .unwrap()
                .seed(1)
                .unwrap(),
            7
        );
        let it = items(&[("seed", "8")]);
        assert_eq!(
            Settings::new("a", &it, &["random_state", "seed"])
                .unwrap()
                .seed(1)
                .unwrap(),
            8
        );
        let it = items(&[]);
        assert_eq!(
            Settings::new("a", &it, &["random_state", "seed"])
                .unwrap()
                .seed(1)
                .unwrap(),
            1
        );
        let it = items(&[("random_state", "-3")]);
        let e = Settings::new("a", &it, &["random_state", "seed"])
            .unwrap()
            .seed(1)
            .unwrap_err();
        assert_eq!(name_of(e), "random_state");
    }
}
