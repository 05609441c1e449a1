//! The example programs' checks, run as tests so that the examples cannot fall behind the
//! library: `examples/custom_model.rs` is compiled into this test and its `run` called.

#[path = "../examples/custom_model.rs"]
#[allow(dead_code)]
mod custom_model;

#[test]
fn the_custom_model_example_passes_its_checks_and_says_what_it_checked() {
    let mut out = Vec::new();
    let summary = custom_model::run(&mut out).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8(out).unwrap();
    // 4×5 + 5 + 3×5 + 3 parameters; 6×3 probabilities.
    assert_eq!(summary.parameters, 43);
    assert_eq!(summary.jacobian_entries, 18 * 43);
    assert!(summary.gradient_max_rel_error < 1e-6, "{summary:?}");
    assert!(summary.jacobian_worst_ratio <= 1.0, "{summary:?}");
    assert_eq!(summary.projections.0, 8);
    assert!(summary.projections.1 <= 1.0, "{summary:?}");
    assert_eq!(summary.property_cases, 48);
    for what in [
        "gradient check of the loss: 43 parameters in 4 tensors",
        "full Jacobian of the probabilities [6, 3]: 18 × 43 entries",
        "random projections uᵀJv: 8 pairs",
        "property over 48 random batches",
    ] {
        assert!(text.contains(what), "'{what}' missing from:\n{text}");
    }
    assert_eq!(
        text.lines().filter(|l| l.ends_with(": ok")).count(),
        4,
        "{text}"
    );
}
