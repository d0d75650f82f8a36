// SPDX-License-Identifier: MIT OR Apache-2.0
//! The taps of the separable filter: which source rows and columns each output reads, with which weights, and the
//! vertical pass that sums rows into lines.

/// The source rows one output row is filtered from: row index and weight, rows in increasing order; a row pushed
/// twice in a row (two luma rows on one chroma row) adds its weights.
#[derive(Debug, Default, Clone)]
pub(super) struct Rows {
    pub(super) taps: Vec<(usize, f32)>,
}

impl Rows {
    pub(super) fn push(&mut self, y: usize, w: f32) {
        match self.taps.last_mut() {
            Some(last) if last.0 == y => last.1 += w,
            _ => self.taps.push((y, w)),
        }
    }
}

/// `line[j] = sum of w * row(y)[j]` over the rows: all rows at once over blocks of 8 columns, so the sums stay in
/// registers (one store per column instead of one load and store per row), in groups of 8 rows; the last
/// columns short of a block row by row.
#[inline(always)]
pub(super) fn filter_rows<'a>(line: &mut [f32], rows: &Rows, row: impl Fn(usize) -> &'a [u8]) {
    const B: usize = 8;
    if rows.taps.is_empty() {
        line.fill(0.0);
    }
    for (g, group) in rows.taps.chunks(8).enumerate() {
        let mut src: [(&[u8], f32); 8] = [(&[], 0.0); 8];
        for (s, &(y, w)) in src.iter_mut().zip(group) {
            *s = (row(y), w);
        }
        let src = &src[..group.len()];
        let add = g > 0;
        let full = line.len() / B * B;
        let (blocks, tail) = line.split_at_mut(full);
        for (b, out) in blocks.chunks_exact_mut(B).enumerate() {
            let mut acc = [0.0f32; B];
            for &(r, w) in src {
                for (a, &v) in acc.iter_mut().zip(&r[b * B..(b + 1) * B]) {
                    *a += w * v as f32;
                }
            }
            for (o, a) in out.iter_mut().zip(acc) {
                *o = if add { *o + a } else { a };
            }
        }
        if !add {
            tail.fill(0.0);
        }
        for &(r, w) in src {
            for (o, &v) in tail.iter_mut().zip(&r[full..]) {
                *o += w * v as f32;
            }
        }
    }
}

/// `f.floor()` without the libm call the baseline x86-64 target makes of it (no SSE4.1 `roundss`): exact for the
/// pixel coordinates used here (|f| < 2^31).
#[inline(always)]
pub(super) fn floor(f: f32) -> f32 {
    let t = f as i32 as f32;
    if t > f {
        t - 1.0
    } else {
        t
    }
}

/// The taps of one axis: for each output, a window of `k` source indices from `starts[o]` with their weights
/// (`weights[o * k..][..k]`, zero where the window is wider than that output needs).
#[derive(Debug, Default, Clone)]
pub(super) struct Taps {
    pub(super) starts: Vec<u32>,
    pub(super) weights: Vec<f32>,
    pub(super) k: usize,
}

/// Taps of one axis: for each of `n` outputs, `taps` supersamples of a bilinear filter whose centres stay within
/// `[lo, hi]` (inside the box), source indices clamped to `[0, size)`, merged into one dense window per output.
#[allow(clippy::too_many_arguments)]
pub(super) fn axis_taps(out: &mut Taps, n: usize, taps: usize, start: f32, step: f32, lo: f32, hi: f32, size: u32) {
    let last = size as i64 - 1;
    let w_tap = 1.0 / taps as f32;
    // (first raw index, fraction) of each supersample; the window spans the widest output.
    let tap = |o: usize, t: usize| {
        let f = (start + (o as f32 + (t as f32 + 0.5) / taps as f32) * step).max(lo).min(hi) - 0.5;
        let f0 = floor(f);
        (f0 as i64, f - f0)
    };
    let mut k = 1usize;
    for o in 0..n {
        let (first, _) = tap(o, 0);
        let (last_tap, _) = tap(o, taps - 1);
        k = k.max((last_tap + 1 - first + 1) as usize);
    }
    let k = k.min(size as usize);
    out.k = k;
    out.starts.clear();
    out.weights.clear();
    out.weights.resize(n * k, 0.0);
    for o in 0..n {
        let lo_idx = tap(o, 0).0.clamp(0, last);
        let s0 = lo_idx.min(size as i64 - k as i64);
        out.starts.push(s0 as u32);
        let w = &mut out.weights[o * k..(o + 1) * k];
        for t in 0..taps {
            let (i0, a) = tap(o, t);
            w[(i0.clamp(0, last) - s0) as usize] += (1.0 - a) * w_tap;
            w[((i0 + 1).clamp(0, last) - s0) as usize] += a * w_tap;
        }
    }
}

/// Chroma taps from the luma taps `tx`: luma column `x` reads chroma sample `x / 2`, so each output's chroma window
/// sums the weights of the luma columns that share a sample. Starts are relative to chroma sample `c0`; windows stay
/// within the `cspan` samples the vertical pass filtered.
pub(super) fn chroma_taps(tx: &Taps, c0: usize, cspan: usize, out: &mut Taps) {
    let k = (tx.k / 2 + 1).min(cspan);
    out.k = k;
    out.starts.clear();
    out.weights.clear();
    out.weights.resize(tx.starts.len() * k, 0.0);
    for ((&s, w), cw) in tx.starts.iter().zip(tx.weights.chunks_exact(tx.k)).zip(out.weights.chunks_exact_mut(k)) {
        let first = (s as usize / 2 - c0).min(cspan - k);
        out.starts.push(first as u32);
        for (i, &w) in w.iter().enumerate() {
            cw[(s as usize + i) / 2 - c0 - first] += w;
        }
    }
}
