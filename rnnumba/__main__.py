"""``python -m rnnumba``: the same as the ``rnnumba`` command."""

from .cli import main

raise SystemExit(main())
