"""Does speculative decoding pay for itself where it should? On a model that copies from its
prompt, prompt-lookup decoding against plain decoding: decode tokens/s, latency, acceptance, and
greedy identity, through ``serve-bench`` itself.

    python benches/bench_speculative.py [--model runs/copy-model/model.gguf] [--repeats 3] [--limit N]

Without --model it trains one first (``bdnsca tiny-model --copy-steps 1500 --hidden-size 128``,
about 8 minutes on 2 CPU cores; reused from runs/copy-model on later runs). Any GGUF works with
--model, with prompts of your own (--prompts/--references). Speed-ups are over plain decoding of
the same model, with paired 95% bootstrap intervals over prompts.
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
    ap.add_argument("--limit", type=int, default=None, help="use only the first N prompts")
    ap.add_argument("--bootstrap", type=int, default=1000)
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
        limit=args.limit,
        bootstrap=args.bootstrap,
        n_threads=args.n_threads,
        output_root=args.output_root,
    )
    res = run_serve_bench(settings)
    cfgs = res.summary["configs"]
    print(f"\nspeculative decoding on {model} ({res.summary['requests']} requests)")
    head = (
        f"{'mode':<20}{'decode tok/s':>14}{'decode speed-up [95% CI]':>28}{'latency ms':>12}"
        f"{'latency speed-up [95% CI]':>29}{'acceptance':>12}{'identity':>10}{'chrF':>8}"
    )
    print(head)
    print("-" * len(head))
    for c in cfgs:
        tps, lat = c["decode_tokens_per_s"]["mean"], c["total_ms"]["mean"]
        acc = "-" if c["acceptance_rate"] is None else f"{c['acceptance_rate']:.3f}"
        ident = "-" if c["greedy_identity_rate"] is None else f"{c['greedy_identity_rate']:.3f}"
        print(
            f"{c['speculative']:<20}{_num(tps, 1):>14}{_speedup(c['decode_speedup_vs_plain']):>28}"
            f"{lat:>12.2f}{_speedup(c['speedup_vs_plain']):>29}{acc:>12}{ident:>10}{c['quality']['chrf']:>8.3f}"
        )
    print(f"\nfull outputs: {res.output_dir}")


def _num(x: float | None, nd: int) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _speedup(s: dict | None) -> str:
    if not s or s["mean"] is None:
        return "-"
    ci = s["ci95"]
    return f"{s['mean']:.2f}x" + ("" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]")


if __name__ == "__main__":
    main()
