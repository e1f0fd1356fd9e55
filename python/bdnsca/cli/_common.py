"""Shared pieces of the command line: the ``bdnsca`` group, the console and progress bars."""

from __future__ import annotations

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(),
        transient=True,
    )


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="bdnsca")
def cli() -> None:
    """bdnsca: BM25 retrieval, hard negatives, IR metrics, preference optimisation and serving
    benchmarks for a retrieval-augmented dialogue model."""

