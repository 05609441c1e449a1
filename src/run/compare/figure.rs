//! The grid of a comparison as a figure: `compare.svg` beside `table.md`.

use super::table::CompareResults;
use crate::report::{compare_svg, CompareBar};
use crate::run::figures::benchmark_label;

/// The figure of `results`: per scenario a panel, per method a row, each seed's final mean
/// accuracy, their mean and ± one standard deviation ([`compare_svg`]); a (method, scenario)
/// without a finished run reads "missing".
pub fn compare_figure(results: &CompareResults) -> String {
    let c = &results.base;
    let seeds = results.seeds();
    let title = format!(
        "{}, {} steps per task, {} seed{}: final mean test accuracy %",
        benchmark_label(c),
        c.train.iterations,
        seeds.len(),
        if seeds.len() == 1 { "" } else { "s" }
    );
    let methods: Vec<String> = results
        .methods
        .iter()
        .map(|m| m.table_label().to_string())
        .collect();
    let scenarios: Vec<String> = results
        .scenarios
        .iter()
        .map(|s| s.name().to_uppercase())
        .collect();
    let cells: Vec<CompareBar> = results
        .cells
        .iter()
        .map(|cell| CompareBar {
            method: cell.method.table_label().to_string(),
            scenario: cell.scenario.name().to_uppercase(),
            values: cell.final_mean_accuracy.clone(),
            mean: cell.mean,
            std: cell.std,
        })
        .collect();
    compare_svg(&title, &methods, &scenarios, &cells)
}
