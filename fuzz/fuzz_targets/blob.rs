//! The one-blob loader (`seg_persist::from_bytes`) on arbitrary bytes; odd
//! first byte: the trailing CRC is recomputed. What loads answers a query.
#![no_main]
use bdnsca::seg_persist::from_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut b = rest.to_vec();
    if mode & 1 == 1 && b.len() >= 4 {
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
    }
    if let Ok((idx, _)) = from_bytes(&b) {
        let _ = idx.search(&["w0", "w1"], 3);
        let _ = idx.get_scores(&["w2"]);
    }
});
