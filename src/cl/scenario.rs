//! The three continual-learning scenarios (van de Ven & Tolias 2019), which outputs a loss
//! reads, and what an evaluation without task identity reports.
//!
//! - CL1: one head per task, the task identity is given at test time.
//! - CL2: one head shared by all tasks; the task identity is not given.
//! - CL3: one head per task, the task identity must be inferred; a prediction is a class among
//!   all classes seen (task · head_dim + local class), right only if task and class both are.

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// A continual-learning scenario.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Task-incremental: a head per task, task identity given.
    #[default]
    Cl1,
    /// Domain-incremental: one shared head, task identity not given.
    Cl2,
    /// Class-incremental: a head per task, task identity inferred.
    Cl3,
}

impl Scenario {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Cl1 => "cl1",
            Scenario::Cl2 => "cl2",
            Scenario::Cl3 => "cl3",
        }
    }

    /// Output heads of the target network for `num_tasks` tasks.
    pub fn num_heads(self, num_tasks: usize) -> usize {
        match self {
            Scenario::Cl2 => 1,
            Scenario::Cl1 | Scenario::Cl3 => num_tasks,
        }
    }

    /// The head task `task` is trained and read with when its identity is known.
    pub fn head(self, task: usize) -> usize {
        match self {
            Scenario::Cl2 => 0,
            Scenario::Cl1 | Scenario::Cl3 => task,
        }
    }

    /// True if the task identity is not given at test time.
    pub fn infers_task(self) -> bool {
        self != Scenario::Cl1
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cl1" => Ok(Scenario::Cl1),
            "cl2" => Ok(Scenario::Cl2),
            "cl3" => Ok(Scenario::Cl3),
            _ => Err(format!("unknown scenario '{s}' (cl1, cl2, cl3)")),
        }
    }
}
/// Which outputs a loss reads: the heads `heads` side by side, a local label l being output
/// `label_offset + l`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readout {
    /// Consecutive heads.
    pub heads: Range<usize>,
    /// Added to a task's local labels.
    pub label_offset: usize,
}

impl Readout {
    /// Head `head` alone, local labels as they are.
    pub fn head(head: usize) -> Self {
        Self {
            heads: head..head + 1,
            label_offset: 0,
        }
    }
}

/// The outcome of evaluating one test set without its task identity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InferredEval {
    /// Percent of inputs classified correctly (CL3: task and class both right).
    pub accuracy: f64,
    /// Percent of inputs whose task was inferred correctly.
    pub task_inference_accuracy: f64,
    /// Percent of inputs assigned to each learned task.
    pub picks: Vec<f64>,
}
