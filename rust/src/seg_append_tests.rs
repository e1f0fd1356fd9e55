//! `seg_append.rs`: appends, updates and deletes on a saved folder equal
//! load + the same operation in memory + save, write only new files, and
//! refuse bad input without writing anything.

use proptest::prelude::*;

use super::*;

fn live(idx: &SegmentedIndex) -> Vec<String> {
    idx.live_ids().iter().map(|s| s.to_string()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn folder_operations_equal_the_same_operations_in_memory(
        seed in any::<u64>(),
        steps in 1u64..24,
    ) {
        let dir = tempdir("append");
        let mut mem = SegmentedIndex::new(lucene());
        save_dir(&mut mem, &tok(), &dir).unwrap();
        for k in 1..=steps {
            let ids = read_ids(&dir).unwrap();
            prop_assert_eq!(&ids, &live(&mem));
            let before: Vec<(String, Vec<u8>)> = files(&dir)
                .into_iter()
                .filter(|f| f.ends_with(".bseg") || f.ends_with(".bdel"))
                .map(|f| (f.clone(), fs::read(dir.join(&f)).unwrap()))
                .collect();
            match plan_step(&ids, seed, k) {
                Step::Add(docs, ids) => {
                    let s = append_tokens_dir(&dir, &docs, &ids, AppendMode::Add).unwrap();
                    prop_assert_eq!((s.segments_written, s.deletes_written), (1, 0));
                    mem.add_tokens(&docs, &ids).unwrap();
                }
                Step::Update(docs, ids) => {
                    let s = append_tokens_dir(&dir, &docs, &ids, AppendMode::Update).unwrap();
                    prop_assert_eq!(s.segments_written, 1);
                    prop_assert!(s.deletes_written >= 1 && s.deletes_written <= ids.len());
                    mem.update_tokens(&docs, &ids).unwrap();
                }
                Step::Delete(ids) => {
                    let s = delete_dir(&dir, &ids).unwrap();
                    prop_assert_eq!(s.segments_written, 0);
                    mem.delete(&ids).unwrap();
                }
                Step::Merge(n) => {
                    let (mut idx, _) = load_dir(&dir).unwrap();
                    idx.merge(n).unwrap();
                    save_dir(&mut idx, &tok(), &dir).unwrap();
                    mem.merge(n).unwrap();
                }
            }
            // No existing file was rewritten in place.
            for (f, bytes) in &before {
                if let Ok(now) = fs::read(dir.join(f)) {
                    prop_assert_eq!(&now, bytes, "{} changed", f);
                }
            }
        }
        let (mut loaded, t) = load_dir(&dir).unwrap();
        prop_assert_eq!(&t, &tok());
        prop_assert_eq!(loaded.n_segments(), mem.n_segments());
        let mut mem2 = mem;
        for m in METHODS {
            let p = Params::new(m, 1.2, 0.75, 1.0).unwrap();
            loaded.set_params(p);
            mem2.set_params(p);
            prop_assert_eq!(fingerprint(&loaded), fingerprint(&mem2), "{:?}", m);
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}

fn toks(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn upsert_updates_known_ids_and_adds_new_ones() {
    let dir = tempdir("upsert");
    let mut mem = SegmentedIndex::new(lucene());
    mem.add_tokens(&[toks("a b"), toks("b c"), toks("c d")], &["x", "y", "z"])
        .unwrap();
    save_dir(&mut mem, &tok(), &dir).unwrap();
    let docs = [toks("d d e"), toks("a")];
    let s = append_tokens_dir(&dir, &docs, &["y", "new"], AppendMode::Upsert).unwrap();
    assert_eq!(
        (s.segments_written, s.deletes_written, s.segments_reused),
        (1, 1, 1)
    );
    // In memory: delete the known id, add all as one segment.
    mem.delete(&["y"]).unwrap();
    mem.add_tokens(&docs, &["y", "new"]).unwrap();
    let (loaded, _) = load_dir(&dir).unwrap();
    assert_eq!(live(&loaded), vec!["x", "z", "y", "new"]);
    assert_eq!(fingerprint(&loaded), fingerprint(&mem));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn texts_are_tokenised_with_the_saved_settings() {
    let dir = tempdir("texts");
    let t = TokenizerSettings {
        lowercase: true,
        stopwords: vec!["the".into()],
        stemmer: Some("english".into()),
        pattern: Pattern::Alnum,
    };
    let tokenizer = crate::tokenizer::Tokenizer::with_pattern(
        true,
        vec!["the".into()],
        Some("english"),
        Pattern::Alnum,
    )
    .unwrap();
    let mut mem = SegmentedIndex::new(lucene());
    mem.add_texts(&["The running dogs"], &["a"], &tokenizer)
        .unwrap();
    save_dir(&mut mem, &t, &dir).unwrap();
    append_texts_dir(
        &dir,
        &["A dog RUNS", "the cat"],
        &["b", "c"],
        AppendMode::Add,
    )
    .unwrap();
    mem.add_texts(&["A dog RUNS", "the cat"], &["b", "c"], &tokenizer)
        .unwrap();
    let (loaded, _) = load_dir(&dir).unwrap();
    for q in [vec!["dog"], vec!["run", "cat"], vec!["the"]] {
        assert_eq!(loaded.get_scores(&q).unwrap(), mem.get_scores(&q).unwrap());
    }
    assert!(loaded.get_scores(&["dog"]).unwrap()[1] > 0.0);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_writes_nothing() {
    let dir = tempdir("badappend");
    let mut mem = SegmentedIndex::new(lucene());
    mem.add_tokens(&[toks("a"), toks("b")], &["x", "y"])
        .unwrap();
    save_dir(&mut mem, &tok(), &dir).unwrap();
    let before = files(&dir);
    let manifest = fs::read(dir.join(MANIFEST)).unwrap();
    let cases: Vec<(Result<SaveStats>, &str)> = vec![
        (
            append_tokens_dir(&dir, &[toks("c")], &["x"], AppendMode::Add),
            "already in the index",
        ),
        (
            append_tokens_dir(&dir, &[toks("c")], &["q"], AppendMode::Update),
            "not in the index",
        ),
        (
            append_tokens_dir(&dir, &[toks("c"), toks("d")], &["q", "q"], AppendMode::Add),
            "duplicate",
        ),
        (
            append_tokens_dir(
                &dir,
                &[toks("c"), toks("d")],
                &["x", "x"],
                AppendMode::Upsert,
            ),
            "duplicate",
        ),
        (
            append_tokens_dir(&dir, &[toks("c")], &["q", "r"], AppendMode::Add),
            "ids for",
        ),
        (delete_dir(&dir, &["x", "x"]), "listed twice"),
        (delete_dir(&dir, &["nope"]), "not in the index"),
    ];
    for (r, want) in cases {
        let err = r.expect_err(want).to_string();
        assert!(err.contains(want), "{err} (wanted {want:?})");
        assert_eq!(files(&dir), before);
        assert_eq!(fs::read(dir.join(MANIFEST)).unwrap(), manifest);
    }
    let empty: [&str; 0] = [];
    let st = delete_dir(&dir, &empty).unwrap();
    let want = SaveStats {
        live_docs: read_ids(&dir).unwrap().len() as u64,
        segments: mf::parse(&manifest, &dir.join(MANIFEST))
            .unwrap()
            .segments
            .len(),
        ..SaveStats::default()
    };
    assert_eq!(st, want);
    assert_eq!(fs::read(dir.join(MANIFEST)).unwrap(), manifest);
    let bare = tempdir("nomanifest");
    let err = append_tokens_dir(&bare, &[toks("c")], &["q"], AppendMode::Add)
        .expect_err("no index")
        .to_string();
    assert!(err.contains("no manifest.json"), "{err}");
    fs::remove_dir_all(&bare).unwrap();
    fs::remove_dir_all(&dir).unwrap();
}
