//! Version 1 of the hypernetwork's checkpoints: θ as one tensor per entry of the
//! hypernetwork's layout (`theta.layer0.weight`, …, `theta.chunk_embeddings`), the Adam
//! moments (`adam.*`), and a `state.json` with the record's fields at the top level.

use super::{History, StateFile};
use crate::cl::InferredEval;
use crate::data::TaskSpec;
use crate::nn::Hnet;
use crate::run::config::ExperimentConfig;
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HnetState {
    format_version: u32,
    hypertape_version: String,
    completed_tasks: usize,
    config: ExperimentConfig,
    tasks: Vec<TaskSpec>,
    accuracy_matrix: Vec<Vec<f64>>,
    #[serde(default)]
    task_inference: Vec<Vec<InferredEval>>,
    wall_seconds: f64,
    #[allow(dead_code)]
    optimizer: Option<serde_json::Value>,
    #[serde(default)]
    validation_accuracy_matrix: Vec<Vec<f64>>,
    #[serde(default)]
    validation_task_inference: Vec<Vec<InferredEval>>,
    #[serde(default)]
    task_temperatures: Vec<f64>,
}

/// A version-1 hypernetwork `state.json` as the version-2 content (version number kept).
pub(super) fn state_file(path: &Path, value: serde_json::Value) -> Result<StateFile> {
    let s: HnetState = serde_json::from_value(value)
        .map_err(|e| Error::format(path, format!("invalid state: {e}")))?;
    Ok(StateFile {
        format_version: s.format_version,
        hypertape_version: s.hypertape_version,
        completed_tasks: s.completed_tasks,
        config: s.config,
        tasks: s.tasks,
        history: History {
            accuracy_matrix: s.accuracy_matrix,
            task_inference: s.task_inference,
            wall_seconds: s.wall_seconds,
            validation_accuracy_matrix: s.validation_accuracy_matrix,
            validation_task_inference: s.validation_task_inference,
            sessions: Vec::new(),
        },
        scalars: BTreeMap::from([("temperatures".to_string(), s.task_temperatures)]),
    })
}

/// Joins θ's per-entry tensors into `theta` (layout order) and drops the Adam moments.
pub(super) fn migrate_tensors(
    path: &Path,
    config: &ExperimentConfig,
    tensors: &mut BTreeMap<String, Vec<f32>>,
) -> Result<()> {
    tensors.retain(|name, _| !name.starts_with("adam."));
    let hnet = Hnet::new(&config.hnet, config.target().num_weights());
    let mut theta = Vec::new();
    for e in hnet.layout().entries() {
        let name = format!("theta.{}", e.name);
        let v = tensors
            .remove(&name)
            .ok_or_else(|| Error::format(path, format!("tensor {name} is missing")))?;
        if v.len() != e.len() {
            return Err(Error::format(
                path,
                format!(
                    "tensor {name}: expected {} values (shape {:?} from the configuration), found {}",
                    e.len(),
                    e.shape,
                    v.len()
                ),
            ));
        }
        theta.extend(v);
    }
    tensors.insert("theta".to_string(), theta);
    Ok(())
}
