//! One versioned binary file per index, checksummed, written atomically.
//!
//! Layout (little-endian): magic, format version, parameters and counts, then
//! the arrays, the vocabulary, the document ids and the tokenizer settings, and
//! last the CRC-32 of everything before it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::index::Bm25Index;
use crate::scoring::{Method, Params};

const MAGIC: &[u8; 8] = b"BDNSCAIX";
pub const FORMAT_VERSION: u32 = 1;

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}
fn put_f64(buf: &mut Vec<u8>, v: f64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a
/// rename, so a failed write never leaves half a file where a good one was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{}: not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp: PathBuf = dir.join(tmp_name);
    let result = (|| -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// What an index file holds besides the index: the document ids and the
/// tokenizer settings that queries must be tokenised with.
pub struct Saved {
    pub index: Bm25Index,
    pub ids: Vec<String>,
    pub tokenizer: TokenizerSettings,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TokenizerSettings {
    pub lowercase: bool,
    pub stopwords: Vec<String>,
    pub stemmer: Option<String>,
}

fn put_strings<S: AsRef<str>>(buf: &mut Vec<u8>, items: &[S]) {
    put_u64(buf, items.len() as u64);
    for s in items {
        let s = s.as_ref();
        put_u32(buf, s.len() as u32);
        buf.extend_from_slice(s.as_bytes());
    }
}

pub fn to_bytes(index: &Bm25Index, ids: &[String], tok: &TokenizerSettings) -> Vec<u8> {
    let terms = index.terms();
    let n_terms = terms.len();
    let vocab_bytes: usize = terms.iter().map(|t| t.len() + 4).sum();
    let mut buf = Vec::with_capacity(
        256 + index.indptr.len() * 8
            + index.docs.len() * 8
            + index.nonocc.len() * 4
            + vocab_bytes
            + ids.iter().map(|s| s.len() + 4).sum::<usize>(),
    );
    buf.extend_from_slice(MAGIC);
    put_u32(&mut buf, FORMAT_VERSION);
    put_u32(&mut buf, index.params.method.code() as u32);
    put_f64(&mut buf, index.params.k1);
    put_f64(&mut buf, index.params.b);
    put_f64(&mut buf, index.params.delta);
    put_f64(&mut buf, index.avgdl);
    put_u64(&mut buf, index.n_docs as u64);
    put_u64(&mut buf, n_terms as u64);
    put_u64(&mut buf, index.docs.len() as u64);
    put_u64(&mut buf, index.nonocc.len() as u64);
    for &v in &index.indptr {
        put_u64(&mut buf, v);
    }
    for &d in &index.docs {
        put_u32(&mut buf, d);
    }
    for &w in &index.weights {
        buf.extend_from_slice(&w.to_le_bytes());
    }
    for &w in &index.nonocc {
        buf.extend_from_slice(&w.to_le_bytes());
    }
    put_strings(&mut buf, &terms);
    put_strings(&mut buf, ids);
    buf.push(tok.lowercase as u8);
    put_strings(&mut buf, &tok.stopwords);
    put_strings(&mut buf, tok.stemmer.as_slice());
    let crc = crc32fast::hash(&buf);
    put_u32(&mut buf, crc);
    buf
}

pub fn save(index: &Bm25Index, ids: &[String], tok: &TokenizerSettings, path: &Path) -> Result<()> {
    if ids.len() != index.n_docs() {
        return Err(Error::invalid(format!(
            "{} ids for {} documents",
            ids.len(),
            index.n_docs()
        )));
    }
    write_atomic(path, &to_bytes(index, ids, tok))
}

/// A cursor over the file's bytes that turns running short into a clear error.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn bad(&self, reason: impl Into<String>) -> Error {
        Error::IndexFile {
            path: self.path.to_path_buf(),
            reason: reason.into(),
        }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.bad(format!("file is truncated (reading {what})")))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().unwrap_or([0; 4]),
        ))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().unwrap_or([0; 8]),
        ))
    }
    fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_bits(self.u64(what)?))
    }
    fn count(&mut self, what: &str, elem: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let remaining = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(elem as u64) > remaining {
            return Err(self.bad(format!(
                "{what} = {n} does not fit in the file (truncated or corrupt)"
            )));
        }
        Ok(n as usize)
    }
    fn strings(&mut self, what: &str) -> Result<Vec<String>> {
        let n = self.count(what, 4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let len = self.u32(what)? as usize;
            let s = std::str::from_utf8(self.take(len, what)?)
                .map_err(|_| self.bad(format!("{what}: an entry is not valid UTF-8")))?;
            out.push(s.to_string());
        }
        Ok(out)
    }
    fn array<T>(&mut self, n: usize, what: &str, conv: impl Fn(&[u8]) -> T) -> Result<Vec<T>> {
        let size = std::mem::size_of::<T>();
        let bytes = self.take(n * size, what)?;
        Ok(bytes.chunks_exact(size).map(conv).collect())
    }
}

pub fn load(path: &Path) -> Result<Saved> {
    let file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // Safety: the map is read-only and dropped before this function returns;
    // everything needed is copied out of it.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    from_bytes(&map, path)
}

pub fn from_bytes(all: &[u8], path: &Path) -> Result<Saved> {
    let bad = |reason: &str| Error::IndexFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if all.len() < MAGIC.len() || &all[..MAGIC.len()] != MAGIC {
        return Err(bad("not a bdnsca index file (wrong magic bytes)"));
    }
    if all.len() < MAGIC.len() + 8 {
        return Err(bad("file is truncated (header)"));
    }
    let (body, crc_bytes) = all.split_at(all.len() - 4);
    let mut r = Reader {
        buf: body,
        pos: MAGIC.len(),
        path,
    };
    let version = r.u32("format version")?;
    if version != FORMAT_VERSION {
        return Err(bad(&format!(
            "index format version {version} is not supported (this bdnsca reads version {FORMAT_VERSION}); rebuild the index"
        )));
    }
    let stored_crc = u32::from_le_bytes(crc_bytes.try_into().unwrap_or([0; 4]));
    if crc32fast::hash(body) != stored_crc {
        return Err(bad(
            "checksum mismatch: the file is truncated or corrupt; rebuild the index",
        ));
    }
    let method =
        Method::from_code(r.u32("method")? as u8).ok_or_else(|| bad("unknown BM25 method code"))?;
    let k1 = r.f64("k1")?;
    let b = r.f64("b")?;
    let delta = r.f64("delta")?;
    let params = Params::new(method, k1, b, delta).map_err(|e| bad(&e.to_string()))?;
    let avgdl = r.f64("avgdl")?;
    let n_docs = r.u64("n_docs")? as usize;
    let n_terms = r.count("n_terms", 12)?;
    let n_post = r.count("n_postings", 8)?;
    let n_nonocc = r.count("n_nonoccurrence", 4)?;
    let indptr = r.array(n_terms + 1, "indptr", |c| {
        u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))
    })?;
    let docs = r.array(n_post, "postings", |c| {
        u32::from_le_bytes(c.try_into().unwrap_or([0; 4]))
    })?;
    let weights = r.array(n_post, "weights", |c| {
        f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))
    })?;
    let nonocc = r.array(n_nonocc, "nonoccurrence", |c| {
        f32::from_le_bytes(c.try_into().unwrap_or([0; 4]))
    })?;
    let terms = r.strings("vocabulary")?;
    let n_read = terms.len();
    let mut vocab = FxHashMap::default();
    vocab.reserve(n_read);
    for (i, t) in terms.into_iter().enumerate() {
        vocab.insert(t, i as u32);
    }
    let ids = r.strings("document ids")?;
    let lowercase = r.take(1, "tokenizer settings")?[0] != 0;
    let stopwords = r.strings("stopwords")?;
    let stemmer = r.strings("stemmer")?.into_iter().next();
    if r.pos != body.len() {
        return Err(bad("trailing bytes after the index (corrupt file)"));
    }
    // Structural checks: a checksum guards against accidents, these against nonsense.
    if indptr.first() != Some(&0)
        || indptr.last().copied() != Some(n_post as u64)
        || indptr.windows(2).any(|w| w[0] > w[1])
        || docs.iter().any(|&d| d as usize >= n_docs)
        || (n_nonocc != 0 && n_nonocc != n_terms)
        || n_read != n_terms
        || vocab.len() != n_terms
        || ids.len() != n_docs
    {
        return Err(bad("inconsistent index structure (corrupt file)"));
    }
    Ok(Saved {
        index: Bm25Index::from_parts(params, vocab, indptr, docs, weights, nonocc, n_docs, avgdl),
        ids,
        tokenizer: TokenizerSettings {
            lowercase,
            stopwords,
            stemmer,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Saved {
        let docs = vec![vec!["a", "b"], vec!["b", "c", "c"]];
        Saved {
            index: Bm25Index::from_tokens(
                &docs,
                Params::new(Method::Bm25L, 1.2, 0.7, 0.5).unwrap(),
            )
            .unwrap(),
            ids: vec!["x".into(), "y".into()],
            tokenizer: TokenizerSettings {
                lowercase: true,
                stopwords: vec!["the".into()],
                stemmer: Some("english".into()),
            },
        }
    }

    #[test]
    fn round_trip() {
        let saved = small();
        let bytes = to_bytes(&saved.index, &saved.ids, &saved.tokenizer);
        let loaded = from_bytes(&bytes, Path::new("t")).unwrap();
        assert_eq!(loaded.ids, saved.ids);
        assert_eq!(loaded.tokenizer, saved.tokenizer);
        let (idx, back) = (&saved.index, &loaded.index);
        let q = idx.term_ids(&["c", "a"]);
        assert_eq!(idx.scores(&q), back.scores(&back.term_ids(&["c", "a"])));
    }

    #[test]
    fn every_truncation_and_flip_is_an_error() {
        let s = small();
        let bytes = to_bytes(&s.index, &s.ids, &s.tokenizer);
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
}
