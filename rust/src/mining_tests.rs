//! Tests of `mining.rs`.

use super::*;
use crate::scoring::{Method, Params};

fn cfg() -> MiningSettings {
    MiningSettings {
        depth: 100,
        rank_min: 1,
        rank_max: 100,
        max_score_ratio: None,
        near_dup_threshold: Some(0.9),
        same_domain: 10,
        cross_domain: 4,
        sampling: Sampling::Top,
        seed: 0,
        max_pairs: None,
    }
}

#[test]
fn cross_domain_round_robin() {
    let c = |doc, rank| Candidate {
        doc,
        score: 1.0,
        rank,
    };
    let domains = vec![1, 1, 1, 2, 2, 3];
    let picked = pick_cross(
        vec![c(0, 1), c(1, 2), c(2, 3), c(3, 4), c(4, 5), c(5, 6)],
        &domains,
        &MiningSettings {
            cross_domain: 4,
            ..cfg()
        },
        &mut Rng(0),
    );
    assert_eq!(
        picked.iter().map(|c| c.doc).collect::<Vec<_>>(),
        vec![0, 3, 5, 1]
    );
}

#[test]
fn twins_are_suspects_not_negatives() {
    let texts = vec![
        "the reef is safe at high tide, says the pilot",
        "the reef is safe at high tide, says the pilot",
        "the reef is safe at high tide, says the pilot!",
        "the reef at low tide is not safe for ships",
        "a pilot knows the reef",
    ];
    let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
    let tokenized: Vec<Vec<&str>> = texts.iter().map(|t| t.split(' ').collect()).collect();
    let idx = Bm25Index::from_tokens(&tokenized, p).unwrap();
    let q = MiningQuery {
        terms: idx.term_ids(&["reef", "tide", "safe"]),
        positives: vec![0],
        relevant: vec![0],
        domain: 0,
        key: 1,
    };
    let m = mine(&idx, &texts, &[0; 5], &[q], &cfg()).unwrap().remove(0);
    let suspects: Vec<u32> = m.suspects.iter().map(|s| s.doc).collect();
    // Documents 1 and 2 tie: id "2" ranks first (ties: id descending).
    assert_eq!(suspects, vec![2, 1]);
    assert!(m
        .same
        .iter()
        .all(|c| c.doc != 1 && c.doc != 2 && c.doc != 0));
    assert_eq!(m.pairs.len(), m.same.len());
}

/// Doc 0 shares no term with the query "reef" (scores 0); doc 1 and doc 3 are
/// "reef" plus one other word (equal scores); doc 2 repeats "reef" (scores
/// higher); doc 4 is longer (scores lower).
const CEILING_DOCS: [&str; 5] = [
    "anchor chain",
    "reef tide",
    "reef reef reef",
    "reef sand",
    "reef sand tide wave",
];

fn ceiling_world() -> Bm25Index {
    let tokenized: Vec<Vec<&str>> = CEILING_DOCS
        .iter()
        .map(|t| t.split(' ').collect())
        .collect();
    let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
    Bm25Index::from_tokens(&tokenized, p).unwrap()
}

fn query(idx: &Bm25Index, positives: Vec<u32>) -> MiningQuery {
    MiningQuery {
        terms: idx.term_ids(&["reef"]),
        relevant: positives.clone(),
        positives,
        domain: 0,
        key: 0,
    }
}

#[test]
fn a_positive_scoring_zero_does_not_set_the_ceiling() {
    let idx = ceiling_world();
    let texts = CEILING_DOCS;
    let settings = MiningSettings {
        max_score_ratio: Some(1.0),
        near_dup_threshold: None,
        ..cfg()
    };
    let q = query(&idx, vec![0, 1]);
    let m = mine(&idx, &texts, &[0; 5], &[q], &settings)
        .unwrap()
        .remove(0);
    assert_eq!(m.skipped, None);
    assert_eq!(m.positive_scores[0], 0.0);
    // ceiling = 1.0 x score(doc 1): doc 2 scores above it, doc 3 ties it, doc 4 is below
    let same: Vec<u32> = m.same.iter().map(|c| c.doc).collect();
    assert_eq!(same, vec![3, 4]);
    assert_eq!(m.dropped_by_score, 1);
    assert_eq!(m.pairs, vec![(0, 3), (0, 4), (1, 3), (1, 4)]);
}

#[test]
fn a_query_whose_positives_all_score_zero_is_skipped_under_a_ceiling() {
    let idx = ceiling_world();
    let texts = CEILING_DOCS;
    let with_ceiling = MiningSettings {
        max_score_ratio: Some(0.9),
        ..cfg()
    };
    let m = mine(
        &idx,
        &texts,
        &[0; 5],
        &[query(&idx, vec![0])],
        &with_ceiling,
    )
    .unwrap()
    .remove(0);
    assert_eq!(m.skipped, Some(Skip::NoPositiveScored));
    assert!(m.same.is_empty() && m.pairs.is_empty() && m.dropped_by_score == 0);
    // without a ceiling the same query is mined as usual
    let m = mine(&idx, &texts, &[0; 5], &[query(&idx, vec![0])], &cfg())
        .unwrap()
        .remove(0);
    assert_eq!(m.skipped, None);
    assert_eq!(m.same.len(), 4);
}

/// `twin` against the obvious computation: the first relevant document
/// equal after normalisation, else the best Jaccard at or above the
/// threshold (the first on ties), over every relevant document in full.
fn twin_brute(text: &str, relevant: &[(u32, &str)], t: Option<f64>) -> Option<(u32, f64)> {
    use crate::neardup::{normalise, shingles};
    let norm = normalise(text);
    if let Some(&(d, _)) = relevant.iter().find(|(_, r)| normalise(r) == norm) {
        return Some((d, 1.0));
    }
    let t = t?;
    let mut best: Option<(u32, f64)> = None;
    for &(d, r) in relevant {
        let j = jaccard(&shingles(text), &shingles(r));
        if j >= t && best.is_none_or(|(_, bj)| j > bj) {
            best = Some((d, j));
        }
    }
    best
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 1500, ..Default::default() })]

    /// Candidates are edits of the relevant texts (near twins, exact
    /// duplicates up to case and punctuation) or unrelated; every threshold.
    #[test]
    fn twin_equals_the_brute_force(
        base in proptest::collection::vec("[a-e ,.!]{0,30}", 1..4),
        edit in "[a-eX ]{0,6}",
        pick in 0usize..8,
        t in proptest::option::of(0.3f64..=1.0),
        unicode in proptest::bool::ANY,
    ) {
        let rel: Vec<String> = base
            .iter()
            .map(|b| if unicode { format!("{b} ÉTÉ") } else { b.clone() })
            .collect();
        let relevant: Vec<(u32, &str)> =
            rel.iter().enumerate().map(|(i, r)| (i as u32 * 3, r.as_str())).collect();
        let twins: Vec<Twin> = relevant.iter().map(|&(d, r)| Twin::new(d, r)).collect();
        let src = &rel[pick % rel.len()];
        let cands = [
            src.to_uppercase(),
            format!("{src}{edit}"),
            format!("{edit}{src}"),
            edit.clone(),
            src.replacen('a', &edit, 1),
        ];
        let mut s = TwinScratch::default();
        for c in &cands {
            proptest::prop_assert_eq!(twin(c, &twins, t, &mut s), twin_brute(c, &relevant, t), "{:?}", c);
        }
    }
}
