//! One versioned binary file per index, checksummed, written atomically.
//!
//! Layout (little-endian): magic, format version, parameters and counts, then
//! the arrays, the vocabulary, the document ids and the tokenizer settings, and
//! last the CRC-32 of everything before it. Version 2 adds the tokenizer's
//! pattern after its stemmer; version 1 files (no pattern: `alnum`) still load.
//!
//! The checksum guards against accidents; loading also checks the structure
//! (postings sorted and unique, ids unique, weights finite and >= 0, counts
//! within bounds, the method code), so a file that was written wrong or forged
//! with a valid checksum is a clear error, not a wrong ranking or a panic.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::index::Bm25Index;
use crate::scoring::{Method, Params};
use crate::tokenizer::Pattern;
use crate::topk::TieKeys;

const MAGIC: &[u8; 8] = b"BDNSCAIX";
pub const FORMAT_VERSION: u32 = 2;

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
    pub pattern: Pattern,
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
    put_strings(&mut buf, &[tok.pattern.name()]);
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
    // Everything is copied out into the index's own arrays, so a plain read.
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    from_bytes(&bytes, path)
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
    if version != FORMAT_VERSION && version != 1 {
        return Err(bad(&format!(
            "index format version {version} is not supported (this bdnsca reads versions 1 to {FORMAT_VERSION}); rebuild the index"
        )));
    }
    let stored_crc = u32::from_le_bytes(crc_bytes.try_into().unwrap_or([0; 4]));
    if crc32fast::hash(body) != stored_crc {
        return Err(bad(
            "checksum mismatch: the file is truncated or corrupt; rebuild the index",
        ));
    }
    let code = r.u32("method")?;
    let method = u8::try_from(code)
        .ok()
        .and_then(Method::from_code)
        .ok_or_else(|| bad(&format!("unknown BM25 method code {code} (corrupt file)")))?;
    let k1 = r.f64("k1")?;
    let b = r.f64("b")?;
    let delta = r.f64("delta")?;
    let params = Params::new(method, k1, b, delta).map_err(|e| bad(&e.to_string()))?;
    let avgdl = r.f64("avgdl")?;
    let n_docs = r.u64("n_docs")?;
    let n_terms = r.count("n_terms", 12)?;
    let n_post = r.count("n_postings", 8)?;
    let n_nonocc = r.count("n_nonoccurrence", 4)?;
    // Each document has an id of at least 4 bytes (its length) further on.
    if n_docs == 0 || n_docs > u32::MAX as u64 || n_docs > (r.buf.len() - r.pos) as u64 / 4 {
        return Err(bad(&format!(
            "document count {n_docs} is out of bounds (corrupt file)"
        )));
    }
    let n_docs = n_docs as usize;
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
    let ids = r.strings("document ids")?;
    let lowercase = r.take(1, "tokenizer settings")?[0] != 0;
    let stopwords = r.strings("stopwords")?;
    let stemmer = one_of(r.strings("stemmer")?, "stemmer").map_err(|e| bad(&e))?;
    let pattern = if version >= 2 {
        match one_of(r.strings("token pattern")?, "token pattern").map_err(|e| bad(&e))? {
            Some(p) => Pattern::parse(&p).map_err(|e| bad(&e.to_string()))?,
            None => return Err(bad("no token pattern (corrupt file)")),
        }
    } else {
        Pattern::Alnum
    };
    if r.pos != body.len() {
        return Err(bad("trailing bytes after the index (corrupt file)"));
    }
    check_structure(
        &params, avgdl, n_docs, &indptr, &docs, &weights, &nonocc, &terms, &ids,
    )
    .map_err(|e| bad(&format!("{e} (corrupt file)")))?;
    let tie = TieKeys::from_ids(&ids).map_err(|e| bad(&format!("{e} (corrupt file)")))?;
    let mut vocab = FxHashMap::default();
    vocab.reserve(terms.len());
    for (i, t) in terms.into_iter().enumerate() {
        if vocab.insert(t, i as u32).is_some() {
            return Err(bad(&format!(
                "term {i} appears twice in the vocabulary (corrupt file)"
            )));
        }
    }
    Ok(Saved {
        index: Bm25Index::from_parts(
            params, vocab, indptr, docs, weights, nonocc, n_docs, avgdl, tie,
        ),
        ids,
        tokenizer: TokenizerSettings {
            lowercase,
            stopwords,
            stemmer,
            pattern,
        },
    })
}

/// At most one string.
fn one_of(v: Vec<String>, what: &str) -> std::result::Result<Option<String>, String> {
    if v.len() > 1 {
        return Err(format!(
            "{} {what}s where one is allowed (corrupt file)",
            v.len()
        ));
    }
    Ok(v.into_iter().next())
}

/// The checks a checksum cannot make: what `Bm25Index` assumes of its arrays.
#[allow(clippy::too_many_arguments)]
fn check_structure(
    params: &Params,
    avgdl: f64,
    n_docs: usize,
    indptr: &[u64],
    docs: &[u32],
    weights: &[f32],
    nonocc: &[f32],
    terms: &[String],
    ids: &[String],
) -> std::result::Result<(), String> {
    let n_terms = indptr.len() - 1;
    if terms.len() != n_terms {
        return Err(format!(
            "{} vocabulary entries for {n_terms} terms",
            terms.len()
        ));
    }
    if ids.len() != n_docs {
        return Err(format!("{} document ids for {n_docs} documents", ids.len()));
    }
    if !(avgdl.is_finite() && avgdl > 0.0 || docs.is_empty() && avgdl == 0.0) {
        return Err(format!("average document length {avgdl} is invalid"));
    }
    if indptr[0] != 0 || indptr[n_terms] != docs.len() as u64 {
        return Err("postings offsets do not span the postings".into());
    }
    for t in 0..n_terms {
        let (s, e) = (indptr[t], indptr[t + 1]);
        if s >= e || e > docs.len() as u64 {
            return Err(format!(
                "term {t} ({:?}) has no postings or bad offsets",
                terms[t]
            ));
        }
        let list = &docs[s as usize..e as usize];
        if list.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "postings of term {t} ({:?}) are not sorted and unique",
                terms[t]
            ));
        }
        if list.last().is_some_and(|&d| d as usize >= n_docs) {
            return Err(format!(
                "term {t} ({:?}) points at a document beyond the {n_docs} indexed",
                terms[t]
            ));
        }
    }
    // Every method's posting weight (BM25L/BM25+: minus the absent-term score)
    // and absent-term score is finite and >= 0 for accepted parameters.
    if let Some(i) = weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(format!(
            "posting weight {} is not a finite number >= 0",
            weights[i]
        ));
    }
    let want_nonocc = if params.method.has_nonoccurrence() {
        n_terms
    } else {
        0
    };
    if nonocc.len() != want_nonocc {
        return Err(format!(
            "{} absent-term scores for {} (expected {want_nonocc})",
            nonocc.len(),
            params.method.name()
        ));
    }
    if let Some(w) = nonocc.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
        return Err(format!("absent-term score {w} is not a finite number >= 0"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
