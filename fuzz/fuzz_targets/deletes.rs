//! The deletes-file loader on arbitrary bytes, for a segment of n_docs taken
//! from the first two bytes; odd third byte: the trailing CRC is recomputed.
#![no_main]
use std::path::Path;

use bdnsca::seg_file::{decode_deletes, encode_deletes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let n_docs = u16::from_le_bytes([data[0], data[1]]) as usize;
    let mut b = data[3..].to_vec();
    if data[2] & 1 == 1 && b.len() >= 4 {
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok(gone) = decode_deletes(&b, n_docs, Path::new("fuzz.bdel")) {
        let mut words = vec![0u64; n_docs.div_ceil(64)];
        for d in gone {
            words[d as usize / 64] |= 1 << (d % 64);
        }
        assert_eq!(encode_deletes(n_docs, &words), b);
    }
});
