//! Adding, updating and deleting documents of a saved segmented index
//! without loading it (`bdnsca index --append / --delete / --upsert`): only
//! the manifest, the segments' ids sections and the deletes files are read;
//! a new segment file for the added documents, a new deletes file for each
//! segment that loses documents, and the manifest are written (the protocol
//! of `seg_persist.rs`). The cost is the added documents plus a read of the
//! ids, not a load of the postings (issue 14 §1: adding 1% to a 1M-document
//! index must cost < 5% of a rebuild).
//!
//! The result is the folder that load + `SegmentedIndex::add_tokens` /
//! `update_tokens` / `delete` + `save_dir` would write (same segment and
//! deletes contents, in the same order), so scores equal a fresh build's.
//! Every input is checked before anything is written. Each operation holds
//! the folder's writer lock (`seg_persist::lock_dir`) from reading the
//! manifest to the cleanup after its commit.

use std::path::Path;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Error, Result};
use crate::seg_file::{encode_deletes, encode_segment};
use crate::seg_manifest::{self as mf, Manifest, SegEntry, MANIFEST};
use crate::seg_persist::{
    commit, damaged, ids_and_deletes, lock_dir, next_generation, random_tag, read_manifest_bytes,
    write_new, SaveStats,
};
use crate::segment::SegmentData;
use crate::segmented::emit_text_tokens;
use crate::tokenizer::Tokenizer;

/// How added ids meet the ids already in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendMode {
    /// Every id is new (an id in the index is an error).
    Add,
    /// Every id is in the index; its old version is deleted.
    Update,
    /// Ids in the index are updated, the others added.
    Upsert,
}

/// A saved index's manifest, and per segment its ids and deletes bitset.
struct Opened {
    dir: std::path::PathBuf,
    manifest: Manifest,
    ids: Vec<Vec<String>>,
    deleted: Vec<Vec<u64>>,
    /// The folder's writer lock, held until the write is committed.
    _lock: std::fs::File,
}

fn open(dir: &Path) -> Result<Opened> {
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let lock = lock_dir(&dir)?;
    let bytes = read_manifest_bytes(&dir)?.ok_or_else(|| Error::IndexFile {
        path: dir.clone(),
        reason: format!("no {MANIFEST}: not a bdnsca segmented index"),
    })?;
    let manifest = mf::parse(&bytes, &dir.join(MANIFEST))?;
    let mut ids = Vec::with_capacity(manifest.segments.len());
    let mut deleted = Vec::with_capacity(manifest.segments.len());
    for e in &manifest.segments {
        let (seg_ids, gone) = ids_and_deletes(&dir, e).map_err(damaged)?;
        let mut words = vec![0u64; seg_ids.len().div_ceil(64)];
        for d in gone {
            words[d as usize / 64] |= 1 << (d % 64);
        }
        ids.push(seg_ids);
        deleted.push(words);
    }
    Ok(Opened {
        dir,
        manifest,
        ids,
        deleted,
        _lock: lock,
    })
}

impl Opened {
    /// The stats of a write that writes nothing: the folder's counts as read.
    fn unchanged(&self) -> SaveStats {
        SaveStats {
            live_docs: self.manifest.n_live,
            segments: self.manifest.segments.len(),
            ..SaveStats::default()
        }
    }

    /// Live id -> (segment, document).
    fn locate(&self) -> FxHashMap<&str, (usize, u32)> {
        let mut out = FxHashMap::default();
        for (s, (ids, words)) in self.ids.iter().zip(&self.deleted).enumerate() {
            for (d, id) in ids.iter().enumerate() {
                if (words[d / 64] >> (d % 64)) & 1 == 0 {
                    out.insert(id.as_str(), (s, d as u32));
                }
            }
        }
        out
    }

    /// Marks `docs` deleted, writes the deletes files of the segments that
    /// changed, appends `added`, and commits the new manifest.
    fn write(mut self, docs: &[(usize, u32)], added: Option<SegmentData>) -> Result<SaveStats> {
        let mut stats = SaveStats::default();
        let generation = next_generation(&self.dir, Some(&self.manifest))?;
        let mut changed = vec![false; self.ids.len()];
        for &(s, d) in docs {
            self.deleted[s][d as usize / 64] |= 1 << (d % 64);
            changed[s] = true;
        }
        let mut segments = self.manifest.segments.clone();
        for (s, e) in segments.iter_mut().enumerate() {
            if !changed[s] {
                continue;
            }
            let n_deleted: u64 = self.deleted[s].iter().map(|w| w.count_ones() as u64).sum();
            let bytes = encode_deletes(self.ids[s].len(), &self.deleted[s]);
            let name = format!("del-{generation:08}-{:016x}.bdel", random_tag());
            stats.deletes_written += 1;
            stats.bytes_written += bytes.len() as u64;
            e.deletes = Some((write_new(&self.dir, &name, &bytes)?, n_deleted));
        }
        stats.segments_reused = segments.len();
        if let Some(data) = added {
            let bytes = encode_segment(&data)?;
            let name = format!("seg-{generation:08}-{:016x}.bseg", random_tag());
            stats.segments_written += 1;
            stats.bytes_written += bytes.len() as u64;
            segments.push(SegEntry {
                file: write_new(&self.dir, &name, &bytes)?,
                n_docs: data.n_docs() as u64,
                deletes: None,
            });
        }
        let n_live = segments
            .iter()
            .map(|e| e.n_docs - e.deletes.as_ref().map_or(0, |d| d.1))
            .sum();
        let manifest = Manifest {
            generation,
            params: self.manifest.params,
            tokenizer: self.manifest.tokenizer.clone(),
            n_live,
            segments,
        };
        commit(&self.dir, Some(&self.manifest), &manifest, &mut stats)?;
        Ok(stats)
    }
}

fn check_lengths<I>(docs: usize, ids: &[I]) -> Result<()> {
    if ids.len() != docs {
        return Err(Error::invalid(format!(
            "got {} ids for {docs} documents",
            ids.len()
        )));
    }
    Ok(())
}

/// Appends `docs` to the index `opened` holds locked. Every count in the
/// returned stats is taken under that lock, so another writer cannot skew it.
fn append_with<T: Sync, I: AsRef<str>, F>(
    opened: Opened,
    docs: &[T],
    ids: &[I],
    mode: AppendMode,
    emit_of: &F,
) -> Result<SaveStats>
where
    F: Fn(&T, &mut dyn FnMut(&str, u32)) + Sync,
{
    let mut replaced = Vec::new();
    {
        let locate = opened.locate();
        for id in ids {
            let id = id.as_ref();
            match (locate.get(id), mode) {
                (Some(_), AppendMode::Add) => {
                    return Err(Error::invalid(format!(
                        "document id {id:?} is already in the index: update it, or delete it first"
                    )))
                }
                (None, AppendMode::Update) => {
                    return Err(Error::invalid(format!(
                        "document id {id:?} is not in the index, so it cannot be updated: add it"
                    )))
                }
                (Some(&at), _) => replaced.push(at),
                (None, _) => {}
            }
        }
    }
    if docs.is_empty() {
        return Ok(opened.unchanged());
    }
    let owned: Vec<String> = ids.iter().map(|i| i.as_ref().to_string()).collect();
    // Checks duplicates within `ids` before anything is written.
    let data = SegmentData::build(docs, owned, emit_of)?;
    let mut stats = opened.write(&replaced, Some(data))?;
    stats.docs_updated = replaced.len() as u64;
    // `replaced` holds at most one entry per id, and ids.len() == docs.len().
    stats.docs_added = (docs.len() - replaced.len()) as u64;
    Ok(stats)
}

/// Adds (or updates, per `mode`) pre-tokenised documents to the index saved
/// in `dir`, as one new segment.
pub fn append_tokens_dir<D: AsRef<[S]> + Sync, S: AsRef<str>, I: AsRef<str>>(
    dir: &Path,
    docs: &[D],
    ids: &[I],
    mode: AppendMode,
) -> Result<SaveStats> {
    check_lengths(docs.len(), ids)?;
    let emit_of = |d: &D, emit: &mut dyn FnMut(&str, u32)| {
        d.as_ref().iter().for_each(|t| emit(t.as_ref(), 1))
    };
    append_with(open(dir)?, docs, ids, mode, &emit_of)
}

/// Adds (or updates) raw texts, tokenised with the index's own saved
/// tokenizer settings.
pub fn append_texts_dir<S: AsRef<str> + Sync, I: AsRef<str>>(
    dir: &Path,
    texts: &[S],
    ids: &[I],
    mode: AppendMode,
) -> Result<SaveStats> {
    check_lengths(texts.len(), ids)?;
    // The tokenizer comes from the manifest read under the lock: one read
    // before it could be another writer's settings by the time it is taken.
    let opened = open(dir)?;
    let t = &opened.manifest.tokenizer;
    let tokenizer = Tokenizer::with_pattern(
        t.lowercase,
        t.stopwords.clone(),
        t.stemmer.as_deref(),
        t.pattern,
    )?;
    let emit_of = emit_text_tokens::<S>(&tokenizer);
    append_with(opened, texts, ids, mode, &emit_of)
}

/// Deletes documents of the index saved in `dir`: an id not in the index, or
/// listed twice, is an error and nothing is written.
pub fn delete_dir<I: AsRef<str>>(dir: &Path, ids: &[I]) -> Result<SaveStats> {
    let opened = open(dir)?;
    let mut docs = Vec::with_capacity(ids.len());
    {
        let locate = opened.locate();
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for id in ids {
            let id = id.as_ref();
            let Some(&at) = locate.get(id) else {
                return Err(Error::invalid(format!(
                    "document id {id:?} is not in the index (nothing was deleted)"
                )));
            };
            if !seen.insert(id) {
                return Err(Error::invalid(format!(
                    "document id {id:?} is listed twice (nothing was deleted)"
                )));
            }
            docs.push(at);
        }
    }
    if docs.is_empty() {
        return Ok(opened.unchanged());
    }
    let n = docs.len() as u64;
    let mut stats = opened.write(&docs, None)?;
    stats.docs_deleted = n;
    Ok(stats)
}
