//! Ranking metrics with trec_eval's semantics, so per-query values equal
//! pytrec_eval's.
//!
//! The tie rule (the project's one documented rule for equal scores): each
//! query's run is ranked by score descending, compared as 32-bit floats as
//! trec_eval stores them, and documents with equal scores by document id in
//! *descending* byte order (trec_eval's `comp_sim_docno`), whatever order the
//! run lists them in. A document is relevant when its judgement is > 0; nDCG
//! uses the judgement as linear gain (`ndcg_exp`: 2^rel - 1).
//!
//! [`evaluate_run`] joins qrels and a run by query id: every qrels query gets
//! one row (a query the run lacks ranks nothing and scores 0 on every metric,
//! and is counted); run queries absent from the qrels are counted and ignored.

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Mrr,
    Ndcg,
    NdcgExp,
    Recall,
    Precision,
    Hit,
    Map,
    RPrecision,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub kind: Kind,
    /// Cut-off depth; `None` evaluates the whole ranking.
    pub k: Option<usize>,
}

impl Metric {
    pub fn parse(name: &str) -> Result<Metric> {
        let lower = name.trim().to_ascii_lowercase();
        let (base, k) = match lower.split_once('@') {
            Some((b, k)) => {
                let k: usize = k.parse().map_err(|_| {
                    Error::invalid(format!(
                        "metric {name:?}: the cut-off after '@' must be a whole number"
                    ))
                })?;
                if k == 0 {
                    return Err(Error::invalid(format!(
                        "metric {name:?}: the cut-off must be >= 1"
                    )));
                }
                (b.to_string(), Some(k))
            }
            None => (lower.clone(), None),
        };
        let kind = match base.as_str() {
            "mrr" | "recip_rank" => Kind::Mrr,
            "ndcg" => Kind::Ndcg,
            "ndcg_exp" => Kind::NdcgExp,
            "recall" => Kind::Recall,
            "precision" | "p" => Kind::Precision,
            "hit" | "success" => Kind::Hit,
            "map" => Kind::Map,
            "r-precision" | "rprec" | "r_precision" => Kind::RPrecision,
            _ => {
                return Err(Error::invalid(format!(
                    "unknown metric {name:?}: use mrr@k, ndcg@k, ndcg_exp@k, recall@k, precision@k, hit@k, map, map@k or r-precision"
                )))
            }
        };
        if kind == Kind::RPrecision && k.is_some() {
            return Err(Error::invalid(format!(
                "metric {name:?}: r-precision takes no cut-off"
            )));
        }
        Ok(Metric { kind, k })
    }
}

/// One query's input: its ranked documents (score, id, judgement; 0 when
/// unjudged) and every judgement its qrels hold.
pub struct QueryInput<'a> {
    pub ranked: Vec<(f64, &'a str, i32)>,
    pub judged: Vec<i32>,
}

/// Sorts a run the way trec_eval does.
pub fn trec_sort(ranked: &mut [(f64, &str, i32)]) {
    ranked.sort_unstable_by(|a, b| {
        (b.0 as f32)
            .total_cmp(&(a.0 as f32))
            .then_with(|| b.1.as_bytes().cmp(a.1.as_bytes()))
    });
}

fn dcg(gains: impl Iterator<Item = f64>) -> f64 {
    gains
        .enumerate()
        .map(|(i, g)| {
            if g > 0.0 {
                g / ((i + 2) as f64).log2()
            } else {
                0.0
            }
        })
        .sum()
}

fn ndcg(rels: &[i32], judged_desc: &[i32], k: usize, gain: fn(i32) -> f64) -> f64 {
    let ideal = dcg(judged_desc.iter().take(k).map(|&r| gain(r)));
    if ideal <= 0.0 {
        return 0.0;
    }
    dcg(rels.iter().take(k).map(|&r| gain(r))) / ideal
}

fn linear(r: i32) -> f64 {
    r.max(0) as f64
}
fn exponential(r: i32) -> f64 {
    if r > 0 {
        2f64.powi(r) - 1.0
    } else {
        0.0
    }
}

/// Evaluates one query; `input.ranked` is sorted in place.
pub fn evaluate_query(input: &mut QueryInput, metrics: &[Metric]) -> Vec<f64> {
    trec_sort(&mut input.ranked);
    let rels: Vec<i32> = input.ranked.iter().map(|r| r.2).collect();
    let num_rel = input.judged.iter().filter(|&&r| r > 0).count();
    let mut judged_desc = input.judged.clone();
    judged_desc.sort_unstable_by(|a, b| b.cmp(a));
    let n = rels.len();
    metrics
        .iter()
        .map(|m| {
            let depth = m.k.unwrap_or(n).min(n);
            let top = &rels[..depth];
            let rel_ret = top.iter().filter(|&&r| r > 0).count();
            match m.kind {
                Kind::Mrr => top
                    .iter()
                    .position(|&r| r > 0)
                    .map_or(0.0, |i| 1.0 / (i + 1) as f64),
                Kind::Ndcg => ndcg(&rels, &judged_desc, m.k.unwrap_or(usize::MAX), linear),
                Kind::NdcgExp => ndcg(&rels, &judged_desc, m.k.unwrap_or(usize::MAX), exponential),
                Kind::Recall => {
                    if num_rel == 0 {
                        0.0
                    } else {
                        rel_ret as f64 / num_rel as f64
                    }
                }
                Kind::Precision => {
                    let denom = m.k.unwrap_or(n);
                    if denom == 0 {
                        0.0
                    } else {
                        rel_ret as f64 / denom as f64
                    }
                }
                Kind::Hit => (rel_ret > 0) as u8 as f64,
                Kind::Map => {
                    if num_rel == 0 {
                        return 0.0;
                    }
                    let mut seen = 0usize;
                    let mut sum = 0.0;
                    for (i, &r) in top.iter().enumerate() {
                        if r > 0 {
                            seen += 1;
                            sum += seen as f64 / (i + 1) as f64;
                        }
                    }
                    sum / num_rel as f64
                }
                Kind::RPrecision => {
                    if num_rel == 0 {
                        0.0
                    } else {
                        let r = rels.iter().take(num_rel).filter(|&&r| r > 0).count();
                        r as f64 / num_rel as f64
                    }
                }
            }
        })
        .collect()
}

/// Evaluates every query, in parallel; row i holds query i's value of each metric.
pub fn evaluate(inputs: &mut [QueryInput], metrics: &[Metric]) -> Vec<Vec<f64>> {
    inputs
        .par_iter_mut()
        .map(|q| evaluate_query(q, metrics))
        .collect()
}

/// One query's judgements: its id and (document id, grade) for every judged document.
pub type Judged<'a> = (&'a str, &'a [(&'a str, i32)]);
/// One query's run: its id and (document id, score) for every retrieved document,
/// in any order.
pub type Ranked<'a> = (&'a str, &'a [(&'a str, f64)]);

/// Per-query values of a join of qrels and a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Row-major (qrels query, metric): `values[i * n_metrics + j]` is metric
    /// j of the i-th qrels query, in the order the qrels list them.
    pub values: Vec<f64>,
    pub n_metrics: usize,
    /// qrels queries the run has no entry for (each scores 0 on every metric).
    pub missing_in_run: usize,
    /// Run queries the qrels do not judge (ignored).
    pub run_only: usize,
}

impl Evaluation {
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.n_metrics..(i + 1) * self.n_metrics]
    }
}

/// Evaluates `run` against `qrels`, joined by query id. Query ids repeated in
/// either input, a document repeated within one query, and a score that is
/// NaN or infinite are errors (each names the query and document).
pub fn evaluate_run(qrels: &[Judged], run: &[Ranked], metrics: &[Metric]) -> Result<Evaluation> {
    if metrics.is_empty() {
        return Err(Error::invalid("no metrics asked for"));
    }
    let mut qrels_ids: FxHashSet<&str> = FxHashSet::default();
    qrels_ids.reserve(qrels.len());
    for (q, _) in qrels {
        if !qrels_ids.insert(q) {
            return Err(Error::invalid(format!("qrels list query {q:?} twice")));
        }
    }
    let mut run_pos: FxHashMap<&str, usize> = FxHashMap::default();
    run_pos.reserve(run.len());
    for (i, (q, _)) in run.iter().enumerate() {
        if run_pos.insert(q, i).is_some() {
            return Err(Error::invalid(format!("the run lists query {q:?} twice")));
        }
    }
    let run_only = run.iter().filter(|(q, _)| !qrels_ids.contains(q)).count();
    let missing_in_run = qrels
        .iter()
        .filter(|(q, _)| !run_pos.contains_key(q))
        .count();
    let rows: Vec<Vec<f64>> = qrels
        .par_iter()
        .map(|&(q, judged)| {
            let ranked = run_pos.get(q).map_or(&[][..], |&i| run[i].1);
            let mut input = join_query(q, judged, ranked)?;
            Ok(evaluate_query(&mut input, metrics))
        })
        .collect::<Result<_>>()?;
    Ok(Evaluation {
        values: rows.into_iter().flatten().collect(),
        n_metrics: metrics.len(),
        missing_in_run,
        run_only,
    })
}

/// One query's ranked documents with their judgements (0 when unjudged).
fn join_query<'a>(
    q: &str,
    judged: &[(&'a str, i32)],
    ranked: &[(&'a str, f64)],
) -> Result<QueryInput<'a>> {
    let mut grade: FxHashMap<&str, i32> = FxHashMap::default();
    grade.reserve(judged.len());
    for &(d, g) in judged {
        if grade.insert(d, g).is_some() {
            return Err(Error::invalid(format!(
                "qrels judge document {d:?} twice for query {q:?}"
            )));
        }
    }
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    seen.reserve(ranked.len());
    let mut out = Vec::with_capacity(ranked.len());
    for &(d, s) in ranked {
        if !s.is_finite() {
            return Err(Error::invalid(format!(
                "run query {q:?}, document {d:?}: score {s} is not a finite number"
            )));
        }
        if !seen.insert(d) {
            return Err(Error::invalid(format!(
                "the run lists document {d:?} twice for query {q:?}"
            )));
        }
        out.push((s, d, grade.get(d).copied().unwrap_or(0)));
    }
    Ok(QueryInput {
        ranked: out,
        judged: judged.iter().map(|&(_, g)| g).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(names: &[&str]) -> Vec<Metric> {
        names.iter().map(|n| Metric::parse(n).unwrap()).collect()
    }

    #[test]
    fn hand_checked_values() {
        // ranking after sort: d3 (rel 0), d1 (rel 2), d2 (rel 0), d4 (rel 1)
        let mut q = QueryInput {
            ranked: vec![
                (0.9, "d1", 2),
                (0.9, "d3", 0),
                (0.5, "d2", 0),
                (0.1, "d4", 1),
            ],
            judged: vec![2, 1, 0],
        };
        let v = evaluate_query(
            &mut q,
            &m(&[
                "mrr@10",
                "p@2",
                "recall@2",
                "hit@1",
                "map",
                "r-precision",
                "ndcg@4",
            ]),
        );
        assert_eq!(v[0], 0.5);
        assert_eq!(v[1], 0.5);
        assert_eq!(v[2], 0.5);
        assert_eq!(v[3], 0.0);
        assert!((v[4] - (0.5 + 0.5) / 2.0).abs() < 1e-12);
        assert_eq!(v[5], 0.5);
        let dcg = 2.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!((v[6] - dcg / idcg).abs() < 1e-12);
    }

    #[test]
    fn bad_names_are_errors() {
        for bad in ["mrr@0", "ndcg@x", "foo", "r-precision@3"] {
            assert!(Metric::parse(bad).is_err(), "{bad}");
        }
    }
    const EMPTY: &[(&str, f64)] = &[];

    #[test]
    fn join_scores_a_query_missing_from_the_run_as_zero_and_counts_it() {
        let qrels: Vec<Judged> = vec![("q1", &[("d1", 1), ("d9", 1)]), ("q2", &[("d2", 1)])];
        let run: Vec<Ranked> = vec![("q1", &[("d5", 3.0), ("d1", 2.0)])];
        let e = evaluate_run(&qrels, &run, &m(&["mrr@10", "recall@10", "p@2"])).unwrap();
        // q1: d5 (unjudged), d1 (relevant) -> rr 1/2; 1 of 2 relevant found; 1 of 2 top relevant
        assert_eq!(e.row(0), &[0.5, 0.5, 0.5]);
        assert_eq!(e.row(1), &[0.0, 0.0, 0.0]);
        assert_eq!((e.missing_in_run, e.run_only), (1, 0));
        assert_eq!(e.values.len(), 6);
    }

    #[test]
    fn join_ignores_and_counts_run_queries_the_qrels_lack() {
        let qrels: Vec<Judged> = vec![("q1", &[("d1", 1)])];
        let run: Vec<Ranked> = vec![
            ("q0", &[("d1", 9.0)]),
            ("q1", &[("d2", 2.0), ("d1", 1.0)]),
            ("q3", EMPTY),
        ];
        let e = evaluate_run(&qrels, &run, &m(&["mrr@10"])).unwrap();
        assert_eq!(e.values, vec![0.5]);
        assert_eq!((e.missing_in_run, e.run_only), (0, 2));
    }

    #[test]
    fn join_breaks_ties_by_doc_id_descending_bytes_whatever_the_run_order() {
        let qrels_a: Vec<Judged> = vec![("q", &[("a", 1)])];
        let qrels_b: Vec<Judged> = vec![("q", &[("b", 1)])];
        for run in [
            vec![("a", 1.0), ("b", 1.0), ("c", 0.5)],
            vec![("c", 0.5), ("b", 1.0), ("a", 1.0)],
        ] {
            let r: Vec<Ranked> = vec![("q", &run)];
            // tie between a and b: b ranks first
            let e = evaluate_run(&qrels_a, &r, &m(&["mrr@10"])).unwrap();
            assert_eq!(e.values, vec![0.5]);
            let e = evaluate_run(&qrels_b, &r, &m(&["mrr@10"])).unwrap();
            assert_eq!(e.values, vec![1.0]);
        }
        // by bytes: 'a' (0x61) > 'B' (0x42), and 'é' (0xC3 0xA9) > 'z' (0x7A)
        let r: Vec<Ranked> = vec![("q", &[("B", 1.0), ("a", 1.0)])];
        let q: Vec<Judged> = vec![("q", &[("a", 1)])];
        assert_eq!(
            evaluate_run(&q, &r, &m(&["mrr@10"])).unwrap().values,
            vec![1.0]
        );
        let r: Vec<Ranked> = vec![("q", &[("z", 1.0), ("é", 1.0)])];
        let q: Vec<Judged> = vec![("q", &[("z", 1)])];
        assert_eq!(
            evaluate_run(&q, &r, &m(&["mrr@10"])).unwrap().values,
            vec![0.5]
        );
    }

    #[test]
    fn join_compares_scores_as_f32_like_trec_eval() {
        // 1 + 1e-12 and 1 differ as f64 but not as f32: a tie, so "b" ranks first.
        let r: Vec<Ranked> = vec![("q", &[("a", 1.0 + 1e-12), ("b", 1.0)])];
        let q: Vec<Judged> = vec![("q", &[("a", 1)])];
        assert_eq!(
            evaluate_run(&q, &r, &m(&["mrr@10"])).unwrap().values,
            vec![0.5]
        );
        // 1 + 1e-6 is a distinct f32: "a" first.
        let r: Vec<Ranked> = vec![("q", &[("a", 1.0 + 1e-6), ("b", 1.0)])];
        assert_eq!(
            evaluate_run(&q, &r, &m(&["mrr@10"])).unwrap().values,
            vec![1.0]
        );
    }

    #[test]
    fn join_grades_zero_and_negative_are_not_relevant() {
        // judged 0 and -1 are not relevant; only "c" (2) counts, found at rank 3.
        let q: Vec<Judged> = vec![("q", &[("a", 0), ("b", -1), ("c", 2)])];
        let r: Vec<Ranked> = vec![("q", &[("a", 3.0), ("b", 2.0), ("c", 1.0)])];
        let e = evaluate_run(&q, &r, &m(&["mrr@10", "r-precision", "recall@2"])).unwrap();
        assert_eq!(e.values, vec![1.0 / 3.0, 0.0, 0.0]);
    }

    #[test]
    fn join_refuses_inconsistent_input() {
        let mm = m(&["mrr@10"]);
        let q: Vec<Judged> = vec![("q", &[("a", 1)])];
        let nan: Vec<Ranked> = vec![("q", &[("a", f64::NAN)])];
        let err = evaluate_run(&q, &nan, &mm).unwrap_err().to_string();
        assert!(err.contains("\"q\"") && err.contains("\"a\""), "{err}");
        let inf: Vec<Ranked> = vec![("q", &[("a", f64::INFINITY)])];
        assert!(evaluate_run(&q, &inf, &mm).is_err());
        let dup_doc: Vec<Ranked> = vec![("q", &[("a", 1.0), ("a", 2.0)])];
        assert!(evaluate_run(&q, &dup_doc, &mm).is_err());
        let dup_q: Vec<Ranked> = vec![("q", EMPTY), ("q", EMPTY)];
        assert!(evaluate_run(&q, &dup_q, &mm).is_err());
        let dup_qrels: Vec<Judged> = vec![("q", &[("a", 1)]), ("q", &[])];
        assert!(evaluate_run(&dup_qrels, &[], &mm).is_err());
        let dup_judged: Vec<Judged> = vec![("q", &[("a", 1), ("a", 0)])];
        assert!(evaluate_run(&dup_judged, &[], &mm).is_err());
        assert!(evaluate_run(&q, &[], &[]).is_err());
    }
}
