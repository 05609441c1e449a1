//! Figures and files made from results: the accuracy matrix as CSV and as an SVG figure, and
//! PNG grids of replayed digits. Plain data in, bytes or text out.

use crate::fsio::write_atomic;
use crate::Result;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// Ten distinguishable line colours (Tableau 10).
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// Escapes text for SVG.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A figure of the accuracy matrix (row i: accuracies after task i): on the left a heatmap
/// (rows: after task i, columns: task j, each cell labelled), on the right each task's
/// accuracy after every later task as a line. `labels` name the tasks (may be shorter).
pub fn accuracy_svg(title: &str, matrix: &[Vec<f64>], labels: &[String]) -> String {
    let n = matrix.len().max(1);
    let values = matrix.iter().flatten().copied().filter(|v| v.is_finite());
    let min = values.fold(100.0f64, f64::min);
    // The colour and y scales start at a multiple of 10 below the lowest accuracy (≤ 90).
    let lo = ((min / 10.0).floor() * 10.0).clamp(0.0, 90.0);
    let frac = |v: f64| ((v - lo) / (100.0 - lo)).clamp(0.0, 1.0);
    let cell = (320.0 / n as f64).min(56.0);
    let (hx, hy) = (90.0, 100.0);
    let (px, py, pw, ph) = (hx + cell * n as f64 + 110.0, 100.0, 360.0, 300.0);
    let width = px + pw + 170.0;
    let height = (hy + cell * n as f64 + 60.0).max(py + ph + 70.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="20" y="28" font-size="16" font-weight="bold">{}</text>"#,
        xml_escape(title)
    );
    // Heatmap.
    let _ = writeln!(
        s,
        r#"<text x="{hx}" y="{}" font-weight="bold">accuracy matrix</text><text x="{:.1}" y="{}" text-anchor="middle">task j</text>"#,
        hy - 42.0,
        hx + cell * n as f64 / 2.0,
        hy - 22.0,
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">after task i</text>"#,
        hx - 50.0,
        hy + cell * n as f64 / 2.0
    );
    for k in 0..n {
        let c = k as f64 * cell + cell / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{k}</text><text x="{:.1}" y="{:.1}" text-anchor="end" dominant-baseline="middle">{k}</text>"#,
            hx + c,
            hy - 5.0,
            hx - 6.0,
            hy + c
        );
    }
    for (i, row) in matrix.iter().enumerate() {
        for j in 0..n {
            let (x, y) = (hx + j as f64 * cell, hy + i as f64 * cell);
            match row.get(j) {
                Some(&v) => {
                    let f = frac(v);
                    // Light to dark blue.
                    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
                    let (r, g, b) = (mix(239.0, 8.0), mix(243.0, 48.0), mix(255.0, 107.0));
                    let text = if f > 0.55 { "white" } else { "black" };
                    let _ = writeln!(
                        s,
                        r##"<rect x="{x:.1}" y="{y:.1}" width="{cell:.1}" height="{cell:.1}" fill="#{r:02x}{g:02x}{b:02x}" stroke="white"/><text x="{:.1}" y="{:.1}" text-anchor="middle" dominant-baseline="middle" font-size="{:.0}" fill="{text}">{v:.2}</text>"##,
                        x + cell / 2.0,
                        y + cell / 2.0,
                        (cell / 4.6).clamp(5.0, 12.0)
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r##"<rect x="{x:.1}" y="{y:.1}" width="{cell:.1}" height="{cell:.1}" fill="#f4f4f4" stroke="white"/>"##
                    );
                }
            }
        }
    }
    let _ = writeln!(
        s,
        r##"<text x="{hx}" y="{:.1}" font-size="11" fill="#555">colour: {lo:.0} % (light) to 100 % (dark)</text>"##,
        hy + cell * n as f64 + 20.0
    );
    // Line plot.
    let xs = |i: usize| {
        px + if n > 1 {
            pw * i as f64 / (n - 1) as f64
        } else {
            pw / 2.0
        }
    };
    let ys = |v: f64| py + ph * (1.0 - frac(v));
    let _ = writeln!(
        s,
        r#"<text x="{px}" y="{}" font-weight="bold">accuracy of each task after each task</text>"#,
        py - 42.0
    );
    let mut tick = lo;
    while tick <= 100.0 + 1e-9 {
        let y = ys(tick);
        let _ = writeln!(
            s,
            r##"<line x1="{px}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{y:.1}" text-anchor="end" dominant-baseline="middle">{tick:.0}</text>"##,
            px + pw,
            px - 8.0
        );
        tick += if 100.0 - lo > 50.0 { 10.0 } else { 5.0 };
    }
    for i in 0..n {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{i}</text>"#,
            xs(i),
            py + ph + 18.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">after task i</text><text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">test accuracy %</text>"#,
        px + pw / 2.0,
        py + ph + 40.0,
        px - 45.0,
        py + ph / 2.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{px}" y="{py}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
    );
    for j in 0..matrix.len() {
        let colour = PALETTE[j % PALETTE.len()];
        let points: Vec<(f64, f64)> = (j..matrix.len())
            .filter_map(|i| matrix[i].get(j).map(|&v| (xs(i), ys(v))))
            .collect();
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (x, y) in &points {
            let _ = writeln!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{colour}"/>"#
            );
        }
        let ly = py + 8.0 + 18.0 * j as f64;
        let label = labels.get(j).map_or(String::new(), |l| format!(" ({l})"));
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{ly:.1}" dominant-baseline="middle">task {j}{}</text>"#,
            px + pw + 15.0,
            px + pw + 35.0,
            px + pw + 40.0,
            xml_escape(&label)
        );
    }
    s.push_str("</svg>\n");
    s
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

/// Writes what the replay model generates, 28×28 digits per task (`samples[k]`: task k's):
/// `dir/replay-task<k>.png` (a grid of 8 columns) for each task and `dir/replay.png` (one
/// row of the first 16 samples per task, task 0 on top). Returns the paths written.
pub fn write_replay_pictures(dir: &Path, samples: &[Vec<f32>]) -> Result<Vec<std::path::PathBuf>> {
    const SIDE: usize = 28;
    let mut written = Vec::new();
    let mut rows = Vec::new();
    for (k, s) in samples.iter().enumerate() {
        let (w, h, px) = image_grid(s, SIDE, 8);
        let path = dir.join(format!("replay-task{k}.png"));
        write_atomic(&path, &grey_png(w, h, &px))?;
        written.push(path);
        let first = 16.min(s.len() / (SIDE * SIDE));
        let mut row = s[..first * SIDE * SIDE].to_vec();
        row.resize(16 * SIDE * SIDE, 0.0);
        rows.extend(row);
    }
    if !samples.is_empty() {
        let (w, h, px) = image_grid(&rows, SIDE, 16);
        let path = dir.join("replay.png");
        write_atomic(&path, &grey_png(w, h, &px))?;
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
