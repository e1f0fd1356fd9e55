//! The segment-file loader on arbitrary bytes. When the first byte is odd the
//! rest gets its section and header CRC-32s recomputed first, so the fuzzer
//! reaches the structural checks behind the checksums. Anything that loads
//! must be canonical (encode it again: the same bytes) and answer a query.
#![no_main]
use std::path::Path;

use bdnsca::seg_file::{decode_segment, encode_segment};
use libfuzzer_sys::fuzz_target;

const HEADER: usize = 88;

fn recrc(b: &mut [u8]) {
    if b.len() < HEADER {
        return;
    }
    let mut start = HEADER;
    for i in 0..3 {
        let len = u64::from_le_bytes(b[40 + 16 * i..48 + 16 * i].try_into().unwrap());
        let end = start
            .saturating_add(len.min(u32::MAX as u64) as usize)
            .min(b.len());
        let crc = crc32fast::hash(&b[start..end]);
        b[48 + 16 * i..52 + 16 * i].copy_from_slice(&crc.to_le_bytes());
        start = end;
    }
    let crc = crc32fast::hash(&b[16..HEADER]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 == 1 {
        recrc(&mut b);
    }
    if let Ok(seg) = decode_segment(&b, Path::new("fuzz.bseg")) {
        assert_eq!(encode_segment(&seg).unwrap(), b);
        let params = bdnsca::Params::new(bdnsca::Method::Lucene, 1.5, 0.75, 0.5).unwrap();
        let idx = bdnsca::seg_persist::index_of_segment(seg, params);
        let _ = idx.search(&["w0", "w1"], 3);
    }
});
