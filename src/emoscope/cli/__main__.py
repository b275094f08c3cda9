"""``python -m emoscope.cli``: the same as the ``emoscope`` command."""

from emoscope.cli import main

main()
