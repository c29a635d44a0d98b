//! Which revision gets which share of a service's requests.
//!
//! Pure functions over the revisions' readiness, so that the rules (traffic
//! only to ready revisions, a canary's share falling back to the stable
//! predictor while it loads, the previous rollout keeping the rest) are
//! tested without loading models.

/// One revision as the traffic rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// It can answer requests now.
    pub ready: bool,
    /// It failed to load (it never gets traffic, and nothing waits for it).
    pub failed: bool,
}

/// What a service consists of right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The predictor of the current spec (`None` when the spec cannot be served).
    pub latest: Option<Candidate>,
    /// The revision that last took all the traffic, when it is another one.
    pub previous: Option<Candidate>,
    /// `canaryTrafficPercent`: the latest revision's share while the
    /// previous one keeps the rest; `None` (or 100) gives it everything.
    pub canary_percent: Option<u8>,
    /// `spec.canary[]`: each variant's configured share.
    pub canaries: Vec<(u8, Candidate)>,
}

/// Where a share of the traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Latest,
    Previous,
    /// The `spec.canary` entry at this index.
    Canary(usize),
}

/// The split: targets with their percentages, summing to 100 when anything
/// can take traffic. Zero shares are kept (status shows a rolled-back
/// revision at 0 %); [`pick`] skips them.
pub(crate) fn split(layout: &Layout) -> Vec<(Target, u8)> {
    let mut out = Vec::new();
    let mut canary_total: u8 = 0;
    for (i, (percent, c)) in layout.canaries.iter().enumerate() {
        // Traffic only to ready variants: a canary that is loading or
        // failed gives its share to the stable predictor.
        let share = if c.ready { *percent } else { 0 };
        canary_total = canary_total.saturating_add(share);
        out.push((Target::Canary(i), share));
    }
    let stable = 100u8.saturating_sub(canary_total);
    let latest = layout.latest;
    let previous = layout.previous.filter(|p| p.ready);
    match (latest, previous) {
        (Some(l), Some(_)) if l.ready => match layout.canary_percent {
            Some(p) if p < 100 => {
                let to_latest = (u32::from(stable) * u32::from(p) / 100) as u8;
                out.push((Target::Latest, to_latest));
                out.push((Target::Previous, stable - to_latest));
            }
            _ => out.push((Target::Latest, stable)),
        },
        // The latest is loading or failed: the previous rollout serves.
        (_, Some(_)) => {
            if latest.is_some() {
                out.push((Target::Latest, 0));
            }
            out.push((Target::Previous, stable));
        }
        // Nothing else can serve: requests wait while the latest loads.
        (Some(l), None) if !l.failed => out.push((Target::Latest, stable)),
        (Some(_), None) => out.push((Target::Latest, 0)),
        (None, None) => {}
    }
    out
}

/// The target of request number `n`: shares are laid out over 0..100 and
/// `n % 100` picks one, so every 100 consecutive requests follow the split
/// exactly. `None` when every share is 0.
pub(crate) fn pick(split: &[(Target, u8)], n: u64) -> Option<Target> {
    let total: u32 = split.iter().map(|(_, p)| u32::from(*p)).sum();
    if total == 0 {
        return None;
    }
    let mut slot = (n % u64::from(total)) as u32;
    for (target, p) in split {
        let p = u32::from(*p);
        if slot < p {
            return Some(*target);
        }
        slot -= p;
    }
    None
}

/// Whether the layout has a revision that gets a share of the traffic now.
pub(crate) fn serving(split: &[(Target, u8)], layout: &Layout) -> bool {
    split.iter().any(|(t, p)| {
        *p > 0
            && match t {
                Target::Latest => layout.latest.is_some_and(|c| c.ready),
                Target::Previous => layout.previous.is_some_and(|c| c.ready),
                Target::Canary(i) => layout.canaries.get(*i).is_some_and(|(_, c)| c.ready),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: Candidate = Candidate {
        ready: true,
        failed: false,
    };
    const LOADING: Candidate = Candidate {
        ready: false,
        failed: false,
    };
    const FAILED: Candidate = Candidate {
        ready: false,
        failed: true,
    };

    fn layout(
        latest: Option<Candidate>,
        previous: Option<Candidate>,
        canary_percent: Option<u8>,
    ) -> Layout {
        Layout {
            latest,
            previous,
            canary_percent,
            canaries: vec![],
        }
    }

    #[test]
    fn a_first_revision_gets_everything_even_while_loading() {
        assert_eq!(
            split(&layout(Some(READY), None, None)),
            [(Target::Latest, 100)]
        );
        assert_eq!(
            split(&layout(Some(LOADING), None, None)),
            [(Target::Latest, 100)]
        );
        assert_eq!(
            split(&layout(Some(FAILED), None, None)),
            [(Target::Latest, 0)]
        );
        assert_eq!(split(&layout(None, None, None)), []);
        // canaryTrafficPercent without a previous rollout: nothing to split with.
        assert_eq!(
            split(&layout(Some(READY), None, Some(10))),
            [(Target::Latest, 100)]
        );
    }

    #[test]
    fn canary_traffic_percent_splits_with_the_previous_rollout() {
        let l = layout(Some(READY), Some(READY), Some(10));
        assert_eq!(split(&l), [(Target::Latest, 10), (Target::Previous, 90)]);
        // Roll back: 0 % to the latest.
        let l = layout(Some(READY), Some(READY), Some(0));
        assert_eq!(split(&l), [(Target::Latest, 0), (Target::Previous, 100)]);
        // Promote: the field removed, or 100.
        for p in [None, Some(100)] {
            let l = layout(Some(READY), Some(READY), p);
            assert_eq!(split(&l), [(Target::Latest, 100)]);
        }
        // Traffic only to ready revisions.
        for latest in [LOADING, FAILED] {
            let l = layout(Some(latest), Some(READY), Some(10));
            assert_eq!(split(&l), [(Target::Latest, 0), (Target::Previous, 100)]);
        }
        let l = layout(None, Some(READY), None);
        assert_eq!(split(&l), [(Target::Previous, 100)]);
    }

    #[test]
    fn canary_variants_get_their_share_once_ready() {
        let mut l = layout(Some(READY), None, None);
        l.canaries = vec![(20, READY), (10, LOADING), (5, READY)];
        assert_eq!(
            split(&l),
            [
                (Target::Canary(0), 20),
                (Target::Canary(1), 0),
                (Target::Canary(2), 5),
                (Target::Latest, 75)
            ]
        );
        // A dark launch (0 %) is deployed but gets nothing.
        l.canaries = vec![(0, READY)];
        assert_eq!(split(&l), [(Target::Canary(0), 0), (Target::Latest, 100)]);
    }

    #[test]
    fn picks_follow_the_split_exactly_over_each_hundred() {
        let s = [
            (Target::Latest, 10),
            (Target::Previous, 90),
            (Target::Canary(0), 0),
        ];
        let picks: Vec<Target> = (0..100).filter_map(|n| pick(&s, n)).collect();
        assert_eq!(picks.iter().filter(|t| **t == Target::Latest).count(), 10);
        assert_eq!(picks.iter().filter(|t| **t == Target::Previous).count(), 90);
        assert_eq!(pick(&[(Target::Latest, 0)], 7), None);
        assert_eq!(pick(&[], 0), None);
    }

    #[test]
    fn serving_means_some_ready_revision_has_a_share() {
        let l = layout(Some(LOADING), None, None);
        assert!(!serving(&split(&l), &l));
        let l = layout(Some(FAILED), Some(READY), None);
        assert!(serving(&split(&l), &l));
        let l = layout(Some(READY), None, None);
        assert!(serving(&split(&l), &l));
    }
}
