//! Tests of `index.rs`: scores against the formula, build-time checks.

use super::*;
use crate::scoring::Method;

pub(crate) fn corpus() -> Vec<Vec<&'static str>> {
    vec![
        vec!["a", "cat", "sat"],
        vec!["a", "dog", "sat", "sat"],
        vec!["the", "cat", "and", "the", "dog"],
        vec!["nothing", "here"],
    ]
}

fn brute(docs: &[Vec<&str>], q: &[&str], p: Params) -> Vec<f64> {
    let n = docs.len() as f64;
    let avgdl = docs.iter().map(|d| d.len()).sum::<usize>() as f64 / n;
    docs.iter()
        .map(|d| {
            q.iter()
                .map(|t| {
                    let df = docs.iter().filter(|d| d.contains(t)).count() as f64;
                    if df == 0.0 {
                        return 0.0;
                    }
                    let tf = d.iter().filter(|x| *x == t).count() as f64;
                    p.idf(df, n) * p.tfc(tf, d.len() as f64, avgdl)
                })
                .sum()
        })
        .collect()
}

#[test]
fn scores_equal_the_formula_for_every_method() {
    for m in ["robertson", "atire", "bm25l", "bm25+", "lucene"] {
        let p = Params::new(Method::parse(m).unwrap(), 1.5, 0.75, 0.5).unwrap();
        let docs = corpus();
        let idx = Bm25Index::from_tokens(&docs, p).unwrap();
        let q = ["cat", "sat", "sat", "zebra"];
        let got = idx.scores(&idx.term_ids(&q));
        let want = brute(&docs, &q, p);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (*g as f64 - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{m}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn empty_corpus_is_an_error() {
    let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
    let docs: Vec<Vec<&str>> = vec![];
    assert!(Bm25Index::from_tokens(&docs, p).is_err());
}

#[test]
fn parameters_overflowing_a_weight_are_refused() {
    let p = Params::new(Method::Atire, 1e308, 1.0, 0.5).unwrap();
    let docs = vec![vec!["a", "a", "b"], vec!["b"]];
    let e = Bm25Index::from_tokens(&docs, p).err().unwrap();
    assert!(e.to_string().contains("non-finite"), "{e}");
}

#[test]
fn with_ids_checks_count_and_uniqueness() {
    let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
    let idx = || Bm25Index::from_tokens(&corpus(), p).unwrap();
    assert!(idx().with_ids(&["a", "b"]).is_err());
    assert!(idx().with_ids(&["a", "b", "c", "a"]).is_err());
}
