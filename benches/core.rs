//! `cargo bench`: the Rust core alone (criterion) on a synthetic Zipf corpus:
//! index build, batch top-10 search on one thread, metric evaluation, Pareto frontiers,
//! paired resampling statistics, and the segmented index (append 1% against a rebuild, search
//! over 10 segments against one).

use criterion::{criterion_group, criterion_main, Criterion};

use bdnsca::metrics::{evaluate, Metric, QueryInput};
use bdnsca::{pareto, stats, Bm25Index, Method, Params, SegmentedIndex, Tokenizer};

/// A deterministic generator (no dependency needed for a benchmark input).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A word rank with probability roughly proportional to 1 / rank.
    fn zipf_word(&mut self, vocab: f64) -> String {
        format!("w{}", vocab.powf(self.next()) as u64)
    }
}

/// (score, doc id index, judgement) per ranked document.
type Ranked = Vec<(f64, usize, i32)>;

fn texts(n: usize, len: usize, seed: u64) -> Vec<String> {
    let mut g = Lcg(seed);
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| g.zipf_word(50_000.0))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let docs = texts(20_000, 60, 1);
    let queries = texts(2_000, 4, 2);
    let tok = Tokenizer::new(true, vec![], None).expect("tokenizer");
    let params = Params::new(Method::Lucene, 1.5, 0.75, 0.5).expect("params");
    let mut g = c.benchmark_group("bm25");
    g.sample_size(10);
    g.bench_function("index 20k docs from text", |b| {
        b.iter(|| Bm25Index::from_texts(&docs, &tok, params).expect("index"))
    });
    let index = Bm25Index::from_texts(&docs, &tok, params).expect("index");
    let q: Vec<Vec<u32>> = queries
        .iter()
        .map(|t| index.term_ids(&tok.tokenize(t)))
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    g.bench_function("search 2k queries top-10, 1 thread", |b| {
        b.iter(|| pool.install(|| index.search_batch(&q, 10)))
    });
    g.finish();

    let mut g = c.benchmark_group("metrics");
    g.sample_size(10);
    let mut r = Lcg(3);
    let ids: Vec<String> = (0..120).map(|i| format!("d{i}")).collect();
    let metrics: Vec<Metric> = ["mrr@10", "ndcg@10", "recall@100", "precision@10", "map"]
        .iter()
        .map(|m| Metric::parse(m).expect("metric"))
        .collect();
    let base: Vec<(Ranked, Vec<i32>)> = (0..10_000)
        .map(|_| {
            let ranked = (0..100)
                .map(|i| ((r.next() * 50.0).round(), i, (r.next() < 0.05) as i32))
                .collect();
            (ranked, vec![1; 5])
        })
        .collect();
    g.bench_function("evaluate 10k queries x 100 docs, 5 metrics", |b| {
        b.iter(|| {
            let mut inputs: Vec<QueryInput> = base
                .iter()
                .map(|(ranked, judged)| QueryInput {
                    ranked: ranked
                        .iter()
                        .map(|&(s, i, rel)| (s, ids[i].as_str(), rel))
                        .collect(),
                    judged: judged.clone(),
                })
                .collect();
            evaluate(&mut inputs, &metrics)
        })
    });
    g.finish();
}

fn bench_pareto(c: &mut Criterion) {
    let mut g = c.benchmark_group("pareto");
    g.sample_size(20);
    for (n, d) in [(1_000_000usize, 2usize), (100_000, 3)] {
        let mut r = Lcg(7);
        let pts: Vec<f64> = (0..n * d).map(|_| r.next()).collect();
        let maximize: Vec<bool> = (0..d).map(|j| j > 0).collect();
        g.bench_function(format!("frontier {n} points, d = {d}"), |b| {
            b.iter(|| pareto::pareto_frontier(&pts, d, &maximize).expect("frontier"))
        });
    }
    g.finish();
}

fn bench_stats(c: &mut Criterion) {
    let mut g = c.benchmark_group("stats");
    g.sample_size(10);
    // 10 runs x 3 metrics of per-query values for 10k queries; every pair of runs per metric.
    let (n, cols) = (10_000usize, 30usize);
    let mut r = Lcg(3);
    let values: Vec<f64> = (0..n * cols).map(|_| r.next()).collect();
    let mut pairs = Vec::new();
    for m in 0..3 {
        for a in 0..10 {
            for b in a + 1..10 {
                pairs.push((a * 3 + m, b * 3 + m));
            }
        }
    }
    let cfg = stats::CompareConfig {
        resamples: 1_000,
        seed: 0,
        confidence: 0.95,
        test: stats::PairedTest::Randomization,
    };
    g.bench_function("compare 135 pairs, 10k rows, 1k resamples", |b| {
        b.iter(|| stats::compare_pairs(&values, n, cols, &pairs, &cfg).expect("compare"))
    });
    g.finish();
}

/// Issue 14 §1: appending 1% as a new segment against rebuilding, and search
/// over ten segments (exhaustive, and block-max `search_pruned`) against one
/// segment and against the compiled flat index the Python binding searches.
fn bench_segments(c: &mut Criterion) {
    let n = 20_000usize;
    let docs = texts(n + n / 100, 60, 1);
    let ids: Vec<String> = (0..docs.len()).map(|i| format!("d{i}")).collect();
    let queries = texts(200, 4, 2);
    let tok = Tokenizer::new(true, vec![], None).expect("tokenizer");
    let params = Params::new(Method::Lucene, 1.5, 0.75, 0.5).expect("params");
    let build = |parts: usize, upto: usize| {
        let mut index = SegmentedIndex::new(params);
        let step = upto.div_ceil(parts);
        for s in (0..upto).step_by(step) {
            let e = (s + step).min(upto);
            index.add_texts(&docs[s..e], &ids[s..e], &tok).expect("add");
        }
        index
    };
    let mut g = c.benchmark_group("segments");
    g.sample_size(10);
    g.bench_function("rebuild 20.2k docs as one segment", |b| {
        b.iter(|| build(1, docs.len()))
    });
    g.bench_function("append 1% (200 docs) to a 20k-doc index", |b| {
        b.iter_batched(
            || build(1, n),
            |mut index| {
                index
                    .add_texts(&docs[n..], &ids[n..], &tok)
                    .expect("append");
                index
            },
            criterion::BatchSize::LargeInput,
        )
    });
    let q: Vec<Vec<String>> = queries.iter().map(|t| tok.tokenize(t)).collect();
    for parts in [1usize, 10] {
        let index = build(parts, n);
        g.bench_function(
            format!("compile {parts} segment(s) to the flat index"),
            |b| b.iter(|| index.compile().expect("compile")),
        );
        let flat = index.compile().expect("compile");
        let qids: Vec<Vec<u32>> = q.iter().map(|t| flat.term_ids(t)).collect();
        for k in [10usize, 100, 1000] {
            let name = |what: &str| format!("{what} 200 queries top-{k}, {parts} segment(s)");
            g.bench_function(name("search"), |b| {
                b.iter(|| {
                    q.iter()
                        .map(|t| index.search(t, k).expect("search").len())
                        .sum::<usize>()
                })
            });
            g.bench_function(name("search_pruned"), |b| {
                b.iter(|| {
                    q.iter()
                        .map(|t| index.search_pruned(t, k).expect("search").len())
                        .sum::<usize>()
                })
            });
            g.bench_function(name("compiled flat search"), |b| {
                b.iter(|| qids.iter().map(|t| flat.search(t, k).len()).sum::<usize>())
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench, bench_pareto, bench_stats, bench_segments);
criterion_main!(benches);
