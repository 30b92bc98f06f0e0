"""``python -m rnnlab``: the same CLI as the ``rnnlab`` command."""

from rnnlab.cli import main

main()
