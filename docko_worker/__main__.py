"""``python -m docko_worker``: the same as the ``docko-worker`` command."""

from .launch import main

raise SystemExit(main())
