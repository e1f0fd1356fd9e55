//! Pareto frontiers: the non-dominated rows of a point set, each column minimised
//! or maximised, and how far each configuration sits from the latency/quality frontier.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Rows below this count are filtered on one thread.
const PAR_ROWS: usize = 1 << 18;
/// How many low-key rows prefilter the rest.
const SEEDS: usize = 16;

/// Indices (ascending) of the non-dominated rows of `points` (row-major, `d`
/// columns). A row with a NaN is never on the frontier; identical
/// non-dominated rows are all returned.
///
/// Every row gets a key, a positively weighted sum of its (minimised)
/// coordinates: a monotone map, so a dominating row never has a larger key. The
/// rows of least key are a cheap, strong filter: one pass drops every row they
/// dominate (for random data, nearly all). The survivors then go through an
/// O(m log m) sweep for d = 2, or, for other d, are visited in key order and
/// checked against the frontier found so far (sort-filter-skyline). Nothing of
/// size n is allocated: the input is read twice, in place.
pub fn pareto_frontier(points: &[f64], d: usize, maximize: &[bool]) -> Result<Vec<usize>> {
    if d == 0 || !points.len().is_multiple_of(d) {
        return Err(Error::invalid("points must be an (n, d) array with d >= 1"));
    }
    if maximize.len() != d {
        return Err(Error::invalid(format!(
            "maximize has {} entries for {d} columns",
            maximize.len()
        )));
    }
    // Monomorphised widths let the compiler unroll the per-row loops.
    let mut out = match d {
        1 => frontier(points, Fixed::<1>, maximize),
        2 => frontier(points, Fixed::<2>, maximize),
        3 => frontier(points, Fixed::<3>, maximize),
        4 => frontier(points, Fixed::<4>, maximize),
        5 => frontier(points, Fixed::<5>, maximize),
        6 => frontier(points, Fixed::<6>, maximize),
        _ => frontier(points, Any(d), maximize),
    };
    out.sort_unstable();
    Ok(out)
}

/// The row width, known at compile time or not.
trait Width: Copy + Send + Sync {
    fn get(self) -> usize;
}

#[derive(Clone, Copy)]
struct Fixed<const D: usize>;

impl<const D: usize> Width for Fixed<D> {
    #[inline(always)]
    fn get(self) -> usize {
        D
    }
}

#[derive(Clone, Copy)]
struct Any(usize);

impl Width for Any {
    #[inline(always)]
    fn get(self) -> usize {
        self.0
    }
}

fn frontier<W: Width>(points: &[f64], w: W, maximize: &[bool]) -> Vec<usize> {
    let d = w.get();
    let n = points.len() / d;
    let space = Space::new(points, w, maximize);
    // Each thread scans its share once, keeping candidates: the rows its seeds
    // do not dominate. The candidates are then filtered by every thread's seeds.
    let parts = if n >= PAR_ROWS {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    let step = n.div_ceil(parts).max(1);
    let scans: Vec<Scan> = (0..n)
        .step_by(step)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|lo| space.scan(lo, (lo + step).min(n)))
        .collect();
    let seeds: Vec<f64> = scans.iter().flat_map(|s| s.seeds.iter().copied()).collect();
    let mut buf = vec![0.0; d];
    let mut survivors: Vec<(f64, usize)> = Vec::new();
    for (key, i) in scans.into_iter().flat_map(|s| s.candidates) {
        space.signed(space.row(i), &mut buf);
        if !seeds.chunks_exact(d).any(|s| dominates(w, s, &buf)) {
            survivors.push((key, i));
        }
    }
    if d == 2 {
        sweep_2d(&space, survivors)
    } else {
        sort_filter(&space, survivors)
    }
}

/// What one scan over a range of rows leaves: its seeds (signed rows,
/// flattened) and the (key, index) of every row they did not dominate when seen.
struct Scan {
    seeds: Vec<f64>,
    candidates: Vec<(f64, usize)>,
}

/// The input seen with every column minimised, and each row's key.
struct Space<'a, W: Width> {
    points: &'a [f64],
    w: W,
    sign: Vec<f64>,
    lo: Vec<f64>,
    scale: Vec<f64>,
}

/// Keys are clamped to +-KEY_CAP per column, so that their sum stays finite.
const KEY_CAP: f64 = 1e250;

impl<'a, W: Width> Space<'a, W> {
    /// Column offsets and scales come from a sample of about 1,000 rows: any
    /// positive scale keeps the key monotone; a good one makes the seeds strong.
    fn new(points: &'a [f64], w: W, maximize: &[bool]) -> Self {
        let d = w.get();
        let sign: Vec<f64> = maximize
            .iter()
            .map(|&m| if m { -1.0 } else { 1.0 })
            .collect();
        let mut space = Space {
            points,
            w,
            sign,
            lo: vec![f64::INFINITY; d],
            scale: vec![1.0; d],
        };
        let n = points.len() / d;
        let mut hi = vec![f64::NEG_INFINITY; d];
        let mut buf = vec![0.0; d];
        for i in (0..n).step_by((n / 1024).max(1)) {
            space.signed(space.row(i), &mut buf);
            for ((v, l), h) in buf.iter().zip(&mut space.lo).zip(&mut hi) {
                if v.is_finite() {
                    *l = v.min(*l);
                    *h = v.max(*h);
                }
            }
        }
        for ((s, l), h) in space.scale.iter_mut().zip(&mut space.lo).zip(&hi) {
            if h > l && (h - *l).is_finite() {
                *s = 1.0 / (h - *l);
            } else if !l.is_finite() {
                *l = 0.0;
            }
        }
        space
    }

    #[inline(always)]
    fn row(&self, i: usize) -> &'a [f64] {
        let d = self.w.get();
        &self.points[i * d..(i + 1) * d]
    }

    /// `r` with every column minimised; `+ 0.0` turns -0.0 into 0.0, so that
    /// ordering and dominance agree.
    #[inline(always)]
    fn signed(&self, r: &[f64], buf: &mut [f64]) {
        let d = self.w.get();
        for ((b, v), s) in buf[..d].iter_mut().zip(&r[..d]).zip(&self.sign[..d]) {
            *b = v * s + 0.0;
        }
    }

    /// Weighted sum of a signed row; NaN for a row with a NaN.
    #[inline(always)]
    fn key(&self, row: &[f64]) -> f64 {
        let d = self.w.get();
        let mut s = 0.0;
        for ((v, l), k) in row[..d].iter().zip(&self.lo[..d]).zip(&self.scale[..d]) {
            let x = (v - l) * k;
            // clamp keeps a NaN: it must survive to the sum.
            s += x.clamp(-KEY_CAP, KEY_CAP);
        }
        s
    }

    /// One pass over rows `lo..hi`. The seeds are the rows of least key among
    /// the candidates so far; a row any seed dominates is dropped at once, which
    /// for most inputs is nearly every row. Rows go in blocks of 64: a
    /// branch-free test against the leading seed marks the few that need the
    /// full, also branch-free, test against every seed (on this kind of data a
    /// mispredicted branch per row costs more than the tests).
    fn scan(&self, lo: usize, hi: usize) -> Scan {
        let d = self.w.get();
        let mut seeds = Seeds::new(d);
        let mut candidates = Vec::new();
        let mut buf = vec![0.0; d];
        let sign = &self.sign[..d];
        let mut start = lo;
        while start < hi {
            let end = (start + 64).min(hi);
            let mut open = 0u64;
            let lead = seeds.lead();
            for (bit, r) in self.points[start * d..end * d].chunks_exact(d).enumerate() {
                // Open unless strictly worse than the lead everywhere: a superset
                // of the rows it does not dominate, with one comparison per
                // column. NaN compares false: such rows are never opened, and
                // never belong to the frontier.
                let mut o = false;
                for j in 0..d {
                    o |= r[j] * sign[j] <= lead[j];
                }
                open |= u64::from(o) << bit;
            }
            while open != 0 {
                let i = start + open.trailing_zeros() as usize;
                open &= open - 1;
                self.signed(self.row(i), &mut buf);
                if seeds.dominated(&buf) {
                    continue;
                }
                let key = self.key(&buf);
                if key.is_nan() {
                    continue;
                }
                candidates.push((key, i));
                seeds.offer(key, &buf);
            }
            start = end;
        }
        Scan {
            seeds: seeds.rows(),
            candidates,
        }
    }
}

/// The SEEDS rows of least key seen so far, column-major so that one row is
/// tested against all of them in a loop the compiler vectorises. Empty slots
/// hold +inf rows, which dominate nothing.
struct Seeds {
    keys: [f64; SEEDS],
    cols: Vec<[f64; SEEDS]>,
    lead: Vec<f64>,
}

impl Seeds {
    fn new(d: usize) -> Self {
        Seeds {
            keys: [f64::INFINITY; SEEDS],
            cols: vec![[f64::INFINITY; SEEDS]; d],
            lead: vec![f64::INFINITY; d],
        }
    }

    fn lead(&self) -> &[f64] {
        &self.lead
    }

    /// Whether a seed other than the lead dominates `row` (the caller has
    /// tested the lead).
    #[inline]
    fn dominated(&self, row: &[f64]) -> bool {
        (1..SEEDS).any(|s| {
            let (mut no_worse, mut better) = (true, false);
            for (col, v) in self.cols.iter().zip(row) {
                no_worse &= col[s] <= *v;
                better |= col[s] < *v;
            }
            no_worse & better
        })
    }

    fn offer(&mut self, key: f64, row: &[f64]) {
        if key >= self.keys[SEEDS - 1] {
            return;
        }
        let pos = self.keys.partition_point(|&k| k <= key);
        self.keys.copy_within(pos..SEEDS - 1, pos + 1);
        self.keys[pos] = key;
        for (col, v) in self.cols.iter_mut().zip(row) {
            col.copy_within(pos..SEEDS - 1, pos + 1);
            col[pos] = *v;
        }
        if pos == 0 {
            for (l, col) in self.lead.iter_mut().zip(&self.cols) {
                *l = col[0];
            }
        }
    }

    /// The filled rows, flattened row-major.
    fn rows(&self) -> Vec<f64> {
        let filled = self.keys.iter().filter(|k| k.is_finite()).count();
        (0..filled)
            .flat_map(|s| self.cols.iter().map(move |c| c[s]))
            .collect()
    }
}

/// `a` dominates `b` (all minimised): no worse anywhere, better somewhere.
/// Branch-free over the columns.
#[inline(always)]
fn dominates<W: Width>(w: W, a: &[f64], b: &[f64]) -> bool {
    let d = w.get();
    let (a, b) = (&a[..d], &b[..d]);
    let mut no_worse = true;
    let mut better = false;
    for j in 0..d {
        no_worse &= a[j] <= b[j];
        better |= a[j] < b[j];
    }
    no_worse & better
}

/// d = 2: sort by (x, y) and keep each row whose y beats every earlier x.
fn sweep_2d<W: Width>(space: &Space<W>, survivors: Vec<(f64, usize)>) -> Vec<usize> {
    let mut buf = [0.0; 2];
    let mut pts: Vec<(f64, f64, usize)> = survivors
        .into_iter()
        .map(|(_, i)| {
            space.signed(space.row(i), &mut buf);
            (buf[0], buf[1], i)
        })
        .collect();
    pts.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out = Vec::new();
    let mut best_y = f64::INFINITY;
    let mut i = 0;
    while i < pts.len() {
        // Rows sharing x come together, lowest y first.
        let (x, y_min) = (pts[i].0, pts[i].1);
        let mut j = i;
        while j < pts.len() && pts[j].0 == x {
            if pts[j].1 == y_min && y_min < best_y {
                out.push(pts[j].2);
            }
            j += 1;
        }
        best_y = best_y.min(y_min);
        i = j;
    }
    out
}

/// Other d: visit rows by (key, then lexicographic order), so that a row's
/// dominators all come before it, and keep those no frontier row dominates.
fn sort_filter<W: Width>(space: &Space<W>, mut survivors: Vec<(f64, usize)>) -> Vec<usize> {
    let d = space.w.get();
    let signed = |i: usize, j: usize| space.points[i * d + j] * space.sign[j] + 0.0;
    survivors.sort_unstable_by(|a, b| {
        a.0.total_cmp(&b.0).then_with(|| {
            (0..d)
                .map(|j| signed(a.1, j).total_cmp(&signed(b.1, j)))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    // The signed rows, gathered once in visiting order.
    let mut rows = vec![0.0; survivors.len() * d];
    for (r, &(_, i)) in rows.chunks_exact_mut(d).zip(&survivors) {
        space.signed(space.row(i), r);
    }
    let mut frontier: Vec<f64> = Vec::new();
    let mut out = Vec::new();
    for (r, &(_, i)) in rows.chunks_exact(d).zip(&survivors) {
        if !frontier.chunks_exact(d).any(|f| dominates(space.w, f, r)) {
            frontier.extend_from_slice(r);
            out.push(i);
        }
    }
    out
}

/// For each configuration: its latency over the lowest latency among the
/// configurations whose quality is at least as high (1.0 on the frontier). NaN
/// where its own latency or quality is NaN.
pub fn frontier_ratio(latency: &[f64], quality: &[f64]) -> Result<Vec<f64>> {
    if latency.len() != quality.len() {
        return Err(Error::invalid(format!(
            "latency has {} values, quality {}",
            latency.len(),
            quality.len()
        )));
    }
    let mut order: Vec<usize> = (0..latency.len())
        .filter(|&i| !latency[i].is_nan() && !quality[i].is_nan())
        .collect();
    // Highest quality first; equal qualities form one group that shares its minimum.
    order.sort_by(|&a, &b| quality[b].total_cmp(&quality[a]));
    let mut out = vec![f64::NAN; latency.len()];
    let mut best = f64::INFINITY;
    let mut i = 0;
    while i < order.len() {
        let q = quality[order[i]];
        let mut j = i;
        while j < order.len() && quality[order[j]] == q {
            best = best.min(latency[order[j]]);
            j += 1;
        }
        for &k in &order[i..j] {
            out[k] = latency[k] / best;
        }
        i = j;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_d_with_ties_duplicates_and_nan() {
        // (latency min, quality max)
        let pts = [
            1.0,
            0.5,
            2.0,
            0.9,
            2.0,
            0.9,
            3.0,
            0.9,
            1.0,
            0.4,
            f64::NAN,
            1.0,
            0.5,
            0.1,
        ];
        let f = pareto_frontier(&pts, 2, &[false, true]).unwrap();
        assert_eq!(f, vec![0, 1, 2, 6]);
    }

    #[test]
    fn ratio_hand_checked() {
        let r = frontier_ratio(&[100.0, 50.0, 200.0, 80.0], &[0.9, 0.5, 0.9, f64::NAN]).unwrap();
        assert_eq!(r[0], 1.0);
        assert_eq!(r[1], 1.0);
        assert_eq!(r[2], 2.0);
        assert!(r[3].is_nan());
    }
}
