//! Writers of one folder (review 14a findings 1, 2, 5, 6, 7): concurrent
//! writers are serialised by the folder lock and lose nothing; a save of a
//! loaded index refuses when another writer changed the folder since; a
//! manifest this version cannot read is never written over; a missing file
//! is reported as a damaged index; the generation never wraps.

use super::*;
use crate::tokenizer::Tokenizer;

fn toks(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

#[test]
fn concurrent_appends_keep_every_document() {
    let dir = tempdir("writers");
    save_dir(&mut SegmentedIndex::new(lucene()), &tok(), &dir).unwrap();
    // Each thread opens the lock file itself: flock locks belong to the open
    // file, so threads contend exactly as processes do.
    let handles: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|w| {
            let dir = dir.clone();
            std::thread::spawn(move || {
                for round in 0..15 {
                    let ids: Vec<String> = (0..40).map(|i| format!("{w}-{round}-{i}")).collect();
                    let docs: Vec<Vec<String>> = (0..40)
                        .map(|i| toks(&format!("{w} word{i} common")))
                        .collect();
                    append_tokens_dir(&dir, &docs, &ids, AppendMode::Add).unwrap();
                    if round % 3 == 2 {
                        delete_dir(&dir, &[ids[0].as_str()]).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut got = read_ids(&dir).unwrap();
    got.sort();
    let mut want: Vec<String> = Vec::new();
    for w in ["a", "b", "c"] {
        for round in 0..15 {
            for i in 0..40 {
                if !(round % 3 == 2 && i == 0) {
                    want.push(format!("{w}-{round}-{i}"));
                }
            }
        }
    }
    want.sort();
    assert_eq!(got, want);
    let (idx, _) = load_dir(&dir).unwrap();
    assert_eq!(idx.n_live(), want.len());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_save_over_a_folder_changed_since_the_load_is_refused() {
    let dir = tempdir("cas");
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&[toks("alpha"), toks("beta")], &["a", "b"])
        .unwrap();
    save_dir(&mut idx, &tok(), &dir).unwrap();
    // Saving again the index just saved is fine (its origin follows saves).
    idx.add_tokens(&[toks("gamma")], &["g"]).unwrap();
    save_dir(&mut idx, &tok(), &dir).unwrap();
    let (mut svc, _) = load_dir(&dir).unwrap();
    append_tokens_dir(&dir, &[toks("zebra")], &["z"], AppendMode::Add).unwrap();
    delete_dir(&dir, &["a"]).unwrap();
    let manifest = fs::read(dir.join(MANIFEST)).unwrap();
    svc.add_tokens(&[toks("horse")], &["h"]).unwrap();
    let err = save_dir(&mut svc, &tok(), &dir)
        .expect_err("stale save")
        .to_string();
    assert!(err.contains("changed since it was loaded"), "{err}");
    assert!(err.contains("load it again"), "{err}");
    assert_eq!(fs::read(dir.join(MANIFEST)).unwrap(), manifest);
    assert_eq!(read_ids(&dir).unwrap(), ["b", "g", "z"]);
    // A fresh load sees the other writer's change and may save.
    let (mut again, _) = load_dir(&dir).unwrap();
    again.add_tokens(&[toks("horse")], &["h"]).unwrap();
    save_dir(&mut again, &tok(), &dir).unwrap();
    assert_eq!(read_ids(&dir).unwrap(), ["b", "g", "z", "h"]);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_manifest_this_version_cannot_read_is_never_written_over() {
    for bad in [
        b"{not json".to_vec(),
        br#"{"version": 2, "generation": 1}"#.to_vec(),
    ] {
        let dir = tempdir("newer");
        let mut idx = SegmentedIndex::new(lucene());
        idx.add_tokens(&[toks("alpha")], &["a"]).unwrap();
        save_dir(&mut idx, &tok(), &dir).unwrap();
        fs::write(dir.join(MANIFEST), &bad).unwrap();
        let before = files(&dir);
        let mut fresh = SegmentedIndex::new(lucene());
        fresh.add_tokens(&[toks("beta")], &["b"]).unwrap();
        let err = save_dir(&mut fresh, &tok(), &dir)
            .expect_err("unreadable manifest")
            .to_string();
        assert!(err.contains("refusing to write over"), "{err}");
        assert_eq!(files(&dir), before);
        assert_eq!(fs::read(dir.join(MANIFEST)).unwrap(), bad);
        fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_missing_file_is_reported_as_a_damaged_index() {
    let dir = tempdir("damaged");
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&[toks("alpha")], &["a"]).unwrap();
    save_dir(&mut idx, &tok(), &dir).unwrap();
    let seg = files(&dir)
        .into_iter()
        .find(|f| f.ends_with(".bseg"))
        .unwrap();
    fs::remove_file(dir.join(&seg)).unwrap();
    let errs = [
        load_dir(&dir).map(|_| ()).expect_err("load"),
        read_ids(&dir).map(|_| ()).expect_err("read_ids"),
        append_tokens_dir(&dir, &[toks("b")], &["b"], AppendMode::Add)
            .map(|_| ())
            .expect_err("append"),
    ];
    for e in errs {
        assert!(matches!(e, Error::IndexFile { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("damaged") && msg.contains(&seg), "{msg}");
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_generation_never_wraps() {
    let dir = tempdir("generation");
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&[toks("alpha")], &["a"]).unwrap();
    save_dir(&mut idx, &tok(), &dir).unwrap();
    let path = dir.join(MANIFEST);
    let mut m = mf::parse(&fs::read(&path).unwrap(), &path).unwrap();
    m.generation = u64::MAX;
    fs::write(&path, mf::to_json(&m)).unwrap();
    let err = append_tokens_dir(&dir, &[toks("b")], &["b"], AppendMode::Add)
        .expect_err("overflow")
        .to_string();
    assert!(err.contains("cannot be increased"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

/// Makes `dir` hold the index saved in `other` (its segment, deletes and
/// manifest files), as another writer's commit would, while the caller
/// holds `dir`'s lock: a writer waiting for the lock then runs on it.
fn swap_in(dir: &Path, other: &Path) {
    for f in files(dir) {
        if f.starts_with("seg-") || f.starts_with("del-") || f == MANIFEST {
            fs::remove_file(dir.join(f)).unwrap();
        }
    }
    let mut names: Vec<String> = files(other)
        .into_iter()
        .filter(|f| f.starts_with("seg-") || f.starts_with("del-"))
        .collect();
    names.push(MANIFEST.to_string()); // last, as a commit would
    for f in names {
        fs::copy(other.join(&f), dir.join(&f)).unwrap();
    }
}

fn tokenizer(t: &TokenizerSettings) -> Tokenizer {
    Tokenizer::with_pattern(
        t.lowercase,
        t.stopwords.clone(),
        t.stemmer.as_deref(),
        t.pattern,
    )
    .unwrap()
}

/// Review 14c finding 1: an append of texts waiting for the lock while
/// another writer rebuilds the folder with other tokenizer settings must
/// tokenise with the settings it commits under (it read them before the
/// lock, so the document was stored unstemmed under a stemmed manifest).
#[test]
fn an_append_waiting_behind_a_rebuild_tokenises_with_the_new_settings() {
    let dir = tempdir("retok");
    let other = tempdir("retok-new");
    let plain = TokenizerSettings {
        stemmer: None,
        ..tok()
    };
    let (stemmed, base, ids) = (tok(), ["alpha runs", "beta quick"], ["a", "b"]);
    let mut old = SegmentedIndex::new(lucene());
    old.add_texts(&base, &ids, &tokenizer(&plain)).unwrap();
    save_dir(&mut old, &plain, &dir).unwrap();
    let mut new = SegmentedIndex::new(lucene());
    new.add_texts(&base, &ids, &tokenizer(&stemmed)).unwrap();
    save_dir(&mut new, &stemmed, &other).unwrap();

    let lock = lock_dir(&dir).unwrap();
    let writer = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            append_texts_dir(&dir, &["Gamma running quickly"], &["g"], AppendMode::Add)
        })
    };
    // The writer reaches the lock and waits (the bug read the settings first).
    std::thread::sleep(std::time::Duration::from_millis(300));
    swap_in(&dir, &other);
    drop(lock);
    let st = writer.join().unwrap().unwrap();
    assert_eq!((st.docs_added, st.docs_updated, st.live_docs), (1, 0, 3));

    // A fresh stemmed index of the same documents.
    new.add_texts(&["Gamma running quickly"], &["g"], &tokenizer(&stemmed))
        .unwrap();
    let (got, settings) = load_dir(&dir).unwrap();
    assert_eq!(settings, stemmed);
    for q in [["run"], ["quick"], ["gamma"]] {
        let want = new.search(&q, 10).unwrap();
        assert!(want.iter().any(|h| h.segment == 1), "{q:?}: {want:?}");
        assert_eq!(got.search(&q, 10).unwrap(), want, "{q:?}");
    }
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&other).unwrap();
}

/// Review 14c finding 2: the counts an append returns are those of the
/// folder it committed to, even when another writer's delete landed while
/// it waited for the lock (a before/after diff gave "added" 2^64 - 40).
#[test]
fn an_append_counts_the_folder_it_commits_to() {
    let dir = tempdir("counts");
    let other = tempdir("counts-new");
    let ids: Vec<String> = (0..100).map(|i| format!("d{i}")).collect();
    let docs: Vec<Vec<String>> = (0..100).map(|i| toks(&format!("w{i} x"))).collect();
    let mut idx = SegmentedIndex::new(lucene());
    idx.add_tokens(&docs, &ids).unwrap();
    save_dir(&mut idx, &tok(), &dir).unwrap();
    save_dir(&mut idx, &tok(), &other).unwrap();
    // The other writer deletes d0..d49 (d5 among them).
    let gone = delete_dir(&other, &ids[..50]).unwrap();
    assert_eq!((gone.docs_deleted, gone.live_docs), (50, 50));

    let lock = lock_dir(&dir).unwrap();
    let writer = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            // d5 and d60 are in the index before the delete; n0..n7 are new.
            let mut up: Vec<String> = vec!["d5".into(), "d60".into()];
            up.extend((0..8).map(|i| format!("n{i}")));
            let docs: Vec<Vec<String>> = up.iter().map(|i| toks(&format!("{i} y"))).collect();
            append_tokens_dir(&dir, &docs, &up, AppendMode::Upsert)
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    swap_in(&dir, &other);
    drop(lock);
    let st = writer.join().unwrap().unwrap();
    // d5 was deleted by then, so it is added; only d60 is updated.
    assert_eq!((st.docs_added, st.docs_updated, st.docs_deleted), (9, 1, 0));
    let live = read_ids(&dir).unwrap();
    assert_eq!(live.len(), 59);
    assert_eq!((st.live_docs, st.segments), (59, 2));
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&other).unwrap();
}
