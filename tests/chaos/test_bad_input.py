"""Awkward and hostile input: names and payloads are delivered intact, or refused before writing.

Queue names, job types and payloads with quotes, backslashes, SQL, control characters, non-BMP
text and a 1 MB payload are enqueued through ``Queue`` and run through a real worker (in this
process, on a fresh database); what the handler receives, and what the table holds, must equal
what was enqueued, type for type (payloads are stored as json, so NUL characters and large floats
come back as written). What PostgreSQL cannot store (NUL characters in names, which are text) or
what is not Unicode text at all (lone surrogates, ``bytes``) must be refused with
``PayloadError`` / ``DockoError`` before anything is written: the table stays empty. The CLI's
``enqueue`` must refuse the same with one line on stderr and exit status 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
from chaos_harness import connect

from docko_worker import Config, DockoError, Job, PayloadError, Queue, load_config
from tests.daemon_process import CLI

pytestmark = pytest.mark.chaos


def config_for(dsn: str, queue_name: str = "default") -> Config:
    return load_config(
        database_url=dsn,
        queues=[queue_name],
        poll_interval=0.1,
        visibility_timeout=10,
        base_retry_delay=0.01,
        max_retry_delay=0.05,
        completion_flush_interval=0.001,
        log_format="console",
        log_level="error",
    )


def same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down: ``1``, ``1.0`` and ``True`` differ."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def megabyte_of_awkward_text() -> str:
    rng = random.Random(7)
    alphabet = "ab \"'\\/\n\t\u00e9\u4e2d\U0001f680\u2028{}[]$%:,"
    return "".join(rng.choice(alphabet) for _ in range(1_048_576))


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = {"level": level, "down": [value]}
    return value


DELIVERED: dict[str, tuple[str, str, Any]] = {
    "quotes": ("q'uote\"d`", "t'y\"pe", {"s": 'it\'s "quoted" `x`', "k'e\"y": "v'\""}),
    "backslashes": (
        "back\\slash\\",
        "\\t\\y\\p\\e\\",
        {"path": "C:\\dir\\file", "not_a_nul": "\\u0000", "esc": "\\n\\t\\\\", "\\": "\\\\\\"},
    ),
    "sql": (
        "x'); DROP TABLE docko_jobs; --",
        "$1::text",
        {"s": "'; DELETE FROM docko_jobs; --", "dollars": "$$ $1 $tag$ {{job_columns}}"},
    ),
    "unicode": (
        "очередь-キュー-🚀",
        "тип-型",
        {
            "s": "emoji 🚀 zwsp\u200b ls\u2028 ps\u2029 rtl\u202e bom\ufeff",
            "astral": "𝄞\U0010fffd",
            "combining": "e\u0301",
            "🔑": "ключ",
        },
    ),
    "control characters": (
        "ctl\x01\x1f\x7f",
        "tab\there\nnewline",
        {"s": "".join(chr(code) for code in range(1, 32)) + "\x7f\x80\x9f"},
    ),
    "numbers": (
        "numbers",
        "numbers",
        {"big": 2**70, "neg": -(2**63), "f": 0.1, "tiny": 1e-7, "one": 1.0, "l": [1, 2.5, -3]},
    ),
    "scalars and empties": (
        "scalars",
        "scalars",
        {"none": None, "t": True, "f": False, "list": [], "obj": {}, "empty": ""},
    ),
    "NUL characters": (
        "nul",
        "nul",
        {"s": "a\x00b", "k\x00": 1, "after escaped backslash": "\\\x00", "\x00": ["\x00"]},
    ),
    "top-level string": ("top", "top", "just a string"),
    "top-level null": ("top", "top", None),
    "deeply nested": ("nested", "nested", nested(100)),
    "1 MB payload": ("big", "big", {"blob": megabyte_of_awkward_text()}),
}


async def deliver(dsn: str, queue_name: str, job_type: str, payloads: list[Any]) -> list[Job]:
    """Enqueue ``payloads``, run them through a worker, return the jobs the handler received."""
    received: dict[Any, Job] = {}
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        received[job.id] = job
        if len(received) == len(payloads):
            done.set()

    async with await Queue.connect(config_for(dsn, queue_name)) as queue:
        queue.register_handler(job_type, handler)
        if len(payloads) == 1:
            ids = [(await queue.enqueue(queue_name, job_type, payloads[0])).id]
        else:
            ids = await queue.enqueue_many(queue_name, job_type, payloads)
        await queue.start([queue_name])
        await asyncio.wait_for(done.wait(), 60)
        for _ in range(600):
            jobs = [await queue.get_job(job_id) for job_id in ids]
            if all(job is not None and job.state == "completed" for job in jobs):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail(f"jobs not completed: {[job and job.state for job in jobs]}")
    return [received[job_id] for job_id in ids]


async def stored_rows(dsn: str) -> list[Any]:
    conn = await connect(dsn)
    try:
        return list(
            await conn.fetch(
                "SELECT queue_name, job_type, payload::text AS payload FROM docko_jobs"
            )
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("case", list(DELIVERED), ids=list(DELIVERED))
async def test_awkward_names_and_payloads_are_stored_and_delivered_intact(
    case: str, database_url: str
) -> None:
    queue_name, job_type, payload = DELIVERED[case]
    [job] = await deliver(database_url, queue_name, job_type, [payload])
    assert (job.queue_name, job.job_type) == (queue_name, job_type)
    assert same(job.payload, payload), "the handler received a different payload"
    [row] = await stored_rows(database_url)
    assert (row["queue_name"], row["job_type"]) == (queue_name, job_type)
    assert same(json.loads(row["payload"]), payload), "the table holds a different payload"


async def test_enqueue_many_delivers_every_awkward_payload_intact(database_url: str) -> None:
    payloads = [payload for _, _, payload in DELIVERED.values()]
    jobs = await deliver(database_url, "many'\\q", 'many"\\t', payloads)
    for job, payload in zip(jobs, payloads, strict=True):
        assert same(job.payload, payload)


@pytest.mark.parametrize("value", [1e16, 1.5e300], ids=lambda v: repr(v))
async def test_large_floats_come_back_as_the_same_floats(value: float, database_url: str) -> None:
    """``json.dumps`` writes these in exponent form; jsonb prints them as integers."""
    payload = {"f": value}
    [job] = await deliver(database_url, "floats", "floats", [payload])
    assert same(job.payload, payload), (
        f"enqueued {payload!r}, the handler received {job.payload!r} "
        f"({type(job.payload['f']).__name__})"
    )


# Refused before anything is written

REFUSED: dict[str, tuple[dict[str, Any], type[Exception], str]] = {
    "lone surrogate in payload": ({"payload": {"s": "x\ud800y"}}, PayloadError, "surrogate"),
    "lone surrogate in payload key": ({"payload": {"\udcff": 1}}, PayloadError, "surrogate"),
    "bytes in payload": ({"payload": {"b": b"\xff\xfe"}}, PayloadError, "bytes"),
    "bytes payload": ({"payload": b"raw"}, PayloadError, "bytes"),
    "NaN in payload": ({"payload": {"x": float("nan")}}, PayloadError, "JSON"),
    "infinity in payload": ({"payload": [float("inf")]}, PayloadError, "JSON"),
    "set payload": ({"payload": {1, 2}}, PayloadError, "set"),
    "integer of 5000 digits": ({"payload": {"n": 10**5000}}, PayloadError, "JSON"),
    "NUL in queue name": ({"queue_name": "q\x00"}, DockoError, "queue_name"),
    "lone surrogate in queue name": ({"queue_name": "q\udcff"}, DockoError, "queue_name"),
    "bytes queue name": ({"queue_name": b"q"}, DockoError, "queue_name"),
    "empty queue name": ({"queue_name": ""}, DockoError, "queue_name"),
    "NUL in job type": ({"job_type": "t\x00"}, DockoError, "job_type"),
    "lone surrogate in job type": ({"job_type": "\ud83d"}, DockoError, "job_type"),
    "bytes job type": ({"job_type": b"\xff"}, DockoError, "job_type"),
    "NUL in dedupe key": ({"dedupe_key": "k\x00"}, DockoError, "dedupe_key"),
}


@pytest.fixture
async def queue(database_url: str) -> AsyncIterator[Queue]:
    async with await Queue.connect(config_for(database_url)) as q:
        yield q


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
async def test_what_postgres_cannot_store_is_refused_before_anything_is_written(
    case: str, queue: Queue, database_url: str
) -> None:
    overrides, error, mentions = REFUSED[case]
    fields: dict[str, Any] = {"queue_name": "q", "job_type": "t", "payload": {"ok": 1}}
    fields.update(overrides)
    dedupe = fields.pop("dedupe_key", None)
    with pytest.raises(error) as raised:
        await queue.enqueue(
            fields["queue_name"], fields["job_type"], fields["payload"], dedupe_key=dedupe
        )
    assert mentions.lower() in str(raised.value).lower(), str(raised.value)
    if "payload" in overrides:
        # The same payload among good ones: the whole batch is refused.
        with pytest.raises(error):
            await queue.enqueue_many("q", "t", [{"ok": 1}, fields["payload"], {"ok": 2}])
    assert await stored_rows(database_url) == []


def run_enqueue_cli(dsn: str, args: list[bytes]) -> subprocess.CompletedProcess[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKO_")}
    env.update(DOCKO_DATABASE_URL=dsn, DOCKO_LOG_FORMAT="json")
    return subprocess.run(
        [CLI.encode(), b"enqueue", *args],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        [b"q", b"t", b'{"s": "\\ud800"}'],
        [b"q", b"t", b'{"s": "\xff\xfe not utf-8"}'],
        [b"q\xff", b"t", b"{}"],
        [b"q", b"t\xc3\x28", b"{}"],
    ],
    ids=[
        "escaped lone surrogate",
        "raw non-UTF-8 payload",
        "non-UTF-8 queue",
        "non-UTF-8 type",
    ],
)
async def test_cli_enqueue_refuses_unstorable_input_with_one_line(
    args: list[bytes], database_url: str
) -> None:
    result = await asyncio.to_thread(run_enqueue_cli, database_url, args)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("docko-worker: error:"), stderr
    assert "Traceback" not in stderr
    assert await stored_rows(database_url) == []


async def test_queue_name_is_a_parameter_not_sql(database_url: str) -> None:
    """A queue name that would end the statement does nothing but name a queue."""
    name = "default'); DELETE FROM docko_jobs; --"
    async with await Queue.connect(config_for(database_url)) as queue:
        await queue.enqueue("default", "t", {"keep": True})
        await queue.enqueue(name, "t", {"n": 1})
    rows = await stored_rows(database_url)
    assert sorted(row["queue_name"] for row in rows) == sorted(["default", name])
