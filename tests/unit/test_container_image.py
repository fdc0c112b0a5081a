"""The Dockerfile's runtime stage: non-root user, the daemon as entrypoint, a health check."""

from __future__ import annotations

import re
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def runtime_stage() -> list[str]:
    """The instructions of the last stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


def arg_defaults() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", DOCKERFILE.read_text(encoding="utf-8"), re.M))


def test_the_runtime_stage_runs_as_an_unprivileged_user() -> None:
    users = [line.split(None, 1)[1] for line in runtime_stage() if line.upper().startswith("USER ")]
    assert users, "the runtime stage sets no USER: the container would run as root"
    user = users[-1].split(":")[0]
    user = re.sub(r"\$\{(\w+)\}", lambda m: arg_defaults().get(m.group(1), m.group(0)), user)
    assert user not in ("root", "0"), f"the container runs as {user}"


def test_the_daemon_is_the_entrypoint_with_a_health_check() -> None:
    stage = runtime_stage()
    assert 'ENTRYPOINT ["docko-worker"]' in stage
    assert 'CMD ["run"]' in stage
    assert any(line.startswith("HEALTHCHECK") and "healthcheck" in line for line in stage)
    assert "STOPSIGNAL SIGTERM" in stage


def test_the_image_serves_metrics_and_probes_on_every_interface() -> None:
    stage = " ".join(runtime_stage())
    assert re.search(r"\bDOCKO_HTTP_PORT=9808\b", stage)
    assert re.search(r"\bDOCKO_HTTP_HOST=0\.0\.0\.0\b", stage)
    assert "EXPOSE 9808" in runtime_stage()
