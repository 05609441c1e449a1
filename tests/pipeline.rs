//! The end-to-end audit of a training step (task loss + look-ahead regularizer, through the
//! chunked hypernetwork and the target MLP) passes for every look-ahead and several seeds, and
//! can fail: a gradient off by 1 %, one without the regularizer term, or one whose Δθ differs
//! from the objective's are all rejected.

use hypertape::cl::hnet::audit::AuditSetup;
use hypertape::cl::hnet::{step_gradients, Lookahead, StepInput, StepWorkspace};
use hypertape::gradcheck::{compare_with_differences, directional_compare, GradCheckOptions};
use hypertape::Tensor;

const LOOKAHEADS: [Lookahead; 3] = [Lookahead::Adam, Lookahead::Sgd, Lookahead::Off];

fn inputs(setup: &AuditSetup) -> Vec<Tensor<f64>> {
    let theta = setup.model.theta.clone();
    let emb = setup.model.task_embs[setup.task].clone();
    vec![
        Tensor::from_vec(&[theta.len()], theta),
        Tensor::from_vec(&[emb.len()], emb),
    ]
}

#[test]
fn tiny_pipeline_audit_passes_for_every_lookahead_and_seed() {
    for seed in [0, 1, 2, 42] {
        let setup = AuditSetup::tiny(seed);
        assert_eq!(setup.reg.num_prev(), 2);
        for lookahead in LOOKAHEADS {
            let report = setup.audit(lookahead, &GradCheckOptions::default());
            assert_eq!(report.inputs.len(), 2);
            assert!(report.passed(), "seed {seed}, {lookahead:?}:\n{report}");
        }
    }
}

#[test]
fn tiny_pipeline_directional_audit_passes() {
    for seed in [0, 3] {
        let setup = AuditSetup::tiny(seed);
        for lookahead in LOOKAHEADS {
            let report = setup.directional_audit(lookahead, seed, &GradCheckOptions::default());
            assert!(report.passed, "seed {seed}, {lookahead:?}: {report}");
            assert!(
                report.analytic.abs() > 1e-3,
                "a trivial direction: {report}"
            );
        }
    }
}

#[test]
fn the_lookahead_moves_the_regularizer_term() {
    // Δθ is not zero for Adam and SGD, so the audits above test the shifted evaluation.
    let setup = AuditSetup::tiny(0);
    for lookahead in LOOKAHEADS {
        let (_, _, delta) = setup.step_gradients(lookahead);
        let norm: f64 = delta.iter().map(|d| d * d).sum::<f64>().sqrt();
        if lookahead == Lookahead::Off {
            assert_eq!(norm, 0.0);
        } else {
            assert!(norm > 1e-3, "{lookahead:?}: ‖Δθ‖ = {norm}");
        }
    }
}

#[test]
fn audit_rejects_a_gradient_scaled_by_one_percent() {
    let setup = AuditSetup::tiny(0);
    let options = GradCheckOptions::default();
    for lookahead in LOOKAHEADS {
        let (gt, ge, delta) = setup.step_gradients(lookahead);
        let objective = |xs: &[Tensor<f64>]| setup.objective(xs[0].data(), xs[1].data(), &delta);
        // Unscaled, the same comparison passes: the failure below is the scaling's doing.
        let good = compare_with_differences(
            &[gt.clone(), ge.clone()],
            &inputs(&setup),
            objective,
            &options,
        );
        assert!(good.passed(), "{good}");
        let scaled: Vec<Vec<f64>> = [gt, ge]
            .iter()
            .map(|g| g.iter().map(|v| 1.01 * v).collect())
            .collect();
        let bad = compare_with_differences(&scaled, &inputs(&setup), objective, &options);
        assert!(!bad.passed(), "{lookahead:?}: a 1 % error passed:\n{bad}");
        let dir = directional_compare(&scaled, &inputs(&setup), objective, 0, &options);
        assert!(!dir.passed, "{lookahead:?}: {dir}");
    }
}

#[test]
fn audit_rejects_a_gradient_without_the_regularizer() {
    let setup = AuditSetup::tiny(1);
    let (gt_full, ge, delta) = setup.step_gradients(Lookahead::Adam);
    // The task gradient alone (empty subset): with β in [0.25, 2] the regularizer's part shows.
    let empty: Vec<usize> = Vec::new();
    let input = StepInput {
        x: &setup.x,
        labels: &setup.labels,
        task: setup.task,
        head: setup.task,
    };
    let g = step_gradients(
        &setup.model,
        input,
        Some((&setup.reg, &empty)),
        Lookahead::Adam,
        &setup.theta_opt,
        &mut StepWorkspace::new(),
    );
    assert_ne!(g.theta, gt_full);
    let report = compare_with_differences(
        &[g.theta, ge],
        &inputs(&setup),
        |xs| setup.objective(xs[0].data(), xs[1].data(), &delta),
        &GradCheckOptions::default(),
    );
    assert!(
        !report.passed(),
        "the regularizer's gradient is not needed?\n{report}"
    );
    assert!(report.inputs[0].max_rel_error > 1e-4);
    assert!(
        report.inputs[1].passed,
        "e(T) has no regularizer term:\n{report}"
    );
}

#[test]
fn audit_rejects_a_gradient_taken_at_the_wrong_lookahead() {
    // The gradient of the Off step (regularizer at θ) against the Adam objective (at θ + Δθ).
    let setup = AuditSetup::tiny(2);
    let (_, _, delta_adam) = setup.step_gradients(Lookahead::Adam);
    let (gt_off, ge_off, _) = setup.step_gradients(Lookahead::Off);
    let report = compare_with_differences(
        &[gt_off, ge_off],
        &inputs(&setup),
        |xs| setup.objective(xs[0].data(), xs[1].data(), &delta_adam),
        &GradCheckOptions::default(),
    );
    assert!(!report.passed(), "{report}");
}

#[test]
fn full_size_split_mnist_step_passes_the_directional_audit() {
    use hypertape::run::{Benchmark, ExperimentConfig};
    let c = ExperimentConfig::paper_defaults(Benchmark::SplitMnist);
    let setup = AuditSetup::new(c.target(), &c.hnet, 2, 8, 5);
    let options = GradCheckOptions {
        eps: 1e-4,
        tolerance: 1e-6,
    };
    for lookahead in [Lookahead::Adam, Lookahead::Off] {
        let report = setup.directional_audit(lookahead, 5, &options);
        assert!(report.passed, "{lookahead:?}: {report}");
    }
}

#[test]
fn tiny_pipeline_audit_passes_with_the_factored_regularizer() {
    // The trainer's gradient with the factored form against finite differences of R by its
    // definition (the direct form with stored targets): both the gradient and the form's
    // value are audited.
    use hypertape::cl::hnet::{RegTargets, RegularizerForm};
    for seed in [0, 1, 42] {
        for online in [false, true] {
            let setup = AuditSetup::tiny_with_form(seed, RegularizerForm::Factored, online);
            assert!(matches!(
                (setup.reg.targets(), online),
                (RegTargets::Factors { .. }, false) | (RegTargets::Online { .. }, true)
            ));
            assert_eq!(
                setup.reg.form_for(&setup.model.hnet, 2),
                RegularizerForm::Factored
            );
            for lookahead in LOOKAHEADS {
                let report = setup.audit(lookahead, &GradCheckOptions::default());
                assert!(
                    report.passed(),
                    "seed {seed}, online {online}, {lookahead:?}:\n{report}"
                );
            }
            // The same gradient as the direct form's, to rounding.
            let direct = AuditSetup::tiny(seed);
            let (gf, ef, df) = setup.step_gradients(Lookahead::Adam);
            let (gd, ed, dd) = direct.step_gradients(Lookahead::Adam);
            assert_eq!(
                (ef, df),
                (ed, dd),
                "task gradient and Δθ do not depend on the form"
            );
            for (a, b) in gf.iter().zip(&gd) {
                assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }
}

#[test]
fn full_size_permuted_mnist_step_with_the_factored_regularizer_passes_the_directional_audit() {
    use hypertape::cl::hnet::RegularizerForm;
    use hypertape::run::{Benchmark, ExperimentConfig};
    let options = GradCheckOptions {
        eps: 1e-4,
        tolerance: 1e-6,
    };
    for c in [
        ExperimentConfig::paper_defaults(Benchmark::PermutedMnist),
        ExperimentConfig::paper_defaults(Benchmark::SplitMnist),
    ] {
        let setup = AuditSetup::with_form(
            c.target(),
            &c.hnet,
            3,
            4,
            5,
            RegularizerForm::Factored,
            false,
        );
        let report = setup.directional_audit(Lookahead::Adam, 5, &options);
        assert!(report.passed, "{:?}: {report}", c.benchmark);
    }
}
