//! Tests of `segmented_compile.rs`: after random adds, deletes, updates and
//! merges, `compile` gives, array for array and bit for bit, the index a fresh
//! `Bm25Index` build of the live documents gives, for all five methods.

use proptest::prelude::*;

use crate::index::Bm25Index;
use crate::scoring::{Method, Params};
use crate::segmented::SegmentedIndex;

const METHODS: [Method; 5] = [
    Method::Robertson,
    Method::Atire,
    Method::Bm25L,
    Method::Bm25Plus,
    Method::Lucene,
];

/// Every array of the two indexes, weights compared as bits.
fn assert_same(a: &Bm25Index, b: &Bm25Index) -> std::result::Result<(), TestCaseError> {
    prop_assert_eq!(a.n_docs, b.n_docs);
    prop_assert_eq!(a.avgdl.to_bits(), b.avgdl.to_bits());
    prop_assert_eq!(&a.vocab, &b.vocab);
    prop_assert_eq!(&a.indptr, &b.indptr);
    prop_assert_eq!(&a.docs, &b.docs);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    prop_assert_eq!(bits(&a.weights), bits(&b.weights));
    prop_assert_eq!(bits(&a.nonocc), bits(&b.nonocc));
    prop_assert_eq!(bits(&a.max_w), bits(&b.max_w));
    prop_assert_eq!(&a.positive, &b.positive);
    prop_assert_eq!(a.tie.len(), b.tie.len());
    for d in 0..a.n_docs as u32 {
        prop_assert_eq!(a.tie.key(d), b.tie.key(d));
    }
    Ok(())
}

fn words(d: &[u8]) -> Vec<String> {
    d.iter().map(|t| format!("w{t}")).collect()
}

#[derive(Debug, Clone)]
enum Op {
    Add(Vec<Vec<u8>>),
    Delete(Vec<usize>),
    Update(Vec<(usize, Vec<u8>)>),
    Merge(usize),
}

fn op() -> impl Strategy<Value = Op> {
    // Eight terms, short documents: terms collide across segments, and a
    // deleted first document often held a term's first appearance.
    let doc = || prop::collection::vec(0u8..8, 0..7);
    prop_oneof![
        3 => prop::collection::vec(doc(), 1..6).prop_map(Op::Add),
        2 => prop::collection::vec(any::<usize>(), 1..4).prop_map(Op::Delete),
        1 => prop::collection::vec((any::<usize>(), doc()), 1..3).prop_map(Op::Update),
        1 => (1usize..4).prop_map(Op::Merge),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]
    #[test]
    fn compile_equals_a_fresh_build_of_the_live_documents(
        ops in prop::collection::vec(op(), 1..9),
        k1 in prop::sample::select(vec![0.5, 1.5]),
        b in prop::sample::select(vec![0.0, 0.75, 1.0]),
    ) {
        let mut idx = SegmentedIndex::new(Params::new(Method::Lucene, k1, b, 0.5).unwrap());
        let mut model: Vec<(String, Vec<String>)> = Vec::new();
        let mut counter = 0usize;
        for op in ops {
            match op {
                Op::Add(ds) => {
                    // Ids reused after a delete come back as new documents.
                    let ids: Vec<String> = ds
                        .iter()
                        .map(|_| {
                            counter += 1;
                            format!("{}", (counter * 7) % 23)
                        })
                        .collect();
                    let docs: Vec<Vec<String>> = ds.iter().map(|d| words(d)).collect();
                    let mut uniq = ids.clone();
                    uniq.sort();
                    uniq.dedup();
                    if uniq.len() != ids.len() || ids.iter().any(|i| idx.contains(i)) {
                        prop_assert!(idx.add_tokens(&docs, &ids).is_err());
                        continue;
                    }
                    idx.add_tokens(&docs, &ids).unwrap();
                    model.extend(ids.into_iter().zip(docs));
                }
                Op::Delete(picks) => {
                    if model.is_empty() {
                        continue;
                    }
                    let mut del: Vec<String> = Vec::new();
                    for i in picks {
                        let id = model[i % model.len()].0.clone();
                        if !del.contains(&id) {
                            del.push(id);
                        }
                    }
                    idx.delete(&del).unwrap();
                    model.retain(|(i, _)| !del.contains(i));
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
                Op::Merge(m) => idx.merge(m).unwrap(),
            }
            let ids: Vec<String> = model.iter().map(|(i, _)| i.clone()).collect();
            let docs: Vec<Vec<String>> = model.iter().map(|(_, d)| d.clone()).collect();
            for m in METHODS {
                let p = Params::new(m, k1, b, 0.5).unwrap();
                idx.set_params(p);
                if model.is_empty() {
                    prop_assert!(idx.compile().is_err());
                    continue;
                }
                let fresh = Bm25Index::from_tokens(&docs, p).unwrap().with_ids(&ids).unwrap();
                assert_same(&idx.compile().unwrap(), &fresh)?;
            }
        }
    }
}

/// Many segments of a Zipf corpus over several of `build`'s 16384-document
/// chunks, a tenth deleted: the same arrays as a fresh build, and the
/// positional ids "0".."n-1" give the tie keys a build without ids gives.
#[test]
fn compile_equals_a_fresh_build_on_a_large_zipf_corpus() {
    let mut x: u64 = 17;
    let mut next = |m: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % m
    };
    let n = 40_000usize;
    let docs: Vec<Vec<String>> = (0..n)
        .map(|_| {
            (0..next(20))
                .map(|_| {
                    let spread = next(5000) + 1;
                    format!("t{}", next(spread))
                })
                .collect()
        })
        .collect();
    let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    let mut idx = SegmentedIndex::new(Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap());
    for part in [0..17_000, 17_000..17_001, 17_001..31_000, 31_000..n] {
        idx.add_tokens(&docs[part.clone()], &ids[part]).unwrap();
    }
    for m in METHODS {
        let p = Params::new(m, 1.2, 0.75, 0.5).unwrap();
        idx.set_params(p);
        let fresh = Bm25Index::from_tokens(&docs, p).unwrap();
        assert_same(&idx.compile().unwrap(), &fresh).unwrap();
    }
    let gone: Vec<String> = (0..n).step_by(10).map(|i| i.to_string()).collect();
    idx.delete(&gone).unwrap();
    let (live_docs, live_ids): (Vec<Vec<String>>, Vec<String>) = docs
        .into_iter()
        .zip(ids)
        .enumerate()
        .filter(|(i, _)| i % 10 != 0)
        .map(|(_, p)| p)
        .unzip();
    let p = Params::new(Method::Bm25L, 1.2, 0.75, 0.5).unwrap();
    idx.set_params(p);
    let fresh = Bm25Index::from_tokens(&live_docs, p)
        .unwrap()
        .with_ids(&live_ids)
        .unwrap();
    assert_same(&idx.compile().unwrap(), &fresh).unwrap();
}

#[test]
fn overflowing_parameters_are_an_error_not_a_bad_index() {
    let p = Params::new(Method::Atire, 1e308, 1.0, 0.5).unwrap();
    let mut idx = SegmentedIndex::new(p);
    idx.add_tokens(&[vec!["a", "a", "b"], vec!["b"]], &["x", "y"])
        .unwrap();
    let e = idx.compile().map(|_| ()).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
}

/// Shards built separately and joined with `append` compile to the index of
/// one build over all their documents; a live id in both, or other
/// parameters, is refused and changes nothing. A deleted id may be in both.
#[test]
fn appended_shards_compile_as_one_build() {
    let docs: Vec<Vec<String>> = (0..60)
        .map(|i| {
            (0..1 + i % 5)
                .map(|j| format!("w{}", (i * 7 + j * 3) % 11))
                .collect()
        })
        .collect();
    let ids: Vec<String> = (0..60).map(|i| format!("d{i}")).collect();
    let p = Params::new(Method::Bm25Plus, 1.2, 0.75, 0.5).unwrap();
    let mut whole = SegmentedIndex::new(p);
    whole.add_tokens(&docs[..20], &ids[..20]).unwrap();
    whole.delete(&["d3"]).unwrap();
    let mut shard = SegmentedIndex::new(p);
    shard.add_tokens(&docs[20..40], &ids[20..40]).unwrap();
    shard.add_tokens(&[vec!["w1"]], &["d3"]).unwrap();
    shard.delete(&["d3"]).unwrap();
    shard.add_tokens(&docs[40..], &ids[40..]).unwrap();
    whole.append(&shard).unwrap();
    assert_eq!(whole.n_segments(), 4);
    let live: Vec<usize> = (0..60).filter(|&i| i != 3).collect();
    let fresh = Bm25Index::from_tokens(
        &live.iter().map(|&i| docs[i].clone()).collect::<Vec<_>>(),
        p,
    )
    .unwrap()
    .with_ids(&live.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>())
    .unwrap();
    assert_same(&whole.compile().unwrap(), &fresh).unwrap();
    // The joined index keeps working: its ids are all located.
    whole.delete(&["d50", "d5"]).unwrap();
    assert!(!whole.contains("d50") && whole.contains("d51"));

    let mut clash = SegmentedIndex::new(p);
    clash.add_tokens(&[vec!["w1"]], &["d7"]).unwrap();
    let e = whole.append(&clash).unwrap_err();
    assert!(e.to_string().contains("\"d7\" is in both indexes"), "{e}");
    let mut other = SegmentedIndex::new(Params::new(Method::Bm25Plus, 1.2, 0.75, 0.6).unwrap());
    other.add_tokens(&[vec!["w1"]], &["zz"]).unwrap();
    assert!(whole.append(&other).is_err());
    assert_eq!(whole.n_segments(), 4);
}
