//! The two files of one segment in the segmented format (`seg_persist.rs`;
//! issue 14's "format v2"): a segment file, immutable once written, and a
//! deletes file per generation of the segment's deletes.
//!
//! Segment file (little-endian):
//! ```text
//! 0   magic "BDNSCASG"          8   version u32 (1)    12  header CRC-32 u32 (of bytes 16..88)
//! 16  n_docs u64                24  n_terms u64        32  n_fwd u64 (forward entries)
//! 40  3 x (byte length u64, CRC-32 u32, 0 u32): the ids, vocabulary and forward sections
//! 88  ids section:        n_docs x (u32 byte length, UTF-8 bytes)
//!     vocabulary section: n_terms x (u32 byte length, UTF-8 bytes), in local term-id order
//!     forward section:    n_docs x u32 distinct terms, then n_fwd x u32 term ids, n_fwd x u32 tfs
//! ```
//! Only what cannot be derived is stored: each document's (term, tf) in order
//! of first appearance, the vocabulary and the ids. Postings, document
//! lengths, block bounds, (tf, length) pairs and tie keys are computed again
//! on load (`SegmentData::from_forward`), so a file cannot make them disagree.
//! The loader checks every count against the section lengths before it
//! allocates, and every term id, tf, order and uniqueness the builder
//! guarantees, so a corrupt or forged file is an `Error::IndexFile` naming the
//! file and the field, never a panic or a wrong ranking. The ids have their
//! own section and CRC, so `read_segment_ids` reads them without the rest.
//!
//! Deletes file: magic "BDNSCADL", version u32, 0 u32, n_docs u64, n_deleted
//! u64, ceil(n_docs / 64) bitset words u64, CRC-32 u32 of everything before.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::segment::SegmentData;
use crate::topk::TieKeys;

const SEG_MAGIC: &[u8; 8] = b"BDNSCASG";
const DEL_MAGIC: &[u8; 8] = b"BDNSCADL";
pub const SEG_VERSION: u32 = 1;
const HEADER: usize = 88;

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::IndexFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn put_strings<S: AsRef<str>>(buf: &mut Vec<u8>, items: &[S], what: &str) -> Result<()> {
    for s in items {
        let s = s.as_ref();
        let n = u32::try_from(s.len())
            .map_err(|_| Error::invalid(format!("a {what} longer than 4 GiB cannot be saved")))?;
        buf.extend_from_slice(&n.to_le_bytes());
        buf.extend_from_slice(s.as_bytes());
    }
    Ok(())
}

/// The bytes of a segment file for `data`.
pub fn encode_segment(data: &SegmentData) -> Result<Vec<u8>> {
    let n_docs = data.n_docs();
    let n_fwd = data.fwd_terms.len();
    let mut ids = Vec::with_capacity(data.ids.iter().map(|s| s.len() + 4).sum());
    put_strings(&mut ids, &data.ids, "document id")?;
    let terms = data.terms();
    let mut vocab = Vec::with_capacity(terms.iter().map(|s| s.len() + 4).sum());
    put_strings(&mut vocab, &terms, "term")?;
    let mut fwd = Vec::with_capacity(n_docs * 4 + n_fwd * 8);
    for w in data.fwd_ptr.windows(2) {
        fwd.extend_from_slice(&((w[1] - w[0]) as u32).to_le_bytes());
    }
    for &t in &data.fwd_terms {
        fwd.extend_from_slice(&t.to_le_bytes());
    }
    for &tf in &data.fwd_tfs {
        fwd.extend_from_slice(&tf.to_le_bytes());
    }
    let mut out = Vec::with_capacity(HEADER + ids.len() + vocab.len() + fwd.len());
    out.extend_from_slice(SEG_MAGIC);
    out.extend_from_slice(&SEG_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for n in [n_docs, data.n_terms(), n_fwd] {
        out.extend_from_slice(&(n as u64).to_le_bytes());
    }
    for sec in [&ids, &vocab, &fwd] {
        out.extend_from_slice(&(sec.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(sec).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
    }
    let crc = crc32fast::hash(&out[16..HEADER]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    for sec in [ids, vocab, fwd] {
        out.extend_from_slice(&sec);
    }
    Ok(out)
}

/// A checked segment-file header.
struct Header {
    n_docs: usize,
    n_terms: usize,
    n_fwd: usize,
    /// (byte length, CRC) of the ids, vocabulary and forward sections.
    sections: [(u64, u32); 3],
}

fn parse_header(h: &[u8], file_len: u64, path: &Path) -> Result<Header> {
    if h.len() < 8 || &h[..8] != SEG_MAGIC {
        return Err(bad(path, "not a bdnsca segment file (wrong magic bytes)"));
    }
    if h.len() < HEADER {
        return Err(bad(path, "segment file is truncated (header)"));
    }
    let version = le_u32(h, 8);
    if version != SEG_VERSION {
        return Err(bad(
            path,
            format!("segment format version {version} is not supported (this bdnsca reads {SEG_VERSION}); rebuild the index"),
        ));
    }
    if crc32fast::hash(&h[16..HEADER]) != le_u32(h, 12) {
        return Err(bad(path, "header checksum mismatch (corrupt file)"));
    }
    let mut sections = [(0u64, 0u32); 3];
    let mut total = HEADER as u64;
    for (i, s) in sections.iter_mut().enumerate() {
        if le_u32(h, 52 + 16 * i) != 0 {
            return Err(bad(
                path,
                format!("header: reserved field of section {i} is not 0 (corrupt file)"),
            ));
        }
        *s = (le_u64(h, 40 + 16 * i), le_u32(h, 48 + 16 * i));
        total = total.saturating_add(s.0);
    }
    if total != file_len {
        return Err(bad(
            path,
            format!("section lengths add up to {total} bytes, the file has {file_len} (truncated or corrupt)"),
        ));
    }
    let (n_docs, n_terms, n_fwd) = (le_u64(h, 16), le_u64(h, 24), le_u64(h, 32));
    // Each id and term takes at least its 4-byte length.
    if n_docs > u32::MAX as u64 || n_docs > sections[0].0 / 4 {
        return Err(bad(
            path,
            format!("n_docs = {n_docs} does not fit the ids section (corrupt file)"),
        ));
    }
    if n_terms > u32::MAX as u64 || n_terms > sections[1].0 / 4 {
        return Err(bad(
            path,
            format!("n_terms = {n_terms} does not fit the vocabulary section (corrupt file)"),
        ));
    }
    let want = n_fwd.checked_mul(8).and_then(|v| v.checked_add(n_docs * 4));
    if want != Some(sections[2].0) {
        return Err(bad(
            path,
            format!(
                "n_fwd = {n_fwd} and n_docs = {n_docs} do not match the forward section's {} bytes (corrupt file)",
                sections[2].0
            ),
        ));
    }
    Ok(Header {
        n_docs: n_docs as usize,
        n_terms: n_terms as usize,
        n_fwd: n_fwd as usize,
        sections,
    })
}

/// Exactly `n` strings filling `sec`.
fn strings(sec: &[u8], n: usize, what: &str, path: &Path) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(n);
    let mut pos = 0usize;
    for i in 0..n {
        if sec.len() - pos < 4 {
            return Err(bad(path, format!("{what} {i}: section is truncated")));
        }
        let len = le_u32(sec, pos) as usize;
        pos += 4;
        if sec.len() - pos < len {
            return Err(bad(
                path,
                format!("{what} {i}: length {len} runs past the section"),
            ));
        }
        let s = std::str::from_utf8(&sec[pos..pos + len])
            .map_err(|_| bad(path, format!("{what} {i} is not valid UTF-8")))?;
        out.push(s.to_string());
        pos += len;
    }
    if pos != sec.len() {
        return Err(bad(path, format!("{what}s: trailing bytes in the section")));
    }
    Ok(out)
}

fn check_section(sec: &[u8], crc: u32, what: &str, path: &Path) -> Result<()> {
    if crc32fast::hash(sec) != crc {
        return Err(bad(
            path,
            format!("{what} section checksum mismatch (corrupt file)"),
        ));
    }
    Ok(())
}

/// Parses and checks a segment file's bytes.
pub fn decode_segment(bytes: &[u8], path: &Path) -> Result<SegmentData> {
    let h = parse_header(bytes, bytes.len() as u64, path)?;
    let (l_ids, l_voc) = (h.sections[0].0 as usize, h.sections[1].0 as usize);
    let ids_sec = &bytes[HEADER..HEADER + l_ids];
    let voc_sec = &bytes[HEADER + l_ids..HEADER + l_ids + l_voc];
    let fwd_sec = &bytes[HEADER + l_ids + l_voc..];
    check_section(ids_sec, h.sections[0].1, "ids", path)?;
    check_section(voc_sec, h.sections[1].1, "vocabulary", path)?;
    check_section(fwd_sec, h.sections[2].1, "forward", path)?;
    let ids = strings(ids_sec, h.n_docs, "document id", path)?;
    let terms = strings(voc_sec, h.n_terms, "term", path)?;
    let mut vocab: FxHashMap<String, u32> = FxHashMap::default();
    vocab.reserve(terms.len());
    for (i, t) in terms.into_iter().enumerate() {
        if vocab.insert(t, i as u32).is_some() {
            return Err(bad(
                path,
                format!("vocabulary: term {i} appears twice (corrupt file)"),
            ));
        }
    }
    let (n_docs, n_terms, n_fwd) = (h.n_docs, h.n_terms, h.n_fwd);
    let word = |i: usize| le_u32(fwd_sec, 4 * i);
    let mut fwd_ptr = Vec::with_capacity(n_docs + 1);
    fwd_ptr.push(0u64);
    for d in 0..n_docs {
        let end = fwd_ptr[d] + word(d) as u64;
        if end > n_fwd as u64 {
            return Err(bad(
                path,
                format!(
                    "forward: document {d}'s term count runs past n_fwd = {n_fwd} (corrupt file)"
                ),
            ));
        }
        fwd_ptr.push(end);
    }
    if fwd_ptr[n_docs] != n_fwd as u64 {
        return Err(bad(
            path,
            format!(
                "forward: term counts add up to {}, not n_fwd = {n_fwd} (corrupt file)",
                fwd_ptr[n_docs]
            ),
        ));
    }
    let fwd_terms: Vec<u32> = (0..n_fwd).map(|i| word(n_docs + i)).collect();
    let fwd_tfs: Vec<u32> = (0..n_fwd).map(|i| word(n_docs + n_fwd + i)).collect();
    // What `SegmentData::build` guarantees: term ids below n_terms, numbered
    // by first appearance, each once per document, every term used; tfs >= 1;
    // a document's length (the sum of its tfs) fits u32.
    let mut seen = vec![u32::MAX; n_terms];
    let mut next_new = 0usize;
    let mut lens = Vec::with_capacity(n_docs);
    for d in 0..n_docs {
        let (s, e) = (fwd_ptr[d] as usize, fwd_ptr[d + 1] as usize);
        let mut len = 0u64;
        for (&t, &tf) in fwd_terms[s..e].iter().zip(&fwd_tfs[s..e]) {
            let ti = t as usize;
            if ti >= n_terms {
                return Err(bad(path, format!("forward: document {d} has term id {t}, beyond the {n_terms} terms (corrupt file)")));
            }
            if tf == 0 {
                return Err(bad(
                    path,
                    format!("forward: document {d} has tf 0 for term {t} (corrupt file)"),
                ));
            }
            if seen[ti] == d as u32 {
                return Err(bad(
                    path,
                    format!("forward: document {d} lists term {t} twice (corrupt file)"),
                ));
            }
            if seen[ti] == u32::MAX {
                if ti != next_new {
                    return Err(bad(path, format!("forward: term ids are not numbered by first appearance (document {d}, term {t}; corrupt file)")));
                }
                next_new += 1;
            }
            seen[ti] = d as u32;
            len += tf as u64;
        }
        let len = u32::try_from(len).map_err(|_| {
            bad(
                path,
                format!("forward: document {d} is longer than 4,294,967,295 tokens (corrupt file)"),
            )
        })?;
        lens.push(len);
    }
    if next_new != n_terms {
        return Err(bad(
            path,
            format!("vocabulary: term {next_new} occurs in no document (corrupt file)"),
        ));
    }
    let tie = TieKeys::from_ids(&ids)
        .map_err(|e| bad(path, format!("document ids: {e} (corrupt file)")))?;
    Ok(SegmentData::from_forward(
        vocab, fwd_ptr, fwd_terms, fwd_tfs, lens, ids, tie,
    ))
}

/// The document ids of a segment file, in order, read without its postings
/// (the header and the ids section only; the section's CRC is checked).
pub fn read_segment_ids(path: &Path) -> Result<Vec<String>> {
    let io = |e| Error::io(path, e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let file_len = f.metadata().map_err(io)?.len();
    let mut head = vec![0u8; HEADER.min(file_len as usize)];
    f.read_exact(&mut head).map_err(io)?;
    let h = parse_header(&head, file_len, path)?;
    let mut sec = vec![0u8; h.sections[0].0 as usize];
    f.seek(SeekFrom::Start(HEADER as u64)).map_err(io)?;
    f.read_exact(&mut sec).map_err(io)?;
    check_section(&sec, h.sections[0].1, "ids", path)?;
    strings(&sec, h.n_docs, "document id", path)
}

/// The bytes of a deletes file: `words` is the segment's deletes bitset.
pub fn encode_deletes(n_docs: usize, words: &[u64]) -> Vec<u8> {
    let n_deleted: u64 = words.iter().map(|w| w.count_ones() as u64).sum();
    let mut out = Vec::with_capacity(36 + 8 * words.len());
    out.extend_from_slice(DEL_MAGIC);
    out.extend_from_slice(&SEG_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(n_docs as u64).to_le_bytes());
    out.extend_from_slice(&n_deleted.to_le_bytes());
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The deleted documents (ascending) of a deletes file for a segment of `n_docs`.
pub fn decode_deletes(bytes: &[u8], n_docs: usize, path: &Path) -> Result<Vec<u32>> {
    if bytes.len() < 8 || &bytes[..8] != DEL_MAGIC {
        return Err(bad(path, "not a bdnsca deletes file (wrong magic bytes)"));
    }
    let words = n_docs.div_ceil(64);
    if Some(bytes.len()) != words.checked_mul(8).and_then(|w| w.checked_add(36)) {
        return Err(bad(
            path,
            format!("deletes file has {} bytes, expected {} for {n_docs} documents (truncated or corrupt)", bytes.len(), words.saturating_mul(8).saturating_add(36)),
        ));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != le_u32(crc, 0) {
        return Err(bad(path, "checksum mismatch (corrupt file)"));
    }
    let version = le_u32(body, 8);
    if version != SEG_VERSION {
        return Err(bad(
            path,
            format!("deletes format version {version} is not supported; rebuild the index"),
        ));
    }
    if le_u32(body, 12) != 0 {
        return Err(bad(path, "header: reserved field is not 0 (corrupt file)"));
    }
    if le_u64(body, 16) != n_docs as u64 {
        return Err(bad(
            path,
            format!(
                "n_docs = {} but the segment has {n_docs} (corrupt file)",
                le_u64(body, 16)
            ),
        ));
    }
    let mut out = Vec::new();
    for i in 0..words {
        let mut w = le_u64(body, 32 + 8 * i);
        while w != 0 {
            let d = i * 64 + w.trailing_zeros() as usize;
            if d >= n_docs {
                return Err(bad(
                    path,
                    format!("bitset: document {d} is beyond the segment's {n_docs} (corrupt file)"),
                ));
            }
            out.push(d as u32);
            w &= w - 1;
        }
    }
    if out.len() as u64 != le_u64(body, 24) {
        return Err(bad(
            path,
            format!(
                "n_deleted = {} but the bitset holds {} (corrupt file)",
                le_u64(body, 24),
                out.len()
            ),
        ));
    }
    Ok(out)
}
