//! A small SVG writer for the figures: text, lines, rectangles, polylines, axes with ticks,
//! and the colour scales the figures share. Coordinates are pixels, y down.

use std::fmt::Write as _;

/// Ten distinguishable line colours (Tableau 10).
pub const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// Escapes text for SVG.
pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The width in pixels that `text` takes at `size` px in a sans-serif face, estimated
/// generously (0.6 em a character) so that layouts leave room for it.
pub fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.6
}

/// An SVG document being written.
pub struct Svg {
    width: f64,
    height: f64,
    body: String,
}

/// Horizontal text anchor.
#[derive(Clone, Copy)]
pub enum Anchor {
    /// Text starts at x.
    Start,
    /// Text is centred on x.
    Middle,
    /// Text ends at x.
    End,
}

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

impl Svg {
    /// An empty white page of `width` × `height` px.
    pub fn new(width: f64, height: f64) -> Self {
        Self {
            width,
            height,
            body: String::new(),
        }
    }

    /// Text at (x, y) (y: the middle of the text), `size` px, anchored at x.
    pub fn text(&mut self, x: f64, y: f64, size: f64, anchor: Anchor, text: &str) {
        self.styled_text(x, y, size, anchor, "", text);
    }

    /// Bold text, as [`Svg::text`].
    pub fn bold(&mut self, x: f64, y: f64, size: f64, anchor: Anchor, text: &str) {
        self.styled_text(x, y, size, anchor, r#" font-weight="bold""#, text);
    }

    /// Text with extra attributes (e.g. ` fill="white"`), as [`Svg::text`].
    pub fn styled_text(
        &mut self,
        x: f64,
        y: f64,
        size: f64,
        anchor: Anchor,
        attrs: &str,
        text: &str,
    ) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size:.1}" text-anchor="{}" dominant-baseline="central"{attrs}>{}</text>"#,
            anchor.name(),
            xml_escape(text)
        );
    }

    /// Text turned a quarter counter-clockwise, centred on (x, y): a y-axis label.
    pub fn vertical_text(&mut self, x: f64, y: f64, size: f64, text: &str) {
        let _ = writeln!(
            self.body,
            r#"<text transform="translate({x:.1},{y:.1}) rotate(-90)" font-size="{size:.1}" text-anchor="middle" dominant-baseline="central">{}</text>"#,
            xml_escape(text)
        );
    }

    /// A line segment.
    pub fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, colour: &str, width: f64) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{colour}" stroke-width="{width}"/>"#
        );
    }

    /// A dashed line segment.
    pub fn dashed_line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, colour: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{colour}" stroke-width="1" stroke-dasharray="4 3"/>"#
        );
    }

    /// A filled rectangle (`stroke`: an outline colour, or "none").
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, stroke: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{fill}" stroke="{stroke}"/>"#
        );
    }

    /// A line through `points`.
    pub fn polyline(&mut self, points: &[(f64, f64)], colour: &str, width: f64) {
        if points.is_empty() {
            return;
        }
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            self.body,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="{width}" stroke-linejoin="round"/>"#,
            path.join(" ")
        );
    }

    /// A filled circle (`stroke`: an outline colour, or "none").
    pub fn circle(&mut self, x: f64, y: f64, r: f64, fill: &str, stroke: &str) {
        let _ = writeln!(
            self.body,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{fill}" stroke="{stroke}"/>"#
        );
    }

    /// Raw SVG markup (already escaped).
    pub fn raw(&mut self, markup: &str) {
        self.body.push_str(markup);
        self.body.push('\n');
    }

    /// The markup written so far, without the page around it (to place it into another
    /// page once that page's size is known).
    pub fn body_markup(&self) -> &str {
        &self.body
    }

    /// The document.
    pub fn finish(self) -> String {
        let (w, h) = (self.width.ceil(), self.height.ceil());
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
            self.body
        )
    }
}

/// About `max` round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten).
pub fn ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / max.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick value as short text (1e-3 for small or large magnitudes).
pub fn tick_label(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        let e = a.log10().round() as i32;
        if (a / 10f64.powi(e) - 1.0).abs() < 1e-6 {
            format!("{}1e{e}", if v < 0.0 { "-" } else { "" })
        } else {
            format!("{v:.0e}")
        }
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Every `k`-th index of `0..n` such that labels `spacing` px apart with a label every `k`
/// do not collide when each needs `need` px: k from 1, 2, 5, 10, 20, 50, …
pub fn label_stride(spacing: f64, need: f64) -> usize {
    let mut k = 1usize;
    let mut mult = [2usize, 5, 10].into_iter().cycle();
    let mut base = 1usize;
    while spacing * (k as f64) < need {
        let m = mult.next().unwrap_or(10);
        k = base * m;
        if m == 10 {
            base *= 10;
        }
    }
    k
}

/// The fixed accuracy colour scale every accuracy figure uses: accuracy (%) at the stops
/// 0, 50, 80, 90, 95, 99, 100 mapped to equal steps of a light-yellow to dark-blue ramp (more
/// of the ramp for high accuracies, where methods differ); the same colour means the same
/// accuracy in every run.
pub const ACCURACY_STOPS: [f64; 7] = [0.0, 50.0, 80.0, 90.0, 95.0, 99.0, 100.0];

const RAMP: [(u8, u8, u8); 7] = [
    (0xff, 0xff, 0xd9),
    (0xd9, 0xf0, 0xa3),
    (0x9e, 0xd8, 0x9a),
    (0x41, 0xb6, 0xc4),
    (0x1d, 0x91, 0xc0),
    (0x22, 0x5e, 0xa8),
    (0x0c, 0x2c, 0x84),
];

/// Position in [0, 1] of accuracy `v` (%) on the fixed scale.
pub fn accuracy_position(v: f64) -> f64 {
    let v = v.clamp(0.0, 100.0);
    let last = ACCURACY_STOPS.len() - 1;
    for k in 0..last {
        let (a, b) = (ACCURACY_STOPS[k], ACCURACY_STOPS[k + 1]);
        if v <= b {
            return (k as f64 + (v - a) / (b - a)) / last as f64;
        }
    }
    1.0
}

/// The colour at position `p` ∈ [0, 1] of the ramp, as `#rrggbb`.
pub fn ramp_colour(p: f64) -> String {
    let last = RAMP.len() - 1;
    let f = p.clamp(0.0, 1.0) * last as f64;
    let k = (f.floor() as usize).min(last - 1);
    let t = f - k as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
    let (a, b) = (RAMP[k], RAMP[k + 1]);
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(a.0, b.0),
        mix(a.1, b.1),
        mix(a.2, b.2)
    )
}

/// The colour of accuracy `v` (%) on the fixed scale.
pub fn accuracy_colour(v: f64) -> String {
    ramp_colour(accuracy_position(v))
}

/// Draws the fixed accuracy scale as a vertical bar at (x, y), `w` × `h` px, 100 % on top,
/// its stops as ticks on the right and `caption` above it.
pub fn accuracy_colour_bar(svg: &mut Svg, x: f64, y: f64, w: f64, h: f64, caption: &str) {
    let steps = 60;
    for k in 0..steps {
        let p1 = 1.0 - k as f64 / steps as f64;
        let y0 = y + h * k as f64 / steps as f64;
        svg.rect(
            x,
            y0,
            w,
            h / steps as f64 + 0.3,
            &ramp_colour(p1 - 0.5 / steps as f64),
            "none",
        );
    }
    svg.rect(x, y, w, h, "none", "#888");
    for &v in &ACCURACY_STOPS {
        let ty = y + h * (1.0 - accuracy_position(v));
        svg.line(x + w, ty, x + w + 4.0, ty, "#555", 1.0);
        svg.text(x + w + 7.0, ty, 11.0, Anchor::Start, &format!("{v:.0}"));
    }
    svg.text(x, y - 14.0, 11.0, Anchor::Start, caption);
}

/// The colour of line `k` of `n`: the palette for up to ten lines, a light-to-dark ramp
/// beyond.
pub fn series_colour(k: usize, n: usize) -> String {
    if n <= PALETTE.len() {
        PALETTE[k % PALETTE.len()].to_string()
    } else {
        let p = 0.15 + 0.85 * k as f64 / (n - 1).max(1) as f64;
        ramp_colour(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(
            ticks(90.0, 100.0, 5),
            vec![90.0, 92.0, 94.0, 96.0, 98.0, 100.0]
        );
        assert_eq!(tick_label(0.001), "0.001");
        assert_eq!(tick_label(0.0001), "1e-4");
        assert_eq!(tick_label(2.5), "2.5");
    }

    #[test]
    fn label_strides_grow_by_one_two_five() {
        assert_eq!(label_stride(40.0, 20.0), 1);
        assert_eq!(label_stride(10.0, 20.0), 2);
        assert_eq!(label_stride(5.0, 20.0), 5);
        assert_eq!(label_stride(1.0, 20.0), 20);
        assert_eq!(label_stride(0.3, 20.0), 100);
    }

    #[test]
    fn the_accuracy_scale_is_fixed_and_monotone() {
        assert_eq!(accuracy_position(0.0), 0.0);
        assert_eq!(accuracy_position(100.0), 1.0);
        assert!((accuracy_position(90.0) - 0.5).abs() < 1e-12);
        let mut last = -1.0;
        for v in 0..=100 {
            let p = accuracy_position(f64::from(v));
            assert!(p > last);
            last = p;
        }
        assert_eq!(accuracy_colour(100.0), "#0c2c84");
        assert_eq!(accuracy_colour(0.0), "#ffffd9");
    }
}
