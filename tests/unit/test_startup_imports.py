"""What ``docko-worker run`` imports before its first claim: only what it needs.

Start-up is mostly imports (``benchmarks/startup.py`` measures it), so the modules that only
other commands, the HTTP endpoint, periodic jobs or producers use are imported when they are
used. Each check runs in a fresh interpreter, whose ``sys.modules`` this process cannot spoil.
rich is not among them: structlog imports it by itself whenever it is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Modules the `run` command must not import while no HTTP port and no periodic job is configured.
NOT_FOR_RUN = [
    "starlette",
    "jinja2",
    "uvicorn",
    "opentelemetry",
    "prometheus_client",
    "h11",
    "cronsim",
    "psycopg",
    "sqlalchemy",
    "django",
    "docko_worker.dashboard",
    "docko_worker.demo",
    "docko_worker.embedded",
    "docko_worker.tracing",
    "docko_worker.producers",
    "docko_worker.periodic_command",
    "docko_worker.endpoint",
    "docko_worker.http_server",
    "docko_worker.exposition",
    "docko_worker.sampler",
    "docko_worker.scheduler",
]


def imported_by(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def offenders(modules: set[str]) -> list[str]:
    return sorted(
        name for name in modules for top in NOT_FOR_RUN if name == top or name.startswith(top + ".")
    )


def test_the_run_command_imports_only_what_it_needs() -> None:
    # What `docko-worker run` imports before it loads the handlers: the command line parsed,
    # the daemon's parts built.
    modules = imported_by(
        "from docko_worker.cli import build_parser\n"
        "build_parser().parse_args(['run'])\n"
        "import docko_worker.daemon, docko_worker.supervisor, docko_worker.queue"
    )
    assert "docko_worker.daemon" in modules
    assert offenders(modules) == []


def test_importing_the_package_imports_no_submodule() -> None:
    modules = imported_by("import docko_worker")
    assert sorted(name for name in modules if name.startswith("docko_worker.")) == []
    assert "pydantic" not in modules


def test_a_public_name_imports_its_module_on_first_use() -> None:
    modules = imported_by("from docko_worker import Job")
    assert "docko_worker.job" in modules
    assert "docko_worker.queue" not in modules


# Run in a fresh interpreter: the pause ends with ``gc.freeze()``, which this process should not
# undergo on behalf of every test after this one.
COLLECTION_PAUSE = """
import gc
from docko_worker.launch import collection_paused

(gc.enable if {enabled} else gc.disable)()
with collection_paused():
    assert not gc.isenabled()
    built = [[] for _ in range(1000)]
assert gc.isenabled() is {enabled}
assert gc.get_freeze_count() >= 1000  # what was built inside is out of the collector's way
try:
    with collection_paused():
        import no_such_module_anywhere
except ImportError:
    pass
assert gc.isenabled() is {enabled}
print("ok")
"""


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collection_pause_restores_the_collector(enabled: bool) -> None:
    result = subprocess.run(
        [sys.executable, "-c", COLLECTION_PAUSE.format(enabled=enabled)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")
