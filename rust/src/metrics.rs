//! Ranking metrics with trec_eval's semantics, so per-query values equal
//! pytrec_eval's: each query's run is re-sorted by score descending (compared
//! as 32-bit floats, as trec_eval stores them), ties broken by document id in
//! *descending* byte order (trec_eval's `comp_sim_docno`); a document is
//! relevant when its judgement is > 0; nDCG uses the judgement as linear gain.

use rayon::prelude::*;

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
}
