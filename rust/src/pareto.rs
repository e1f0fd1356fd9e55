//! Pareto frontiers: the non-dominated rows of a point set, each column minimised
//! or maximised, and how far each configuration sits from the latency/quality frontier.

use crate::error::{Error, Result};

/// Indices (ascending) of the non-dominated rows of `points` (row-major, `d`
/// columns). A row with a NaN is never on the frontier; identical
/// non-dominated rows are all returned. O(n log n) for d = 2 (a sweep); for
/// other d, rows are visited by coordinate sum and checked against the
/// frontier found so far, O(n log n + n |frontier|).
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
    let n = points.len() / d;
    // Everything is minimised from here on: one flat copy, maximised columns negated.
    let vals: Vec<f64> = points
        .chunks_exact(d)
        .flat_map(|r| {
            r.iter()
                .zip(maximize)
                .map(|(&v, &m)| if m { -v } else { v })
        })
        .collect();
    let row = |i: usize| &vals[i * d..(i + 1) * d];
    let mut order: Vec<usize> = (0..n)
        .filter(|&i| row(i).iter().all(|v| !v.is_nan()))
        .collect();
    let mut out = Vec::new();
    if d == 2 {
        let mut pts: Vec<(f64, f64, usize)> = order
            .iter()
            .map(|&i| (vals[2 * i], vals[2 * i + 1], i))
            .collect();
        pts.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
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
    } else {
        // A dominating row has a strictly smaller coordinate sum, so in order of sum each
        // row need only be checked against the frontier found so far.
        let sums: Vec<f64> = (0..n).map(|i| row(i).iter().sum()).collect();
        let dominates = |f: &[f64], r: &[f64]| {
            f.iter().zip(r).all(|(a, b)| a <= b) && f.iter().zip(r).any(|(a, b)| a < b)
        };
        // Prune first: the row of least sum is on the frontier, and one linear pass
        // drops everything it dominates; a few rounds leave few rows to sort.
        let mut seeded = Vec::new();
        for _ in 0..8 {
            let Some(pos) = order
                .iter()
                .enumerate()
                .filter(|(_, i)| !seeded.contains(*i))
                .min_by(|a, b| sums[*a.1].total_cmp(&sums[*b.1]))
                .map(|(p, _)| p)
            else {
                break;
            };
            let seed = order[pos];
            seeded.push(seed);
            let s = row(seed);
            order.retain(|&i| !dominates(s, row(i)));
        }
        order.sort_unstable_by(|&a, &b| sums[a].total_cmp(&sums[b]));
        let mut frontier: Vec<usize> = Vec::new();
        for &i in &order {
            let r = row(i);
            let dominated = frontier.iter().any(|&f| dominates(row(f), r));
            if !dominated {
                frontier.push(i);
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
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
