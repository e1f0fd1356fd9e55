//! The manifest of a segmented index folder (`seg_persist.rs`): a small JSON
//! file, `manifest.json`, written last, that names the index's files in order.
//!
//! ```json
//! {"format": "bdnsca-segmented-index", "version": 1, "generation": 7,
//!  "params": {"method": "lucene", "k1": 1.5, "b": 0.75, "delta": 0.5},
//!  "tokenizer": {"lowercase": true, "stopwords": [], "stemmer": null, "pattern": "alnum"},
//!  "n_live": 120,
//!  "segments": [{"file": "seg-00000007-1f2e3d4c5b6a7988.bseg", "bytes": 5120, "crc32": 12345,
//!                "n_docs": 100,
//!                "deletes": {"file": "del-...bdel", "bytes": 52, "crc32": 678, "n_deleted": 3}}]}
//! ```
//! `deletes` is null for a segment without deletes. Floats are written with
//! the shortest representation that reads back to the same bits (serde_json
//! with `float_roundtrip`). The reader checks every field's type and range and
//! that file names are plain names of this format (no folder, no `..`), and
//! names the field in its errors.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::persist::TokenizerSettings;
use crate::scoring::{Method, Params};
use crate::tokenizer::Pattern;

pub const MANIFEST: &str = "manifest.json";
pub const FORMAT_NAME: &str = "bdnsca-segmented-index";
pub const MANIFEST_VERSION: u64 = 1;
/// A manifest larger than this is refused before it is parsed.
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// A file of the index: its name in the folder, length and CRC-32.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    pub name: String,
    pub bytes: u64,
    pub crc32: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SegEntry {
    pub file: FileRef,
    pub n_docs: u64,
    /// The deletes file and how many documents it marks deleted.
    pub deletes: Option<(FileRef, u64)>,
}

#[derive(Clone, Debug)]
pub struct Manifest {
    pub generation: u64,
    pub params: Params,
    pub tokenizer: TokenizerSettings,
    pub n_live: u64,
    pub segments: Vec<SegEntry>,
}

/// Whether `name` is a file name this format writes with this suffix:
/// lowercase ASCII letters, digits, '-' and '.', not starting with '.'.
pub fn valid_name(name: &str, suffix: &str) -> bool {
    (suffix.len() + 1..=128).contains(&name.len())
        && name.ends_with(suffix)
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
}

fn file_json(f: &FileRef) -> Value {
    json!({"file": f.name, "bytes": f.bytes, "crc32": f.crc32})
}

pub fn to_json(m: &Manifest) -> Vec<u8> {
    let segments: Vec<Value> = m
        .segments
        .iter()
        .map(|s| {
            let mut v = file_json(&s.file);
            v["n_docs"] = json!(s.n_docs);
            v["deletes"] = match &s.deletes {
                Some((f, n)) => {
                    let mut d = file_json(f);
                    d["n_deleted"] = json!(n);
                    d
                }
                None => Value::Null,
            };
            v
        })
        .collect();
    let t = &m.tokenizer;
    let v = json!({
        "format": FORMAT_NAME,
        "version": MANIFEST_VERSION,
        "generation": m.generation,
        "params": {
            "method": m.params.method.name(),
            "k1": m.params.k1,
            "b": m.params.b,
            "delta": m.params.delta,
        },
        "tokenizer": {
            "lowercase": t.lowercase,
            "stopwords": t.stopwords,
            "stemmer": t.stemmer,
            "pattern": t.pattern.name(),
        },
        "n_live": m.n_live,
        "segments": segments,
    });
    let mut out = serde_json::to_vec_pretty(&v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Field access that names the field in its errors.
struct Fields<'a> {
    path: &'a Path,
}

impl Fields<'_> {
    fn bad(&self, field: &str, why: &str) -> Error {
        Error::IndexFile {
            path: self.path.to_path_buf(),
            reason: format!("manifest field {field:?}: {why} (corrupt manifest)"),
        }
    }
    fn get<'v>(&self, v: &'v Value, key: &str, field: &str) -> Result<&'v Value> {
        v.get(key).ok_or_else(|| self.bad(field, "missing"))
    }
    fn u64(&self, v: &Value, key: &str, field: &str) -> Result<u64> {
        self.get(v, key, field)?
            .as_u64()
            .ok_or_else(|| self.bad(field, "not an integer >= 0"))
    }
    fn f64(&self, v: &Value, key: &str, field: &str) -> Result<f64> {
        self.get(v, key, field)?
            .as_f64()
            .ok_or_else(|| self.bad(field, "not a number"))
    }
    fn str<'v>(&self, v: &'v Value, key: &str, field: &str) -> Result<&'v str> {
        self.get(v, key, field)?
            .as_str()
            .ok_or_else(|| self.bad(field, "not a string"))
    }
    fn file(&self, v: &Value, suffix: &str, field: &str) -> Result<FileRef> {
        let name = self.str(v, "file", &format!("{field}.file"))?;
        if !valid_name(name, suffix) {
            return Err(self.bad(
                &format!("{field}.file"),
                &format!("{name:?} is not a file name of this format (*{suffix})"),
            ));
        }
        let crc = self.u64(v, "crc32", &format!("{field}.crc32"))?;
        Ok(FileRef {
            name: name.to_string(),
            bytes: self.u64(v, "bytes", &format!("{field}.bytes"))?,
            crc32: u32::try_from(crc)
                .map_err(|_| self.bad(&format!("{field}.crc32"), "above 2^32 - 1"))?,
        })
    }
}

/// Parses and checks a manifest's bytes (`path` names it in errors).
pub fn parse(bytes: &[u8], path: &Path) -> Result<Manifest> {
    let f = Fields { path };
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(f.bad("(file)", "larger than 256 MiB"));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| Error::IndexFile {
        path: path.to_path_buf(),
        reason: format!("manifest is not valid JSON: {e} (truncated or corrupt)"),
    })?;
    let format = f.str(&v, "format", "format")?;
    if format != FORMAT_NAME {
        return Err(f.bad("format", &format!("{format:?} is not {FORMAT_NAME:?}")));
    }
    let version = f.u64(&v, "version", "version")?;
    if version != MANIFEST_VERSION {
        return Err(Error::IndexFile {
            path: path.to_path_buf(),
            reason: format!("segmented index version {version} is not supported (this bdnsca reads version {MANIFEST_VERSION}); rebuild the index"),
        });
    }
    let generation = f.u64(&v, "generation", "generation")?;
    let p = f.get(&v, "params", "params")?;
    let method = Method::parse(f.str(p, "method", "params.method")?)
        .map_err(|e| f.bad("params.method", &e.to_string()))?;
    let params = Params::new(
        method,
        f.f64(p, "k1", "params.k1")?,
        f.f64(p, "b", "params.b")?,
        f.f64(p, "delta", "params.delta")?,
    )
    .map_err(|e| f.bad("params", &e.to_string()))?;
    let t = f.get(&v, "tokenizer", "tokenizer")?;
    let lowercase = f
        .get(t, "lowercase", "tokenizer.lowercase")?
        .as_bool()
        .ok_or_else(|| f.bad("tokenizer.lowercase", "not a boolean"))?;
    let stopwords = f
        .get(t, "stopwords", "tokenizer.stopwords")?
        .as_array()
        .ok_or_else(|| f.bad("tokenizer.stopwords", "not a list"))?
        .iter()
        .map(|s| {
            s.as_str()
                .map(String::from)
                .ok_or_else(|| f.bad("tokenizer.stopwords", "an entry is not a string"))
        })
        .collect::<Result<Vec<_>>>()?;
    let stemmer = match f.get(t, "stemmer", "tokenizer.stemmer")? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        _ => return Err(f.bad("tokenizer.stemmer", "not a string or null")),
    };
    let pattern = Pattern::parse(f.str(t, "pattern", "tokenizer.pattern")?)
        .map_err(|e| f.bad("tokenizer.pattern", &e.to_string()))?;
    let n_live = f.u64(&v, "n_live", "n_live")?;
    let list = f
        .get(&v, "segments", "segments")?
        .as_array()
        .ok_or_else(|| f.bad("segments", "not a list"))?;
    let mut segments = Vec::with_capacity(list.len());
    let mut live = 0u64;
    for (i, s) in list.iter().enumerate() {
        let field = format!("segments[{i}]");
        let file = f.file(s, ".bseg", &field)?;
        let n_docs = f.u64(s, "n_docs", &format!("{field}.n_docs"))?;
        let deletes = match f.get(s, "deletes", &format!("{field}.deletes"))? {
            Value::Null => None,
            d => {
                let df = format!("{field}.deletes");
                let n = f.u64(d, "n_deleted", &format!("{df}.n_deleted"))?;
                if n == 0 || n > n_docs {
                    return Err(f.bad(&format!("{df}.n_deleted"), "not in 1..=n_docs"));
                }
                Some((f.file(d, ".bdel", &df)?, n))
            }
        };
        live = live.saturating_add(n_docs - deletes.as_ref().map_or(0, |d| d.1));
        segments.push(SegEntry {
            file,
            n_docs,
            deletes,
        });
    }
    if live != n_live {
        return Err(f.bad(
            "n_live",
            &format!("{n_live}, but the segments hold {live} live documents"),
        ));
    }
    Ok(Manifest {
        generation,
        params,
        tokenizer: TokenizerSettings {
            lowercase,
            stopwords,
            stemmer,
            pattern,
        },
        n_live,
        segments,
    })
}
