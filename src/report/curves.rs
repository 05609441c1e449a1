//! Figures of training curves (per task: the task loss, the regularizer and the held-out
//! accuracy every few steps) and of a comparison grid (methods × scenarios over seeds).

use super::svg::{label_stride, series_colour, text_width, tick_label, ticks, Anchor, Svg};

/// One point of a training curve.
#[derive(Clone, Debug, PartialEq)]
pub struct CurvePoint {
    /// Steps done in the task's loop (1 to its steps).
    pub step: usize,
    /// Mean task loss over the steps since the previous point.
    pub task_loss: f64,
    /// Mean regularizer over the same steps; `None` for a loop without one.
    pub regularizer: Option<f64>,
    /// Held-out accuracy (%) after this step; `None` where not measured.
    pub accuracy: Option<f64>,
}

/// The curve of one task's loop (one network trained in one task).
#[derive(Clone, Debug, PartialEq)]
pub struct CurveSeries {
    /// The task.
    pub task: usize,
    /// Which loop: the network it trains (`classifier`, `task-inference`, `vae`).
    pub phase: String,
    /// Its points, by step.
    pub points: Vec<CurvePoint>,
}

const PW: f64 = 330.0;
const PH: f64 = 190.0;

/// One panel: where, what, how.
struct Panel<'a> {
    x: f64,
    y: f64,
    title: &'a str,
    log: bool,
    /// Per task: its x offset and points (x within the task, value).
    data: Vec<(usize, Vec<(f64, f64)>)>,
    /// The x extent, the task boundaries and the number of tasks of the figure.
    x_max: f64,
    bounds: &'a [(usize, f64, f64)],
    tasks: usize,
    empty_note: &'a str,
}

fn draw_panel(s: &mut Svg, p: &Panel<'_>) {
    s.bold(p.x, p.y - 14.0, 12.0, Anchor::Start, p.title);
    s.rect(p.x, p.y, PW, PH, "none", "#888");
    let values: Vec<f64> = p
        .data
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|q| q.1))
        .filter(|v| v.is_finite() && (!p.log || *v > 0.0))
        .collect();
    if values.is_empty() {
        s.text(
            p.x + PW / 2.0,
            p.y + PH / 2.0,
            11.0,
            Anchor::Middle,
            p.empty_note,
        );
        return;
    }
    let (mut lo, mut hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let map: Box<dyn Fn(f64) -> f64> = if p.log {
        lo = lo.log10().floor();
        hi = hi.log10().ceil();
        if hi <= lo {
            hi = lo + 1.0;
        }
        Box::new(|v: f64| v.log10())
    } else {
        lo = ((lo / 10.0).floor() * 10.0).clamp(0.0, 90.0);
        hi = 100.0;
        Box::new(|v: f64| v)
    };
    let ys = |v: f64| p.y + PH * (1.0 - ((map(v) - lo) / (hi - lo)).clamp(0.0, 1.0));
    let xs = |x: f64| p.x + PW * x / p.x_max.max(1.0);
    if p.log {
        let decades = (hi - lo) as usize;
        let stride = decades.div_ceil(6).max(1);
        for k in (0..=decades).step_by(stride) {
            let v = 10f64.powf(lo + k as f64);
            let y = ys(v);
            s.line(p.x, y, p.x + PW, y, "#e6e6e6", 1.0);
            s.text(p.x - 5.0, y, 10.0, Anchor::End, &tick_label(v));
            // Within one or two decades, also 2 and 5 times each power of ten.
            if decades <= 2 && k < decades {
                for m in [2.0, 5.0] {
                    let y = ys(m * v);
                    s.line(p.x, y, p.x + PW, y, "#f2f2f2", 1.0);
                    s.text(p.x - 5.0, y, 10.0, Anchor::End, &tick_label(m * v));
                }
            }
        }
    } else {
        for t in ticks(lo, hi, 5) {
            let y = ys(t);
            s.line(p.x, y, p.x + PW, y, "#e6e6e6", 1.0);
            s.text(p.x - 5.0, y, 10.0, Anchor::End, &format!("{t:.0}"));
        }
    }
    // Task boundaries and their labels, thinned to stay legible.
    let widest = p
        .bounds
        .iter()
        .map(|b| PW * (b.2 - b.1) / p.x_max.max(1.0))
        .fold(f64::INFINITY, f64::min);
    let stride = label_stride(widest, text_width("99", 10.0) + 6.0);
    for (k, &(task, start, end)) in p.bounds.iter().enumerate() {
        if k > 0 && p.bounds.len() <= 60 {
            s.dashed_line(xs(start), p.y, xs(start), p.y + PH, "#c8c8c8");
        }
        if task % stride == 0 {
            s.text(
                xs((start + end) / 2.0),
                p.y + PH + 12.0,
                10.0,
                Anchor::Middle,
                &task.to_string(),
            );
        }
    }
    for (task, pts) in &p.data {
        let colour = series_colour(*task, p.tasks);
        let line: Vec<(f64, f64)> = pts
            .iter()
            .filter(|q| q.1.is_finite() && (!p.log || q.1 > 0.0))
            .map(|&(x, v)| (xs(x), ys(v)))
            .collect();
        s.polyline(&line, &colour, 1.5);
        if line.len() == 1 {
            s.circle(line[0].0, line[0].1, 2.5, &colour, "none");
        }
    }
}

/// The training curves as one figure: a row of three panels per loop (`phase`) present: the
/// task loss and the regularizer (log scales; a regularizer of 0, as on the first task, is
/// not drawn) and the held-out accuracy (%). The x axis runs through the tasks in order, each
/// task's steps side by side, separated by dashed lines and labelled with the task's index.
/// `title` and `subtitle` head the figure; `held_out` names the held-out set.
pub fn curves_svg(title: &str, subtitle: &str, held_out: &str, series: &[CurveSeries]) -> String {
    // The classifier's loop first, then the task-inference network's, then the VAE's (the
    // order of their files' phases otherwise).
    let rank = |p: &str| match p {
        "classifier" => 0,
        "task-inference" => 1,
        "vae" => 2,
        _ => 3,
    };
    let mut phases: Vec<&str> = Vec::new();
    for c in series {
        if !phases.contains(&c.phase.as_str()) {
            phases.push(&c.phase);
        }
    }
    phases.sort_by_key(|p| rank(p));
    let tasks = series.iter().map(|c| c.task + 1).max().unwrap_or(0);
    let (left, top) = (78.0, 96.0);
    let row_h = PH + 96.0;
    let mut body = Svg::new(0.0, 0.0);
    for (r, phase) in phases.iter().enumerate() {
        let y = top + 22.0 + r as f64 * row_h;
        let mine: Vec<&CurveSeries> = series.iter().filter(|c| c.phase == *phase).collect();
        // Each task's segment: [start, start + its last step).
        let mut bounds = Vec::new();
        let mut x = 0.0;
        for c in &mine {
            let len = c.points.iter().map(|q| q.step).max().unwrap_or(0) as f64;
            bounds.push((c.task, x, x + len));
            x += len;
        }
        let x_max = x;
        let column = |f: &dyn Fn(&CurvePoint) -> Option<f64>| -> Vec<(usize, Vec<(f64, f64)>)> {
            mine.iter()
                .zip(&bounds)
                .map(|(c, b)| {
                    let pts = c
                        .points
                        .iter()
                        .filter_map(|q| f(q).map(|v| (b.1 + q.step as f64, v)))
                        .collect();
                    (c.task, pts)
                })
                .collect()
        };
        body.bold(
            20.0,
            y - 40.0,
            13.0,
            Anchor::Start,
            &format!("loop: {phase}"),
        );
        let acc_title = format!("held-out accuracy % ({held_out})");
        let panels = [
            Panel {
                x: left,
                y,
                title: "task loss (mean since the previous point)",
                log: true,
                data: column(&|q| Some(q.task_loss)),
                x_max,
                bounds: &bounds,
                tasks,
                empty_note: "no finite task loss",
            },
            Panel {
                x: left + PW + 80.0,
                y,
                title: "regularizer (mean since the previous point)",
                log: true,
                data: column(&|q| q.regularizer),
                x_max,
                bounds: &bounds,
                tasks,
                empty_note: if mine
                    .iter()
                    .any(|c| c.points.iter().any(|q| q.regularizer.is_some()))
                {
                    "0 at every point (not drawn on a log scale)"
                } else {
                    "none: this loop has no regularizer"
                },
            },
            Panel {
                x: left + 2.0 * (PW + 80.0),
                y,
                title: &acc_title,
                log: false,
                data: column(&|q| q.accuracy),
                x_max,
                bounds: &bounds,
                tasks,
                empty_note: "not measured: this loop trains no classifier",
            },
        ];
        for p in &panels {
            draw_panel(&mut body, p);
            body.text(
                p.x + PW / 2.0,
                y + PH + 30.0,
                11.0,
                Anchor::Middle,
                "task (its steps from left to right)",
            );
        }
        body.vertical_text(left - 50.0, y + PH / 2.0, 11.0, "loss (log)");
        body.vertical_text(left + PW + 30.0, y + PH / 2.0, 11.0, "regularizer (log)");
        body.vertical_text(
            left + 2.0 * (PW + 80.0) - 50.0,
            y + PH / 2.0,
            11.0,
            "accuracy %",
        );
    }
    let width = (left + 3.0 * PW + 2.0 * 80.0 + 30.0)
        .max(40.0 + text_width(title, 16.0).max(text_width(subtitle, 12.0)));
    let height = top + 22.0 + phases.len().max(1) as f64 * row_h - 40.0;
    let mut page = Svg::new(width, height);
    page.bold(20.0, 24.0, 16.0, Anchor::Start, title);
    page.text(20.0, 48.0, 12.0, Anchor::Start, subtitle);
    if phases.is_empty() {
        page.text(
            20.0,
            80.0,
            12.0,
            Anchor::Start,
            "no training curves recorded",
        );
    }
    page.raw(body.body_markup());
    page.finish()
}

/// One (method, scenario) cell of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareBar {
    /// Row: the method's label.
    pub method: String,
    /// Column: the scenario's label.
    pub scenario: String,
    /// Each seed's final mean accuracy (%) (empty: the cell is missing).
    pub values: Vec<f64>,
    /// Mean and sample standard deviation over the seeds.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
}

/// A comparison grid as a dot plot: one panel per scenario (columns), one row per method;
/// in each cell every seed's value as a small circle, the mean as a dot with a bar of ± one
/// standard deviation, and "mean ± std (n seeds)" beside it. All panels share one x axis
/// (accuracy %, from a multiple of 10 below the lowest value to 100).
pub fn compare_svg(
    title: &str,
    methods: &[String],
    scenarios: &[String],
    cells: &[CompareBar],
) -> String {
    let label_w = methods
        .iter()
        .map(|m| text_width(m, 12.0))
        .fold(60.0, f64::max);
    let (left, top, row_h, plot_w, text_w) = (30.0 + label_w, 96.0, 30.0, 300.0, 150.0);
    let panel_w = plot_w + text_w;
    let min = cells
        .iter()
        .flat_map(|c| {
            c.values
                .iter()
                .copied()
                .chain([c.mean - c.std])
                .filter(|_| !c.values.is_empty())
        })
        .filter(|v| v.is_finite())
        .fold(100.0f64, f64::min);
    let lo = ((min / 10.0).floor() * 10.0).clamp(0.0, 90.0);
    let ph = row_h * methods.len().max(1) as f64;
    let mut s = Svg::new(0.0, 0.0);
    for (r, m) in methods.iter().enumerate() {
        let y = top + row_h * (r as f64 + 0.5);
        s.text(left - 10.0, y, 12.0, Anchor::End, m);
    }
    for (k, sc) in scenarios.iter().enumerate() {
        let px = left + k as f64 * panel_w;
        let xs = |v: f64| px + plot_w * ((v - lo) / (100.0 - lo)).clamp(0.0, 1.0);
        s.bold(px + plot_w / 2.0, top - 16.0, 13.0, Anchor::Middle, sc);
        for t in ticks(lo, 100.0, 5) {
            s.line(xs(t), top, xs(t), top + ph, "#e6e6e6", 1.0);
            s.text(
                xs(t),
                top + ph + 12.0,
                10.0,
                Anchor::Middle,
                &format!("{t:.0}"),
            );
        }
        s.rect(px, top, plot_w, ph, "none", "#888");
        s.text(
            px + plot_w / 2.0,
            top + ph + 32.0,
            11.0,
            Anchor::Middle,
            "final mean accuracy %",
        );
        for (r, m) in methods.iter().enumerate() {
            let y = top + row_h * (r as f64 + 0.5);
            let colour = series_colour(r, methods.len().min(10));
            match cells
                .iter()
                .find(|c| &c.method == m && &c.scenario == sc && !c.values.is_empty())
            {
                None => s.styled_text(
                    px + plot_w + 8.0,
                    y,
                    11.0,
                    Anchor::Start,
                    r##" fill="#888""##,
                    "missing",
                ),
                Some(c) => {
                    if c.values.len() > 1 {
                        s.line(xs(c.mean - c.std), y, xs(c.mean + c.std), y, &colour, 2.0);
                        for x in [c.mean - c.std, c.mean + c.std] {
                            s.line(xs(x), y - 5.0, xs(x), y + 5.0, &colour, 2.0);
                        }
                    }
                    for &v in &c.values {
                        s.circle(xs(v), y, 3.0, "none", &colour);
                    }
                    s.circle(xs(c.mean), y, 5.0, &colour, "white");
                    let n = c.values.len();
                    s.text(
                        px + plot_w + 8.0,
                        y,
                        11.0,
                        Anchor::Start,
                        &format!(
                            "{:.2} ± {:.2} ({n} seed{})",
                            c.mean,
                            c.std,
                            if n == 1 { "" } else { "s" }
                        ),
                    );
                }
            }
        }
    }
    let subtitle = "dot: mean over seeds; bar: ± one standard deviation; circles: each seed";
    let width = (left + panel_w * scenarios.len().max(1) as f64 + 10.0)
        .max(40.0 + text_width(title, 16.0).max(text_width(subtitle, 12.0)));
    let height = top + ph + 50.0;
    let mut page = Svg::new(width, height);
    page.bold(20.0, 24.0, 16.0, Anchor::Start, title);
    page.text(20.0, 48.0, 12.0, Anchor::Start, subtitle);
    page.raw(s.body_markup());
    page.finish()
}
