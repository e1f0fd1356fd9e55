//! Tests of the segmented format (`seg_persist.rs`, `seg_file.rs`,
//! `seg_manifest.rs`): round trips against the index in memory, which files
//! a re-save writes, errors, and the loaders' robustness to arbitrary and
//! mutated bytes (the proptest stand-in for fuzzing, `seg_robust_tests.rs`),
//! crash safety and concurrent readers (`seg_crash_tests.rs`).
//!
//! Over 450 lines on purpose: the reproducible step generator, fingerprints
//! and temp folders shared by the append, robustness and crash modules live
//! here beside the round-trip tests.

use proptest::prelude::*;

use super::*;
use crate::scoring::{Method, Params};
use crate::tokenizer::Pattern;

pub(crate) const METHODS: [Method; 5] = [
    Method::Robertson,
    Method::Atire,
    Method::Bm25L,
    Method::Bm25Plus,
    Method::Lucene,
];

pub(crate) fn lucene() -> Params {
    Params::new(Method::Lucene, 1.5, 0.75, 0.5).unwrap()
}

pub(crate) fn tok() -> TokenizerSettings {
    TokenizerSettings {
        lowercase: true,
        stopwords: vec!["the".into(), "a\"b\\c".into()],
        stemmer: Some("english".into()),
        pattern: Pattern::Bm25s,
    }
}

/// splitmix64: a reproducible stream from a seed.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn doc(r: &mut Rng) -> Vec<String> {
    let n = r.below(8);
    // Skewed to small term numbers: common and rare terms, many ties.
    (0..n)
        .map(|_| format!("w{}", r.below(12).min(r.below(12))))
        .collect()
}

/// One step of a reproducible sequence.
pub(crate) enum Step {
    Add(Vec<Vec<String>>, Vec<String>),
    Delete(Vec<String>),
    Update(Vec<Vec<String>>, Vec<String>),
    Merge(usize),
}

/// Step `k` of the sequence `seed` (k = 1, 2, ...): an add, delete, update
/// or merge, chosen from (seed, k) and the live ids only, so the state after
/// k steps is reproducible in any process.
pub(crate) fn plan_step(live: &[String], seed: u64, k: u64) -> Step {
    let mut r = Rng(seed ^ k.wrapping_mul(0xA076_1D64_78BD_642F));
    let pick = |r: &mut Rng, n: u64| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for _ in 0..n {
            let id = &live[r.below(live.len() as u64) as usize];
            if !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    };
    const PREFIX: [&str; 3] = ["", "a", "zz"];
    match r.below(10) {
        5 | 6 if !live.is_empty() => {
            let n = 1 + r.below(3);
            Step::Delete(pick(&mut r, n))
        }
        7 if !live.is_empty() => {
            let n = 1 + r.below(2);
            let ids = pick(&mut r, n);
            let docs: Vec<Vec<String>> = ids.iter().map(|_| doc(&mut r)).collect();
            Step::Update(docs, ids)
        }
        8 => Step::Merge(1 + r.below(3) as usize),
        _ => {
            let n = 1 + r.below(12);
            let ids: Vec<String> = (0..n)
                .map(|i| format!("{}{k}x{i}", PREFIX[r.below(3) as usize]))
                .collect();
            let docs: Vec<Vec<String>> = ids.iter().map(|_| doc(&mut r)).collect();
            Step::Add(docs, ids)
        }
    }
}

pub(crate) fn apply_step(idx: &mut SegmentedIndex, seed: u64, k: u64) {
    let live: Vec<String> = idx.live_ids().iter().map(|s| s.to_string()).collect();
    match plan_step(&live, seed, k) {
        Step::Add(docs, ids) => idx.add_tokens(&docs, &ids).unwrap(),
        Step::Delete(ids) => idx.delete(&ids).unwrap(),
        Step::Update(docs, ids) => idx.update_tokens(&docs, &ids).unwrap(),
        Step::Merge(n) => idx.merge(n).unwrap(),
    }
}

pub(crate) fn state(seed: u64, k: u64) -> SegmentedIndex {
    let mut idx = SegmentedIndex::new(lucene());
    for j in 1..=k {
        apply_step(&mut idx, seed, j);
    }
    idx
}

pub(crate) type Fingerprint = (Vec<String>, Vec<Vec<u32>>, Vec<Vec<(String, u32)>>);

/// Live ids, `get_scores` bits and top-5 hits (id, score bits) for a few
/// queries under the index's current parameters.
pub(crate) fn fingerprint(idx: &SegmentedIndex) -> Fingerprint {
    let queries: [&[&str]; 4] = [&["w0"], &["w1", "w3", "w0"], &["w7", "w11", "nope"], &[]];
    let ids = idx.live_ids().iter().map(|s| s.to_string()).collect();
    let scores = queries
        .iter()
        .map(|q| {
            idx.get_scores(q)
                .unwrap()
                .iter()
                .map(|s| s.to_bits())
                .collect()
        })
        .collect();
    let hits = queries
        .iter()
        .map(|q| {
            idx.search(q, 5)
                .unwrap()
                .iter()
                .map(|h| (idx.id(h).to_string(), h.score.to_bits()))
                .collect()
        })
        .collect();
    (ids, scores, hits)
}

/// `a` and `b` give the same ids, scores and hits under every method.
fn same_under_all_methods(
    a: &mut SegmentedIndex,
    b: &mut SegmentedIndex,
) -> std::result::Result<(), TestCaseError> {
    for m in METHODS {
        let p = Params::new(m, 1.2, 0.75, 1.0).unwrap();
        a.set_params(p);
        b.set_params(p);
        prop_assert_eq!(fingerprint(a), fingerprint(b), "{:?}", m);
    }
    Ok(())
}

pub(crate) fn files(dir: &Path) -> std::collections::BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

pub(crate) fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "bdnsca-seg-{tag}-{}-{:x}",
        std::process::id(),
        random_tag()
    ));
    fs::create_dir_all(&d).unwrap();
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn saved_and_loaded_indexes_score_as_the_index_in_memory(
        seed in any::<u64>(),
        steps in 1u64..24,
        save_every in 1u64..6,
        more in 0u64..6,
    ) {
        let dir = tempdir("rt");
        let mut idx = SegmentedIndex::new(lucene());
        for k in 1..=steps {
            apply_step(&mut idx, seed, k);
            if k % save_every == 0 {
                save_dir(&mut idx, &tok(), &dir).unwrap();
            }
        }
        save_dir(&mut idx, &tok(), &dir).unwrap();
        let (mut loaded, t) = load_dir(&dir).unwrap();
        prop_assert_eq!(&t, &tok());
        prop_assert_eq!(loaded.params().method, idx.params().method);
        prop_assert_eq!(loaded.n_segments(), idx.n_segments());
        prop_assert_eq!(read_ids(&dir).unwrap(), loaded.live_ids().iter().map(|s| s.to_string()).collect::<Vec<_>>());
        same_under_all_methods(&mut loaded, &mut idx)?;
        let (mut blob, t2) = from_bytes(&to_bytes(&idx, &tok()).unwrap()).unwrap();
        prop_assert_eq!(&t2, &tok());
        same_under_all_methods(&mut blob, &mut idx)?;
        // The loaded index goes on as the original does, and saves again.
        for k in steps + 1..=steps + more {
            apply_step(&mut idx, seed, k);
            apply_step(&mut loaded, seed, k);
        }
        save_dir(&mut loaded, &tok(), &dir).unwrap();
        let (mut again, _) = load_dir(&dir).unwrap();
        same_under_all_methods(&mut again, &mut idx)?;
        fs::remove_dir_all(&dir).unwrap();
    }
}

fn add(idx: &mut SegmentedIndex, ids: &[&str], text: &str) {
    let docs: Vec<Vec<String>> = ids
        .iter()
        .map(|_| text.split_whitespace().map(String::from).collect())
        .collect();
    idx.add_tokens(&docs, ids).unwrap();
}

fn segs_and_dels(dir: &Path) -> (usize, usize) {
    let f = files(dir);
    (
        f.iter().filter(|n| n.ends_with(".bseg")).count(),
        f.iter().filter(|n| n.ends_with(".bdel")).count(),
    )
}

#[test]
fn a_resave_writes_only_new_segments_and_deletes() {
    let dir = tempdir("resave");
    let mut idx = SegmentedIndex::new(lucene());
    add(&mut idx, &["a", "b"], "x y");
    add(&mut idx, &["c"], "y z");
    add(&mut idx, &["d", "e"], "z z x");
    let s = save_dir(&mut idx, &tok(), &dir).unwrap();
    assert_eq!(
        (s.segments_written, s.segments_reused, s.deletes_written),
        (3, 0, 0)
    );
    let first = files(&dir);
    // manifest, 3 segments and the writers' lock file.
    assert_eq!(first.len(), 5, "{first:?}");
    let bytes_before: Vec<Vec<u8>> = first
        .iter()
        .filter(|n| n.ends_with(".bseg"))
        .map(|n| fs::read(dir.join(n)).unwrap())
        .collect();

    // --append: load, add, save: one new segment file and the manifest.
    let (mut idx, _) = load_dir(&dir).unwrap();
    add(&mut idx, &["f"], "x");
    let s = save_dir(&mut idx, &tok(), &dir).unwrap();
    assert_eq!(
        (
            s.segments_written,
            s.segments_reused,
            s.deletes_written,
            s.files_removed
        ),
        (1, 3, 0, 0)
    );
    let second = files(&dir);
    assert!(first.is_subset(&second));
    assert_eq!(second.len(), 6);
    let bytes_after: Vec<Vec<u8>> = first
        .iter()
        .filter(|n| n.ends_with(".bseg"))
        .map(|n| fs::read(dir.join(n)).unwrap())
        .collect();
    assert_eq!(bytes_before, bytes_after);

    // A delete writes a deletes file, no segment.
    idx.delete(&["a"]).unwrap();
    let s = save_dir(&mut idx, &tok(), &dir).unwrap();
    assert_eq!(
        (s.segments_written, s.segments_reused, s.deletes_written),
        (0, 4, 1)
    );
    assert_eq!(segs_and_dels(&dir), (4, 1));
    let del1: Vec<String> = files(&dir)
        .into_iter()
        .filter(|n| n.ends_with(".bdel"))
        .collect();

    // A second delete in the same segment: a new deletes generation; the
    // previous one stays while the previous manifest names it.
    idx.delete(&["b"]).unwrap();
    let s = save_dir(&mut idx, &tok(), &dir).unwrap();
    assert_eq!(
        (s.segments_written, s.deletes_written, s.files_removed),
        (0, 1, 0)
    );
    assert_eq!(segs_and_dels(&dir), (4, 2));
    // Nothing changed: nothing but the manifest is written, and the first
    // deletes file, named by neither manifest now, goes.
    let s = save_dir(&mut idx, &tok(), &dir).unwrap();
    assert_eq!(
        (s.segments_written, s.deletes_written, s.files_removed),
        (0, 0, 1)
    );
    assert!(!files(&dir).contains(&del1[0]));
    assert_eq!(segs_and_dels(&dir), (4, 1));

    // Merge: one segment, the old files go after the next save.
    idx.merge(1).unwrap();
    let s = save_dir(&mut idx, &tok(), &dir).unwrap();
    assert_eq!((s.segments_written, s.segments_reused), (1, 0));
    save_dir(&mut idx, &tok(), &dir).unwrap();
    assert_eq!(segs_and_dels(&dir), (1, 0));
    let (loaded, _) = load_dir(&dir).unwrap();
    assert_eq!(loaded.live_ids(), vec!["c", "d", "e", "f"]);
    assert_eq!(read_ids(&dir).unwrap(), vec!["c", "d", "e", "f"]);

    // Saving elsewhere writes everything; stray files are ignored on load.
    let other = tempdir("resave2");
    let s = save_dir(&mut idx, &tok(), &other).unwrap();
    assert_eq!((s.segments_written, s.segments_reused), (1, 0));
    fs::write(other.join("seg-99999999-0.bseg"), b"junk").unwrap();
    assert_eq!(
        load_dir(&other).unwrap().0.live_ids(),
        vec!["c", "d", "e", "f"]
    );
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&other).unwrap();
}

#[test]
fn an_empty_index_round_trips() {
    let dir = tempdir("empty");
    let mut idx = SegmentedIndex::new(lucene());
    save_dir(&mut idx, &tok(), &dir).unwrap();
    let (loaded, _) = load_dir(&dir).unwrap();
    assert_eq!(loaded.n_segments(), 0);
    assert!(loaded.search(&["x"], 3).unwrap().is_empty());
    assert!(read_ids(&dir).unwrap().is_empty());
    assert!(is_segmented_dir(&dir));
    assert!(!is_segmented_dir(&dir.join(MANIFEST)));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_name_the_file_and_the_field() {
    let dir = tempdir("errors");
    let err = load_dir(&dir).err().unwrap().to_string();
    assert!(err.contains("no manifest.json"), "{err}");
    let mut idx = state(7, 12);
    save_dir(&mut idx, &tok(), &dir).unwrap();
    let seg = files(&dir)
        .into_iter()
        .find(|n| n.ends_with(".bseg"))
        .unwrap();
    let mut bytes = fs::read(dir.join(&seg)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(dir.join(&seg), &bytes).unwrap();
    let err = load_dir(&dir).err().unwrap().to_string();
    assert!(err.contains(&seg) && err.contains("checksum"), "{err}");
    bytes.pop();
    fs::write(dir.join(&seg), &bytes).unwrap();
    let err = load_dir(&dir).err().unwrap().to_string();
    assert!(err.contains(&seg) && err.contains("bytes"), "{err}");
    fs::remove_file(dir.join(&seg)).unwrap();
    let err = load_dir(&dir).err().unwrap().to_string();
    assert!(err.contains(&seg), "{err}");
    let m = fs::read_to_string(dir.join(MANIFEST)).unwrap();
    fs::write(dir.join(MANIFEST), m.replace("\"lucene\"", "\"bm99\"")).unwrap();
    let err = load_dir(&dir).err().unwrap().to_string();
    assert!(
        err.contains("params.method") && err.contains("manifest.json"),
        "{err}"
    );
    fs::write(dir.join(MANIFEST), m.replacen(".bseg\"", "/../x.bseg\"", 1)).unwrap();
    let err = load_dir(&dir).err().unwrap().to_string();
    assert!(err.contains("segments[0].file"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn read_segment_ids_reads_only_the_ids() {
    let dir = tempdir("ids");
    let mut idx = SegmentedIndex::new(lucene());
    add(&mut idx, &["q", "p", "é"], "x y");
    save_dir(&mut idx, &tok(), &dir).unwrap();
    let seg = files(&dir)
        .into_iter()
        .find(|n| n.ends_with(".bseg"))
        .unwrap();
    let path = dir.join(&seg);
    // Corrupting the forward section (last byte) leaves the ids readable,
    // while a full load refuses the file.
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(read_segment_ids(&path).unwrap(), vec!["q", "p", "é"]);
    assert!(load_dir(&dir).is_err());
    fs::remove_dir_all(&dir).unwrap();
}

#[path = "seg_append_tests.rs"]
mod append;

#[path = "seg_robust_tests.rs"]
mod robust;

#[path = "seg_crash_tests.rs"]
mod crash;

#[path = "seg_writers_tests.rs"]
mod writers;

/// Timings at 100k documents (run by hand: `cargo test --release --lib
/// measure_100k -- --ignored --nocapture`); asserts only what it measures on.
#[test]
#[ignore]
fn measure_100k() {
    use std::time::Instant;
    let mut r = Rng(42);
    let mut corpus = |n: usize, tag: &str| -> (Vec<Vec<String>>, Vec<String>) {
        let docs = (0..n)
            .map(|_| {
                (0..40)
                    .map(|_| {
                        // Roughly Zipf over 50k terms.
                        let u = (r.below(1 << 20) + 1) as f64 / (1u64 << 20) as f64;
                        format!("t{}", (50_000f64.powf(u) as u64).saturating_sub(1))
                    })
                    .collect()
            })
            .collect();
        let ids = (0..n).map(|i| format!("{tag}{i}")).collect();
        (docs, ids)
    };
    let (docs, ids) = corpus(100_000, "d");
    let t = Instant::now();
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&docs, &ids).unwrap();
    let build = t.elapsed();
    let dir = tempdir("measure");
    let t = Instant::now();
    let s = save_dir(&mut idx, &tok(), &dir).unwrap();
    let save = t.elapsed();
    let t = Instant::now();
    let (mut loaded, _) = load_dir(&dir).unwrap();
    let load = t.elapsed();
    let t = Instant::now();
    let live = read_ids(&dir).unwrap();
    let rids = t.elapsed();
    assert_eq!(live.len(), 100_000);
    let (more, more_ids) = corpus(1_000, "e");
    let t = Instant::now();
    loaded.add_tokens(&more, &more_ids).unwrap();
    let s2 = save_dir(&mut loaded, &tok(), &dir).unwrap();
    let append = t.elapsed();
    let (more2, more2_ids) = corpus(1_000, "f");
    let t = Instant::now();
    let s3 = append_tokens_dir(&dir, &more2, &more2_ids, AppendMode::Add).unwrap();
    let append_dir = t.elapsed();
    let gone: Vec<&String> = ids.iter().step_by(1000).collect();
    let t = Instant::now();
    delete_dir(&dir, &gone).unwrap();
    let delete = t.elapsed();
    eprintln!(
        "append_tokens_dir 1k docs (no load): {append_dir:?} ({} bytes written); delete_dir 100 ids: {delete:?}",
        s3.bytes_written
    );
    let t = Instant::now();
    let blob = to_bytes(&loaded, &tok()).unwrap();
    let tb = t.elapsed();
    let t = Instant::now();
    from_bytes(&blob).unwrap();
    let fb = t.elapsed();
    eprintln!(
        "100k docs x 40 tokens: build {build:?}; save {save:?} ({} bytes); load {load:?}; read_ids {rids:?}; \
         add 1k + save {append:?} ({} bytes written, {} reused); to_bytes {tb:?} ({} bytes); from_bytes {fb:?}",
        s.bytes_written, s2.bytes_written, s2.segments_reused, blob.len()
    );
    fs::remove_dir_all(&dir).unwrap();
}
