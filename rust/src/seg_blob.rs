//! A whole segmented index as one checksummed blob (`seg_persist::to_bytes`
//! / `from_bytes`): for pickling and Ray's object store. Layout: magic
//! "BDNSCABL", version u32, 0 u32, the manifest's byte length u64 and JSON
//! (`seg_manifest.rs`, file names `seg-<i>.bseg` / `del-<i>.bdel`), each
//! segment's file then its deletes file in manifest order (`seg_file.rs`),
//! CRC-32 of everything before. Loading checks it as a folder is checked.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::persist::TokenizerSettings;
use crate::seg_file::{encode_deletes, encode_segment};
use crate::seg_manifest::{self as mf, FileRef, Manifest, SegEntry, MANIFEST};
use crate::seg_persist::{assemble, decode_entry};
use crate::segmented::SegmentedIndex;

const BLOB_MAGIC: &[u8; 8] = b"BDNSCABL";
const BLOB_VERSION: u32 = 1;

/// The whole index as one blob: magic, version, the manifest's length and
/// JSON, each segment's file and deletes file in manifest order, CRC-32.
pub fn to_bytes(index: &SegmentedIndex, tok: &TokenizerSettings) -> Result<Vec<u8>> {
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for (i, seg) in index.segments.iter().enumerate() {
        let bytes = encode_segment(&seg.data)?;
        let fref = |name: String, b: &[u8]| FileRef {
            name,
            bytes: b.len() as u64,
            crc32: crc32fast::hash(b),
        };
        let file = fref(format!("seg-{i}.bseg"), &bytes);
        files.push(bytes);
        let deletes = if seg.n_deleted > 0 {
            let d = encode_deletes(seg.data.n_docs(), seg.deleted_words());
            let f = fref(format!("del-{i}.bdel"), &d);
            files.push(d);
            Some((f, seg.n_deleted as u64))
        } else {
            None
        };
        entries.push(SegEntry {
            file,
            n_docs: seg.data.n_docs() as u64,
            deletes,
        });
    }
    let json = mf::to_json(&Manifest {
        generation: 0,
        params: index.params,
        tokenizer: tok.clone(),
        n_live: index.n_live() as u64,
        segments: entries,
    });
    let total: usize = files.iter().map(|f| f.len()).sum();
    let mut out = Vec::with_capacity(24 + json.len() + total + 4);
    out.extend_from_slice(BLOB_MAGIC);
    out.extend_from_slice(&BLOB_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for f in files {
        out.extend_from_slice(&f);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// The index and tokenizer settings of a `to_bytes` blob, checked as a folder is.
pub fn from_bytes(bytes: &[u8]) -> Result<(SegmentedIndex, TokenizerSettings)> {
    let blob = Path::new("<index bytes>");
    let bad = |reason: String| Error::IndexFile {
        path: blob.to_path_buf(),
        reason,
    };
    if bytes.len() < 8 || &bytes[..8] != BLOB_MAGIC {
        return Err(bad(
            "not a bdnsca segmented index blob (wrong magic bytes)".into()
        ));
    }
    if bytes.len() < 28 {
        return Err(bad("truncated (header)".into()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let mut c = [0u8; 4];
    c.copy_from_slice(crc);
    if crc32fast::hash(body) != u32::from_le_bytes(c) {
        return Err(bad("checksum mismatch (truncated or corrupt)".into()));
    }
    c.copy_from_slice(&body[8..12]);
    let version = u32::from_le_bytes(c);
    if version != BLOB_VERSION {
        return Err(bad(format!(
            "blob version {version} is not supported; rebuild the index"
        )));
    }
    let mut l = [0u8; 8];
    l.copy_from_slice(&body[16..24]);
    let json_len = u64::from_le_bytes(l);
    let rest = &body[24..];
    if json_len > rest.len() as u64 {
        return Err(bad(format!(
            "manifest length {json_len} runs past the blob"
        )));
    }
    let (json, mut rest) = rest.split_at(json_len as usize);
    let m = mf::parse(json, &blob.join(MANIFEST))?;
    let mut take = |f: &FileRef| -> Result<&[u8]> {
        if f.bytes > rest.len() as u64 {
            return Err(bad(format!(
                "{}: {} bytes run past the blob",
                f.name, f.bytes
            )));
        }
        let (a, b) = rest.split_at(f.bytes as usize);
        rest = b;
        Ok(a)
    };
    let mut parts = Vec::with_capacity(m.segments.len());
    for e in &m.segments {
        let seg = take(&e.file)?;
        let del = match &e.deletes {
            Some((f, _)) => Some(take(f)?),
            None => None,
        };
        parts.push((e, seg, del));
    }
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the last file (corrupt)".into()));
    }
    let segments = parts
        .into_par_iter()
        .map(|(e, seg, del)| {
            let dp = e
                .deletes
                .as_ref()
                .map_or_else(PathBuf::new, |d| blob.join(&d.0.name));
            decode_entry(e, seg, del, &blob.join(&e.file.name), &dp)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((assemble(&m, segments, blob)?, m.tokenizer.clone()))
}
