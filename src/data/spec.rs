//! A task named by what defines it, so a stored model can say which tasks it learned and a
//! new task can be added later: a SplitMNIST digit pair or a PermutedMNIST permutation.
//!
//! On the command line a spec reads `split:A,B` (digits A and B, local labels 0 and 1),
//! `permuted:none` (the zero-padded, unpermuted images: task 0 of PermutedMNIST),
//! `permuted:SEED` (the permutation drawn from `Rng::derived(SEED, "permutation", 0)`) or
//! `permuted:SEED/INDEX` (from `Rng::derived(SEED, "permutation", INDEX)`: task INDEX of
//! PermutedMNIST with data seed SEED).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One classification task of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TaskSpec {
    /// The digits `classes[0]` (label 0) and `classes[1]` (label 1), 784 raw pixels.
    Split {
        /// Two distinct digits 0..=9.
        classes: [u8; 2],
    },
    /// All ten digits, zero-padded to 32×32, pixels permuted by
    /// `Rng::derived(seed, "permutation", index)`; `seed: None` is the unpermuted task.
    Permuted {
        /// Seed of the permutation, `None` for none.
        seed: Option<u64>,
        /// Index of the derived stream (the task index in PermutedMNIST).
        #[serde(default)]
        index: u64,
    },
}

impl TaskSpec {
    /// What the task is, in words for a table: "digits 0 and 1", "unpermuted" or
    /// "permutation 3 of seed 42".
    pub fn describe(&self) -> String {
        match *self {
            TaskSpec::Split { classes: [a, b] } => format!("digits {a} and {b}"),
            TaskSpec::Permuted { seed: None, .. } => "unpermuted".to_string(),
            TaskSpec::Permuted {
                seed: Some(s),
                index,
            } => format!("permutation {index} of seed {s}"),
        }
    }

    /// Checks the digits of a split task.
    pub fn validate(&self) -> Result<()> {
        match *self {
            TaskSpec::Split { classes: [a, b] } if a > 9 || b > 9 || a == b => Err(Error::config(
                "task",
                format!("split: expected two distinct digits from 0 to 9, found {a},{b}"),
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for TaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TaskSpec::Split { classes: [a, b] } => write!(f, "split:{a},{b}"),
            TaskSpec::Permuted { seed: None, .. } => write!(f, "permuted:none"),
            TaskSpec::Permuted {
                seed: Some(s),
                index: 0,
            } => write!(f, "permuted:{s}"),
            TaskSpec::Permuted {
                seed: Some(s),
                index,
            } => write!(f, "permuted:{s}/{index}"),
        }
    }
}

impl std::str::FromStr for TaskSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::config(
                "task",
                format!("'{s}': {why} (expected split:A,B, permuted:none, permuted:SEED or permuted:SEED/INDEX)"),
            )
        };
        let (kind, rest) = s.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let spec = match kind {
            "split" => {
                let digits: Vec<&str> = rest.split(',').collect();
                let digit = |d: &str| d.trim().parse::<u8>().map_err(|_| bad("not a digit"));
                match digits[..] {
                    [a, b] => TaskSpec::Split {
                        classes: [digit(a)?, digit(b)?],
                    },
                    _ => return Err(bad("a split task has two digits")),
                }
            }
            "permuted" if rest == "none" => TaskSpec::Permuted {
                seed: None,
                index: 0,
            },
            "permuted" => {
                let number = |n: &str| n.trim().parse::<u64>().map_err(|_| bad("not a number"));
                let (seed, index) = match rest.split_once('/') {
                    Some((s, i)) => (number(s)?, number(i)?),
                    None => (number(rest)?, 0),
                };
                TaskSpec::Permuted {
                    seed: Some(seed),
                    index,
                }
            }
            _ => return Err(bad("unknown kind")),
        };
        spec.validate()?;
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print_back() {
        for s in ["split:8,9", "permuted:none", "permuted:123", "permuted:7/4"] {
            let spec: TaskSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        assert_eq!(
            "split:3,1".parse::<TaskSpec>().unwrap(),
            TaskSpec::Split { classes: [3, 1] }
        );
        for bad in [
            "split:1",
            "split:1,1",
            "split:1,10",
            "permuted:x",
            "mnist:1",
            "split",
        ] {
            let err = bad.parse::<TaskSpec>().unwrap_err().to_string();
            assert!(err.contains("task"), "{bad}: {err}");
        }
    }
}
