//! bdnsca's Rust core: BM25 retrieval, hard-negative mining, IR metrics and Pareto
//! frontiers. The core knows nothing of Python; `python/` is the thin binding.

pub mod dense;
pub mod error;
pub mod fusion;
pub mod index;
pub mod lexical;
pub mod metrics;
pub mod mining;
pub mod neardup;
pub mod pareto;
pub mod persist;
pub mod pool;
pub mod pyunicode;
pub mod scoring;
pub mod search;
pub mod seg_append;
pub mod seg_blob;
pub mod seg_file;
pub mod seg_manifest;
pub mod seg_persist;
pub mod segment;
mod segment_derived;
pub mod segmented;
pub mod segmented_compile;
pub mod segmented_prune;
pub mod segmented_query;
pub mod stats;
pub mod tokenizer;
pub mod topk;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
pub use index::Bm25Index;
pub use scoring::{Method, Params};
pub use segmented::SegmentedIndex;
pub use tokenizer::Tokenizer;
