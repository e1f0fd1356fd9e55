//! The manifest reader on arbitrary bytes: an error or a manifest that,
//! written again, reads back the same.
#![no_main]
use std::path::Path;

use bdnsca::seg_manifest::{parse, to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("manifest.json");
    if let Ok(m) = parse(data, p) {
        let again = parse(&to_json(&m), p).expect("a written manifest reads back");
        assert_eq!(again.segments, m.segments);
        assert_eq!(again.tokenizer, m.tokenizer);
    }
});
