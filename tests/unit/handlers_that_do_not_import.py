"""A handler module whose import fails, as a handler package with a missing dependency would."""

from __future__ import annotations

import docko_missing_ocr_engine  # noqa: F401  (does not exist: importing this module fails)


async def ocr(job: object) -> None:
    """Never reachable."""
