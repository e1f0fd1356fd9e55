"""The ``bdnsca`` command line: a thin layer over the importable functions.

Heavy libraries (torch, transformers, llama_cpp) are imported only inside the commands
that need them, so ``bdnsca --help`` starts fast.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

# Importing the command modules registers their commands on the group.
from bdnsca.cli import evalrun, gate, judge, pipeline, prefs, rerank, retrieval, serve, train  # noqa: F401
from bdnsca.cli._common import cli
from bdnsca.errors import BdnscaError

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI. A user error (bad input, a missing file, too little memory)
    prints one line and exits 1; an unexpected exception is a bug in bdnsca and is reported as
    one, with where it happened and how to get the traceback (``BDNSCA_DEBUG=1``), exit 3."""
    try:
        rc = cli.main(args=argv, prog_name="bdnsca", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (BdnscaError, OSError, MemoryError) as exc:
        if os.environ.get("BDNSCA_DEBUG"):
            raise
        click.echo(f"error: {_first_line(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:  # a programming error: never dressed as a user error
        if os.environ.get("BDNSCA_DEBUG"):
            raise
        where = traceback.extract_tb(exc.__traceback__)[-1]
        click.echo(
            f"internal error (a bug in bdnsca, please report it): {type(exc).__name__}: {_first_line(exc)}\n"
            f"  at {where.filename}:{where.lineno} in {where.name}; "
            "rerun with BDNSCA_DEBUG=1 for the full traceback",
            err=True,
        )
        sys.exit(3)
    sys.exit(rc if isinstance(rc, int) else 0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    main()
