//! Figures and files made from results: the accuracy matrix as CSV and as an SVG figure, and
//! PNG grids of replayed digits. Plain data in, bytes or text out.

use crate::fsio::write_atomic;
use crate::Result;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

pub mod curves;
pub mod svg;

pub use curves::{compare_svg, curves_svg, CompareBar, CurveSeries};

use svg::{
    accuracy_colour, accuracy_colour_bar, accuracy_position, label_stride, series_colour,
    text_width, ticks, Anchor, Svg,
};

/// What [`accuracy_svg`] draws.
#[derive(Clone, Copy, Debug)]
pub struct AccuracyFigure<'a> {
    /// The first line: benchmark, method, scenario, seed.
    pub title: &'a str,
    /// The second line: what the numbers are (which evaluation).
    pub subtitle: &'a str,
    /// Row i: the accuracies (%) of tasks 0..=i after task i.
    pub matrix: &'a [Vec<f64>],
    /// The tasks' names (may be shorter than the matrix).
    pub labels: &'a [String],
}

/// A figure of the accuracy matrix (row i: accuracies after task i): on the left a heatmap
/// (rows: after task i, columns: task j; each cell labelled with its value up to 13 tasks)
/// on the fixed colour scale of [`svg::ACCURACY_STOPS`] with its colour bar, on the right
/// each task's accuracy after every later task as a line (up to ten tasks each named in the
/// legend; beyond, a light-to-dark ramp and the mean in black). Past [`LONG_SEQUENCE`] tasks
/// the right panel plots, over the tasks j, A[j][j] (right after learning it) and A[last][j]
/// (after the last task), with their means in the legend. Tick labels are thinned to stay
/// legible at any number of tasks.
pub fn accuracy_svg(fig: &AccuracyFigure<'_>) -> String {
    let matrix = fig.matrix;
    let n = matrix.len().max(1);
    let cell = (480.0 / n as f64).clamp(4.0, 64.0);
    let hm = cell * n as f64;
    let tick_w = text_width(&format!("{}", n - 1), 11.0);
    let hx = 20.0 + 22.0 + tick_w + 10.0;
    let hy = 124.0;
    let mut body = Svg::new(0.0, 0.0);
    let s = &mut body;
    // Heatmap axes.
    s.text(
        hx + hm / 2.0,
        hy - 40.0,
        12.0,
        Anchor::Middle,
        "task j (its test set)",
    );
    s.vertical_text(20.0 + 8.0, hy + hm / 2.0, 12.0, "after learning task i");
    let col_stride = label_stride(cell, tick_w + 6.0);
    let row_stride = label_stride(cell, 13.0);
    for k in 0..n {
        let c = k as f64 * cell + cell / 2.0;
        if k % col_stride == 0 {
            s.text(hx + c, hy - 14.0, 11.0, Anchor::Middle, &k.to_string());
        }
        if k % row_stride == 0 {
            s.text(hx - 6.0, hy + c, 11.0, Anchor::End, &k.to_string());
        }
    }
    let with_values = cell >= 30.0;
    let value_size = (cell / 4.4).min(12.0);
    for (i, row) in matrix.iter().enumerate() {
        for j in 0..n {
            let (x, y) = (hx + j as f64 * cell, hy + i as f64 * cell);
            let stroke = if cell >= 12.0 { "white" } else { "none" };
            match row.get(j).filter(|v| v.is_finite()) {
                Some(&v) => {
                    s.rect(x, y, cell, cell, &accuracy_colour(v), stroke);
                    if with_values {
                        let fill = if accuracy_position(v) > 0.55 {
                            r#" fill="white""#
                        } else {
                            ""
                        };
                        s.styled_text(
                            x + cell / 2.0,
                            y + cell / 2.0,
                            value_size,
                            Anchor::Middle,
                            fill,
                            &format!("{v:.2}"),
                        );
                    }
                }
                None => s.rect(x, y, cell, cell, "#f2f2f2", stroke),
            }
        }
    }
    // The colour bar.
    let bx = hx + hm + 22.0;
    let bh = hm.max(200.0);
    accuracy_colour_bar(s, bx, hy, 14.0, bh, "accuracy %");
    // Line plot.
    let px = bx + 14.0 + 30.0 + 52.0;
    let (py, pw, ph) = (hy, 400.0, hm.max(260.0));
    let min = matrix
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .fold(100.0f64, f64::min);
    let lo = ((min / 10.0).floor() * 10.0).clamp(0.0, 90.0);
    let xs = |i: usize| {
        px + if n > 1 {
            pw * i as f64 / (n - 1) as f64
        } else {
            pw / 2.0
        }
    };
    let ys = |v: f64| py + ph * (1.0 - ((v - lo) / (100.0 - lo)).clamp(0.0, 1.0));
    // Past LONG_SEQUENCE tasks a line per task is unreadable: the panel shows each task's
    // accuracy right after learning it and after the last task instead.
    let long = n > LONG_SEQUENCE;
    s.bold(
        px,
        py - 40.0,
        12.0,
        Anchor::Start,
        if long {
            "each task's accuracy right after learning it and after the last task"
        } else {
            "each task's accuracy after every later task"
        },
    );
    for t in ticks(lo, 100.0, 6) {
        let y = ys(t);
        s.line(px, y, px + pw, y, "#e6e6e6", 1.0);
        s.text(px - 6.0, y, 11.0, Anchor::End, &format!("{t:.0}"));
    }
    let x_stride = label_stride(pw / (n.max(2) - 1) as f64, tick_w + 8.0);
    for i in (0..n).step_by(x_stride) {
        s.line(xs(i), py + ph, xs(i), py + ph + 4.0, "#555", 1.0);
        s.text(xs(i), py + ph + 14.0, 11.0, Anchor::Middle, &i.to_string());
    }
    s.text(
        px + pw / 2.0,
        py + ph + 36.0,
        12.0,
        Anchor::Middle,
        if long {
            "task j"
        } else {
            "after learning task i"
        },
    );
    s.vertical_text(px - 40.0, py + ph / 2.0, 12.0, "accuracy of task j %");
    s.rect(px, py, pw, ph, "none", "#888");
    let lx = px + pw + 18.0;
    let panels_bottom = hy + hm.max(bh).max(ph) + 56.0;
    if long {
        let last = matrix.len() - 1;
        let during: Vec<f64> = (0..matrix.len())
            .map(|j| matrix[j].get(j).copied().unwrap_or(f64::NAN))
            .collect();
        let series = [
            ("right after learning it", during.as_slice()),
            (
                &format!("after learning task {last}")[..],
                &matrix[last][..],
            ),
        ];
        let mut legend_w: f64 = 0.0;
        for (k, (name, values)) in series.iter().enumerate() {
            let colour = series_colour(k, 10);
            let finite: Vec<(usize, f64)> = values
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .collect();
            let points: Vec<(f64, f64)> = finite.iter().map(|&(j, v)| (xs(j), ys(v))).collect();
            s.polyline(&points, &colour, 1.5);
            let mean = finite.iter().map(|&(_, v)| v).sum::<f64>() / finite.len().max(1) as f64;
            let label = format!("{name} (mean {mean:.2})");
            let ly = py + 8.0 + 18.0 * k as f64;
            s.line(lx, ly, lx + 20.0, ly, &colour, 3.0);
            s.text(lx + 26.0, ly, 12.0, Anchor::Start, &label);
            legend_w = legend_w.max(text_width(&label, 12.0) + 30.0);
        }
        return page(fig, body, lx + legend_w + 20.0, panels_bottom);
    }
    for j in 0..matrix.len() {
        let colour = series_colour(j, n);
        let points: Vec<(f64, f64)> = (j..matrix.len())
            .filter_map(|i| matrix[i].get(j).map(|&v| (xs(i), ys(v))))
            .collect();
        s.polyline(&points, &colour, if n <= 10 { 2.0 } else { 1.0 });
        if n <= LONG_SEQUENCE {
            for &(x, y) in &points {
                s.circle(x, y, 3.5, &colour, "none");
            }
        }
    }
    let mut legend_bottom = py;
    if n <= 10 {
        for j in 0..matrix.len() {
            let ly = py + 8.0 + 18.0 * j as f64;
            let label = fig
                .labels
                .get(j)
                .map_or(format!("task {j}"), |l| format!("task {j} ({l})"));
            s.line(lx, ly, lx + 20.0, ly, &series_colour(j, n), 3.0);
            s.text(lx + 26.0, ly, 12.0, Anchor::Start, &label);
            legend_bottom = ly + 10.0;
        }
    } else {
        // The mean over the tasks learned so far, and a ramp for the tasks.
        let mean: Vec<(f64, f64)> = matrix
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(i, r)| (xs(i), ys(r.iter().sum::<f64>() / r.len() as f64)))
            .collect();
        s.polyline(&mean, "black", 2.5);
        s.line(lx, py + 8.0, lx + 20.0, py + 8.0, "black", 2.5);
        s.text(
            lx + 26.0,
            py + 8.0,
            12.0,
            Anchor::Start,
            "mean over tasks 0..i",
        );
        s.text(lx, py + 32.0, 12.0, Anchor::Start, "line colour: task j");
        let rw = 120.0;
        for k in 0..40 {
            let x = lx + rw * k as f64 / 40.0;
            let j = (k * n) / 40;
            s.rect(
                x,
                py + 44.0,
                rw / 40.0 + 0.3,
                10.0,
                &series_colour(j, n),
                "none",
            );
        }
        s.text(lx, py + 66.0, 11.0, Anchor::Start, "0");
        s.text(lx + rw, py + 66.0, 11.0, Anchor::End, &format!("{}", n - 1));
        let first = fig.labels.first().cloned().unwrap_or_default();
        let last = fig.labels.last().cloned().unwrap_or_default();
        if !first.is_empty() {
            s.text(
                lx,
                py + 88.0,
                11.0,
                Anchor::Start,
                &format!("tasks {first} … {last}"),
            );
        }
        legend_bottom = py + 96.0;
    }
    let ramp_legend_w = match (fig.labels.first(), fig.labels.last()) {
        (Some(a), Some(b)) => text_width(&format!("tasks {a} … {b}"), 11.0) + 10.0,
        _ => 0.0,
    };
    let legend_w = if n <= 10 {
        fig.labels
            .iter()
            .enumerate()
            .map(|(j, l)| text_width(&format!("task {j} ({l})"), 12.0))
            .fold(text_width("task 9", 12.0), f64::max)
            + 30.0
    } else {
        ramp_legend_w.max(180.0)
    };
    let content_w = lx + legend_w + 20.0;
    let height = panels_bottom.max(legend_bottom + 20.0);
    page(fig, body, content_w, height)
}

/// Tasks beyond which [`accuracy_svg`] plots each task's accuracy right after learning it and
/// after the last task, rather than a line per task.
pub const LONG_SEQUENCE: usize = 20;

/// The page of [`accuracy_svg`]: its title lines above `body`, at least `content_w` wide.
fn page(fig: &AccuracyFigure<'_>, body: Svg, content_w: f64, height: f64) -> String {
    let title_w = 40.0 + text_width(fig.title, 16.0).max(text_width(fig.subtitle, 12.0));
    let mut page = Svg::new(content_w.max(title_w), height);
    page.bold(20.0, 24.0, 16.0, Anchor::Start, fig.title);
    page.text(20.0, 48.0, 12.0, Anchor::Start, fig.subtitle);
    page.raw(body.body_markup());
    page.finish()
}

/// The accuracy matrix as CSV: a header `after_task,task_0,…`, one row per trained task,
/// empty cells for tasks not yet seen.
pub fn accuracy_csv(matrix: &[Vec<f64>]) -> String {
    let n = matrix.len();
    let mut s = String::from("after_task");
    for j in 0..n {
        let _ = write!(s, ",task_{j}");
    }
    s.push('\n');
    for (i, row) in matrix.iter().enumerate() {
        let _ = write!(s, "{i}");
        for j in 0..n {
            match row.get(j) {
                Some(a) => {
                    let _ = write!(s, ",{a:.2}");
                }
                None => s.push(','),
            }
        }
        s.push('\n');
    }
    s
}

/// CRC-32 (ISO-HDLC, as PNG chunks use) of `bytes`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An 8-bit greyscale PNG of `width` × `height` pixels (row-major, one byte each).
///
/// # Panics
/// If `pixels` does not hold `width · height` bytes (a caller bug).
pub fn grey_png(width: usize, height: usize, pixels: &[u8]) -> Vec<u8> {
    assert_eq!(pixels.len(), width * height, "pixel count");
    let mut raw = Vec::with_capacity((width + 1) * height);
    for row in pixels.chunks_exact(width.max(1)) {
        raw.push(0); // filter: none
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).expect("writing to memory");
    let idat = z.finish().expect("writing to memory");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8 bits, greyscale, deflate, no filter, no interlace
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &idat[..]),
        (b"IEND", &[][..]),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    png
}

/// Square images of `side`² values in [0, 1] (one after another in `images`) as a grid of
/// `cols` columns, white digits on black, one pixel of grey between them: (width, height,
/// pixels).
pub fn image_grid(images: &[f32], side: usize, cols: usize) -> (usize, usize, Vec<u8>) {
    let n = images.len() / (side * side).max(1);
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let (w, h) = (cols * (side + 1) + 1, rows * (side + 1) + 1);
    let mut px = vec![96u8; w * h];
    for (i, img) in images.chunks_exact((side * side).max(1)).enumerate() {
        let (r0, c0) = ((i / cols) * (side + 1) + 1, (i % cols) * (side + 1) + 1);
        for (p, &v) in img.iter().enumerate() {
            px[(r0 + p / side) * w + c0 + p % side] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    (w, h, px)
}

/// Pixels per image pixel in the replay pictures.
pub const REPLAY_SCALE: usize = 2;

/// `pixels` (`width` × `height`) with every pixel made a `k` × `k` block.
pub fn upscale(width: usize, height: usize, pixels: &[u8], k: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height * k * k);
    for row in pixels.chunks_exact(width.max(1)).take(height) {
        let wide: Vec<u8> = row
            .iter()
            .flat_map(|&p| std::iter::repeat_n(p, k))
            .collect();
        for _ in 0..k {
            out.extend_from_slice(&wide);
        }
    }
    out
}

/// 5 × 7 pixel glyphs (one row of 5 bits a byte, top row first) of the characters the replay
/// picture's labels use.
fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1e, 0x01, 0x01, 0x0e, 0x01, 0x01, 0x1e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        't' => [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06],
        'a' => [0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f],
        's' => [0x00, 0x00, 0x0f, 0x10, 0x0e, 0x01, 0x1e],
        'k' => [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
        ' ' => [0; 7],
        _ => return None,
    })
}

/// Draws `text` (characters of [`glyph`]; others are skipped) into `pixels` (row width
/// `width`) with its top-left corner at (x, y), each font pixel a `k` × `k` block of `value`.
fn draw_text(pixels: &mut [u8], width: usize, x: usize, y: usize, k: usize, value: u8, text: &str) {
    let height = pixels.len() / width.max(1);
    for (n, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        for (r, bits) in rows.iter().enumerate() {
            for b in 0..5 {
                if bits & (0x10 >> b) == 0 {
                    continue;
                }
                for dy in 0..k {
                    for dx in 0..k {
                        let (px, py) = (x + (n * 6 + b) * k + dx, y + r * k + dy);
                        if px < width && py < height {
                            pixels[py * width + px] = value;
                        }
                    }
                }
            }
        }
    }
}

/// Writes what the replay model generates, 28×28 digits per task (`samples[k]`: task k's),
/// every image pixel drawn as [`REPLAY_SCALE`] × [`REPLAY_SCALE`] screen pixels:
/// `dir/replay-task<k>.png` (a grid of 8 columns) for each task and `dir/replay.png` (one
/// row of the first 16 samples per task, task 0 on top, each row labelled `task k` on a
/// white margin on the left). Returns the paths written.
pub fn write_replay_pictures(dir: &Path, samples: &[Vec<f32>]) -> Result<Vec<std::path::PathBuf>> {
    const SIDE: usize = 28;
    const K: usize = REPLAY_SCALE;
    let mut written = Vec::new();
    let mut rows = Vec::new();
    for (k, s) in samples.iter().enumerate() {
        let (w, h, px) = image_grid(s, SIDE, 8);
        let path = dir.join(format!("replay-task{k}.png"));
        write_atomic(&path, &grey_png(w * K, h * K, &upscale(w, h, &px, K)))?;
        written.push(path);
        let first = 16.min(s.len() / (SIDE * SIDE));
        let mut row = s[..first * SIDE * SIDE].to_vec();
        row.resize(16 * SIDE * SIDE, 0.0);
        rows.extend(row);
    }
    if !samples.is_empty() {
        let (w, h, px) = image_grid(&rows, SIDE, 16);
        let big = upscale(w, h, &px, K);
        // The label margin: "task " and the widest index, 6 font pixels a character.
        let label = |k: usize| format!("task {k}");
        let chars = label(samples.len() - 1).chars().count();
        let margin = (chars * 6 + 4) * K;
        let (tw, th) = (margin + w * K, h * K);
        let mut page = vec![255u8; tw * th];
        for (r, line) in big.chunks_exact(w * K).enumerate() {
            page[r * tw + margin..(r + 1) * tw].copy_from_slice(line);
        }
        for k in 0..samples.len() {
            // Centred on the row of digits: rows start at k·(SIDE + 1) + 1.
            let top = (k * (SIDE + 1) + 1 + SIDE / 2) * K - 7 * K / 2;
            draw_text(&mut page, tw, 2 * K, top, K, 0, &label(k));
        }
        let path = dir.join("replay.png");
        write_atomic(&path, &grey_png(tw, th, &page))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod png_tests {
    use super::*;

    #[test]
    fn crc32_of_the_standard_check_string() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    }

    #[test]
    fn png_has_signature_header_and_decompresses_to_the_rows() {
        let png = grey_png(3, 2, &[0, 1, 2, 3, 4, 5]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 3);
        assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 2);
        let idat_len = u32::from_be_bytes(png[33..37].try_into().unwrap()) as usize;
        assert_eq!(&png[37..41], b"IDAT");
        let mut raw = Vec::new();
        use std::io::Read;
        flate2::read::ZlibDecoder::new(&png[41..41 + idat_len])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(raw, vec![0, 0, 1, 2, 0, 3, 4, 5]);
        assert!(png.ends_with(&[0xAE, 0x42, 0x60, 0x82]));
    }

    #[test]
    fn upscaling_repeats_every_pixel_in_a_block() {
        assert_eq!(upscale(2, 1, &[1, 2], 2), vec![1, 1, 2, 2, 1, 1, 2, 2]);
    }

    #[test]
    fn replay_rows_are_labelled_by_task() {
        let dir = tempfile::tempdir().unwrap();
        let samples = vec![vec![1.0f32; 16 * 28 * 28]; 2];
        let written = write_replay_pictures(dir.path(), &samples).unwrap();
        assert_eq!(written.len(), 3);
        let png = std::fs::read(dir.path().join("replay.png")).unwrap();
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap()) as usize;
        let height = u32::from_be_bytes(png[20..24].try_into().unwrap()) as usize;
        // 16 digits of 29 pixels and a separator, doubled, after a margin for "task 1".
        assert_eq!(width, (6 * 6 + 4) * 2 + (16 * 29 + 1) * 2);
        assert_eq!(height, (2 * 29 + 1) * 2);
        // The label's pixels are black on the white margin.
        let mut page = vec![255u8; 200 * 20];
        draw_text(&mut page, 200, 0, 0, 2, 0, "task 1");
        assert!(page.contains(&0));
    }

    #[test]
    fn grid_places_images_with_separators() {
        let imgs = vec![1.0f32; 2 * 4]; // two 2×2 white images
        let (w, h, px) = image_grid(&imgs, 2, 2);
        assert_eq!((w, h), (7, 4));
        assert_eq!(px[0], 96);
        assert_eq!(px[w + 1], 255);
        assert_eq!(px[w + 3], 96);
        assert_eq!(px[w + 4], 255);
    }
}

#[cfg(test)]
mod figure_tests {
    use super::*;

    /// Row i: task j at 99 − 0.1·(i − j) (forgetting 0.1 point per later task).
    fn matrix(n: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|i| (0..=i).map(|j| 99.0 - 0.1 * (i - j) as f64).collect())
            .collect()
    }

    fn figure(m: &[Vec<f64>]) -> String {
        accuracy_svg(&AccuracyFigure {
            title: "t",
            subtitle: "s",
            matrix: m,
            labels: &[],
        })
    }

    #[test]
    fn a_long_sequence_plots_each_task_right_after_learning_it_and_at_the_end() {
        let n = LONG_SEQUENCE + 10;
        let svg = figure(&matrix(n));
        assert!(svg.contains("right after learning it and after the last task"));
        // A[j][j] = 99 for every j; A[29][j] = 99 − 0.1·(29 − j), mean 99 − 1.45.
        assert!(
            svg.contains("right after learning it (mean 99.00)"),
            "{svg}"
        );
        assert!(svg.contains(&format!("after learning task {} (mean 97.55)", n - 1)));
        assert_eq!(
            svg.matches("<polyline").count(),
            2,
            "two series, no line per task"
        );
    }

    #[test]
    fn a_short_sequence_draws_a_line_per_task() {
        let n = LONG_SEQUENCE;
        let svg = figure(&matrix(n));
        assert!(svg.contains("each task's accuracy after every later task"));
        // A line per task and the mean.
        assert_eq!(svg.matches("<polyline").count(), n + 1);
    }
}
