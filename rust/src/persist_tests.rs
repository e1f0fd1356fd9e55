//! Tests of `persist.rs`: round trips, damage, and forged files with valid checksums.

use super::*;

fn small() -> Saved {
    let docs = vec![vec!["a", "b"], vec!["b", "c", "c"], vec!["a", "c"]];
    Saved {
        index: Bm25Index::from_tokens(&docs, Params::new(Method::Bm25L, 1.2, 0.7, 0.5).unwrap())
            .unwrap(),
        ids: vec!["x".into(), "y".into(), "z".into()],
        tokenizer: TokenizerSettings {
            lowercase: true,
            stopwords: vec!["the".into()],
            stemmer: Some("english".into()),
            pattern: Pattern::Bm25s,
        },
    }
}

fn bytes_of(s: &Saved) -> Vec<u8> {
    to_bytes(&s.index, &s.ids, &s.tokenizer)
}

#[test]
fn round_trip() {
    let saved = small();
    let loaded = from_bytes(&bytes_of(&saved), Path::new("t")).unwrap();
    assert_eq!(loaded.ids, saved.ids);
    assert_eq!(loaded.tokenizer, saved.tokenizer);
    let (idx, back) = (&saved.index, &loaded.index);
    let q = idx.term_ids(&["c", "a"]);
    assert_eq!(idx.scores(&q), back.scores(&back.term_ids(&["c", "a"])));
    assert_eq!(idx.search(&q, 3), back.search(&q, 3));
}

#[test]
fn every_truncation_and_flip_is_an_error() {
    let bytes = bytes_of(&small());
    for cut in 0..bytes.len() {
        assert!(
            from_bytes(&bytes[..cut], Path::new("t")).is_err(),
            "cut {cut}"
        );
    }
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x40;
        assert!(from_bytes(&b, Path::new("t")).is_err(), "flip {i}");
    }
}

// Byte offsets of the layout written by `to_bytes`.
const METHOD: usize = 12;
const N_DOCS: usize = 48;
const HEADER: usize = 80;

/// `bytes` with a fresh, correct checksum: only the structure checks can object.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn load_err(bytes: Vec<u8>) -> String {
    match from_bytes(&reseal(bytes), Path::new("forged.idx")) {
        Ok(_) => panic!("a forged file loaded"),
        Err(e) => e.to_string(),
    }
}

/// (offset of the postings' document numbers, of the weights) for `small()`.
fn arrays(s: &Saved) -> (usize, usize) {
    let n_terms = s.index.n_terms();
    let docs = HEADER + (n_terms + 1) * 8;
    (docs, docs + s.index.n_postings() * 4)
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn forged_files_with_a_valid_checksum_are_refused() {
    let s = small();
    let good = bytes_of(&s);
    let (docs_at, weights_at) = arrays(&s);
    // Term 0 ("a") has postings [0, 2].
    assert_eq!(&good[docs_at..docs_at + 8], &[0, 0, 0, 0, 2, 0, 0, 0]);

    let mut b = good.clone();
    b.copy_within(docs_at..docs_at + 4, docs_at + 4); // [0, 0]
    let e = load_err(b);
    assert!(
        e.contains("postings of term 0 (\"a\") are not sorted and unique"),
        "{e}"
    );

    let mut b = good.clone();
    put32(&mut b, docs_at, 2);
    put32(&mut b, docs_at + 4, 0); // [2, 0]
    assert!(load_err(b).contains("not sorted and unique"));

    let mut b = good.clone();
    put32(&mut b, docs_at + 4, 7); // beyond the 3 documents
    assert!(load_err(b).contains("beyond the 3 indexed"));

    // 256 would have been read as 0 (robertson) by a truncating cast.
    let mut b = good.clone();
    put32(&mut b, METHOD, 256);
    assert!(load_err(b).contains("unknown BM25 method code 256"));

    // lucene has no absent-term scores, this file has one per term.
    let mut b = good.clone();
    put32(&mut b, METHOD, Method::Lucene.code() as u32);
    assert!(load_err(b).contains("absent-term scores"));

    for bad in [f32::NAN, f32::INFINITY, -1.0] {
        let mut b = good.clone();
        b[weights_at..weights_at + 4].copy_from_slice(&bad.to_le_bytes());
        let e = load_err(b);
        assert!(e.contains("posting weight"), "{e}");
    }

    let mut b = good.clone();
    b[N_DOCS..N_DOCS + 8].copy_from_slice(&0u64.to_le_bytes());
    assert!(load_err(b).contains("document count 0"));
    let mut b = good.clone();
    b[N_DOCS..N_DOCS + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(load_err(b).contains("out of bounds"));

    // Document ids "x", "y", "z" -> "x", "x", "z".
    let at = good
        .windows(5)
        .position(|w| w == [1, 0, 0, 0, b'y'])
        .unwrap();
    let mut b = good.clone();
    b[at + 4] = b'x';
    let e = load_err(b);
    assert!(
        e.contains("duplicate document id \"x\"") && e.contains("forged.idx"),
        "{e}"
    );

    // A vocabulary entry repeated.
    let terms: Vec<&str> = s.index.terms();
    let (a, c) = (
        terms.iter().position(|t| *t == "a").unwrap(),
        terms.iter().position(|t| *t == "c").unwrap(),
    );
    assert!(a != c);
    let at = good
        .windows(5)
        .position(|w| w == [1, 0, 0, 0, b'c'])
        .unwrap();
    let mut b = good.clone();
    b[at + 4] = b'a';
    assert!(load_err(b).contains("appears twice in the vocabulary"));
}

#[test]
fn version_1_files_load_with_the_alnum_pattern() {
    let s = small();
    let mut b = bytes_of(&s);
    // Version 1 ends with the stemmer list: drop the pattern list (8 + 4 + 5 bytes).
    let n = b.len() - 4;
    b.truncate(n - (8 + 4 + "bm25s".len()));
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    let loaded = from_bytes(&reseal(b), Path::new("v1")).unwrap();
    assert_eq!(loaded.tokenizer.pattern, Pattern::Alnum);
    assert_eq!(loaded.ids, s.ids);
}
