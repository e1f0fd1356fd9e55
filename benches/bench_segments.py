"""Changing an index without a rebuild (issue 14 §1): what an append, a delete and a search over
several segments cost against a full rebuild and a merged index, on a synthetic Zipf corpus.

    python benches/bench_segments.py                  # 1M documents, 1% appended, 10 segments
    python benches/bench_segments.py --docs 100000    # quick look

Rows:
- full rebuild: ``BM25().index(all live texts)`` then ``save`` to a fresh folder;
- append 1% (in memory): ``bm25.add`` on the index a process already holds, then ``save`` back to
  its folder (only the new segment and the manifest are written);
- append 1% (folder): what ``bdnsca index --append`` runs, ``BM25.append_to``: it reads the
  manifest and the ids, tokenises and writes the new segment and the manifest, never the postings;
- append 1% (load + add + save): the same change through a loaded index;
- delete 1% (folder): what ``bdnsca index --delete`` runs, ``BM25.delete_from`` (a deletes file and
  the manifest), and the same through ``BM25.load``, ``delete``, ``save``;
- search: ``search_batch`` of the queries over a 10-segment index and over the same index merged
  into one segment. The first search after a change compiles the segments into the flat search
  index (a one-off cost, shown on its own row); later searches do not, so steady-state search
  over segments runs on the same structure as a merged index.
Timings are the best of ``--repeat`` runs, configurations interleaved; results are checked equal.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
from common import vocabulary, zipf_texts  # noqa: E402

from bdnsca import BM25  # noqa: E402


def timed(fn):
    gc.collect()
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--append-fraction", type=float, default=0.01)
    ap.add_argument("--segments", type=int, default=10)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    n_new = max(1, int(args.docs * args.append_fraction))
    vocab = vocabulary(100_000, 0, max_syllables=5)
    texts = zipf_texts(args.docs + n_new, vocab, mean_len=40, seed=1)
    ids = [f"d{i}" for i in range(len(texts))]
    base_texts, base_ids = texts[: args.docs], ids[: args.docs]
    new_texts, new_ids = texts[args.docs :], ids[args.docs :]
    queries = zipf_texts(args.queries, vocab, mean_len=4, seed=2)
    print(f"{args.docs:,} documents (+{n_new:,} appended), {args.queries:,} queries, k={args.k}, "
          f"load {os.getloadavg()[0]:.1f}")

    root = tempfile.mkdtemp(prefix="bench_segments_")
    try:
        base_dir = os.path.join(root, "base")
        BM25().index(base_texts, ids=base_ids).save(base_dir)

        def fresh_copy(name: str) -> str:
            """A copy of the base index folder to change (not timed)."""
            work = os.path.join(root, name)
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(base_dir, work)
            return work

        def full_rebuild() -> float:
            out = os.path.join(root, "full")
            shutil.rmtree(out, ignore_errors=True)
            t, _ = timed(lambda: BM25().index(texts, ids=ids).save(out))
            return t

        def append_from_disk() -> float:
            work = fresh_copy("append")

            def go():
                bm = BM25.load(work)
                bm.add(new_texts, ids=new_ids)
                bm.save(work)

            return timed(go)[0]

        def append_in_memory() -> float:
            work = fresh_copy("append_mem")
            bm = BM25.load(work)

            def go():
                bm.add(new_texts, ids=new_ids)
                bm.save(work)

            return timed(go)[0]

        def append_folder() -> float:
            work = fresh_copy("append_folder")
            return timed(lambda: BM25.append_to(work, new_texts, new_ids))[0]

        gone = base_ids[:: max(1, int(1 / args.append_fraction))]

        def delete_folder() -> float:
            work = fresh_copy("delete_folder")
            return timed(lambda: BM25.delete_from(work, gone))[0]

        def delete_from_disk() -> float:
            work = fresh_copy("delete")

            def go():
                bm = BM25.load(work)
                bm.delete(gone)
                bm.save(work)

            return timed(go)[0]

        rows: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, fn in (
                ("full rebuild (index + save)", full_rebuild),
                ("append 1% in memory (add + save)", append_in_memory),
                ("append 1% to the folder (append_to)", append_folder),
                ("append 1% (load + add + save)", append_from_disk),
                ("delete 1% from the folder (delete_from)", delete_folder),
                ("delete 1% (load + delete + save)", delete_from_disk),
            ):
                rows[name] = min(rows.get(name, float("inf")), fn())
        full = rows["full rebuild (index + save)"]
        print(f"\n{'operation':<46}{'seconds':>10}{'of rebuild':>12}")
        for name, secs in rows.items():
            print(f"{name:<46}{secs:>10.3f}{100 * secs / full:>11.2f}%")

        # Search over segments vs merged.
        step = -(-args.docs // args.segments)
        seg = BM25().index(base_texts[:step], ids=base_ids[:step])
        for s in range(step, args.docs, step):
            seg.add(base_texts[s : s + step], ids=base_ids[s : s + step])
        merged = BM25().index(base_texts, ids=base_ids)
        assert seg.n_segments == args.segments and merged.n_segments == 1, (seg.n_segments, merged.n_segments)
        t_compile, _ = timed(lambda: seg.search_batch(queries[:1], k=args.k))
        t_compile_merged, _ = timed(lambda: merged.search_batch(queries[:1], k=args.k))
        best = {"segments": float("inf"), "merged": float("inf")}
        for _ in range(args.repeat):
            for name, bm in (("segments", seg), ("merged", merged)):
                t, out = timed(lambda bm=bm: bm.search_batch(queries, k=args.k))
                best[name] = min(best[name], t)
                if name == "segments":
                    seg_out = out
                else:
                    merged_out = out
        same = seg_out[0] == merged_out[0] and np.array_equal(seg_out[1], merged_out[1], equal_nan=True)
        print(f"\nsearch_batch of {args.queries:,} queries, k={args.k}")
        print(f"  first search compiles the segments: {args.segments} segments {t_compile:.3f}s, "
              f"1 segment {t_compile_merged:.3f}s")
        print(f"  steady state: {args.segments} segments {best['segments']:.3f}s, "
              f"merged {best['merged']:.3f}s, "
              f"ratio {best['segments'] / best['merged']:.2f}x; with the compile: "
              f"{(best['segments'] + t_compile) / best['merged']:.2f}x; results identical: {same}")
        print(f"load {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
