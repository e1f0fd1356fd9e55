//! Rank fusion of several runs of the same queries: reciprocal rank fusion and the
//! Comb* family (Fox & Shaw) over normalised scores, with ranx's semantics (scores
//! equal `ranx.fuse`'s, bit for bit, on the same runs).
//!
//! Per query, every run contributes one result list (empty when the run lacks the
//! query). What ranx does, and so what this module does:
//! - Each list is first ranked: score descending, ties by document id descending
//!   (UTF-8 bytes), the project's tie rule. RRF gives the document at 0-based rank
//!   `i` the score `1 / (k + i + 1)`; ranx ranks by its own sorted order, which
//!   agrees with this one whenever a list has no tied scores.
//! - Normalisation is per list, over the scores in that ranked order (sums are
//!   taken in it): `min-max` `(s - min) / max(max - min, 1e-9)` (a constant list
//!   becomes all 0), `zmuv` `(s - mean) / max(std, 1e-9)` (population std),
//!   `max` `s / max(max, 1e-9)`, `sum` `(s - min) / max(sum - min * n, 1e-9)`.
//!   RRF ignores scores, so normalisation does not change it.
//! - A document is fused over the runs in run order: CombSUM adds its scores (0 where
//!   a run lacks it), CombMNZ multiplies that sum by the number of runs that have it,
//!   CombANZ divides by that number, CombMAX / CombMIN take the maximum / minimum with
//!   -1e9 / 1e9 standing for a run that lacks it, CombMED the median of the scores of
//!   the runs that have it. RRF is CombSUM of the reciprocal ranks.
//! - The fused list holds every document of any run, ranked by the tie rule.
//!
//! A non-finite score, or a document listed twice in one list, is an error naming the
//! run, the query and the document.
//!
//! Past the ~450-line guide only by its unit tests, kept beside the code they check.

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Rrf,
    Sum,
    Mnz,
    Anz,
    Max,
    Min,
    Med,
}

impl Method {
    /// The project's names (`rrf`, `combsum`, `combmnz`, ...) and ranx's (`sum`, `mnz`, ...).
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "rrf" => Method::Rrf,
            "combsum" | "sum" => Method::Sum,
            "combmnz" | "mnz" => Method::Mnz,
            "combanz" | "anz" => Method::Anz,
            "combmax" | "max" => Method::Max,
            "combmin" | "min" => Method::Min,
            "combmed" | "med" => Method::Med,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown fusion method {name:?}: use rrf, combsum, combmnz, combanz, combmax, \
                     combmin or combmed"
                )))
            }
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    None,
    MinMax,
    Zmuv,
    Max,
    Sum,
}

impl Norm {
    /// `none`, `min-max` (or `min_max`), `zmuv` (or `z-score`), `max`, `sum`.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "none" => Norm::None,
            "min-max" | "min_max" => Norm::MinMax,
            "zmuv" | "z-score" | "zscore" => Norm::Zmuv,
            "max" => Norm::Max,
            "sum" => Norm::Sum,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown score normalisation {name:?}: use min-max, zmuv (z-score), max, sum or none"
                )))
            }
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FuseParams {
    pub method: Method,
    pub norm: Norm,
    /// RRF's constant.
    pub k: u64,
}

/// One fused document: where it first appears (run, position in that run's list as
/// given) and its fused score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fused {
    pub run: usize,
    pub pos: usize,
    pub score: f64,
}

/// The floor ranx puts under every normalisation's denominator.
const EPS: f64 = 1e-9;

/// An integer that sorts ascending as `s` sorts descending in IEEE total order.
#[inline]
fn descending_key(s: f64) -> u64 {
    let bits = s.to_bits() as i64;
    let total = bits ^ ((((bits >> 63) as u64) >> 1) as i64); // f64::total_cmp's key
    !((total as u64) ^ (1 << 63))
}

/// Positions `0..scores.len()` in the tie rule's order: score descending, then id
/// (`id(i)`) descending by bytes. Sorts integer keys, then only the runs of equal
/// scores by id.
fn rank_by_rule<'a>(scores: &[f64], id: impl Fn(usize) -> &'a str) -> Vec<usize> {
    let mut keys: Vec<(u64, u32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (descending_key(s), i as u32))
        .collect();
    keys.sort_unstable();
    let mut start = 0;
    while start < keys.len() {
        let mut end = start + 1;
        while end < keys.len() && keys[end].0 == keys[start].0 {
            end += 1;
        }
        if end - start > 1 {
            keys[start..end].sort_unstable_by(|a, b| {
                id(b.1 as usize).as_bytes().cmp(id(a.1 as usize).as_bytes())
            });
        }
        start = end;
    }
    keys.into_iter().map(|(_, i)| i as usize).collect()
}

fn check_list(run: usize, query: &str, list: &[(&str, f64)]) -> Result<()> {
    for &(doc, s) in list {
        if !s.is_finite() {
            return Err(Error::invalid(format!(
                "run {run}, query {query:?}, document {doc:?}: score {s} is not finite; \
                 fusion needs finite scores"
            )));
        }
    }
    Ok(())
}

/// Normalised scores of `ranked` (values in ranked order), as ranx computes them.
fn normalise(norm: Norm, ranked: &[f64]) -> Vec<f64> {
    if ranked.is_empty() {
        return Vec::new();
    }
    let min = ranked.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ranked.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match norm {
        Norm::None => ranked.to_vec(),
        Norm::MinMax => {
            let d = (max - min).max(EPS);
            ranked.iter().map(|s| (s - min) / d).collect()
        }
        Norm::Max => {
            let d = max.max(EPS);
            ranked.iter().map(|s| s / d).collect()
        }
        Norm::Sum => {
            let mut sum = 0.0;
            for s in ranked {
                sum += s;
            }
            let d = (sum - min * ranked.len() as f64).max(EPS);
            ranked.iter().map(|s| (s - min) / d).collect()
        }
        Norm::Zmuv => {
            let n = ranked.len() as f64;
            let mut c = 0.0;
            for s in ranked {
                c += s;
            }
            let mean = c / n;
            let mut ssd = 0.0;
            for s in ranked {
                let v = s - mean;
                ssd += v * v;
            }
            let std = (ssd / n).sqrt();
            let d = std.max(EPS);
            ranked.iter().map(|s| (s - mean) / d).collect()
        }
    }
}

/// Fuses one query's lists (`lists[r]`: run r's `(doc id, score)` entries, in any
/// order, empty when run r lacks the query). Returns every document of any list,
/// ranked by the tie rule.
pub fn fuse_query(query: &str, lists: &[&[(&str, f64)]], p: &FuseParams) -> Result<Vec<Fused>> {
    let n_runs = lists.len();
    // Slot per distinct document: first occurrence and its id.
    let total: usize = lists.iter().map(|l| l.len()).sum();
    let mut slots: FxHashMap<&str, usize> = FxHashMap::default();
    slots.reserve(total.min(1 << 20));
    let mut first: Vec<(usize, usize)> = Vec::new();
    let mut ids: Vec<&str> = Vec::new();
    // value[slot * n_runs + r]: run r's (normalised) score, None when absent.
    let mut per_run: Vec<Vec<(usize, f64)>> = Vec::with_capacity(n_runs);
    for (r, list) in lists.iter().enumerate() {
        check_list(r, query, list)?;
        let raw: Vec<f64> = list.iter().map(|e| e.1).collect();
        let ranked = rank_by_rule(&raw, |i| list[i].0);
        let values: Vec<f64> = ranked.iter().map(|&i| list[i].1).collect();
        let scores = match p.method {
            Method::Rrf => (0..ranked.len())
                .map(|i| 1.0 / ((p.k + i as u64 + 1) as f64))
                .collect(),
            _ => normalise(p.norm, &values),
        };
        let mut entries = Vec::with_capacity(ranked.len());
        for (&i, s) in ranked.iter().zip(scores) {
            let doc = list[i].0;
            let slot = *slots.entry(doc).or_insert_with(|| {
                first.push((r, i));
                ids.push(doc);
                first.len() - 1
            });
            entries.push((slot, s));
        }
        per_run.push(entries);
    }
    let n_docs = first.len();
    // Dense table of each document's score in each run (NaN: absent).
    let mut table = vec![f64::NAN; n_docs * n_runs];
    for (r, entries) in per_run.iter().enumerate() {
        for &(slot, s) in entries {
            let cell = &mut table[slot * n_runs + r];
            if !cell.is_nan() {
                return Err(Error::invalid(format!(
                    "run {r}, query {query:?}: document {:?} is listed twice",
                    ids[slot]
                )));
            }
            *cell = s;
        }
    }
    let mut present: Vec<f64> = Vec::with_capacity(n_runs);
    let out: Vec<Fused> = (0..n_docs)
        .map(|slot| {
            let row = &table[slot * n_runs..(slot + 1) * n_runs];
            let score = match p.method {
                Method::Rrf | Method::Sum => {
                    let mut acc = 0.0;
                    for &v in row {
                        acc += if v.is_nan() { 0.0 } else { v };
                    }
                    acc
                }
                Method::Max => row
                    .iter()
                    .map(|&v| if v.is_nan() { -1e9 } else { v })
                    .fold(f64::NEG_INFINITY, f64::max),
                Method::Min => row
                    .iter()
                    .map(|&v| if v.is_nan() { 1e9 } else { v })
                    .fold(f64::INFINITY, f64::min),
                Method::Mnz | Method::Anz | Method::Med => {
                    present.clear();
                    present.extend(row.iter().copied().filter(|v| !v.is_nan()));
                    let n = present.len();
                    match p.method {
                        Method::Med => {
                            present.sort_unstable_by(f64::total_cmp);
                            let h = n / 2;
                            if n % 2 == 1 {
                                present[h]
                            } else {
                                (present[h - 1] + present[h]) / 2.0
                            }
                        }
                        _ => {
                            let mut acc = 0.0;
                            for &v in &present {
                                acc += v;
                            }
                            if p.method == Method::Mnz {
                                acc * n as f64
                            } else {
                                acc / n as f64
                            }
                        }
                    }
                }
            };
            let (run, pos) = first[slot];
            Fused { run, pos, score }
        })
        .collect();
    let fused: Vec<f64> = out.iter().map(|f| f.score).collect();
    let order = rank_by_rule(&fused, |i| lists[out[i].run][out[i].pos].0);
    Ok(order.into_iter().map(|i| out[i]).collect())
}

/// One query of [`fuse`]: its id and one list per run.
pub struct QueryLists<'a> {
    pub query: &'a str,
    pub lists: Vec<&'a [(&'a str, f64)]>,
}

/// [`fuse_query`] for every query, in parallel (rayon). The first error, by query
/// order, wins.
pub fn fuse(queries: &[QueryLists<'_>], p: &FuseParams) -> Result<Vec<Vec<Fused>>> {
    use rayon::prelude::*;
    queries
        .par_iter()
        .map(|q| fuse_query(q.query, &q.lists, p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(method: Method, norm: Norm) -> FuseParams {
        FuseParams {
            method,
            norm,
            k: 60,
        }
    }

    fn named<'a>(lists: &[&'a [(&'a str, f64)]], out: &[Fused]) -> Vec<(&'a str, f64)> {
        out.iter()
            .map(|f| (lists[f.run][f.pos].0, f.score))
            .collect()
    }

    #[test]
    fn descending_key_orders_as_total_cmp_reversed() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -1.0,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            2.5,
            1e300,
            f64::INFINITY,
        ];
        for a in xs {
            for b in xs {
                assert_eq!(
                    descending_key(a).cmp(&descending_key(b)),
                    b.total_cmp(&a),
                    "{a} vs {b}"
                );
            }
        }
        let ids = ["b", "a", "c", "a2"];
        assert_eq!(
            rank_by_rule(&[1.0, 1.0, 0.5, 2.0], |i| ids[i]),
            vec![3, 0, 1, 2]
        );
    }

    #[test]
    fn rrf_by_hand() {
        // run 0 ranks a, b, c; run 1 ranks c, d (b missing); k = 1.
        let r0: &[(&str, f64)] = &[("b", 2.0), ("a", 3.0), ("c", 1.0)];
        let r1: &[(&str, f64)] = &[("d", 0.5), ("c", 0.9)];
        let lists = [r0, r1];
        let p = FuseParams {
            method: Method::Rrf,
            norm: Norm::MinMax,
            k: 1,
        };
        let out = named(&lists, &fuse_query("q", &lists, &p).unwrap());
        // a: 1/2; b: 1/3; c: 1/4 + 1/2 = 3/4; d: 1/3.  b and d tie: d > b by id.
        assert_eq!(
            out,
            vec![("c", 0.75), ("a", 0.5), ("d", 1.0 / 3.0), ("b", 1.0 / 3.0)]
        );
    }

    #[test]
    fn rrf_ties_ranked_by_id_descending() {
        // x and y tie in run 0: y (greater id) ranks first, rank 0.
        let r0: &[(&str, f64)] = &[("x", 1.0), ("y", 1.0)];
        let lists = [r0];
        let out = named(
            &lists,
            &fuse_query("q", &lists, &params(Method::Rrf, Norm::None)).unwrap(),
        );
        assert_eq!(out, vec![("y", 1.0 / 61.0), ("x", 1.0 / 62.0)]);
    }

    #[test]
    fn combsum_and_mnz_min_max_by_hand() {
        let r0: &[(&str, f64)] = &[("a", 10.0), ("b", 5.0), ("c", 0.0)];
        let r1: &[(&str, f64)] = &[("b", 4.0), ("d", 2.0)];
        let lists = [r0, r1];
        // min-max: r0 a=1, b=.5, c=0; r1 b=1, d=0.
        let sum = named(
            &lists,
            &fuse_query("q", &lists, &params(Method::Sum, Norm::MinMax)).unwrap(),
        );
        assert_eq!(sum, vec![("b", 1.5), ("a", 1.0), ("d", 0.0), ("c", 0.0)]);
        let mnz = named(
            &lists,
            &fuse_query("q", &lists, &params(Method::Mnz, Norm::MinMax)).unwrap(),
        );
        assert_eq!(mnz, vec![("b", 3.0), ("a", 1.0), ("d", 0.0), ("c", 0.0)]);
    }

    #[test]
    fn constant_list_min_max_is_zero_and_zmuv_zero() {
        let r0: &[(&str, f64)] = &[("a", 3.0), ("b", 3.0)];
        let lists = [r0];
        for norm in [Norm::MinMax, Norm::Zmuv] {
            let out = fuse_query("q", &lists, &params(Method::Sum, norm)).unwrap();
            assert!(out.iter().all(|f| f.score == 0.0));
        }
    }

    #[test]
    fn zmuv_by_hand() {
        // mean 2, population std sqrt(2/3).
        let r0: &[(&str, f64)] = &[("a", 3.0), ("b", 2.0), ("c", 1.0)];
        let lists = [r0];
        let out = named(
            &lists,
            &fuse_query("q", &lists, &params(Method::Sum, Norm::Zmuv)).unwrap(),
        );
        let sd = (2.0f64 / 3.0).sqrt();
        assert_eq!(out, vec![("a", 1.0 / sd), ("b", 0.0), ("c", -1.0 / sd)]);
    }

    #[test]
    fn max_min_anz_med_with_missing_docs() {
        let r0: &[(&str, f64)] = &[("a", 1.0), ("b", 4.0)];
        let r1: &[(&str, f64)] = &[("a", 3.0)];
        let r2: &[(&str, f64)] = &[("a", 8.0), ("c", -2.0)];
        let lists = [r0, r1, r2];
        let get = |m| {
            let mut v = named(
                &lists,
                &fuse_query("q", &lists, &params(m, Norm::None)).unwrap(),
            );
            v.sort_by(|a, b| a.0.cmp(b.0));
            v
        };
        assert_eq!(get(Method::Max), vec![("a", 8.0), ("b", 4.0), ("c", -2.0)]);
        // a missing run stands for 1e9 in CombMIN (ranx), so b's min is 4.
        assert_eq!(get(Method::Min), vec![("a", 1.0), ("b", 4.0), ("c", -2.0)]);
        assert_eq!(get(Method::Anz), vec![("a", 4.0), ("b", 4.0), ("c", -2.0)]);
        assert_eq!(get(Method::Med), vec![("a", 3.0), ("b", 4.0), ("c", -2.0)]);
        let r3: &[(&str, f64)] = &[("a", 0.0)];
        let lists4 = [r0, r1, r2, r3];
        let med = fuse_query("q", &lists4, &params(Method::Med, Norm::None)).unwrap();
        let a = med.iter().find(|f| lists4[f.run][f.pos].0 == "a").unwrap();
        assert_eq!(a.score, 2.0); // (1 + 3) / 2
    }

    #[test]
    fn non_finite_names_run_query_doc() {
        let r0: &[(&str, f64)] = &[("a", 1.0)];
        let r1: &[(&str, f64)] = &[("b", 1.0), ("zz", f64::NAN)];
        let err = fuse_query("q7", &[r0, r1], &params(Method::Rrf, Norm::MinMax))
            .unwrap_err()
            .to_string();
        assert!(err.contains("run 1") && err.contains("\"q7\"") && err.contains("\"zz\""));
        let r2: &[(&str, f64)] = &[("c", f64::INFINITY)];
        assert!(fuse_query("q", &[r0, r2], &params(Method::Sum, Norm::None)).is_err());
    }

    #[test]
    fn duplicate_doc_in_a_list_is_an_error() {
        let r0: &[(&str, f64)] = &[("a", 1.0), ("a", 2.0)];
        let err = fuse_query("q", &[r0], &params(Method::Sum, Norm::None)).unwrap_err();
        assert!(err.to_string().contains("listed twice"));
    }

    #[test]
    fn empty_lists_fuse_to_nothing_and_parse_names() {
        let e: &[(&str, f64)] = &[];
        assert!(fuse_query("q", &[e, e], &params(Method::Mnz, Norm::Zmuv))
            .unwrap()
            .is_empty());
        assert_eq!(Method::parse("mnz").unwrap(), Method::Mnz);
        assert_eq!(Norm::parse("z-score").unwrap(), Norm::Zmuv);
        assert!(Method::parse("wsum").is_err());
        assert!(Norm::parse("borda").is_err());
    }

    #[test]
    fn parallel_fuse_keeps_query_order() {
        let r0: &[(&str, f64)] = &[("a", 1.0)];
        let r1: &[(&str, f64)] = &[("b", 1.0)];
        let qs = vec![
            QueryLists {
                query: "1",
                lists: vec![r0, r1],
            },
            QueryLists {
                query: "2",
                lists: vec![r1, r0],
            },
        ];
        let out = fuse(&qs, &params(Method::Rrf, Norm::None)).unwrap();
        assert_eq!((out[0][0].run, out[1][0].run), (1, 0)); // "b" > "a" on the tie
    }
}
