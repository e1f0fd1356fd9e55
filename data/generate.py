"""Writes bdnsca's bundled example data into this folder (deterministic: the same bytes every time).
The generators live in the package, bdnsca.data.npcworld (corpus, gold queries, serving prompts)
and bdnsca.data.scenarios (dialogue scenarios), so that installed copies have the world too."""

from pathlib import Path

from bdnsca.data.npcworld import write_world
from bdnsca.data.scenarios import write_scenarios

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for name, n in write_world(here).items():
        print(f"{name}: {n} rows")
    print(f"scenarios.jsonl: {write_scenarios(here)} rows")
