//! Trees flattened into one compact node array, and the two traversal rules.
//!
//! Every tree of a model is stored in one `Vec<Node>` of 12-byte nodes laid
//! out breadth-first, so that the two children of a node are adjacent
//! (`right == left + 1`) and the next node is `left + !go_left` without a
//! branch. A node's fields are always read together, so one 12-byte record per
//! node (rather than one array per field) touches one cache line per step.
//! Children always sit after their parent, so a traversal terminates: the
//! builder enforces that the source is a tree (no cycles, no shared
//! children, children in range, features in range) and nothing else can
//! construct a `Forest`. Several trees are walked in lockstep for one row
//! ([`Forest::leaves`]) so that their chains of dependent loads overlap.
//!
//! The rules differ between the libraries and are reproduced exactly:
//! XGBoost goes left when `x < threshold` (f32), sends a missing value (NaN)
//! the default way and sends a category that is *in* a split's set right;
//! LightGBM goes left when `x <= threshold` (an f64 threshold, stored here
//! as the f32 that gives the same answer for every f32 input, see
//! [`lgb_threshold`]), applies its missing types, and sends a category in the
//! set left.

use std::collections::VecDeque;

/// A leaf; `data` is the leaf's slot in the model's leaf table.
const LEAF: u32 = 1 << 31;
/// A missing (NaN) value goes left. For LightGBM's `Zero` missing type, zeros do too.
pub(crate) const NAN_LEFT: u32 = 1 << 30;
/// A categorical split; `data` is the index of the category set.
pub(crate) const CATEGORICAL: u32 = 1 << 29;
/// LightGBM missing type `Zero`: values in `[-1e-35, 1e-35]` take the default direction.
pub(crate) const ZERO_MISSING: u32 = 1 << 28;
/// Feature indices use the low bits.
const FEATURE_MASK: u32 = (1 << 28) - 1;
/// The largest number of features a model may have.
pub(crate) const MAX_FEATURES: usize = FEATURE_MASK as usize;

/// LightGBM's `kZeroThreshold` (`1e-35f`): its dense-row reader stores smaller magnitudes as 0.
pub(crate) const LGB_ZERO: f32 = 1e-35;
/// Bound on the memory of all category bitsets (64 MiB), so a small hostile file cannot
/// claim huge categories on many nodes.
const MAX_CAT_WORDS: usize = 1 << 24;
/// XGBoost treats categories at or above 2^24 (not exactly representable in f32) as invalid.
const XGB_MAX_CAT: f32 = 16_777_216.0;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    /// Threshold bits (numerical split), category-set index (categorical split) or leaf slot.
    data: u32,
    /// Feature index in the low 28 bits, flags above.
    feature: u32,
    /// Index of the left child; the right child is `left + 1`.
    left: u32,
}

/// One node of a source tree, in the source's own numbering.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SrcNode {
    Leaf {
        slot: u32,
    },
    Split {
        feature: usize,
        /// `NAN_LEFT`, `CATEGORICAL` and `ZERO_MISSING` bits.
        flags: u32,
        /// Threshold bits or category-set index.
        data: u32,
        left: usize,
        right: usize,
    },
}

/// Why a source tree cannot be flattened; `node` is in the source's numbering.
#[derive(Debug)]
pub(crate) struct BuildError {
    pub node: usize,
    /// Which part of the node is wrong, so that the caller can name the field.
    pub part: Part,
    pub message: String,
}

/// The part of a source node that a [`BuildError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Tree,
    Feature,
    Left,
    Right,
    Categories,
}

/// All trees of a model, flattened, plus the category sets of categorical splits.
#[derive(Debug, Default)]
pub(crate) struct Forest {
    nodes: Vec<Node>,
    num_features: usize,
    /// Bitset words of all category sets.
    cat_words: Vec<u32>,
    /// (first word, number of words) of each category set.
    cat_sets: Vec<(u32, u32)>,
}

impl Forest {
    pub fn new(num_features: usize) -> Forest {
        Forest {
            num_features,
            ..Forest::default()
        }
    }

    /// Adds a category set given as bitset words (bit `c % 32` of word `c / 32` is category `c`).
    pub fn push_cat_set(&mut self, words: &[u32]) -> Result<u32, String> {
        if self.cat_words.len() + words.len() > MAX_CAT_WORDS {
            return Err(format!(
                "categorical splits need more than {} MiB of category sets",
                (MAX_CAT_WORDS * 4) >> 20
            ));
        }
        let start = u32::try_from(self.cat_words.len()).map_err(|_| "too many categories")?;
        let len = u32::try_from(words.len()).map_err(|_| "too many categories")?;
        let id = u32::try_from(self.cat_sets.len()).map_err(|_| "too many category sets")?;
        self.cat_words.extend_from_slice(words);
        self.cat_sets.push((start, len));
        Ok(id)
    }

    /// Flattens a tree whose root is `src[0]`.
    pub fn push_tree(&mut self, src: &[SrcNode]) -> Result<Root, BuildError> {
        if src.is_empty() {
            return Err(BuildError {
                node: 0,
                part: Part::Tree,
                message: "the tree has no nodes".into(),
            });
        }
        let placeholder = Node {
            data: 0,
            feature: LEAF,
            left: 0,
        };
        let root = self.nodes.len();
        self.nodes.push(placeholder);
        let mut seen = vec![false; src.len()];
        seen[0] = true;
        let mut queue = VecDeque::from([(0usize, root, 0u32)]);
        let mut depth = 0;
        while let Some((s, d, level)) = queue.pop_front() {
            depth = depth.max(level);
            self.nodes[d] = match src[s] {
                SrcNode::Leaf { slot } => Node {
                    data: slot,
                    feature: LEAF,
                    left: 0,
                },
                SrcNode::Split {
                    feature,
                    flags,
                    data,
                    left,
                    right,
                } => {
                    if feature >= self.num_features {
                        return Err(BuildError {
                            node: s,
                            part: Part::Feature,
                            message: format!(
                                "split feature {feature} is out of range (the model has {} features)",
                                self.num_features
                            ),
                        });
                    }
                    if flags & CATEGORICAL != 0 && data as usize >= self.cat_sets.len() {
                        return Err(BuildError {
                            node: s,
                            part: Part::Categories,
                            message: format!("category set {data} does not exist"),
                        });
                    }
                    for (part, side, c) in
                        [(Part::Left, "left", left), (Part::Right, "right", right)]
                    {
                        if c >= src.len() {
                            return Err(BuildError {
                                node: s,
                                part,
                                message: format!(
                                    "{side} child {c} is out of range (the tree has {} nodes)",
                                    src.len()
                                ),
                            });
                        }
                        if seen[c] {
                            return Err(BuildError {
                                node: s,
                                part,
                                message: format!(
                                    "{side} child {c} is reached twice: the tree has a cycle or a shared node"
                                ),
                            });
                        }
                        seen[c] = true;
                    }
                    let l = self.nodes.len();
                    if l > u32::MAX as usize - 2 {
                        return Err(BuildError {
                            node: s,
                            part: Part::Tree,
                            message: "the model has too many nodes".into(),
                        });
                    }
                    self.nodes.push(placeholder);
                    self.nodes.push(placeholder);
                    queue.push_back((left, l, level + 1));
                    queue.push_back((right, l + 1, level + 1));
                    Node {
                        data,
                        // Flags only ever use the bits above the mask; `feature` was range-checked.
                        feature: feature as u32 | (flags & !FEATURE_MASK & !LEAF),
                        left: l as u32,
                    }
                }
            };
        }
        Ok(Root {
            node: root as u32,
            depth,
        })
    }

    fn in_set(&self, set: u32, category: u32) -> bool {
        let Some(&(start, len)) = self.cat_sets.get(set as usize) else {
            return false;
        };
        let word = category / 32;
        if word >= len {
            return false;
        }
        self.cat_words
            .get((start + word) as usize)
            .is_some_and(|w| (w >> (category % 32)) & 1 == 1)
    }

    /// One step down from node `i`; a leaf stays where it is.
    #[inline(always)]
    fn step<R: Rules>(&self, i: u32, row: &[f32]) -> u32 {
        let n = self.nodes[i as usize];
        let x = row[(n.feature & FEATURE_MASK) as usize];
        let left = R::goes_left(self, n, x);
        if n.feature & LEAF != 0 {
            i
        } else {
            n.left + u32::from(!left)
        }
    }

    /// The leaf slot a tree sends `row` to.
    #[inline]
    pub fn leaf<R: Rules>(&self, root: Root, row: &[f32]) -> u32 {
        let mut i = root.node;
        while self.nodes[i as usize].feature & LEAF == 0 {
            i = self.step::<R>(i, row);
        }
        self.nodes[i as usize].data
    }

    /// The leaf slots `N` trees send `row` to. The trees are walked in lockstep for as many
    /// steps as the deepest needs (leaves stay put), so that the `N` independent chains of
    /// dependent loads overlap instead of waiting for each other.
    #[inline]
    pub fn leaves<R: Rules, const N: usize>(&self, roots: &[Root; N], row: &[f32]) -> [u32; N] {
        let depth = roots.iter().map(|r| r.depth).max().unwrap_or(0);
        let mut idx = roots.map(|r| r.node);
        for _ in 0..depth {
            for i in idx.iter_mut() {
                *i = self.step::<R>(*i, row);
            }
        }
        idx.map(|i| self.nodes[i as usize].data)
    }
}

/// Where a flattened tree starts and how many steps its deepest leaf is from the root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Root {
    pub node: u32,
    pub depth: u32,
}

/// How a library decides between a split's children.
pub(crate) trait Rules {
    fn goes_left(forest: &Forest, n: Node, x: f32) -> bool;
}

/// XGBoost: `x < threshold`; missing values go the default way; categories in the set go right.
pub(crate) struct Xgb;

impl Rules for Xgb {
    #[inline(always)]
    fn goes_left(forest: &Forest, n: Node, x: f32) -> bool {
        if x.is_nan() {
            n.feature & NAN_LEFT != 0
        } else if n.feature & CATEGORICAL != 0 {
            // common::Decision: invalid categories go left, categories in the set go right.
            !(0.0..XGB_MAX_CAT).contains(&x) || !forest.in_set(n.data, x as u32)
        } else {
            x < f32::from_bits(n.data)
        }
    }
}

/// LightGBM: `x <= threshold`, its missing types, and categories in the set go left.
pub(crate) struct Lgb;

impl Rules for Lgb {
    #[inline(always)]
    fn goes_left(forest: &Forest, n: Node, x: f32) -> bool {
        // LightGBM's dense-row reader stores magnitudes up to kZeroThreshold as 0; thresholds
        // from `lgb_threshold` already account for that, and categories truncate to 0 anyway.
        if x.is_nan() {
            n.feature & NAN_LEFT != 0
        } else if n.feature & CATEGORICAL != 0 {
            // Tree::CategoricalDecision: truncate toward zero, negatives go right, categories in
            // the set go left. `as` saturates where C++ would be undefined; both send
            // out-of-range values right.
            let c = x as i32;
            c >= 0 && forest.in_set(n.data, c as u32)
        } else if n.feature & ZERO_MISSING != 0 && x.abs() <= LGB_ZERO {
            n.feature & NAN_LEFT != 0
        } else {
            x <= f32::from_bits(n.data)
        }
    }
}

/// The largest `f32` not above `t`: for any `f32` x, `x <= t` exactly when `x <= floor_f32(t)`.
pub(crate) fn floor_f32(t: f64) -> f32 {
    let f = t as f32;
    if f64::from(f) > t { f.next_down() } else { f }
}

/// The `f32` threshold `T` for which `x <= T` is LightGBM's decision `x' <= t` for every `f32`
/// x, where `t` is the file's `f64` threshold and x' is x with magnitudes up to `1e-35` read
/// as 0. Only thresholds within `1e-35` of zero need moving.
pub(crate) fn lgb_threshold(t: f64) -> f32 {
    let t = floor_f32(t);
    if (-LGB_ZERO..0.0).contains(&t) {
        // x' <= t < 0 holds exactly for x < -1e-35.
        (-LGB_ZERO).next_down()
    } else if (0.0..LGB_ZERO).contains(&t) {
        // 0 <= t < 1e-35: x' <= t holds exactly for x <= 1e-35.
        LGB_ZERO
    } else {
        t
    }
}

/// Builds bitset words with the given categories set.
pub(crate) fn bitset(categories: &[u32]) -> Vec<u32> {
    let words = categories.iter().max().map_or(0, |m| *m as usize / 32 + 1);
    let mut out = vec![0u32; words];
    for &c in categories {
        out[c as usize / 32] |= 1 << (c % 32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(feature: usize, flags: u32, data: u32, left: usize, right: usize) -> SrcNode {
        SrcNode::Split {
            feature,
            flags,
            data,
            left,
            right,
        }
    }

    #[test]
    fn floor_f32_keeps_comparisons_exact() {
        for t in [
            0.1f64,
            -0.1,
            0.5,
            1e-40,
            -1e-40,
            1e300,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.000_000_059_604_644_8,
            3.4028235677973366e38,
        ] {
            let f = floor_f32(t);
            for x in [f, f.next_up(), f.next_down(), t as f32] {
                assert_eq!(f64::from(x) <= t, x <= f, "t={t} x={x}");
            }
        }
    }

    #[test]
    fn lightgbm_thresholds_absorb_the_zero_rounding() {
        let z = f64::from(LGB_ZERO);
        let ts = [
            0.0,
            -0.0,
            z,
            -z,
            z / 2.0,
            -z / 2.0,
            2.0 * z,
            -2.0 * z,
            1e-36,
            -1e-36,
            0.5,
            -0.5,
            1e-300,
        ];
        let xs = [
            0.0f32,
            -0.0,
            LGB_ZERO,
            -LGB_ZERO,
            LGB_ZERO.next_up(),
            LGB_ZERO.next_down(),
            (-LGB_ZERO).next_up(),
            (-LGB_ZERO).next_down(),
            1e-36,
            -1e-36,
            5e-36,
            -5e-36,
            1.0,
            -1.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
            -1e-45,
        ];
        for t in ts {
            for x in xs {
                let read = if x.abs() <= LGB_ZERO { 0.0 } else { x };
                assert_eq!(
                    x <= lgb_threshold(t),
                    f64::from(read) <= t,
                    "t={t:e} x={x:e}"
                );
            }
        }
    }

    #[test]
    fn bitsets_hold_their_categories() {
        let mut forest = Forest::new(1);
        let set = forest.push_cat_set(&bitset(&[0, 3, 31, 32, 70])).unwrap();
        for c in 0..100 {
            assert_eq!(
                forest.in_set(set, c),
                [0, 3, 31, 32, 70].contains(&c),
                "{c}"
            );
        }
        assert!(!forest.in_set(set, u32::MAX));
        assert!(!forest.in_set(7, 0));
    }

    #[test]
    fn xgboost_rules() {
        let mut f = Forest::new(2);
        let set = f.push_cat_set(&bitset(&[1, 4])).unwrap();
        // 0: x0 < 0.5 (missing left) ? 1 : 2; 1: x1 in {1,4} (missing right) -> right=4 else 3
        let root = f
            .push_tree(&[
                split(0, NAN_LEFT, 0.5f32.to_bits(), 1, 2),
                split(1, CATEGORICAL, set, 3, 4),
                SrcNode::Leaf { slot: 10 },
                SrcNode::Leaf { slot: 11 },
                SrcNode::Leaf { slot: 12 },
            ])
            .unwrap();
        let check = |x0: f32, x1: f32, slot: u32| {
            assert_eq!(f.leaf::<Xgb>(root, &[x0, x1]), slot, "x0={x0} x1={x1}");
            assert_eq!(f.leaves::<Xgb, 2>(&[root, root], &[x0, x1]), [slot; 2]);
        };
        check(0.5, 0.0, 10); // not < 0.5
        check(0.49, 1.0, 12); // in set -> right
        check(0.49, 1.9, 12); // truncated to 1
        check(0.49, 2.0, 11);
        check(0.49, 4.0, 12);
        check(0.49, 100.0, 11); // beyond the bitset -> left
        check(0.49, -1.0, 11); // invalid -> left
        check(0.49, 2e7, 11); // invalid -> left
        check(f32::NAN, 1.0, 12); // missing x0 -> left, then x1 in set
        check(0.0, f32::NAN, 12); // missing x1 -> default right
        check(f32::NEG_INFINITY, 0.0, 11);
        check(f32::INFINITY, 0.0, 10);
    }

    #[test]
    fn lightgbm_rules() {
        let mut f = Forest::new(2);
        let set = f.push_cat_set(&bitset(&[0, 2])).unwrap();
        // 0: x0 <= floor(0.3) left; zero-missing, default right. 1: x1 in {0, 2} left.
        let root = f
            .push_tree(&[
                split(0, ZERO_MISSING, lgb_threshold(0.3).to_bits(), 1, 2),
                split(1, CATEGORICAL, set, 3, 4),
                SrcNode::Leaf { slot: 0 },
                SrcNode::Leaf { slot: 1 },
                SrcNode::Leaf { slot: 2 },
            ])
            .unwrap();
        let check = |x0: f32, x1: f32, slot: u32| {
            assert_eq!(f.leaf::<Lgb>(root, &[x0, x1]), slot, "x0={x0} x1={x1}");
            assert_eq!(f.leaves::<Lgb, 2>(&[root, root], &[x0, x1]), [slot; 2]);
        };
        check(0.3, 0.0, 0); // f32 0.3 > f64 0.3 -> right
        check(0.299_999_98, 0.0, 1); // <= -> left, then category 0 in set -> left
        check(0.0, 0.0, 0); // zero is missing -> default right
        check(1e-36, 0.0, 0); // rounds to zero
        check(f32::NAN, 0.0, 0); // NaN is missing -> right
        check(-1.0, 2.0, 1);
        check(-1.0, 2.9, 1);
        check(-1.0, 1.0, 2);
        check(-1.0, -0.5, 1); // truncates to 0
        check(-1.0, -1.0, 2); // negative -> right
        check(-1.0, f32::NAN, 2); // NaN category -> right
        check(-1.0, 1e20, 2);
    }

    #[test]
    fn malformed_trees_are_refused() {
        let leaf = SrcNode::Leaf { slot: 0 };
        let cases: Vec<(Vec<SrcNode>, &str)> = vec![
            (vec![], "no nodes"),
            (
                vec![split(0, 0, 0, 1, 5), leaf],
                "right child 5 is out of range",
            ),
            (
                vec![split(0, 0, 0, 0, 1), leaf],
                "left child 0 is reached twice",
            ),
            (
                vec![split(0, 0, 0, 1, 1), leaf],
                "right child 1 is reached twice",
            ),
            (
                vec![split(0, 0, 0, 1, 2), split(0, 0, 0, 2, 0), leaf],
                "reached twice",
            ),
            (vec![split(9, 0, 0, 1, 2), leaf, leaf], "split feature 9"),
            (
                vec![split(0, CATEGORICAL, 3, 1, 2), leaf, leaf],
                "category set 3",
            ),
        ];
        for (tree, want) in cases {
            let err = Forest::new(2).push_tree(&tree).unwrap_err();
            assert!(err.message.contains(want), "{}: {want}", err.message);
        }
    }
}
