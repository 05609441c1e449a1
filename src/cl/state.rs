//! A learner's state between two tasks as named values: f32 tensors (weights, Fisher
//! estimates, embeddings, …) and f64 scalars (temperatures, losses). A run stores it after
//! every task so that it can be resumed (see `checkpoint`); every random stream of a task
//! is derived from the seed and the task's index, and every optimizer starts fresh with each
//! task, so these values are all a resumed run needs to continue exactly.

use std::collections::BTreeMap;

/// What a failed restore reports: which value is missing, left over or of the wrong size.
pub type StateResult<T> = std::result::Result<T, String>;

/// Named tensors and scalars, in name order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LearnerState {
    /// Flat f32 tensors by name.
    pub tensors: BTreeMap<String, Vec<f32>>,
    /// f64 values by name.
    pub scalars: BTreeMap<String, Vec<f64>>,
}

impl LearnerState {
    /// Stores tensor `name`.
    pub fn put(&mut self, name: impl Into<String>, values: &[f32]) {
        self.tensors.insert(name.into(), values.to_vec());
    }

    /// Stores the scalars `name`.
    pub fn put_scalars(&mut self, name: impl Into<String>, values: &[f64]) {
        self.scalars.insert(name.into(), values.to_vec());
    }

    /// Removes tensor `name`, which must hold `len` values.
    pub fn take(&mut self, name: &str, len: usize) -> StateResult<Vec<f32>> {
        let v = self
            .tensors
            .remove(name)
            .ok_or_else(|| format!("tensor {name} is missing"))?;
        if v.len() != len {
            return Err(format!(
                "tensor {name}: expected {len} values (from the configuration), found {}",
                v.len()
            ));
        }
        Ok(v)
    }

    /// Removes the scalars `name`, which must be `len` values.
    pub fn take_scalars(&mut self, name: &str, len: usize) -> StateResult<Vec<f64>> {
        let v = self
            .scalars
            .remove(name)
            .ok_or_else(|| format!("scalars {name} are missing"))?;
        if v.len() != len {
            return Err(format!(
                "scalars {name}: expected {len} values, found {}",
                v.len()
            ));
        }
        Ok(v)
    }

    /// An error naming the first value no restore took (a state of another configuration).
    pub fn check_all_taken(&self) -> StateResult<()> {
        if let Some(name) = self.tensors.keys().next() {
            return Err(format!("unexpected tensor {name}"));
        }
        if let Some(name) = self.scalars.keys().next() {
            return Err(format!("unexpected scalars {name}"));
        }
        Ok(())
    }
}
