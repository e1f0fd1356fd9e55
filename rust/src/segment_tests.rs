//! Tests of `segment.rs`, `segmented.rs` and `segmented_query.rs`: hand-computed
//! cases, input errors, block bounds, and a property test against a fresh
//! `Bm25Index` of the live documents after random adds, deletes, updates and
//! merges (bit-for-bit, ties included), and the pruned search against the
//! exhaustive one over many blocks.
//!
//! Over 450 lines on purpose: the property tests share their generators and
//! the `same` comparison, and split apart they would repeat them.

use proptest::prelude::*;

use super::*;
use crate::index::Bm25Index;
use crate::scoring::Method;

const METHODS: [Method; 5] = [
    Method::Robertson,
    Method::Atire,
    Method::Bm25L,
    Method::Bm25Plus,
    Method::Lucene,
];

fn lucene() -> Params {
    Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap()
}

fn toks(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn deletes_change_n_df_and_avgdl_as_hand_computed() {
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&[toks("a a a"), toks("a b"), toks("c d")], &["x", "y", "z"])
        .unwrap();
    // N = 3, df(a) = 2, avgdl = 7/3: doc y scores
    // ln(1 + 1.5/2.5) * 1 / (1.5 * (0.25 + 0.75 * 2 / (7/3)) + 1) = 0.2010...
    let before = idx.get_scores(&["a"]).unwrap();
    assert!((before[1] - 0.201_00).abs() < 1e-4, "{before:?}");
    idx.delete(&["x"]).unwrap();
    // N = 2, df(a) = 1, avgdl = 2 = dl(y): ln(1 + 1.5/1.5) * 1 / (1.5 + 1) = 0.4 ln 2.
    let after = idx.get_scores(&["a"]).unwrap();
    assert_eq!(after.len(), 2);
    assert!((after[0] - 0.277_258_87).abs() < 1e-7, "{after:?}");
    assert_eq!(after[1], 0.0);
    let hits = idx.search(&["a", "zebra"], 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(idx.id(&hits[0]), "y");
}

#[test]
fn ties_across_segments_go_to_the_larger_id_by_bytes() {
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&[toks("q"), toks("r")], &["a10", "zz"])
        .unwrap();
    idx.add_tokens(&[toks("q"), toks("q")], &["a9", "b"])
        .unwrap();
    let hits = idx.search(&["q"], 3).unwrap();
    let got: Vec<&str> = hits.iter().map(|h| idx.id(h)).collect();
    assert_eq!(got, vec!["b", "a9", "a10"]);
    assert!(hits.iter().all(|h| h.score == hits[0].score));
    let top2: Vec<&str> = idx
        .search(&["q"], 2)
        .unwrap()
        .iter()
        .map(|h| idx.id(h))
        .collect();
    assert_eq!(top2, vec!["b", "a9"]);
    assert_eq!(
        idx.search_pruned(&["q"], 2).unwrap(),
        idx.search(&["q"], 2).unwrap()
    );
}

#[test]
fn errors_leave_the_index_unchanged() {
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&[toks("a b"), toks("c")], &["x", "y"])
        .unwrap();
    let scores = idx.get_scores(&["a", "c"]).unwrap();
    let e = idx.add_tokens(&[toks("d")], &["x"]).unwrap_err();
    assert!(
        e.to_string().contains("\"x\" is already in the index"),
        "{e}"
    );
    let e = idx
        .add_tokens(&[toks("d"), toks("e")], &["n", "n"])
        .unwrap_err();
    assert!(e.to_string().contains("duplicate document id \"n\""), "{e}");
    let e = idx.add_tokens(&[toks("d")], &["p", "q"]).unwrap_err();
    assert!(e.to_string().contains("got 2 ids for 1 documents"), "{e}");
    let e = idx.delete(&["x", "nope"]).unwrap_err();
    assert!(
        e.to_string().contains("\"nope\" is not in the index"),
        "{e}"
    );
    let e = idx.delete(&["y", "y"]).unwrap_err();
    assert!(e.to_string().contains("listed twice"), "{e}");
    let e = idx.update_tokens(&[toks("d")], &["new"]).unwrap_err();
    assert!(e.to_string().contains("cannot be updated"), "{e}");
    let e = idx
        .update_tokens(&[toks("d"), toks("e")], &["x", "x"])
        .unwrap_err();
    assert!(e.to_string().contains("duplicate"), "{e}");
    assert!(idx.merge(0).is_err());
    assert_eq!(idx.n_segments(), 1);
    assert_eq!(idx.live_ids(), vec!["x", "y"]);
    assert_eq!(idx.get_scores(&["a", "c"]).unwrap(), scores);
    assert!(idx.contains("n") == idx.contains("p"));
}

#[test]
fn delete_names_an_unknown_id_before_a_repeated_one() {
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&[toks("a")], &["d1"]).unwrap();
    let err = idx.delete(&["d1", "d1", "d0"]).unwrap_err().to_string();
    assert!(err.contains("\"d0\" is not in the index"), "{err}");
    let err = idx.delete(&["d1", "d1"]).unwrap_err().to_string();
    assert!(err.contains("listed twice"), "{err}");
    assert_eq!(idx.n_live(), 1);
}

#[test]
fn an_index_with_no_live_document_finds_nothing() {
    let mut idx = SegmentedIndex::new(lucene());
    assert!(idx.get_scores(&["a"]).unwrap().is_empty());
    idx.add_tokens(&[toks("a")], &["x"]).unwrap();
    idx.delete(&["x"]).unwrap();
    assert!(idx.search(&["a"], 5).unwrap().is_empty());
    assert!(idx.get_scores(&["a"]).unwrap().is_empty());
    idx.merge(1).unwrap();
    assert_eq!(idx.n_segments(), 0);
    // A deleted id may come back.
    idx.add_tokens(&[toks("a")], &["x"]).unwrap();
    assert_eq!(idx.search(&["a"], 5).unwrap().len(), 1);
}

#[test]
fn block_bounds_hold_and_are_attained() {
    let docs: Vec<Vec<String>> = (0..300)
        .map(|i| {
            let mut d = vec!["x".to_string(); 1 + (i * 7) % 5];
            d.extend((0..(i * 13) % 9).map(|j| format!("f{j}")));
            d
        })
        .collect();
    let ids: Vec<String> = (0..300).map(|i| format!("d{i}")).collect();
    let seg = crate::segment::SegmentData::build(
        &docs,
        ids,
        &|d: &Vec<String>, emit: &mut dyn FnMut(&str, u32)| d.iter().for_each(|t| emit(t, 1)),
    )
    .unwrap();
    let t = seg.vocab["x"];
    let dv = seg.derived();
    let (b0, b1) = (
        dv.blk_ptr[t as usize] as usize,
        dv.blk_ptr[t as usize + 1] as usize,
    );
    assert_eq!(b1 - b0, 3); // 300 postings in blocks of 128
    let (pd, ptf) = seg.postings(t);
    for (j, (bd, bt)) in pd
        .chunks(crate::segment::BLOCK)
        .zip(ptf.chunks(crate::segment::BLOCK))
        .enumerate()
    {
        let want_tf = bt.iter().max().unwrap();
        let want_len = bd.iter().map(|&d| docs[d as usize].len() as u32).min();
        assert_eq!(dv.blk_max_tf[b0 + j], *want_tf);
        assert_eq!(Some(dv.blk_min_len[b0 + j]), want_len);
    }
}

#[test]
fn one_segment_equals_bm25index_on_a_zipf_corpus() {
    let mut x: u64 = 11;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let docs: Vec<Vec<String>> = (0..2000)
        .map(|_| {
            (0..next(30))
                .map(|_| {
                    let spread = next(300) + 1;
                    format!("t{}", next(spread))
                })
                .collect()
        })
        .collect();
    let ids: Vec<String> = (0..2000)
        .map(|i| format!("{}", (i * 7919) % 2003))
        .collect();
    let queries: Vec<Vec<String>> = (0..20)
        .map(|_| (0..1 + next(6)).map(|_| format!("t{}", next(40))).collect())
        .collect();
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&docs, &ids).unwrap();
    for m in METHODS {
        let p = Params::new(m, 1.2, 0.75, 0.5).unwrap();
        idx.set_params(p);
        let fresh = Bm25Index::from_tokens(&docs, p)
            .unwrap()
            .with_ids(&ids)
            .unwrap();
        for q in &queries {
            let (a, b) = same(&idx, &fresh, &ids, q, 10);
            assert_eq!(a, b, "{m:?} {q:?}");
        }
    }
}

/// Block-max pruning on a corpus with long postings (many blocks), several
/// segments and deletes: the same hits as the exhaustive path and a fresh
/// build for short and long queries and k from 1 to 1000, ties included
/// (short documents of a small vocabulary tie often), while scoring fewer
/// documents than match at small k.
#[test]
fn pruned_search_equals_exhaustive_and_fresh_on_a_zipf_corpus() {
    let mut x: u64 = 3;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let n = 6000;
    let docs: Vec<Vec<String>> = (0..n)
        .map(|_| {
            (0..1 + next(12))
                .map(|_| {
                    let spread = next(200) + 1;
                    format!("t{}", next(spread))
                })
                .collect()
        })
        .collect();
    let ids: Vec<String> = (0..n).map(|i| format!("d{}", (i * 7919) % 6007)).collect();
    let mut idx = SegmentedIndex::new(lucene());
    for part in [0..2500, 2500..4000, 4000..6000] {
        idx.add_tokens(&docs[part.clone()], &ids[part]).unwrap();
    }
    let gone: Vec<String> = ids.iter().step_by(7).cloned().collect();
    idx.delete(&gone).unwrap();
    let (live_docs, live_ids): (Vec<Vec<String>>, Vec<String>) = docs
        .iter()
        .zip(&ids)
        .filter(|(_, i)| !gone.contains(i))
        .map(|(d, i)| (d.clone(), i.clone()))
        .unzip();
    let queries: Vec<Vec<String>> = (0..24)
        .map(|i| {
            let len = if i % 3 == 0 { 8 } else { 1 + next(3) };
            (0..len).map(|_| format!("t{}", next(30))).collect()
        })
        .collect();
    let (mut scored, mut matched) = (0usize, 0usize);
    for m in METHODS {
        let p = Params::new(m, 1.2, 0.75, 0.5).unwrap();
        idx.set_params(p);
        let fresh = Bm25Index::from_tokens(&live_docs, p)
            .unwrap()
            .with_ids(&live_ids)
            .unwrap();
        for q in &queries {
            for k in [1, 10, 100, 1000] {
                let before = crate::segmented_prune::SCORED.with(|c| c.get());
                let (a, b) = same(&idx, &fresh, &live_ids, q, k);
                assert_eq!(a, b, "{m:?} {q:?} k={k}");
                if k <= 10 {
                    scored += crate::segmented_prune::SCORED.with(|c| c.get()) - before;
                    matched += idx.search(q, usize::MAX).unwrap().len();
                }
            }
        }
    }
    assert!(
        scored * 2 < matched,
        "scored {scored} of {matched} matching"
    );
}

type Ranked = (Vec<u32>, Vec<(String, u32)>);

/// Scores (as bits) and top k (ids, score bits) from both indexes.
fn same(
    idx: &SegmentedIndex,
    fresh: &Bm25Index,
    ids: &[String],
    q: &[String],
    k: usize,
) -> (Ranked, Ranked) {
    let tq = fresh.term_ids(q);
    let a_scores = idx
        .get_scores(q)
        .unwrap()
        .iter()
        .map(|s| s.to_bits())
        .collect();
    let b_scores = fresh.scores(&tq).iter().map(|s| s.to_bits()).collect();
    let a_hits: Vec<(String, u32)> = idx
        .search_pruned(q, k)
        .unwrap()
        .iter()
        .map(|h| (idx.id(h).to_string(), h.score.to_bits()))
        .collect();
    let exhaustive: Vec<(String, u32)> = idx
        .search(q, k)
        .unwrap()
        .iter()
        .map(|h| (idx.id(h).to_string(), h.score.to_bits()))
        .collect();
    assert_eq!(a_hits, exhaustive, "pruned vs exhaustive, q={q:?} k={k}");
    let b_hits = fresh
        .search(&tq, k)
        .iter()
        .map(|h| (ids[h.doc as usize].clone(), h.score.to_bits()))
        .collect();
    ((a_scores, a_hits), (b_scores, b_hits))
}

#[derive(Debug, Clone)]
enum Op {
    Add(Vec<Vec<u8>>),
    Delete(Vec<usize>),
    Update(Vec<(usize, Vec<u8>)>),
    ReAdd(usize, Vec<u8>),
    Merge(usize),
}

fn doc() -> impl Strategy<Value = Vec<u8>> {
    // Six terms, short documents: many equal weights, so the order in which
    // a query's terms are summed and the id tie rule both matter.
    prop::collection::vec(0u8..6, 0..7)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::collection::vec(doc(), 1..5).prop_map(Op::Add),
        2 => prop::collection::vec(any::<usize>(), 1..4).prop_map(Op::Delete),
        1 => prop::collection::vec((any::<usize>(), doc()), 1..3).prop_map(Op::Update),
        1 => (any::<usize>(), doc()).prop_map(|(i, d)| Op::ReAdd(i, d)),
        1 => (1usize..4).prop_map(Op::Merge),
    ]
}

fn words(d: &[u8]) -> Vec<String> {
    d.iter().map(|t| format!("w{t}")).collect()
}

/// Checks every method on the queries: the segmented index against a fresh
/// `Bm25Index` of the model's live documents, in order.
fn check(
    idx: &mut SegmentedIndex,
    model: &[(String, Vec<String>)],
    queries: &[Vec<String>],
    k1: f64,
    b: f64,
    delta: f64,
) -> std::result::Result<(), TestCaseError> {
    let ids: Vec<String> = model.iter().map(|(i, _)| i.clone()).collect();
    let docs: Vec<Vec<String>> = model.iter().map(|(_, d)| d.clone()).collect();
    prop_assert_eq!(
        idx.live_ids(),
        ids.iter().map(|s| s.as_str()).collect::<Vec<_>>()
    );
    for m in METHODS {
        let p = Params::new(m, k1, b, delta).unwrap();
        idx.set_params(p);
        if model.is_empty() {
            for q in queries {
                prop_assert!(idx.get_scores(q).unwrap().is_empty());
                prop_assert!(idx.search(q, 3).unwrap().is_empty());
            }
            continue;
        }
        let fresh = Bm25Index::from_tokens(&docs, p)
            .unwrap()
            .with_ids(&ids)
            .unwrap();
        for q in queries {
            for k in [1, 2, 5, 1000] {
                let (a, b) = same(idx, &fresh, &ids, q, k);
                prop_assert_eq!(a, b, "{:?} q={:?} k={}", m, q, k);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]
    #[test]
    fn any_sequence_scores_as_a_fresh_build_of_the_live_documents(
        ops in prop::collection::vec(op(), 1..9),
        queries in prop::collection::vec(prop::collection::vec(0u8..8, 0..5), 1..4),
        k1 in prop::sample::select(vec![0.5, 1.2, 1.5, 2.0]),
        b in prop::sample::select(vec![0.0, 0.75, 1.0]),
        delta in prop::sample::select(vec![0.0, 0.5, 1.0]),
    ) {
        const PREFIX: [&str; 4] = ["", "a", "b", "ab"];
        let queries: Vec<Vec<String>> = queries.iter().map(|q| words(q)).collect();
        let mut idx = SegmentedIndex::new(lucene());
        let mut model: Vec<(String, Vec<String>)> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        let mut counter = 0usize;
        let mut fresh_id = || {
            counter += 1;
            format!("{}{}", PREFIX[(counter * 7) % 4], counter)
        };
        for op in ops {
            match op {
                Op::Add(ds) => {
                    let ids: Vec<String> = ds.iter().map(|_| fresh_id()).collect();
                    let docs: Vec<Vec<String>> = ds.iter().map(|d| words(d)).collect();
                    idx.add_tokens(&docs, &ids).unwrap();
                    model.extend(ids.into_iter().zip(docs));
                }
                Op::Delete(picks) => {
                    if model.is_empty() {
                        prop_assert!(idx.delete(&["missing"]).is_err());
                        continue;
                    }
                    let del: Vec<String> =
                        picks.iter().map(|&i| model[i % model.len()].0.clone()).collect();
                    let mut uniq: Vec<String> = Vec::new();
                    for d in &del {
                        if !uniq.contains(d) {
                            uniq.push(d.clone());
                        }
                    }
                    if uniq.len() != del.len() {
                        prop_assert!(idx.delete(&del).is_err());
                    }
                    let del = uniq;
                    idx.delete(&del).unwrap();
                    model.retain(|(i, _)| !del.contains(i));
                    gone.extend(del);
                }
                Op::Update(picks) => {
                    if model.is_empty() {
                        continue;
                    }
                    let mut ids: Vec<String> = Vec::new();
                    let mut docs: Vec<Vec<String>> = Vec::new();
                    for (i, d) in picks {
                        let id = model[i % model.len()].0.clone();
                        if !ids.contains(&id) {
                            ids.push(id);
                            docs.push(words(&d));
                        }
                    }
                    idx.update_tokens(&docs, &ids).unwrap();
                    model.retain(|(i, _)| !ids.contains(i));
                    model.extend(ids.into_iter().zip(docs));
                }
                Op::ReAdd(i, d) => {
                    if gone.is_empty() {
                        continue;
                    }
                    let id = gone.remove(i % gone.len());
                    idx.add_tokens(&[words(&d)], std::slice::from_ref(&id)).unwrap();
                    model.push((id, words(&d)));
                }
                Op::Merge(m) => {
                    idx.merge(m).unwrap();
                    prop_assert!(idx.n_segments() <= m);
                    // Deleted documents are gone, and so are empty segments.
                    prop_assert!(idx.segments.iter().all(|s| s.n_deleted == 0 && s.n_live() > 0));
                }
            }
            check(&mut idx, &model, &queries, k1, b, delta)?;
        }
    }
}

/// A fresh build numbers terms by first appearance; when two query terms tie
/// on their largest weight that number orders their sum. Here a deleted first
/// document lists the terms in reverse, so the segment's own term ids run
/// backwards and only the rank within the first *live* document is right.
#[test]
fn term_order_follows_first_appearance_among_live_documents() {
    let mut x: u64 = 5;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    for case in 0..300 {
        let n = 2 + next(4) as usize;
        let docs: Vec<Vec<String>> = (0..n)
            .map(|_| (0..1 + next(5)).map(|_| format!("w{}", next(4))).collect())
            .collect();
        let mut order: Vec<String> = Vec::new();
        for d in &docs {
            for t in d {
                if !order.contains(t) {
                    order.push(t.clone());
                }
            }
        }
        let decoy: Vec<String> = order.iter().rev().cloned().collect();
        let ids: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
        let mut all = vec![decoy];
        all.extend(docs.iter().cloned());
        let mut all_ids = vec!["decoy".to_string()];
        all_ids.extend(ids.iter().cloned());
        let mut idx = SegmentedIndex::new(lucene());
        idx.add_tokens(&all, &all_ids).unwrap();
        idx.delete(&["decoy"]).unwrap();
        for m in METHODS {
            let p = Params::new(m, 1.5, 0.75, 0.5).unwrap();
            idx.set_params(p);
            let fresh = Bm25Index::from_tokens(&docs, p)
                .unwrap()
                .with_ids(&ids)
                .unwrap();
            let q: Vec<String> = order.clone();
            let (a, b) = same(&idx, &fresh, &ids, &q, 10);
            if a != b {
                panic!("case {case} {m:?} docs {docs:?} q {q:?}");
            }
        }
    }
}

/// A corpus whose regions alternate short and long documents, so block
/// bounds differ from block to block and whole runs of blocks are skipped.
fn regional_corpus(seed: u64) -> (Vec<Vec<String>>, Vec<String>, Vec<Vec<String>>) {
    let mut x = seed | 1;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let n = 400 + next(800) as usize;
    let mut docs = Vec::with_capacity(n);
    let mut long = false;
    for i in 0..n {
        if i % 150 == 0 {
            long = next(2) == 1;
        }
        let len = if long { 20 + next(40) } else { 1 + next(4) };
        docs.push(
            (0..len)
                .map(|_| format!("t{}", next(20).min(next(20))))
                .collect(),
        );
    }
    let ids = (0..n)
        .map(|i| format!("{:x}", (i * 2654435761) % 100003))
        .collect();
    let queries = (0..6)
        .map(|_| (0..1 + next(6)).map(|_| format!("t{}", next(22))).collect())
        .collect();
    (docs, ids, queries)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn pruned_search_equals_exhaustive_across_many_blocks(
        seed in any::<u64>(),
        cuts in prop::collection::vec(0.0f64..1.0, 0..3),
        del_every in 3usize..20,
        m in prop::sample::select(METHODS.to_vec()),
    ) {
        let (docs, ids, queries) = regional_corpus(seed);
        let n = docs.len();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| (c * n as f64) as usize).collect();
        bounds.push(0);
        bounds.push(n);
        bounds.sort_unstable();
        bounds.dedup();
        let mut idx = SegmentedIndex::new(Params::new(m, 1.2, 0.75, 0.5).unwrap());
        for w in bounds.windows(2) {
            idx.add_tokens(&docs[w[0]..w[1]], &ids[w[0]..w[1]]).unwrap();
        }
        let gone: Vec<&String> = ids.iter().skip(1).step_by(del_every).collect();
        idx.delete(&gone).unwrap();
        for q in &queries {
            for k in [1, 5, 50] {
                let a: Vec<(String, u32)> = idx.search_pruned(q, k).unwrap().iter()
                    .map(|h| (idx.id(h).to_string(), h.score.to_bits())).collect();
                let b: Vec<(String, u32)> = idx.search(q, k).unwrap().iter()
                    .map(|h| (idx.id(h).to_string(), h.score.to_bits())).collect();
                prop_assert_eq!(a, b, "q={:?} k={}", q, k);
            }
        }
    }
}

#[test]
fn texts_are_tokenised_as_a_fresh_build_tokenises_them() {
    let tok = crate::tokenizer::Tokenizer::new(true, vec!["the".into()], Some("english")).unwrap();
    let texts = [
        "The cats sat on the mat.",
        "A dog chased the cats; cats ran!",
        "Nothing about animals here",
        "Running dogs and sitting cats",
    ];
    let ids = ["a", "b", "c", "d"];
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_texts(&texts[..2], &ids[..2], &tok).unwrap();
    idx.add_texts(&texts[2..], &ids[2..], &tok).unwrap();
    let fresh = Bm25Index::from_texts(&texts, &tok, lucene())
        .unwrap()
        .with_ids(&ids)
        .unwrap();
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    for q in ["cat running", "the dogs sat", "zebra"] {
        let q = tok.tokenize(q);
        let (a, b) = same(&idx, &fresh, &ids, &q, 3);
        assert_eq!(a, b, "{q:?}");
    }
}

#[test]
fn overflowing_parameters_are_an_error_at_query_time() {
    let p = Params::new(Method::Atire, 1e308, 1.0, 0.5).unwrap();
    let mut idx = SegmentedIndex::new(p);
    idx.add_tokens(&[toks("a a b"), toks("b")], &["x", "y"])
        .unwrap();
    let e = idx.search(&["a"], 2).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
    assert!(idx.search_pruned(&["a"], 2).is_err());
    assert!(idx.get_scores(&["a"]).is_err());
}

/// Searches may run on many threads at once (a later Python binding releases
/// the GIL around them).
#[test]
fn the_index_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<SegmentedIndex>();
}
