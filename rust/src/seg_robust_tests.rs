//! The loaders against arbitrary and mutated input (issue 14 §4's "proptest
//! where fuzzing cannot run in CI"): the segment, deletes, manifest and blob
//! readers never panic and give `Ok` or an error. Mutations of valid files
//! come with their checksums recomputed, so the structural checks behind the
//! CRCs are exercised, not only the CRCs; a mutated file that still loads
//! must be canonical (it encodes back to the same bytes) and answer queries.

use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::seg_file::{decode_deletes, decode_segment, encode_deletes, encode_segment};

const HEADER: usize = 88;

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Recomputes a segment file's section and header CRCs (as far as the
/// bytes reach), so a mutation meets the structural checks.
fn recrc_segment(b: &mut [u8]) {
    if b.len() < HEADER {
        return;
    }
    let mut start = HEADER;
    for i in 0..3 {
        let mut l = [0u8; 8];
        l.copy_from_slice(&b[40 + 16 * i..48 + 16 * i]);
        let end = start
            .saturating_add(u64::from_le_bytes(l).min(usize::MAX as u64 / 2) as usize)
            .min(b.len());
        let crc = crc32fast::hash(&b[start.min(end)..end]);
        put_u32(b, 48 + 16 * i, crc);
        start = end;
    }
    let crc = crc32fast::hash(&b[16..HEADER]);
    put_u32(b, 12, crc);
}

/// Recomputes a trailing CRC-32 of everything before it.
fn recrc_trailer(b: &mut [u8]) {
    if b.len() >= 4 {
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        put_u32(b, n, crc);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    U32(usize, u32),
    U64(usize, u64),
    Truncate(usize),
    Extend(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let small = prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(3),
        Just(7),
        Just(u32::MAX),
        any::<u32>()
    ];
    prop_oneof![
        4 => (any::<usize>(), 1u8..).prop_map(|(p, x)| Mutation::Flip(p, x)),
        3 => (any::<usize>(), small).prop_map(|(p, v)| Mutation::U32(p, v)),
        1 => (any::<usize>(), any::<u64>()).prop_map(|(p, v)| Mutation::U64(p, v)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
    ]
}

fn mutate(b: &mut Vec<u8>, ms: &[Mutation]) {
    for m in ms {
        let n = b.len();
        match m {
            Mutation::Flip(p, x) if n > 0 => b[p % n] ^= x,
            // Aligned to 4: most fields are u32 or u64 at multiples of 4.
            Mutation::U32(p, v) if n >= 4 => {
                let at = (p % (n - 3)) & !3;
                put_u32(b, at, *v)
            }
            Mutation::U64(p, v) if n >= 8 => {
                let at = (p % (n - 7)) & !3;
                b[at..at + 8].copy_from_slice(&v.to_le_bytes())
            }
            Mutation::Truncate(p) => b.truncate(p % (n + 1)),
            Mutation::Extend(x) => b.extend_from_slice(x),
            _ => {}
        }
    }
}

fn path() -> &'static Path {
    Path::new("fuzz.bseg")
}

/// A loaded segment is canonical and answers queries.
fn check_loaded_segment(bytes: &[u8]) {
    if let Ok(data) = decode_segment(bytes, path()) {
        assert_eq!(
            encode_segment(&data).unwrap(),
            bytes,
            "a file that loads is canonical"
        );
        let idx = SegmentedIndex::from_segments(lucene(), vec![Segment::new(data)]);
        fingerprint(&idx);
    }
}

fn check_loaded_deletes(bytes: &[u8], n_docs: usize) {
    if let Ok(gone) = decode_deletes(bytes, n_docs, path()) {
        let mut words = vec![0u64; n_docs.div_ceil(64)];
        for d in gone {
            words[d as usize / 64] |= 1 << (d % 64);
        }
        assert_eq!(encode_deletes(n_docs, &words), bytes);
    }
}

fn check_blob(bytes: &[u8]) {
    if let Ok((idx, _)) = from_bytes(bytes) {
        fingerprint(&idx);
    }
}

/// Valid files of a state of a random sequence: (segment file, n_docs, deletes file).
fn valid_files(seed: u64, steps: u64) -> Vec<(Vec<u8>, usize, Option<Vec<u8>>)> {
    let idx = state(seed, steps);
    idx.segments
        .iter()
        .map(|s| {
            let del = (s.n_deleted > 0).then(|| encode_deletes(s.data.n_docs(), s.deleted_words()));
            (encode_segment(&s.data).unwrap(), s.data.n_docs(), del)
        })
        .collect()
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        "[a-z0-9./+-]{0,14}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_0-9]{1,9}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

const POINTERS: [&str; 16] = [
    "/format",
    "/version",
    "/generation",
    "/params",
    "/params/method",
    "/params/k1",
    "/params/delta",
    "/tokenizer/stopwords",
    "/tokenizer/stemmer",
    "/tokenizer/pattern",
    "/n_live",
    "/segments",
    "/segments/0/file",
    "/segments/0/bytes",
    "/segments/0/n_docs",
    "/segments/0/deletes",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), n_docs in 0usize..200) {
        let mut with_magic = b"BDNSCASG\x01\0\0\0".to_vec();
        with_magic.extend_from_slice(&bytes);
        for b in [&bytes, &with_magic] {
            check_loaded_segment(b);
            check_loaded_deletes(b, n_docs);
            check_blob(b);
            let _ = crate::seg_manifest::parse(b, Path::new("manifest.json"));
        }
        let mut del = b"BDNSCADL".to_vec();
        del.extend_from_slice(&bytes);
        recrc_trailer(&mut del);
        check_loaded_deletes(&del, n_docs);
    }

    #[test]
    fn mutated_segment_and_deletes_files_are_refused_or_sound(
        seed in any::<u64>(),
        steps in 1u64..14,
        which in any::<usize>(),
        ms in prop::collection::vec(mutation(), 1..4),
        recrc in any::<bool>(),
    ) {
        let files = valid_files(seed, steps);
        prop_assume!(!files.is_empty());
        let (seg, n_docs, del) = &files[which % files.len()];
        let mut b = seg.clone();
        mutate(&mut b, &ms);
        if recrc {
            recrc_segment(&mut b);
        }
        check_loaded_segment(&b);
        if let Some(del) = del {
            let mut b = del.clone();
            mutate(&mut b, &ms);
            if recrc {
                recrc_trailer(&mut b);
            }
            check_loaded_deletes(&b, *n_docs);
        }
    }

    #[test]
    fn mutated_blobs_are_refused_or_sound(
        seed in any::<u64>(),
        steps in 1u64..12,
        ms in prop::collection::vec(mutation(), 1..4),
        recrc in any::<bool>(),
    ) {
        let mut b = to_bytes(&state(seed, steps), &tok()).unwrap();
        mutate(&mut b, &ms);
        if recrc {
            recrc_trailer(&mut b);
        }
        check_blob(&b);
    }

    #[test]
    fn arbitrary_and_mutated_manifests_never_panic(
        any_json in json(),
        pointer in 0usize..POINTERS.len(),
        replacement in json(),
    ) {
        let p = Path::new("manifest.json");
        let _ = crate::seg_manifest::parse(&serde_json::to_vec(&any_json).unwrap(), p);
        let idx = state(3, 9);
        let m = Manifest {
            generation: 1,
            params: lucene(),
            tokenizer: tok(),
            n_live: idx.n_live() as u64,
            segments: idx.segments.iter().enumerate().map(|(i, s)| SegEntry {
                file: FileRef { name: format!("seg-{i}.bseg"), bytes: 10, crc32: 1 },
                n_docs: s.data.n_docs() as u64,
                deletes: (s.n_deleted > 0).then(|| (FileRef { name: format!("del-{i}.bdel"), bytes: 10, crc32: 1 }, s.n_deleted as u64)),
            }).collect(),
        };
        let good = crate::seg_manifest::to_json(&m);
        let parsed = crate::seg_manifest::parse(&good, p).unwrap();
        prop_assert_eq!(&parsed.segments, &m.segments);
        let mut v: Value = serde_json::from_slice(&good).unwrap();
        if let Some(slot) = v.pointer_mut(POINTERS[pointer]) {
            *slot = replacement;
        }
        if let Ok(m2) = crate::seg_manifest::parse(&serde_json::to_vec(&v).unwrap(), p) {
            // What parses writes back to a manifest that parses the same.
            let again = crate::seg_manifest::parse(&crate::seg_manifest::to_json(&m2), p).unwrap();
            prop_assert_eq!(again.segments, m2.segments);
        }
    }
}

#[test]
fn every_single_byte_flip_of_a_small_segment_is_refused_or_sound() {
    // Exhaustive over positions, checksums recomputed: the structural checks
    // alone must catch what the CRCs would.
    let files = valid_files(11, 6);
    let (seg, _, _) = &files[0];
    for pos in 0..seg.len() {
        for x in [1u8, 0x80, 0xff] {
            let mut b = seg.clone();
            b[pos] ^= x;
            recrc_segment(&mut b);
            check_loaded_segment(&b);
        }
    }
}
