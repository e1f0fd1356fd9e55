"""Does speculative decoding pay for itself where it should? On a model that copies from its
prompt, prompt-lookup decoding against plain decoding: decode tokens/s, latency, acceptance, and
greedy identity, through ``serve-bench`` itself.

    python benches/bench_speculative.py [--model runs/copy-model/model.gguf] [--repeats 3]

Without --model it trains one first (``bdnsca tiny-model --copy-steps 1500 --hidden-size 128``,
about 8 minutes on 2 CPU cores; reused from runs/copy-model on later runs). Any GGUF works with
--model, with prompts of your own (--prompts/--references).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bdnsca.serve.bench import ServeBenchSettings, parse_speculative, run_serve_bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--prompts", default=None)
    ap.add_argument("--references", default=None)
    ap.add_argument("--speculative", default="none,prompt-lookup:4,prompt-lookup:10")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--n-threads", type=int, default=None)
    ap.add_argument("--copy-steps", type=int, default=1500)
    ap.add_argument("--output-root", default="artifacts/serving-speculative")
    args = ap.parse_args()

    folder = Path("runs/copy-model")
    model = args.model
    if model is None:
        model = str(folder / "model.gguf")
        if not Path(model).exists():
            from bdnsca.train.tiny import TinyModelConfig, make_tiny_model

            print(f"training a copy-task model ({args.copy_steps} steps) into {folder} ...", flush=True)
            info = make_tiny_model(
                folder, TinyModelConfig(layers=2, hidden_size=128), gguf=True, copy_steps=args.copy_steps
            )
            ct = info["copy_task"]
            print(
                f"final loss {ct['loss_curve'][-1]['loss']}, held-out exact copies "
                f"{ct['held_out_exact_copy_rate']:.0%}"
            )
    prompts = args.prompts or str(folder / "copy_prompts.jsonl")
    references = args.references or str(folder / "copy_references.jsonl")
    settings = ServeBenchSettings(
        models=[model],
        speculative=parse_speculative(args.speculative),
        prompts=prompts,
        references=references,
        max_tokens=args.max_tokens,
        temperature=0.0,
        repeats=args.repeats,
        n_threads=args.n_threads,
        output_root=args.output_root,
    )
    res = run_serve_bench(settings)
    cfgs = res.summary["configs"]
    base = next(c for c in cfgs if c["speculative"] == "none")
    print(f"\nspeculative decoding on {model} ({res.summary['requests']} requests)")
    head = (
        f"{'mode':<20}{'decode tok/s':>14}{'speed-up':>10}{'latency ms':>12}{'vs plain':>10}"
        f"{'acceptance':>12}{'identity':>10}{'chrF':>8}"
    )
    print(head)
    print("-" * len(head))
    for c in cfgs:
        tps, lat = c["decode_tokens_per_s"]["mean"], c["total_ms"]["mean"]
        acc = "-" if c["acceptance_rate"] is None else f"{c['acceptance_rate']:.3f}"
        print(
            f"{c['speculative']:<20}{tps:>14.1f}{tps / base['decode_tokens_per_s']['mean']:>9.2f}x"
            f"{lat:>12.2f}{base['total_ms']['mean'] / lat:>9.2f}x{acc:>12}"
            f"{c['greedy_identity_rate']:>10.3f}{c['quality']['chrf']:>8.3f}"
        )
    print(f"\nfull outputs: {res.output_dir}")


if __name__ == "__main__":
    main()
