//! The two products of the pass over W's rows, on a block of packed rows B [rows × width]
//! (row stride `ws`, zero past `width`), for tall, skinny B (width = 2k + 1 is small):
//!
//! - the Gram sums O += Bᵀ·B[:, c0..c0 + nc], O [(width rounded up to [`MR`]) × cols];
//! - the gradient rows G = B·S, S [width × nc] (packed by [`pack_s`]).
//!
//! Both keep a tile of the output in registers and add one row's (or one column's) products
//! to it with fused multiply-adds: every output element is one chain of `mul_add`s in a fixed
//! order (the rows of B in order for O, the columns of B in order for G). A fused
//! multiply-add rounds once on every machine, so the two ways of running the same loops —
//! compiled for AVX2 + FMA (chosen at run time where the processor has them) or portable
//! (`mul_add` in software where it has not) — give the same bits; the tiling changes the
//! speed only.

use crate::engine::tensor::Float;

/// Output rows of O per register tile.
pub(super) const MR: usize = 3;
/// Rows of B per register tile of G.
pub(super) const RJ: usize = 6;
/// Rows of B per pass of the O tiles (a chunk that stays in the first-level cache).
const CHUNK: usize = 128;

/// Columns per register tile: 32 f32 or 16 f64 (four 256-bit registers per row).
pub(super) fn cw<F: Float>() -> usize {
    if std::mem::size_of::<F>() == 4 {
        32
    } else {
        16
    }
}

/// How the loops run: portable, or compiled for AVX2 + FMA or AVX-512F. Same results on
/// every path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Path {
    /// Plain code (`mul_add` is a call where the target has no FMA instruction).
    Portable,
    /// AVX2 + FMA instructions (x86_64 processors that have them).
    Fma,
    /// AVX-512F instructions for f32 (x86_64 processors that have them; f64 runs as `Fma`).
    Avx512,
}

impl Path {
    /// The paths this processor runs, the fastest last.
    pub(super) fn available() -> Vec<Self> {
        let mut paths = vec![Path::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                paths.push(Path::Fma);
                if has!("avx512f") {
                    paths.push(Path::Avx512);
                }
            }
        }
        paths
    }

    /// The fastest path this processor runs (detected once).
    pub(super) fn detected() -> Self {
        static PATH: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
        *PATH.get_or_init(|| *Self::available().last().unwrap_or(&Path::Portable))
    }
}

/// The shape of a block's packed rows and of its Gram sums.
#[derive(Clone, Copy, Debug)]
pub(super) struct Layout {
    /// First column of B multiplied into O.
    pub(super) c0: usize,
    /// Column tiles of O (each [`cw`] wide).
    pub(super) groups: usize,
    /// Row tiles of O (each [`MR`] high).
    pub(super) tiles: usize,
    /// Row stride of the packed B (≥ every column a tile reads).
    pub(super) ws: usize,
}

impl Layout {
    pub(super) fn new<F: Float>(width: usize, c0: usize) -> Self {
        let cw = cw::<F>();
        let groups = (width - c0).div_ceil(cw);
        let tiles = width.div_ceil(MR);
        let ws = (c0 + groups * cw).max(tiles * MR).next_multiple_of(8);
        Self {
            c0,
            groups,
            tiles,
            ws,
        }
    }

    /// Columns of O.
    pub(super) fn out_cols<F: Float>(&self) -> usize {
        self.groups * cw::<F>()
    }

    /// Elements of O.
    pub(super) fn out_len<F: Float>(&self) -> usize {
        self.tiles * MR * self.out_cols::<F>()
    }
}

/// O += Bᵀ·B[:, c0..]: `pack` holds `rows` rows of stride `l.ws`, `out` is O
/// [(l.tiles·MR) × l.out_cols()].
pub(super) fn gram<F: Float>(path: Path, l: &Layout, pack: &[F], rows: usize, out: &mut [F]) {
    assert!(pack.len() >= rows * l.ws && out.len() == l.out_len::<F>());
    match (path, std::mem::size_of::<F>() == 4) {
        #[cfg(target_arch = "x86_64")]
        (Path::Fma, true) => unsafe { avx2::gram(l, cast(pack), rows, cast_mut(out)) },
        #[cfg(target_arch = "x86_64")]
        (Path::Avx512, true) => unsafe { avx512::gram(l, cast(pack), rows, cast_mut(out)) },
        #[cfg(target_arch = "x86_64")]
        (Path::Fma | Path::Avx512, false) => unsafe { gram_fma::<F, 16>(l, pack, rows, out) },
        (_, true) => gram_body::<F, 32>(l, pack, rows, out),
        (_, false) => gram_body::<F, 16>(l, pack, rows, out),
    }
}

/// # Safety
/// The processor must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gram_fma<F: Float, const CW: usize>(l: &Layout, pack: &[F], rows: usize, out: &mut [F]) {
    gram_body::<F, CW>(l, pack, rows, out);
}

#[inline(always)]
fn gram_body<F: Float, const CW: usize>(l: &Layout, pack: &[F], rows: usize, out: &mut [F]) {
    let oc = l.groups * CW;
    let ws = l.ws;
    let mut j0 = 0;
    while j0 < rows {
        let j1 = (j0 + CHUNK).min(rows);
        let chunk = &pack[j0 * ws..j1 * ws];
        for g in 0..l.groups {
            let cb = l.c0 + g * CW;
            for t in 0..l.tiles {
                let i0 = t * MR;
                let mut acc = [[F::ZERO; CW]; MR];
                for (r, a) in acc.iter_mut().enumerate() {
                    a.copy_from_slice(&out[(i0 + r) * oc + g * CW..][..CW]);
                }
                for row in chunk.chunks_exact(ws) {
                    let cols: &[F; CW] = row[cb..cb + CW].try_into().unwrap();
                    let heads: &[F; MR] = row[i0..i0 + MR].try_into().unwrap();
                    for r in 0..MR {
                        let bi = heads[r];
                        for c in 0..CW {
                            acc[r][c] = bi.mul_add(cols[c], acc[r][c]);
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate() {
                    out[(i0 + r) * oc + g * CW..][..CW].copy_from_slice(a);
                }
            }
        }
        j0 = j1;
    }
}

/// S [width × nc] (row stride `sc`) packed into column tiles: [width × groups·cw], zero past
/// nc.
pub(super) fn pack_s<F: Float>(s: &[F], width: usize, nc: usize, sc: usize) -> Vec<F> {
    let oc = nc.div_ceil(cw::<F>()) * cw::<F>();
    let mut out = vec![F::ZERO; width * oc];
    for l in 0..width {
        out[l * oc..l * oc + nc].copy_from_slice(&s[l * sc..l * sc + nc]);
    }
    out
}

/// The gradient rows of a block: row j of G = B·S times `sign`, its first k columns into
/// `gm` [rows × k] and its column k into `gb` [rows] (each if given). `pack` holds the rows
/// (stride `ws`, its length a multiple of [`RJ`] rows: rows past `rows` are read and
/// discarded), `sp` is S packed by [`pack_s`] with nc = k + 1.
#[allow(clippy::too_many_arguments)]
pub(super) fn grad_rows<F: Float>(
    path: Path,
    (width, ws, k): (usize, usize, usize),
    pack: &[F],
    rows: usize,
    sp: &[F],
    sign: F,
    gm: Option<&mut [F]>,
    gb: Option<&mut [F]>,
) {
    assert!(pack.len() >= rows.next_multiple_of(RJ) * ws && ws >= width);
    assert!(gm.as_ref().is_none_or(|g| g.len() == rows * k));
    assert!(gb.as_ref().is_none_or(|g| g.len() == rows));
    let args = (width, ws, k);
    match (path, std::mem::size_of::<F>() == 4) {
        #[cfg(target_arch = "x86_64")]
        (Path::Fma, true) => unsafe {
            avx2::grad(
                args,
                cast(pack),
                rows,
                cast(sp),
                sign.to_f64() as f32,
                gm.map(|g| cast_mut(g)),
                gb.map(|g| cast_mut(g)),
            )
        },
        #[cfg(target_arch = "x86_64")]
        (Path::Avx512, true) => unsafe {
            avx512::grad(
                args,
                cast(pack),
                rows,
                cast(sp),
                sign.to_f64() as f32,
                gm.map(|g| cast_mut(g)),
                gb.map(|g| cast_mut(g)),
            )
        },
        #[cfg(target_arch = "x86_64")]
        (Path::Fma | Path::Avx512, false) => unsafe {
            grad_fma::<F, 16>(args, pack, rows, sp, sign, gm, gb)
        },
        (_, true) => grad_body::<F, 32>(args, pack, rows, sp, sign, gm, gb),
        (_, false) => grad_body::<F, 16>(args, pack, rows, sp, sign, gm, gb),
    }
}

/// # Safety
/// The processor must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn grad_fma<F: Float, const CW: usize>(
    args: (usize, usize, usize),
    pack: &[F],
    rows: usize,
    sp: &[F],
    sign: F,
    gm: Option<&mut [F]>,
    gb: Option<&mut [F]>,
) {
    grad_body::<F, CW>(args, pack, rows, sp, sign, gm, gb);
}

#[inline(always)]
fn grad_body<F: Float, const CW: usize>(
    (width, ws, k): (usize, usize, usize),
    pack: &[F],
    rows: usize,
    sp: &[F],
    sign: F,
    mut gm: Option<&mut [F]>,
    mut gb: Option<&mut [F]>,
) {
    let groups = (k + 1).div_ceil(CW);
    let oc = groups * CW;
    assert!(sp.len() >= width * oc);
    let mut j0 = 0;
    while j0 < rows {
        let rj = RJ.min(rows - j0);
        let tile = &pack[j0 * ws..(j0 + RJ) * ws];
        for g in 0..groups {
            let mut acc = [[F::ZERO; CW]; RJ];
            for l in 0..width {
                let srow: &[F; CW] = sp[l * oc + g * CW..][..CW].try_into().unwrap();
                for r in 0..RJ {
                    let b = tile[r * ws + l];
                    for c in 0..CW {
                        acc[r][c] = b.mul_add(srow[c], acc[r][c]);
                    }
                }
            }
            let (c_lo, c_hi) = (g * CW, ((g + 1) * CW).min(k + 1));
            for (r, a) in acc.iter().enumerate().take(rj) {
                write_row(j0 + r, k, (c_lo, c_hi), a, sign, &mut gm, &mut gb);
            }
        }
        j0 += rj;
    }
}

/// Columns c_lo..c_hi of gradient row j (`a` holds them from c_lo), times `sign`: those
/// below k into ∂/∂W's row, column k into ∂/∂b.
#[inline(always)]
fn write_row<F: Float>(
    j: usize,
    k: usize,
    (c_lo, c_hi): (usize, usize),
    a: &[F],
    sign: F,
    gm: &mut Option<&mut [F]>,
    gb: &mut Option<&mut [F]>,
) {
    if let Some(gm) = gm.as_deref_mut() {
        let hi = c_hi.min(k);
        if c_lo < hi {
            let dst = &mut gm[j * k + c_lo..j * k + hi];
            for (d, &v) in dst.iter_mut().zip(a) {
                *d = sign * v;
            }
        }
    }
    if (c_lo..c_hi).contains(&k) {
        if let Some(gb) = gb.as_deref_mut() {
            gb[j] = sign * a[k - c_lo];
        }
    }
}

/// `&[F]` as `&[f32]` (F is f32: the caller checked its size).
#[cfg(target_arch = "x86_64")]
fn cast<F: Float>(v: &[F]) -> &[f32] {
    assert_eq!(std::mem::size_of::<F>(), 4);
    // SAFETY: F is f32 (the only 4-byte Float), so the slice is a slice of f32.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len()) }
}

/// `&mut [F]` as `&mut [f32]` (F is f32: the caller checked its size).
#[cfg(target_arch = "x86_64")]
fn cast_mut<F: Float>(v: &mut [F]) -> &mut [f32] {
    assert_eq!(std::mem::size_of::<F>(), 4);
    // SAFETY: as `cast`.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len()) }
}

/// The f32 kernels in AVX2 + FMA intrinsics: the loops of [`gram_body`] and [`grad_body`]
/// with 32 columns (four registers) per tile, the same fused multiply-adds in the same order.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{write_row, Layout, CHUNK, MR, RJ};
    use std::arch::x86_64::*;

    const CW: usize = 32;

    /// # Safety
    /// The processor must have AVX2 and FMA; `pack` holds `rows` rows of stride `l.ws` and
    /// `out` is [(l.tiles·MR) × l.groups·32] (checked by the caller).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gram(l: &Layout, pack: &[f32], rows: usize, out: &mut [f32]) {
        let oc = l.groups * CW;
        let ws = l.ws;
        debug_assert!(pack.len() >= rows * ws && out.len() == l.tiles * MR * oc);
        let mut j0 = 0;
        while j0 < rows {
            let j1 = (j0 + CHUNK).min(rows);
            for g in 0..l.groups {
                let cb = l.c0 + g * CW;
                for t in 0..l.tiles {
                    let i0 = t * MR;
                    let o = out.as_mut_ptr().add(i0 * oc + g * CW);
                    let mut acc = [[_mm256_setzero_ps(); 4]; MR];
                    for (r, a) in acc.iter_mut().enumerate() {
                        for (v, x) in a.iter_mut().enumerate() {
                            *x = _mm256_loadu_ps(o.add(r * oc + 8 * v));
                        }
                    }
                    let mut p = pack.as_ptr().add(j0 * ws);
                    for _ in j0..j1 {
                        let c = p.add(cb);
                        let cols = [0, 1, 2, 3].map(|v| _mm256_loadu_ps(c.add(8 * v)));
                        for (r, a) in acc.iter_mut().enumerate() {
                            let bi = _mm256_broadcast_ss(&*p.add(i0 + r));
                            for (x, &y) in a.iter_mut().zip(&cols) {
                                *x = _mm256_fmadd_ps(bi, y, *x);
                            }
                        }
                        p = p.add(ws);
                    }
                    for (r, a) in acc.iter().enumerate() {
                        for (v, x) in a.iter().enumerate() {
                            _mm256_storeu_ps(o.add(r * oc + 8 * v), *x);
                        }
                    }
                }
            }
            j0 = j1;
        }
    }

    /// # Safety
    /// The processor must have AVX2 and FMA; the slices have the sizes `grad_rows` checks.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn grad(
        (width, ws, k): (usize, usize, usize),
        pack: &[f32],
        rows: usize,
        sp: &[f32],
        sign: f32,
        mut gm: Option<&mut [f32]>,
        mut gb: Option<&mut [f32]>,
    ) {
        let groups = (k + 1).div_ceil(CW);
        let oc = groups * CW;
        assert!(sp.len() >= width * oc && pack.len() >= rows.next_multiple_of(RJ) * ws);
        const H: usize = RJ / 2;
        let mut tmp = [[0f32; CW]; H];
        let mut j0 = 0;
        while j0 < rows {
            let rj = H.min(rows - j0);
            let tile = pack.as_ptr().add(j0 * ws);
            for g in 0..groups {
                let mut acc = [[_mm256_setzero_ps(); 4]; H];
                let mut s = sp.as_ptr().add(g * CW);
                for l in 0..width {
                    let srow = [0, 1, 2, 3].map(|v| _mm256_loadu_ps(s.add(8 * v)));
                    for (r, a) in acc.iter_mut().enumerate() {
                        let b = _mm256_broadcast_ss(&*tile.add(r * ws + l));
                        for (x, &y) in a.iter_mut().zip(&srow) {
                            *x = _mm256_fmadd_ps(b, y, *x);
                        }
                    }
                    s = s.add(oc);
                }
                for (t, a) in tmp.iter_mut().zip(&acc) {
                    for (v, x) in a.iter().enumerate() {
                        _mm256_storeu_ps(t.as_mut_ptr().add(8 * v), *x);
                    }
                }
                let (c_lo, c_hi) = (g * CW, ((g + 1) * CW).min(k + 1));
                for (r, a) in tmp.iter().enumerate().take(rj) {
                    write_row(j0 + r, k, (c_lo, c_hi), a, sign, &mut gm, &mut gb);
                }
            }
            j0 += rj;
        }
    }
}

/// The f32 kernels in AVX-512F intrinsics: 32 columns are two registers, so a tile holds
/// twice the rows of [`avx2`]'s (six rows of O, [`RJ`] rows of G); the same fused
/// multiply-adds in the same order.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{write_row, Layout, CHUNK, MR, RJ};
    use std::arch::x86_64::*;

    const CW: usize = 32;

    /// O's rows i0..i0 + R, columns cb.. of B, over `n` rows from `p`.
    ///
    /// # Safety
    /// As [`gram`]; rows i0..i0 + R of O exist.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn gram_tile<const R: usize>(
        mut p: *const f32,
        n: usize,
        ws: usize,
        i0: usize,
        cb: usize,
        o: *mut f32,
        oc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        for (r, a) in acc.iter_mut().enumerate() {
            for (v, x) in a.iter_mut().enumerate() {
                *x = _mm512_loadu_ps(o.add(r * oc + 16 * v));
            }
        }
        for _ in 0..n {
            let c = p.add(cb);
            let cols = [_mm512_loadu_ps(c), _mm512_loadu_ps(c.add(16))];
            for (r, a) in acc.iter_mut().enumerate() {
                let bi = _mm512_set1_ps(*p.add(i0 + r));
                for (x, &y) in a.iter_mut().zip(&cols) {
                    *x = _mm512_fmadd_ps(bi, y, *x);
                }
            }
            p = p.add(ws);
        }
        for (r, a) in acc.iter().enumerate() {
            for (v, x) in a.iter().enumerate() {
                _mm512_storeu_ps(o.add(r * oc + 16 * v), *x);
            }
        }
    }

    /// # Safety
    /// The processor must have AVX-512F; `pack` holds `rows` rows of stride `l.ws` and `out`
    /// is [(l.tiles·MR) × l.groups·32] (checked by the caller).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gram(l: &Layout, pack: &[f32], rows: usize, out: &mut [f32]) {
        let oc = l.groups * CW;
        let ws = l.ws;
        debug_assert!(pack.len() >= rows * ws && out.len() == l.tiles * MR * oc);
        let mut j0 = 0;
        while j0 < rows {
            let j1 = (j0 + CHUNK).min(rows);
            let p = pack.as_ptr().add(j0 * ws);
            for g in 0..l.groups {
                let cb = l.c0 + g * CW;
                let mut t = 0;
                while t < l.tiles {
                    let i0 = t * MR;
                    let o = out.as_mut_ptr().add(i0 * oc + g * CW);
                    if t + 1 < l.tiles {
                        gram_tile::<{ 2 * MR }>(p, j1 - j0, ws, i0, cb, o, oc);
                        t += 2;
                    } else {
                        gram_tile::<MR>(p, j1 - j0, ws, i0, cb, o, oc);
                        t += 1;
                    }
                }
            }
            j0 = j1;
        }
    }

    /// # Safety
    /// The processor must have AVX-512F; the slices have the sizes `grad_rows` checks.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn grad(
        (width, ws, k): (usize, usize, usize),
        pack: &[f32],
        rows: usize,
        sp: &[f32],
        sign: f32,
        mut gm: Option<&mut [f32]>,
        mut gb: Option<&mut [f32]>,
    ) {
        let groups = (k + 1).div_ceil(CW);
        let oc = groups * CW;
        assert!(sp.len() >= width * oc && pack.len() >= rows.next_multiple_of(RJ) * ws);
        let mut tmp = [[0f32; CW]; RJ];
        let mut j0 = 0;
        while j0 < rows {
            let rj = RJ.min(rows - j0);
            let tile = pack.as_ptr().add(j0 * ws);
            for g in 0..groups {
                let mut acc = [[_mm512_setzero_ps(); 2]; RJ];
                let mut s = sp.as_ptr().add(g * CW);
                for l in 0..width {
                    let srow = [_mm512_loadu_ps(s), _mm512_loadu_ps(s.add(16))];
                    for (r, a) in acc.iter_mut().enumerate() {
                        let b = _mm512_set1_ps(*tile.add(r * ws + l));
                        for (x, &y) in a.iter_mut().zip(&srow) {
                            *x = _mm512_fmadd_ps(b, y, *x);
                        }
                    }
                    s = s.add(oc);
                }
                for (t, a) in tmp.iter_mut().zip(&acc) {
                    for (v, x) in a.iter().enumerate() {
                        _mm512_storeu_ps(t.as_mut_ptr().add(16 * v), *x);
                    }
                }
                let (c_lo, c_hi) = (g * CW, ((g + 1) * CW).min(k + 1));
                for (r, a) in tmp.iter().enumerate().take(rj) {
                    write_row(j0 + r, k, (c_lo, c_hi), a, sign, &mut gm, &mut gb);
                }
            }
            j0 += rj;
        }
    }
}
