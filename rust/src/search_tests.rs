//! Tests of `search.rs`: every top-k path against a full sort of `scores`.

use super::*;
use crate::error::Error;
use crate::index::tests::corpus;
use crate::scoring::{Method, Params};

pub(super) static PRUNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
pub(super) static ZERO_TERMS_DROPPED: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

#[test]
fn top_k_is_sorted_and_only_matching() {
    let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
    let idx = Bm25Index::from_tokens(&corpus(), p).unwrap();
    let hits = idx.search(&idx.term_ids(&["sat"]), 10);
    assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), vec![1, 0]);
    assert!(idx.search(&idx.term_ids(&["zebra"]), 10).is_empty());
}

#[test]
fn maxscore_and_exhaustive_top_k_agree() {
    let mut x: u64 = 7;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    // Zipf-like: a few terms in most documents, a long tail of rare ones.
    let mut docs: Vec<Vec<String>> = Vec::new();
    for _ in 0..3000 {
        let len = 1 + next(20);
        let mut doc = Vec::new();
        for _ in 0..len {
            let spread = next(400) + 1;
            doc.push(format!("t{}", next(spread)));
        }
        docs.push(doc);
    }
    for m in ["lucene", "bm25l", "bm25+"] {
        let p = Params::new(Method::parse(m).unwrap(), 1.5, 0.75, 0.5).unwrap();
        let idx = Bm25Index::from_tokens(&docs, p).unwrap();
        let mut s = Scratch::default();
        for _ in 0..300 {
            let q: Vec<u32> = (0..1 + next(5))
                .map(|_| {
                    let spread = next(idx.n_terms() as u64) + 1;
                    next(spread) as u32
                })
                .collect();
            let k = 1 + next(30) as usize;
            let c = idx.canonical(&q);
            let exact = idx.top_k_exhaustive(&c, k, &mut s);
            assert_eq!(idx.top_k_maxscore(&c, k, &mut s), exact, "{m} {q:?}");
            assert_eq!(idx.top_k_dense(&c, k, &mut s), exact, "{m} {q:?}");
            let scores = idx.scores(&q);
            for h in &exact {
                assert_eq!(h.score, scores[h.doc as usize]);
            }
        }
    }
    assert!(
        PRUNED.load(std::sync::atomic::Ordering::Relaxed) > 50,
        "pruning triggered only {} times",
        PRUNED.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn huge_k_is_clamped_to_the_corpus() {
    let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
    let idx = Bm25Index::from_tokens(&corpus(), p).unwrap();
    assert_eq!(idx.search(&idx.term_ids(&["sat"]), usize::MAX).len(), 2);
}

/// The full ranking by the module's rule, from `scores` (independent of the
/// top-k machinery): matching documents, score descending, id descending by bytes.
fn full_sort(idx: &Bm25Index, q: &[u32], ids: &[String], k: usize) -> Vec<Hit> {
    let scores = idx.scores(q);
    let mut matching = vec![false; idx.n_docs()];
    for &t in q {
        for &d in idx.postings(t).0 {
            matching[d as usize] = true;
        }
    }
    let mut want: Vec<u32> = (0..idx.n_docs() as u32)
        .filter(|&d| matching[d as usize])
        .collect();
    want.sort_by(|&a, &b| {
        scores[b as usize]
            .total_cmp(&scores[a as usize])
            .then(ids[b as usize].as_bytes().cmp(ids[a as usize].as_bytes()))
    });
    want.truncate(k);
    want.into_iter()
        .map(|d| Hit {
            doc: d,
            score: scores[d as usize],
        })
        .collect()
}

/// `search` equals a full sort of `scores` under the tie rule: all five
/// methods, queries of 1 to 300 terms with repeats, corpora with many ties,
/// ids whose byte order differs from their positions, and parameters where
/// adding BM25L/BM25+'s base score rounds different partial scores together.
#[test]
fn search_equals_full_sort_under_the_tie_rule() {
    let mut x: u64 = 12345;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m.max(1)
    };
    let params = [
        ("lucene", 1.5, 0.75, 0.5),
        ("robertson", 1.2, 0.75, 0.5),
        ("atire", 0.9, 0.3, 0.5),
        ("bm25l", 1.5, 0.75, 0.5),
        ("bm25+", 1.5, 0.75, 0.5),
        ("bm25+", 0.1, 0.9, 80.0),
        ("bm25l", 3.0, 0.5, 1e5),
        ("bm25+", 2.0, 0.5, 1e7),
    ];
    // (documents, vocabulary spread, longest document)
    let shapes = [
        (3000, 400, 20),
        (500, 8, 4),
        (2000, 50, 3),
        (4000, 2000, 30),
        (300, 3, 2),
    ];
    let mut compared = 0;
    for (n, vocab, maxlen) in shapes {
        let mut docs: Vec<Vec<String>> = Vec::new();
        for _ in 0..n {
            let len = 1 + next(maxlen);
            docs.push(
                (0..len)
                    .map(|_| {
                        let spread = next(vocab) + 1;
                        format!("t{}", next(spread))
                    })
                    .collect(),
            );
        }
        // Unique ids of mixed lengths: byte order is not position order.
        let ids: Vec<String> = (0..n)
            .map(|i| format!("{}-{i}", ["b", "a", "ab", "", "c"][next(5) as usize]))
            .collect();
        for (m, k1, b, delta) in params {
            let p = Params::new(Method::parse(m).unwrap(), k1, b, delta).unwrap();
            let idx = Bm25Index::from_tokens(&docs, p)
                .unwrap()
                .with_ids(&ids)
                .unwrap();
            let mut s = Scratch::default();
            for _ in 0..40 {
                let len = [1 + next(5), 1 + next(300)][next(2) as usize];
                let mut q: Vec<u32> = Vec::new();
                for _ in 0..len {
                    if !q.is_empty() && next(4) == 0 {
                        q.push(q[next(q.len() as u64) as usize]);
                    } else {
                        let spread = next(idx.n_terms() as u64) + 1;
                        q.push(next(spread) as u32);
                    }
                }
                let k = [1 + next(30) as usize, 1 + next(n as u64) as usize][next(2) as usize];
                let want = full_sort(&idx, &q, &ids, k);
                assert_eq!(idx.top_k(&q, k, &mut s), want, "{m} {delta} q {q:?} k {k}");
                let c = idx.canonical(&q);
                assert_eq!(idx.top_k_exhaustive(&c, k, &mut s), want);
                if c.iter().all(|&t| idx.positive[t as usize]) {
                    assert_eq!(idx.top_k_maxscore(&c, k, &mut s), want, "{m} {delta}");
                    assert_eq!(idx.top_k_dense(&c, k, &mut s), want, "{m} {delta}");
                }
                compared += 1;
            }
        }
    }
    assert_eq!(compared, shapes.len() * params.len() * 40);
}

#[test]
fn search_table_rows_equal_search() {
    let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
    let idx = Bm25Index::from_tokens(&corpus(), p)
        .unwrap()
        .with_ids(&["w", "x", "y", "z"])
        .unwrap();
    let queries = [vec!["sat"], vec!["zebra"], vec!["cat", "dog"], vec!["a"]];
    let t = idx
        .search_table(queries.len(), 3, |i| idx.term_ids(&queries[i]))
        .unwrap();
    assert_eq!((t.rows, t.cols), (4, 3));
    for (i, q) in queries.iter().enumerate() {
        let hits = idx.search(&idx.term_ids(q), 3);
        assert_eq!(t.lens[i], hits.len());
        for j in 0..3 {
            let (d, s) = (t.docs[i * 3 + j], t.scores[i * 3 + j]);
            match hits.get(j) {
                Some(h) => assert_eq!((d, s), (h.doc as i64, h.score)),
                None => assert!(d == -1 && s.is_nan()),
            }
        }
    }
    let huge = idx.search_table(1 << 40, 1 << 40, |_| Vec::new());
    assert!(matches!(huge, Err(Error::OutOfMemory(_))));
}

#[test]
fn tied_scores_rank_by_id_descending() {
    let p = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
    let docs = vec![vec!["x", "y"], vec!["x", "z"], vec!["x", "w"], vec!["v"]];
    let idx = Bm25Index::from_tokens(&docs, p)
        .unwrap()
        .with_ids(&["b", "c", "a", "d"])
        .unwrap();
    let got: Vec<u32> = idx
        .search(&idx.term_ids(&["x"]), 3)
        .iter()
        .map(|h| h.doc)
        .collect();
    assert_eq!(got, vec![1, 0, 2]);
    // Without ids, the ids are "0", "1", ...: "2" > "1" > "0".
    let idx = Bm25Index::from_tokens(&docs, p).unwrap();
    let got: Vec<u32> = idx
        .search(&idx.term_ids(&["x"]), 2)
        .iter()
        .map(|h| h.doc)
        .collect();
    assert_eq!(got, vec![2, 1]);
}

/// Robertson's idf is 0 for a term in at least half the documents: a query
/// holding such a term equals a full sort, whether the top k is found
/// without it (k-th score > 0) or needs the documents only it matches (fewer
/// than k score > 0: they tie at 0 and enter by id), for k in 1, 10, 100, 1000.
#[test]
fn zero_weight_terms_are_searched_without_changing_the_top_k() {
    let mut x: u64 = 99;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m.max(1)
    };
    let n = 3000;
    let docs: Vec<Vec<String>> = (0..n)
        .map(|i| {
            // "common" in ~70% of documents (idf 0), "half" in exactly half
            let mut d = vec![format!("r{}", next(400)), format!("s{}", next(40))];
            if next(10) < 7 {
                d.push("common".into());
            }
            if i % 2 == 0 {
                d.push("half".into());
            }
            d
        })
        .collect();
    let ids: Vec<String> = (0..n)
        .map(|i| format!("{}{i}", ["x", "", "y"][i % 3]))
        .collect();
    for m in ["robertson", "atire", "lucene"] {
        let p = Params::new(Method::parse(m).unwrap(), 1.2, 0.75, 0.5).unwrap();
        let idx = Bm25Index::from_tokens(&docs, p)
            .unwrap()
            .with_ids(&ids)
            .unwrap();
        let mut s = Scratch::default();
        for q in [
            vec!["r3", "common"],
            vec!["common", "s7", "r11", "half"],
            vec!["half", "common"],
            vec!["r5", "r5", "common", "half", "s1"],
        ] {
            let q = idx.term_ids(&q);
            for k in [1, 10, 100, 1000] {
                assert_eq!(
                    idx.top_k(&q, k, &mut s),
                    full_sort(&idx, &q, &ids, k),
                    "{m} {q:?} {k}"
                );
                assert_eq!(
                    idx.search(&q, k),
                    full_sort(&idx, &q, &ids, k),
                    "{m} {q:?} {k}"
                );
            }
        }
    }
    assert!(ZERO_TERMS_DROPPED.load(std::sync::atomic::Ordering::Relaxed) > 5);
}

/// `search` reuses one scratch per thread: alternating indexes of different
/// sizes and paths (dense, pruned, exhaustive) must not see each other's
/// accumulators.
#[test]
fn search_reuses_its_scratch_across_indexes() {
    let big: Vec<Vec<String>> = (0..5000)
        .map(|i| vec![format!("t{}", i % 7), format!("u{}", i % 300), "all".into()])
        .collect();
    let lucene = Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap();
    let robertson = Params::new(Method::Robertson, 1.5, 0.75, 0.5).unwrap();
    let a = Bm25Index::from_tokens(&big, lucene).unwrap();
    let b = Bm25Index::from_tokens(&corpus(), lucene).unwrap();
    let c = Bm25Index::from_tokens(&big[..3000], robertson).unwrap();
    for round in 0..3 {
        for (idx, q) in [
            (&a, vec!["t1", "u7"]),
            (&b, vec!["sat", "cat"]),
            (&a, vec!["all", "t3"]),
            (&c, vec!["all", "u9"]),
            (&a, vec!["u5"]),
        ] {
            let q = idx.term_ids(&q);
            let want = idx.top_k(&q, 10, &mut Scratch::default());
            assert_eq!(idx.search(&q, 10), want, "round {round} {q:?}");
        }
    }
}
