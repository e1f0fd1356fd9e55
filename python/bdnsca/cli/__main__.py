"""``python -m bdnsca.cli``: the same as the ``bdnsca`` command."""

from bdnsca.cli import main

main()
