"""``python -m eosteach``: the same as the ``eosteach`` command."""

from .cli import main

raise SystemExit(main())
