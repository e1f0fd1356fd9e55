//! The segmented on-disk format (what issue 14 calls "format v2"): a
//! `SegmentedIndex` saved as a folder.
//!
//! ```text
//! INDEX_DIR/
//!   manifest.json                         written last (seg_manifest.rs)
//!   seg-<generation>-<random>.bseg        one per segment, immutable (seg_file.rs)
//!   del-<generation>-<random>.bdel        a segment's deletes, one per generation
//! ```
//! A save writes the new segment and deletes files under fresh names (never
//! over an existing file), fsyncs them and the folder, then writes the
//! manifest to a temporary file, fsyncs it, renames it over `manifest.json`
//! and fsyncs the folder. A process killed at any point therefore leaves the
//! previous manifest with all its files, or the new one with all of its.
//! After the rename, files of this format referenced by neither the new nor
//! the previous manifest are removed: a reader that has just read the
//! previous manifest still finds its files. A reader that finds a file
//! missing re-reads the manifest and retries when it changed (a writer
//! replaced it twice meanwhile). Loaders ignore files the manifest does not
//! name (left by a killed save).
//!
//! Writers are serialised: `save_dir`, `append_*_dir` and `delete_dir` hold
//! an exclusive advisory lock (`flock`-style, per open file) on `DIR/.lock`
//! from reading the manifest until the cleanup after the commit; a second
//! writer waits for the first (after saying so on stderr). Readers never take
//! the lock. A save of an index loaded from (or last saved to) the folder
//! refuses when the folder's manifest generation is no longer the one it came
//! from (another writer changed the folder): it never silently undoes their
//! change.
//!
//! Each segment remembers the files it was loaded from or saved to
//! (`Segment::stored`), so saving an index into the folder it came from
//! writes only new segments, new deletes generations and the manifest: an
//! append costs in proportion to the added documents.
//!
//! `to_bytes` / `from_bytes` (`seg_blob.rs`) give the same content as one
//! checksummed blob (pickling, Ray's object store).
//!
//! API: `save_dir(&mut index, &tokenizer_settings, dir) -> SaveStats`,
//! `load_dir(dir) -> (SegmentedIndex, TokenizerSettings)`,
//! `is_segmented_dir(path)`, `read_ids(dir)` (live ids without postings),
//! `read_segment_ids(segment_file)`, `to_bytes(&index, &settings)`,
//! `from_bytes(bytes)`. Errors are `Error::IndexFile` (file and field named),
//! `Error::Io`, or `Error::InvalidArgument` for an unsavable index.
//!
//! About 500 lines on purpose: the save protocol, the loader with its retry,
//! `read_ids` and the folder operations of `seg_append.rs` share the
//! crate-private helpers here (file writing, commit, checks).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustc_hash::FxHashSet;

use crate::error::{Error, Result};
use crate::persist::TokenizerSettings;
use crate::seg_file::{decode_deletes, decode_segment, encode_deletes, encode_segment};
use crate::seg_manifest::{self as mf, FileRef, Manifest, SegEntry, MANIFEST};
use crate::segment::Segment;
use crate::segmented::SegmentedIndex;

pub use crate::seg_append::{append_texts_dir, append_tokens_dir, delete_dir, AppendMode};
pub use crate::seg_blob::{from_bytes, to_bytes};
pub use crate::seg_file::read_segment_ids;

/// The files a segment was last loaded from or saved to.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The index folder, canonical.
    dir: PathBuf,
    seg: FileRef,
    /// The deletes file and the deleted count it holds (deletes only grow).
    del: Option<(FileRef, usize)>,
}

/// What a save wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaveStats {
    pub segments_written: usize,
    pub segments_reused: usize,
    pub deletes_written: usize,
    /// Bytes of segment, deletes and manifest files written.
    pub bytes_written: u64,
    /// Files no manifest refers to any more, removed after the save.
    pub files_removed: usize,
    /// Live documents and segments of the index the write committed (read
    /// under the folder lock, so another writer cannot skew them).
    pub live_docs: u64,
    pub segments: usize,
    /// Documents added (new ids), updated (ids that replaced a live
    /// document) and deleted by `seg_append`'s folder writers, counted under
    /// the lock; 0 for `save_dir`.
    pub docs_added: u64,
    pub docs_updated: u64,
    pub docs_deleted: u64,
}

/// Whether `path` is a folder holding a segmented index's manifest.
pub fn is_segmented_dir(path: &Path) -> bool {
    path.is_dir() && path.join(MANIFEST).is_file()
}

pub(crate) fn random_tag() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes a new file (never over an existing one) and fsyncs it.
pub(crate) fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<FileRef> {
    let path = dir.join(name);
    let r = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
    if let Err(e) = r {
        let _ = fs::remove_file(&path);
        return Err(Error::io(path, e));
    }
    Ok(FileRef {
        name: name.to_string(),
        bytes: bytes.len() as u64,
        crc32: crc32fast::hash(bytes),
    })
}

/// `f` is still in `dir` with its length (a cheap check before reusing it).
fn still_there(dir: &Path, f: &FileRef) -> bool {
    fs::metadata(dir.join(&f.name)).is_ok_and(|m| m.len() == f.bytes)
}

/// The manifest's bytes, or None when there is none.
pub(crate) fn read_manifest_bytes(dir: &Path) -> Result<Option<Vec<u8>>> {
    let path = dir.join(MANIFEST);
    let f = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut bytes = Vec::new();
    f.take(mf::MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(&path, e))?;
    Ok(Some(bytes))
}

fn generation_of(name: &str) -> Option<u64> {
    name.get(4..)?.split('-').next()?.parse().ok()
}

/// A generation above the manifest's and above any file name's in `dir`.
pub(crate) fn next_generation(dir: &Path, prev: Option<&Manifest>) -> Result<u64> {
    let mut generation = prev.map_or(0, |m| m.generation);
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))?.flatten() {
        if let Some(g) = e.file_name().to_str().and_then(generation_of) {
            generation = generation.max(g);
        }
    }
    generation.checked_add(1).ok_or_else(|| Error::IndexFile {
        path: dir.join(MANIFEST),
        reason: format!(
            "generation {generation} cannot be increased (corrupt manifest or file names)"
        ),
    })
}

/// The lock file that serialises writers of a folder.
pub const LOCK_FILE: &str = ".lock";

/// Takes the folder's writer lock (exclusive, advisory), waiting for another
/// writer to finish; released when the returned file is dropped.
pub(crate) fn lock_dir(dir: &Path) -> Result<fs::File> {
    let path = dir.join(LOCK_FILE);
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => return Ok(f),
        Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        Err(fs::TryLockError::WouldBlock) => {}
    }
    eprintln!(
        "bdnsca: another process is writing the index {}; waiting for it to finish",
        dir.display()
    );
    f.lock().map_err(|e| Error::io(&path, e))?;
    Ok(f)
}

/// The folder's manifest for a writer: `None` when there is none; one that
/// cannot be read or parsed (corrupt, or a newer version) is an error, so a
/// save never overwrites it and deletes its files.
pub(crate) fn manifest_for_writer(dir: &Path) -> Result<Option<Manifest>> {
    let Some(bytes) = read_manifest_bytes(dir)? else {
        return Ok(None);
    };
    mf::parse(&bytes, &dir.join(MANIFEST))
        .map(Some)
        .map_err(|e| Error::IndexFile {
            path: dir.join(MANIFEST),
            reason: format!(
                "the folder holds an index this version cannot read ({e}); refusing to write over \
             it: save to another folder, or remove it first"
            ),
        })
}

/// Saves `index` into the folder `dir` (created if needed), reusing the files
/// of segments already saved there; see the module comment for the protocol.
pub fn save_dir(
    index: &mut SegmentedIndex,
    tok: &TokenizerSettings,
    dir: &Path,
) -> Result<SaveStats> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let dir = fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let _lock = lock_dir(&dir)?;
    let prev = manifest_for_writer(&dir)?;
    if let Some((_, was)) = index.origin.as_ref().filter(|(d, _)| *d == dir) {
        let now = prev.as_ref().map(|m| m.generation);
        if now != Some(*was) {
            return Err(Error::invalid(format!(
                "index {} changed since it was loaded (generation {was}, now {}): load it again \
                 and redo the change (saving would undo another writer's change)",
                dir.display(),
                now.map_or_else(|| "no manifest".to_string(), |g| g.to_string())
            )));
        }
    }
    let generation = next_generation(&dir, prev.as_ref())?;
    let mut stats = SaveStats::default();
    let mut entries = Vec::with_capacity(index.segments.len());
    let mut stored = Vec::with_capacity(index.segments.len());
    for seg in &index.segments {
        let old = seg.stored.as_ref().filter(|s| s.dir == dir);
        let file = match old.filter(|s| still_there(&dir, &s.seg)) {
            Some(s) => {
                stats.segments_reused += 1;
                s.seg.clone()
            }
            None => {
                let bytes = encode_segment(&seg.data)?;
                let name = format!("seg-{generation:08}-{:016x}.bseg", random_tag());
                stats.segments_written += 1;
                stats.bytes_written += bytes.len() as u64;
                write_new(&dir, &name, &bytes)?
            }
        };
        let n_del = seg.n_deleted;
        let del = if n_del == 0 {
            None
        } else {
            match old
                .and_then(|s| s.del.as_ref())
                .filter(|(f, n)| *n == n_del && still_there(&dir, f))
            {
                Some((f, _)) => Some((f.clone(), n_del)),
                None => {
                    let bytes = encode_deletes(seg.data.n_docs(), seg.deleted_words());
                    let name = format!("del-{generation:08}-{:016x}.bdel", random_tag());
                    stats.deletes_written += 1;
                    stats.bytes_written += bytes.len() as u64;
                    Some((write_new(&dir, &name, &bytes)?, n_del))
                }
            }
        };
        entries.push(SegEntry {
            file: file.clone(),
            n_docs: seg.data.n_docs() as u64,
            deletes: del.as_ref().map(|(f, n)| (f.clone(), *n as u64)),
        });
        stored.push(Stored {
            dir: dir.clone(),
            seg: file,
            del,
        });
    }
    let manifest = Manifest {
        generation,
        params: index.params,
        tokenizer: tok.clone(),
        n_live: index.n_live() as u64,
        segments: entries,
    };
    commit(&dir, prev.as_ref(), &manifest, &mut stats)?;
    for (seg, s) in index.segments.iter_mut().zip(stored) {
        seg.stored = Some(s);
    }
    index.origin = Some((dir, generation));
    Ok(stats)
}

/// Makes `manifest` the folder's index once its files are written: fsyncs
/// the folder, writes the manifest to a temporary file, fsyncs it, renames it
/// over `manifest.json`, fsyncs the folder; then removes this format's files
/// named by neither `manifest` nor `prev` (the manifest it replaces).
pub(crate) fn commit(
    dir: &Path,
    prev: Option<&Manifest>,
    manifest: &Manifest,
    stats: &mut SaveStats,
) -> Result<()> {
    sync_dir(dir)?;
    let bytes = mf::to_json(manifest);
    let tmp = format!(".{MANIFEST}.tmp-{:016x}", random_tag());
    write_new(dir, &tmp, &bytes)?;
    if let Err(e) = fs::rename(dir.join(&tmp), dir.join(MANIFEST)) {
        let _ = fs::remove_file(dir.join(&tmp));
        return Err(Error::io(dir.join(MANIFEST), e));
    }
    sync_dir(dir)?;
    stats.bytes_written += bytes.len() as u64;
    stats.live_docs = manifest.n_live;
    stats.segments = manifest.segments.len();
    // Cleanup: a failure here leaves stray files that loaders ignore.
    let mut keep: FxHashSet<String> = FxHashSet::default();
    for m in std::iter::once(manifest).chain(prev) {
        for e in &m.segments {
            keep.insert(e.file.name.clone());
            keep.extend(e.deletes.as_ref().map(|d| d.0.name.clone()));
        }
    }
    if let Ok(list) = fs::read_dir(dir) {
        for e in list.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = (name.starts_with("seg-") && mf::valid_name(name, ".bseg"))
                || (name.starts_with("del-") && mf::valid_name(name, ".bdel"));
            // A killed save's temporary manifest, once surely abandoned.
            let stale_tmp = name.starts_with(&format!(".{MANIFEST}.tmp-"))
                && e.metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 600);
            if (ours && !keep.contains(name) || stale_tmp) && fs::remove_file(e.path()).is_ok() {
                stats.files_removed += 1;
            }
        }
    }
    Ok(())
}

/// Checks a file's length and CRC against the manifest.
pub(crate) fn check_file(bytes: &[u8], f: &FileRef, path: &Path) -> Result<()> {
    if bytes.len() as u64 != f.bytes {
        return Err(Error::IndexFile {
            path: path.to_path_buf(),
            reason: format!(
                "file has {} bytes, the manifest says {} (truncated or corrupt)",
                bytes.len(),
                f.bytes
            ),
        });
    }
    if crc32fast::hash(bytes) != f.crc32 {
        return Err(Error::IndexFile {
            path: path.to_path_buf(),
            reason: "checksum does not match the manifest's (corrupt file)".into(),
        });
    }
    Ok(())
}

/// One segment from its files' bytes, checked against its manifest entry.
pub(crate) fn decode_entry(
    e: &SegEntry,
    seg: &[u8],
    del: Option<&[u8]>,
    seg_path: &Path,
    del_path: &Path,
) -> Result<Segment> {
    check_file(seg, &e.file, seg_path)?;
    let data = decode_segment(seg, seg_path)?;
    if data.n_docs() as u64 != e.n_docs {
        return Err(Error::IndexFile {
            path: seg_path.to_path_buf(),
            reason: format!(
                "segment holds {} documents, the manifest says {}",
                data.n_docs(),
                e.n_docs
            ),
        });
    }
    let mut seg = Segment::new(data);
    if let (Some((f, _)), Some(bytes)) = (&e.deletes, del) {
        check_file(bytes, f, del_path)?;
        for d in decode_deletes(bytes, seg.data.n_docs(), del_path)? {
            seg.delete(d);
        }
    }
    if let Some((_, n)) = &e.deletes {
        if seg.n_deleted as u64 != *n {
            return Err(Error::IndexFile {
                path: del_path.to_path_buf(),
                reason: format!("{} documents deleted, the manifest says {n}", seg.n_deleted),
            });
        }
    }
    Ok(seg)
}

/// The index of `m`'s segments; a live id in two segments is an error.
pub(crate) fn assemble(
    m: &Manifest,
    segments: Vec<Segment>,
    where_: &Path,
) -> Result<SegmentedIndex> {
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    for (i, s) in segments.iter().enumerate() {
        for (d, id) in s.data.ids.iter().enumerate() {
            if s.is_live(d as u32) && !seen.insert(id) {
                return Err(Error::IndexFile {
                    path: where_.to_path_buf(),
                    reason: format!(
                        "document id {id:?} is live in segment {i} and an earlier one (corrupt index)"
                    ),
                });
            }
        }
    }
    Ok(SegmentedIndex::from_segments(m.params, segments))
}

pub(crate) fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Runs `attempt(manifest)` on the folder's manifest; when it fails because a
/// file is missing and the manifest has changed since it was read, reads the
/// new manifest and tries again (a concurrent save replaced it).
fn with_manifest<T>(dir: &Path, attempt: impl Fn(&Path, &Manifest) -> Result<T>) -> Result<T> {
    let dir = fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(MANIFEST);
    let missing = || Error::IndexFile {
        path: dir.clone(),
        reason: format!(
            "no {MANIFEST}: not a bdnsca segmented index, or one never saved completely"
        ),
    };
    let mut bytes = read_manifest_bytes(&dir)?.ok_or_else(missing)?;
    let mut tries = 0;
    loop {
        let m = mf::parse(&bytes, &path)?;
        match attempt(&dir, &m) {
            Err(e) if is_not_found(&e) && tries < 20 => {
                let now = read_manifest_bytes(&dir)?.ok_or_else(missing)?;
                if now == bytes {
                    return Err(damaged(e));
                }
                bytes = now;
                tries += 1;
            }
            Err(e) if is_not_found(&e) => return Err(damaged(e)),
            r => return r,
        }
    }
}

/// A file the manifest names is missing (after the retries): the index is
/// damaged; say so, naming the file.
pub(crate) fn damaged(e: Error) -> Error {
    match e {
        Error::Io { path, source } if source.kind() == std::io::ErrorKind::NotFound => {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            Error::IndexFile {
                reason: format!(
                    "{MANIFEST} names {name}, which is missing: the index is damaged (for \
                     example by a crash of an older bdnsca or files removed by hand); restore \
                     it from a copy or rebuild it with `bdnsca index --corpus`"
                ),
                path,
            }
        }
        e => e,
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

/// Loads the index saved in the folder `dir`, with its tokenizer settings.
/// Every file's length and CRC are checked, and every segment's structure
/// (`seg_file.rs`); errors name the file and the field.
pub fn load_dir(dir: &Path) -> Result<(SegmentedIndex, TokenizerSettings)> {
    with_manifest(dir, |dir, m| {
        let segments = m
            .segments
            .par_iter()
            .map(|e| {
                let seg_path = dir.join(&e.file.name);
                let seg_bytes = read(&seg_path)?;
                let del_path = e
                    .deletes
                    .as_ref()
                    .map_or_else(PathBuf::new, |d| dir.join(&d.0.name));
                let del_bytes = match &e.deletes {
                    Some(_) => Some(read(&del_path)?),
                    None => None,
                };
                let mut seg =
                    decode_entry(e, &seg_bytes, del_bytes.as_deref(), &seg_path, &del_path)?;
                seg.stored = Some(Stored {
                    dir: dir.to_path_buf(),
                    seg: e.file.clone(),
                    del: e.deletes.as_ref().map(|(f, n)| (f.clone(), *n as usize)),
                });
                Ok(seg)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut index = assemble(m, segments, dir)?;
        index.origin = Some((dir.to_path_buf(), m.generation));
        Ok((index, m.tokenizer.clone()))
    })
}

/// The live document ids of the index in `dir`, in index order, read from the
/// manifest, the segments' ids sections and the deletes files, without
/// parsing postings (fast duplicate checks for `--append` / `--delete`).
pub fn read_ids(dir: &Path) -> Result<Vec<String>> {
    with_manifest(dir, |dir, m| {
        let mut out = Vec::new();
        for e in &m.segments {
            let (ids, gone) = ids_and_deletes(dir, e)?;
            let mut live = vec![true; ids.len()];
            for d in gone {
                live[d as usize] = false;
            }
            out.extend(ids.into_iter().zip(live).filter(|x| x.1).map(|x| x.0));
        }
        Ok(out)
    })
}

/// A segment's ids and its deleted documents (ascending), read without its
/// postings and checked against its manifest entry.
pub(crate) fn ids_and_deletes(dir: &Path, e: &SegEntry) -> Result<(Vec<String>, Vec<u32>)> {
    let seg_path = dir.join(&e.file.name);
    let len = fs::metadata(&seg_path)
        .map_err(|x| Error::io(&seg_path, x))?
        .len();
    if len != e.file.bytes {
        return Err(Error::IndexFile {
            path: seg_path,
            reason: format!("file has {len} bytes, the manifest says {}", e.file.bytes),
        });
    }
    let ids = read_segment_ids(&seg_path)?;
    if ids.len() as u64 != e.n_docs {
        return Err(Error::IndexFile {
            path: seg_path,
            reason: format!(
                "{} ids, the manifest says {} documents",
                ids.len(),
                e.n_docs
            ),
        });
    }
    let mut gone = Vec::new();
    if let Some((f, n)) = &e.deletes {
        let p = dir.join(&f.name);
        let bytes = read(&p)?;
        check_file(&bytes, f, &p)?;
        gone = decode_deletes(&bytes, ids.len(), &p)?;
        if gone.len() as u64 != *n {
            return Err(Error::IndexFile {
                path: p,
                reason: format!("{} deleted, the manifest says {n}", gone.len()),
            });
        }
    }
    Ok((ids, gone))
}

/// An index of one decoded segment, with no deletes (the fuzz targets).
#[doc(hidden)]
pub fn index_of_segment(
    data: crate::segment::SegmentData,
    params: crate::scoring::Params,
) -> SegmentedIndex {
    SegmentedIndex::from_segments(params, vec![Segment::new(data)])
}

#[cfg(test)]
#[path = "seg_persist_tests.rs"]
mod tests;
