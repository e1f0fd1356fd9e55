"""Writes bdnsca's bundled example data into this folder (deterministic: the same bytes every time).
The generator lives in the package, bdnsca.data.npcworld, so that installed copies have the world too."""

from pathlib import Path

from bdnsca.data.npcworld import write_world

if __name__ == "__main__":
    for name, n in write_world(Path(__file__).resolve().parent).items():
        print(f"{name}: {n} rows")
