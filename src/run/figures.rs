//! What the figures of a run say about it: the benchmark, the method and scenario, and what
//! its accuracy matrix measures (which follows the evaluation [`super::RunState`] records:
//! with the task identity in CL1, without it in CL2 and CL3).

use super::config::{Benchmark, ExperimentConfig};
use crate::cl::{Method, Scenario};

/// The benchmark as the paper names it: `SplitMNIST`, `SplitMNIST-2` (fewer than its five
/// tasks), `PermutedMNIST-10`, `PermutedMNIST-100`, ….
pub fn benchmark_label(c: &ExperimentConfig) -> String {
    match c.benchmark {
        Benchmark::SplitMnist if c.num_tasks == 5 => "SplitMNIST".to_string(),
        Benchmark::SplitMnist => format!("SplitMNIST-{}", c.num_tasks),
        Benchmark::PermutedMnist => format!("PermutedMNIST-{}", c.num_tasks),
    }
}

/// The method as the paper names it in `scenario`, with its command-line name:
/// `HNET+ENT (--method hnet)`.
pub fn method_label(method: Method, scenario: Scenario) -> String {
    let paper = match (method, scenario) {
        (Method::Hnet, Scenario::Cl1) | (Method::HnetTir, Scenario::Cl1) => "HNET",
        (Method::Hnet, _) => "HNET+ENT",
        (Method::HnetTir, _) => "HNET+TIR",
        (Method::HnetR, _) => "HNET+R",
        (Method::Finetune, _) => "fine-tuning",
        (Method::Ewc, _) => "EWC",
        (Method::OnlineEwc, _) => "online EWC",
        (Method::Si, _) => "SI",
    };
    format!("{paper} (--method {})", method.name())
}

/// `SplitMNIST · HNET+ENT (--method hnet) · CL2 · seed 42`.
pub fn run_title(c: &ExperimentConfig) -> String {
    format!(
        "{} · {} · {} · seed {}",
        benchmark_label(c),
        method_label(c.method, c.scenario),
        c.scenario.name().to_uppercase(),
        c.train.seed
    )
}

/// What row i, column j of the run's accuracy matrix is: task j's test accuracy after task
/// i, read as the scenario reads it.
pub fn matrix_subtitle(method: Method, scenario: Scenario) -> String {
    let how = match (scenario, method) {
        (Scenario::Cl1, _) => "task identity given: task j read with its own weights and head",
        (Scenario::Cl2, Method::Hnet) => {
            "task identity not given: the shared head, with the weights of the task HNET+ENT infers (lowest entropy)"
        }
        (Scenario::Cl2, Method::HnetTir) => {
            "task identity not given: the shared head, with the weights of the task the task-inference network infers"
        }
        (Scenario::Cl2, _) => "task identity not given: the one shared head (no task inferred)",
        (Scenario::Cl3, Method::Hnet) => {
            "task inferred by HNET+ENT: right only if the task and the class are both right"
        }
        (Scenario::Cl3, Method::HnetTir) => {
            "task inferred by the task-inference network: right only if the task and the class are both right"
        }
        (Scenario::Cl3, _) => {
            "task identity not given: the argmax over the classes of every learned task"
        }
    };
    format!("test accuracy (%) of task j after learning task i; {how}")
}
