//! Tests of what `segment.rs` derives lazily (issue 14: `BM25.index` must not
//! pay for data only the segmented query path reads): the derived data and
//! the deleted pair counts equal a brute force whichever comes first, the
//! delete or the first query, and building then compiling derives nothing.

use proptest::prelude::*;
use rustc_hash::FxHashMap;

use super::*;
use crate::scoring::{Method, Params};
use crate::segmented::SegmentedIndex;

fn build(docs: &[Vec<u8>]) -> SegmentData {
    let ids: Vec<String> = (0..docs.len()).map(|i| format!("d{i}")).collect();
    SegmentData::build(
        docs,
        ids,
        &|d: &Vec<u8>, emit: &mut dyn FnMut(&str, u32)| {
            for &w in d {
                emit(["a", "b", "c", "d", "e"][w as usize % 5], 1)
            }
        },
    )
    .unwrap()
}

/// Per term: (tf, len) -> live postings with it, from the forward lists.
fn brute_pairs(s: &Segment) -> Vec<FxHashMap<(u32, u32), u32>> {
    let mut out = vec![FxHashMap::default(); s.data.n_terms()];
    for d in 0..s.data.n_docs() as u32 {
        if !s.is_live(d) {
            continue;
        }
        let len = s.data.lens[d as usize];
        let (ts, tfs) = s.data.forward(d);
        for (&t, &tf) in ts.iter().zip(tfs) {
            *out[t as usize].entry((tf, len)).or_insert(0) += 1;
        }
    }
    out
}

fn live_pairs_of(s: &Segment) -> Vec<Vec<(u32, u32)>> {
    (0..s.data.n_terms() as u32)
        .map(|t| s.live_pairs(t).collect())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn live_pairs_and_postings_equal_a_brute_force_whenever_derived(
        docs in prop::collection::vec(prop::collection::vec(0u8..5, 1..12), 1..300),
        dels in prop::collection::vec(any::<usize>(), 0..40),
        split in any::<usize>(),
    ) {
        let base = Segment::new(build(&docs));
        let data = base.data.clone();
        let n = docs.len();
        let dels: Vec<u32> = {
            let mut seen = vec![false; n];
            dels.iter().map(|&i| (i % n) as u32).filter(|&d| !std::mem::replace(&mut seen[d as usize], true)).collect()
        };
        let cut = split % (dels.len() + 1);
        // `early` derives before any delete, `late` after some, `mixed` in between.
        let mut early = base.clone();
        let mut late = base.clone();
        let mut mixed = base.clone();
        let _ = live_pairs_of(&early);
        for &d in &dels { early.delete(d); late.delete(d); }
        for &d in &dels[..cut] { mixed.delete(d); }
        let _ = live_pairs_of(&mixed);
        for &d in &dels[cut..] { mixed.delete(d); }
        for s in [&early, &late, &mixed] {
            let want = brute_pairs(s);
            for (t, got) in live_pairs_of(s).into_iter().enumerate() {
                let mut w: Vec<(u32, u32)> = want[t].keys().copied().collect();
                w.sort_unstable();
                prop_assert_eq!(got, w);
            }
            prop_assert_eq!(s.pair_del(), early.pair_del());
        }
        // Postings: the forward lists transposed; blocks bound them.
        for t in 0..data.n_terms() as u32 {
            let (pd, ptf) = data.postings(t);
            let want: Vec<(u32, u32)> = (0..n as u32)
                .filter_map(|d| {
                    let (ts, tfs) = data.forward(d);
                    ts.iter().position(|&x| x == t).map(|i| (d, tfs[i]))
                })
                .collect();
            let got: Vec<(u32, u32)> = pd.iter().copied().zip(ptf.iter().copied()).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(data.df[t as usize] as usize, pd.len());
        }
    }
}

#[test]
fn index_then_compile_derives_nothing() {
    let docs: Vec<Vec<String>> = (0..500)
        .map(|i| {
            (0..1 + i % 7)
                .map(|j| format!("w{}", (i * j) % 31))
                .collect()
        })
        .collect();
    let ids: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    let mut idx = SegmentedIndex::new(Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap());
    idx.add_tokens(&docs, &ids).unwrap();
    idx.delete(&["3", "77"]).unwrap();
    let flat = idx.compile().unwrap();
    assert_eq!(flat.n_docs(), 498);
    assert!(idx
        .segments
        .iter()
        .all(|s| s.data.derived.get().is_none() && s.pair_del.get().is_none()));
    // The first segmented query derives them.
    idx.search(&["w1"], 3).unwrap();
    assert!(idx.segments[0].data.derived.get().is_some());
}

#[test]
fn positional_ids_get_the_keys_of_a_sort() {
    for n in [0usize, 1, 9, 10, 11, 99, 100, 101, 1234] {
        let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        let (a, b) = (tie_keys(&ids).unwrap(), TieKeys::from_ids(&ids).unwrap());
        assert_eq!(a.len(), b.len());
        assert!((0..n as u32).all(|d| a.key(d) == b.key(d)), "n = {n}");
    }
    // Not positional: sorted by bytes, and duplicates refused.
    let ids = ["0", "2", "1", "10"];
    let (a, b) = (tie_keys(&ids).unwrap(), TieKeys::from_ids(&ids).unwrap());
    assert!((0..4u32).all(|d| a.key(d) == b.key(d)));
    assert!(tie_keys(&["0", "0"]).is_err());
    assert!(tie_keys(&["0", "01"]).is_ok());
}
