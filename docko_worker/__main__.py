"""``python -m docko_worker``: the same as the ``docko-worker`` command."""

from .cli import main

raise SystemExit(main())
