//! `SegmentedIndex`: a BM25 index that takes added, deleted and updated
//! documents without a rebuild, and merges its segments on request. The
//! storage and the exactness argument are in `segment.rs`; queries are in
//! `segmented_query.rs`.
//!
//! Every operation checks all of its input before it changes anything, so an
//! error leaves the index as it was.

use std::sync::OnceLock;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Error, Result};
use crate::scoring::Params;
use crate::segment::{Segment, SegmentData};
use crate::tokenizer::Tokenizer;

pub struct SegmentedIndex {
    pub(crate) params: Params,
    pub(crate) segments: Vec<Segment>,
    /// Live id -> (segment, document in the segment), built on first use
    /// (`locate`): `BM25.index` never needs it, and at 200k documents it cost
    /// about 5% of the build (issue 14).
    locate: OnceLock<FxHashMap<String, (u32, u32)>>,
    /// The folder (canonical) and manifest generation this index was last
    /// loaded from or saved to: `seg_persist::save_dir` refuses to save back
    /// over a folder whose manifest has changed since (another writer).
    pub(crate) origin: Option<(std::path::PathBuf, u64)>,
}

impl SegmentedIndex {
    /// An empty index: every query finds nothing until documents are added.
    pub fn new(params: Params) -> Self {
        SegmentedIndex {
            params,
            segments: Vec::new(),
            locate: OnceLock::new(),
            origin: None,
        }
    }

    /// An index of these segments (`seg_persist.rs`'s loader); the caller has
    /// checked that no live id is in two segments.
    pub(crate) fn from_segments(params: Params, segments: Vec<Segment>) -> Self {
        SegmentedIndex {
            params,
            segments,
            locate: OnceLock::new(),
            origin: None,
        }
    }

    /// Live id -> (segment, document), built from the segments on first call.
    fn locate(&self) -> &FxHashMap<String, (u32, u32)> {
        self.locate.get_or_init(|| locate_of(&self.segments))
    }

    /// The id map taken out to change it (put it back with `OnceLock::from`).
    fn take_locate(&mut self) -> FxHashMap<String, (u32, u32)> {
        self.locate
            .take()
            .unwrap_or_else(|| locate_of(&self.segments))
    }

    pub fn params(&self) -> Params {
        self.params
    }

    /// Changes the BM25 method or parameters: segments hold statistics, not
    /// weights, so nothing is rebuilt.
    pub fn set_params(&mut self, params: Params) {
        self.params = params;
    }

    /// Bytes held by the segments (not the flat index compiled from them).
    pub fn memory_bytes(&self) -> usize {
        self.segments.iter().map(|s| s.memory_bytes()).sum()
    }

    pub fn n_segments(&self) -> usize {
        self.segments.len()
    }

    /// Documents not deleted.
    pub fn n_live(&self) -> usize {
        self.segments.iter().map(|s| s.n_live()).sum()
    }

    /// Sum of the live documents' lengths.
    pub(crate) fn live_len(&self) -> u64 {
        self.segments.iter().map(|s| s.live_len()).sum()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.locate().contains_key(id)
    }

    /// The live documents' ids in index order: the order of `get_scores`, and
    /// of the documents a fresh `Bm25Index` of the live documents would hold.
    pub fn live_ids(&self) -> Vec<&str> {
        let mut out = Vec::with_capacity(self.n_live());
        for s in &self.segments {
            for (d, id) in s.data.ids.iter().enumerate() {
                if s.is_live(d as u32) {
                    out.push(id.as_str());
                }
            }
        }
        out
    }

    /// Adds pre-tokenised documents as a new segment; an id already in the
    /// index, or twice in `ids`, is an error (use `update` to replace).
    pub fn add_tokens<D: AsRef<[S]> + Sync, S: AsRef<str>, I: AsRef<str>>(
        &mut self,
        docs: &[D],
        ids: &[I],
    ) -> Result<()> {
        self.add_with(docs, ids, false, &emit_tokens::<D, S>)
    }

    /// Adds raw texts, tokenised with `tokenizer`, as a new segment.
    pub fn add_texts<S: AsRef<str> + Sync, I: AsRef<str>>(
        &mut self,
        texts: &[S],
        ids: &[I],
        tokenizer: &Tokenizer,
    ) -> Result<()> {
        self.add_with(texts, ids, false, &emit_text_tokens::<S>(tokenizer))
    }

    /// Replaces the documents with these ids (every one must be in the index):
    /// the old versions are deleted and the new ones appended as a new segment.
    pub fn update_tokens<D: AsRef<[S]> + Sync, S: AsRef<str>, I: AsRef<str>>(
        &mut self,
        docs: &[D],
        ids: &[I],
    ) -> Result<()> {
        self.add_with(docs, ids, true, &emit_tokens::<D, S>)
    }

    /// Replaces the documents with these ids by raw texts, tokenised with
    /// `tokenizer` (as `update_tokens`).
    pub fn update_texts<S: AsRef<str> + Sync, I: AsRef<str>>(
        &mut self,
        texts: &[S],
        ids: &[I],
        tokenizer: &Tokenizer,
    ) -> Result<()> {
        self.add_with(texts, ids, true, &emit_text_tokens::<S>(tokenizer))
    }

    /// Appends `other`'s segments (shared, not copied) after this index's, so
    /// indexes built separately (shards) become one. Both must score with the
    /// same parameters, and no live id may be in both (nothing changes then).
    pub fn append(&mut self, other: &SegmentedIndex) -> Result<()> {
        let (a, b) = (self.params, other.params);
        if a.method != b.method
            || a.k1.to_bits() != b.k1.to_bits()
            || a.b.to_bits() != b.b.to_bits()
            || a.delta.to_bits() != b.delta.to_bits()
        {
            return Err(Error::invalid(format!(
                "cannot join indexes with different BM25 parameters ({} k1={} b={} delta={} vs {} k1={} b={} delta={})",
                self.params.method.name(),
                self.params.k1,
                self.params.b,
                self.params.delta,
                other.params.method.name(),
                other.params.k1,
                other.params.b,
                other.params.delta
            )));
        }
        if let Some(id) = other.live_ids().into_iter().find(|id| self.contains(id)) {
            return Err(Error::invalid(format!(
                "document id {id:?} is in both indexes (nothing was joined)"
            )));
        }
        if self.segments.len() + other.segments.len() > u32::MAX as usize {
            return Err(Error::invalid(
                "an index holds at most 4,294,967,295 segments: merge it",
            ));
        }
        if let Some(locate) = self.locate.get_mut() {
            let base = self.segments.len() as u32;
            for (id, &(s, d)) in other.locate() {
                locate.insert(id.clone(), (s + base, d));
            }
        }
        self.segments.extend(other.segments.iter().cloned());
        Ok(())
    }

    fn add_with<T: Sync, I: AsRef<str>, F>(
        &mut self,
        docs: &[T],
        ids: &[I],
        replace: bool,
        emit_of: &F,
    ) -> Result<()>
    where
        F: Fn(&T, &mut dyn FnMut(&str, u32)) + Sync,
    {
        if ids.len() != docs.len() {
            return Err(Error::invalid(format!(
                "got {} ids for {} documents",
                ids.len(),
                docs.len()
            )));
        }
        // An index without documents has no id to collide with (and a fresh
        // `index` then never builds the map).
        let empty = FxHashMap::default();
        let locate = if self.segments.is_empty() {
            &empty
        } else {
            self.locate()
        };
        for id in ids {
            let id = id.as_ref();
            match (locate.contains_key(id), replace) {
                (true, false) => {
                    return Err(Error::invalid(format!(
                        "document id {id:?} is already in the index: update it, or delete it first"
                    )))
                }
                (false, true) => {
                    return Err(Error::invalid(format!(
                        "document id {id:?} is not in the index, so it cannot be updated: add it"
                    )))
                }
                _ => {}
            }
        }
        if docs.is_empty() {
            return Ok(());
        }
        if self.segments.len() >= u32::MAX as usize {
            return Err(Error::invalid(
                "an index holds at most 4,294,967,295 segments: merge it",
            ));
        }
        let owned: Vec<String> = ids.iter().map(|i| i.as_ref().to_string()).collect();
        // Checks duplicates within `ids` before anything changes.
        let data = SegmentData::build(docs, owned, emit_of)?;
        if replace {
            let mut locate = self.take_locate();
            for id in ids {
                if let Some((s, d)) = locate.remove(id.as_ref()) {
                    self.segments[s as usize].delete(d);
                }
            }
            self.locate = OnceLock::from(locate);
        }
        let s = self.segments.len() as u32;
        if let Some(locate) = self.locate.get_mut() {
            for (d, id) in data.ids.iter().enumerate() {
                locate.insert(id.clone(), (s, d as u32));
            }
        }
        self.segments.push(Segment::new(data));
        Ok(())
    }

    /// Deletes the documents with these ids; an id not in the index, or listed
    /// twice, is an error and nothing is deleted.
    pub fn delete<I: AsRef<str>>(&mut self, ids: &[I]) -> Result<()> {
        // An unknown id is reported before a repeated one, wherever each is.
        let locate = self.locate();
        if let Some(id) = ids
            .iter()
            .map(|i| i.as_ref())
            .find(|i| !locate.contains_key(*i))
        {
            return Err(Error::invalid(format!(
                "document id {id:?} is not in the index (nothing was deleted)"
            )));
        }
        let mut seen: FxHashSet<&str> = FxHashSet::default();
        for id in ids {
            let id = id.as_ref();
            if !seen.insert(id) {
                return Err(Error::invalid(format!(
                    "document id {id:?} is listed twice (nothing was deleted)"
                )));
            }
        }
        let mut locate = self.take_locate();
        for id in ids {
            if let Some((s, d)) = locate.remove(id.as_ref()) {
                self.segments[s as usize].delete(d);
            }
        }
        self.locate = OnceLock::from(locate);
        Ok(())
    }

    /// Joins adjacent segments until at most `max_segments` remain, smallest
    /// adjacent pair first, and rewrites every segment that has deletes
    /// without them (a segment with no live document is dropped). Documents
    /// keep their order, so scores and hits do not change.
    pub fn merge(&mut self, max_segments: usize) -> Result<()> {
        if max_segments == 0 {
            return Err(Error::invalid("merge needs max_segments >= 1"));
        }
        // Segments with a live document, and groups of adjacent ones as
        // [start, end) ranges of `keep` with their live counts.
        let keep: Vec<usize> = (0..self.segments.len())
            .filter(|&i| self.segments[i].n_live() > 0)
            .collect();
        let mut groups: Vec<(usize, usize, usize)> = keep
            .iter()
            .enumerate()
            .map(|(i, &s)| (i, i + 1, self.segments[s].n_live()))
            .collect();
        while groups.len() > max_segments {
            let j = (0..groups.len() - 1)
                .min_by_key(|&j| groups[j].2 + groups[j + 1].2)
                .unwrap_or(0);
            let next = groups.remove(j + 1);
            groups[j].1 = next.1;
            groups[j].2 += next.2;
        }
        // Build every rewritten segment before changing anything.
        let mut built: Vec<Option<SegmentData>> = Vec::with_capacity(groups.len());
        for &(start, end, _) in &groups {
            let first = &self.segments[keep[start]];
            if end - start == 1 && first.n_deleted == 0 {
                built.push(None);
            } else {
                let parts: Vec<&Segment> = keep[start..end]
                    .iter()
                    .map(|&s| &self.segments[s])
                    .collect();
                built.push(Some(rebuild(&parts)?));
            }
        }
        let mut old: Vec<Option<Segment>> = std::mem::take(&mut self.segments)
            .into_iter()
            .map(Some)
            .collect();
        let mut merged = Vec::with_capacity(groups.len());
        for (&(start, _, _), data) in groups.iter().zip(built) {
            match data {
                Some(data) => merged.push(Segment::new(data)),
                None => merged.extend(old[keep[start]].take()),
            }
        }
        self.segments = merged;
        self.relocate();
        Ok(())
    }

    /// Forgets the id map (rebuilt on next use) after segments were renumbered.
    fn relocate(&mut self) {
        self.locate = OnceLock::new();
    }
}

/// Live id -> (segment, document) of these segments.
fn locate_of(segments: &[Segment]) -> FxHashMap<String, (u32, u32)> {
    let mut locate = FxHashMap::default();
    for (s, seg) in segments.iter().enumerate() {
        for (d, id) in seg.data.ids.iter().enumerate() {
            if seg.is_live(d as u32) {
                locate.insert(id.clone(), (s as u32, d as u32));
            }
        }
    }
    locate
}

/// One segment holding the live documents of `parts`, in order.
fn rebuild(parts: &[&Segment]) -> Result<SegmentData> {
    let mut docs: Vec<(usize, u32)> = Vec::new();
    let mut ids = Vec::new();
    for (p, s) in parts.iter().enumerate() {
        for d in 0..s.data.n_docs() as u32 {
            if s.is_live(d) {
                docs.push((p, d));
                ids.push(s.data.ids[d as usize].clone());
            }
        }
    }
    let terms: Vec<Vec<&str>> = parts.iter().map(|s| s.data.terms()).collect();
    SegmentData::build(
        &docs,
        ids,
        &|&(p, d): &(usize, u32), emit: &mut dyn FnMut(&str, u32)| {
            let (ts, tfs) = parts[p].data.forward(d);
            for (&t, &tf) in ts.iter().zip(tfs) {
                emit(terms[p][t as usize], tf);
            }
        },
    )
}

/// Emits each token of a pre-tokenised document once (the `add_with` callback
/// of `add_tokens` and `update_tokens`).
fn emit_tokens<D: AsRef<[S]>, S: AsRef<str>>(d: &D, emit: &mut dyn FnMut(&str, u32)) {
    d.as_ref().iter().for_each(|t| emit(t.as_ref(), 1))
}

/// What a token callback feeds: each term with its count.
pub(crate) type Emit<'e> = dyn FnMut(&str, u32) + 'e;

/// The token callback of a raw text: `tokenizer`'s tokens, each counted once.
pub(crate) fn emit_text_tokens<S: AsRef<str>>(
    tokenizer: &Tokenizer,
) -> impl Fn(&S, &mut Emit) + Sync + '_ {
    move |t: &S, emit: &mut Emit| tokenizer.for_each_token(t.as_ref(), |tok| emit(tok, 1))
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
