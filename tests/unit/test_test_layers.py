"""``make test`` runs every test directory: each one is a layer the Makefile names, in order."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def makefile_variable(name: str) -> list[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    match = re.search(rf"^{name} = (.*)$", text, re.MULTILINE)
    assert match, f"{name} is not set in the Makefile"
    return match.group(1).split()


def test_every_test_directory_is_a_layer_of_make_test_fastest_first() -> None:
    fast = makefile_variable("FAST_LAYERS")
    layers = makefile_variable("LAYERS")
    assert fast == ["tests/unit", "tests/integration", "tests/e2e"]
    assert layers == ["$(FAST_LAYERS)", "tests/chaos", "tests/browser"]
    with_tests = {
        str(path.parent.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if "handler_pkg" not in path.parts and "broken_pkg" not in path.parts
    }
    assert with_tests <= {*fast, "tests/chaos", "tests/browser"}, (
        "a test directory make test would not run"
    )
