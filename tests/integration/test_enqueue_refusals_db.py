"""What no worker could ever handle is refused at enqueue, before anything is written.

Each refusal is tried through every way of enqueueing it applies to: ``Queue.enqueue``,
``enqueue_many`` due now (its binary COPY), ``enqueue_many`` with a delay (its multi-row INSERT),
and ``enqueue(conn=...)`` inside a caller's transaction, which must stay usable afterwards. The
limits' own edges are accepted, stored, and read back as they were enqueued.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from docko_worker import DockoError, Job, PayloadError, Queue
from docko_worker.payloads import MAX_PAYLOAD_DEPTH, MAX_SCHEDULE_AHEAD
from tests.integration.support import count_jobs

QUEUE = "documents"
TYPE = "ocr"
INT4_MAX = 2**31 - 1
INT4_MIN = -(2**31)
DAEMON_INT_DIGITS = 4300  # Python's default int string limit, which a daemon decodes under


async def via_enqueue(queue: Queue, payload: Any, **options: Any) -> None:
    await queue.enqueue(QUEUE, TYPE, payload, **options)


async def via_copy(queue: Queue, payload: Any, **options: Any) -> None:
    await queue.enqueue_many(QUEUE, TYPE, [{"ok": 1}, payload, {"ok": 2}], **options)


async def via_insert(queue: Queue, payload: Any, **options: Any) -> None:
    options.setdefault("delay", 60)
    await queue.enqueue_many(QUEUE, TYPE, [{"ok": 1}, payload, {"ok": 2}], **options)


async def via_callers_transaction(queue: Queue, payload: Any, **options: Any) -> None:
    """Raises what ``enqueue(conn=...)`` raised, once the transaction went on and committed."""
    refusal: Exception | None = None
    async with queue.pool.acquire() as conn, conn.transaction():
        try:
            await queue.enqueue(QUEUE, TYPE, payload, conn=conn, **options)
        except Exception as exc:
            refusal = exc
        kept = await queue.enqueue(QUEUE, TYPE, {"kept": True}, conn=conn)
    assert await queue.get_job(kept.id) is not None
    if refusal is not None:
        raise refusal


Enqueuer = Callable[..., Awaitable[None]]
PATHS: dict[str, Enqueuer] = {
    "enqueue": via_enqueue,
    "enqueue_many COPY": via_copy,
    "enqueue_many INSERT": via_insert,
    "enqueue on a caller's transaction": via_callers_transaction,
}
# Scheduling options send enqueue_many down its INSERT path: there is no COPY to try.
SCHEDULING_PATHS = {name: path for name, path in PATHS.items() if name != "enqueue_many COPY"}


async def assert_refused(
    queue: Queue,
    enqueuer: Enqueuer,
    error: type[Exception],
    match: str,
    payload: Any = None,
    **options: Any,
) -> None:
    """``payload`` with ``options`` is refused with ``error``, and nothing of it is written."""
    before = await count_jobs(queue)
    kept = 1 if enqueuer is via_callers_transaction else 0
    with pytest.raises(error, match=match):
        await enqueuer(queue, {"ok": 0} if payload is None else payload, **options)
    assert await count_jobs(queue) == before + kept


async def stored_payload_text(db: asyncpg.Connection, job: Job) -> str:
    return str(await db.fetchval("SELECT payload::text FROM docko_jobs WHERE id = $1", job.id))


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep around an object (the object is the last level)."""
    value: Any = {"bottom": True}
    for _ in range(depth - 1):
        value = [value]
    return value


@contextmanager
def interpreter_limit(
    get: Callable[[], int], put: Callable[[int], None], value: int
) -> Iterator[None]:
    """A producer that raised one of Python's limits (``get`` / ``put``) to ``value``."""
    before = get()
    put(value)
    try:
        yield
    finally:
        put(before)


def recursion_limit(limit: int) -> AbstractContextManager[None]:
    """A producer that raised its recursion limit (and can so encode deeper payloads)."""
    return interpreter_limit(sys.getrecursionlimit, sys.setrecursionlimit, limit)


def int_digit_limit(limit: int) -> AbstractContextManager[None]:
    """A producer that raised ``sys.set_int_max_str_digits`` (0: no limit)."""
    return interpreter_limit(sys.get_int_max_str_digits, sys.set_int_max_str_digits, limit)


# 1. Object keys that become the same JSON string

COLLIDING_KEYS: dict[str, Any] = {
    "int and str": {1: "a", "1": "b"},
    "negative int and str": {"-7": "a", -7: "b"},
    "float and str": {1.5: "a", "1.5": "b"},
    "True and str": {True: "a", "true": "b"},
    "None and str": {"null": "a", None: "b"},
    "nested in a list": {"pages": [{"n": 1}, {2: "a", "2": "b"}]},
    "in a top-level list": [{"x": 1}, {0: "a", "0": "b"}],
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", list(COLLIDING_KEYS))
async def test_keys_that_collide_as_json_are_refused(queue: Queue, path: str, case: str) -> None:
    await assert_refused(queue, PATHS[path], PayloadError, "keys", COLLIDING_KEYS[case])


async def test_non_string_keys_that_do_not_collide_arrive_as_json_strings(
    queue: Queue, db: asyncpg.Connection
) -> None:
    payload = {1: "a", 2.5: "b", False: "c", None: "d", "x": {3: [{-4: "e"}]}, "1.0": "f"}
    job = await queue.enqueue(QUEUE, TYPE, payload)

    stored = await stored_payload_text(db, job)
    expected = {"1": "a", "2.5": "b", "false": "c", "null": "d", "x": {"3": [{"-4": "e"}]}}
    expected["1.0"] = "f"
    assert json.loads(stored) == expected
    # The handler gets exactly what was stored, every key included.
    fetched = await queue.get_job(job.id)
    assert fetched is not None
    assert fetched.payload == expected
    assert len(stored) == len(json.dumps(expected, separators=(",", ":"), ensure_ascii=False))


async def test_string_keys_that_look_like_numbers_are_kept(queue: Queue) -> None:
    payload = {"1": "a", "true": "b", "null": "c", "-2.5e+16": "d"}
    ids = await queue.enqueue_many(QUEUE, TYPE, [payload, payload])
    for job_id in ids:
        job = await queue.get_job(job_id)
        assert job is not None
        assert job.payload == payload


# 2. Priority and max_attempts: PostgreSQL integers (int4)

FIELD_REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "priority 2**31": ({"priority": INT4_MAX + 1}, "priority"),
    "priority -2**31 - 1": ({"priority": INT4_MIN - 1}, "priority"),
    "priority 10**30": ({"priority": 10**30}, "priority"),
    "priority 1.5": ({"priority": 1.5}, "priority"),
    "priority 2.0": ({"priority": 2.0}, "priority"),
    "priority True": ({"priority": True}, "priority"),
    "priority '3'": ({"priority": "3"}, "priority"),
    "max_attempts 2**31": ({"max_attempts": INT4_MAX + 1}, "max_attempts"),
    "max_attempts 0": ({"max_attempts": 0}, "max_attempts"),
    "max_attempts -1": ({"max_attempts": -1}, "max_attempts"),
    "max_attempts 3.0": ({"max_attempts": 3.0}, "max_attempts"),
    "max_attempts False": ({"max_attempts": False}, "max_attempts"),
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", list(FIELD_REFUSALS))
async def test_integer_fields_outside_int4_or_not_integers_are_refused(
    queue: Queue, path: str, case: str
) -> None:
    options, field = FIELD_REFUSALS[case]
    await assert_refused(queue, PATHS[path], PayloadError, field, **options)


async def test_the_out_of_range_message_names_the_field_and_the_range(queue: Queue) -> None:
    with pytest.raises(PayloadError) as raised:
        await queue.enqueue_many(QUEUE, TYPE, [{}], priority=2**31)
    assert str(raised.value) == (
        "priority must be an integer from -2147483648 to 2147483647, got 2147483648"
    )
    assert isinstance(raised.value, ValueError)


async def test_int4_edges_are_stored(queue: Queue) -> None:
    low = await queue.enqueue(QUEUE, TYPE, {}, priority=INT4_MIN, max_attempts=1)
    [high_id] = await queue.enqueue_many(
        QUEUE, TYPE, [{}], priority=INT4_MAX, max_attempts=INT4_MAX
    )
    [later_id] = await queue.enqueue_many(QUEUE, TYPE, [{}], priority=INT4_MAX, delay=5)
    high, later = await queue.get_job(high_id), await queue.get_job(later_id)
    assert (low.priority, low.max_attempts) == (INT4_MIN, 1)
    assert high is not None and (high.priority, high.max_attempts) == (INT4_MAX, INT4_MAX)
    assert later is not None and later.priority == INT4_MAX


# 3. Payloads a daemon could not decode: too deep, or an integer of too many digits


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_payload_deeper_than_the_limit_is_refused(queue: Queue, path: str) -> None:
    await assert_refused(queue, PATHS[path], PayloadError, "nested", nested(MAX_PAYLOAD_DEPTH + 1))


@pytest.mark.parametrize("path", list(PATHS))
async def test_a_payload_encoded_under_a_raised_recursion_limit_is_refused(
    queue: Queue, path: str
) -> None:
    with recursion_limit(10_000):
        deep = nested(1200)
        await assert_refused(queue, PATHS[path], PayloadError, "nested", deep)


@pytest.mark.parametrize("path", list(PATHS))
async def test_an_integer_longer_than_the_daemon_decodes_is_refused(
    queue: Queue, path: str
) -> None:
    with int_digit_limit(0):
        huge = {"n": 10**5000}
        await assert_refused(queue, PATHS[path], PayloadError, "digits", huge)
        negative = [-(10**DAEMON_INT_DIGITS)]  # 4,301 digits after the sign
        await assert_refused(queue, PATHS[path], PayloadError, "digits", negative)


async def test_payloads_at_the_limits_are_stored_and_read_back(queue: Queue) -> None:
    deepest = nested(MAX_PAYLOAD_DEPTH)
    longest = -(10**DAEMON_INT_DIGITS - 1)  # 4,300 nines after the sign
    look_alikes = {
        "digits in text": "9" * 10_000,
        "brackets in text": "[{" * 1_000,
        "escaped quotes": '\\"[' * 600 + '"' + "7" * 5_000,
    }
    with int_digit_limit(0):
        job = await queue.enqueue(QUEUE, TYPE, deepest)
        ids = await queue.enqueue_many(QUEUE, TYPE, [{"n": longest}, look_alikes])
    stored = await queue.get_job(job.id)
    assert stored is not None and stored.payload == deepest
    number, texts = [await queue.get_job(job_id) for job_id in ids]
    assert number is not None and number.payload == {"n": longest}
    assert texts is not None and texts.payload == look_alikes


# 4. Due times a datetime cannot hold, or beyond the documented bound

NOW = datetime.now(UTC)  # at collection: the margins below are days, the suite runs in minutes
SCHEDULE_REFUSALS: dict[str, tuple[dict[str, Any], str]] = {
    "delay 3e11": ({"delay": 3e11}, "delay"),
    "delay of a huge int": ({"delay": 10**400}, "delay"),
    "delay just past the bound": ({"delay": MAX_SCHEDULE_AHEAD.total_seconds() + 60}, "delay"),
    "timedelta.max": ({"delay": timedelta.max}, "delay"),
    "delay nan": ({"delay": float("nan")}, "delay"),
    "delay inf": ({"delay": float("inf")}, "delay"),
    "run_at datetime.max": ({"run_at": datetime.max.replace(tzinfo=UTC)}, "run_at"),
    "run_at datetime.min": ({"run_at": datetime.min.replace(tzinfo=UTC)}, "run_at"),
    "run_at past the bound": ({"run_at": NOW + MAX_SCHEDULE_AHEAD + timedelta(days=2)}, "run_at"),
    "run_at far in the past": ({"run_at": NOW - MAX_SCHEDULE_AHEAD - timedelta(days=2)}, "run_at"),
    "run_at plus delay past the bound": (
        {"run_at": NOW + MAX_SCHEDULE_AHEAD / 2, "delay": MAX_SCHEDULE_AHEAD * 0.6},
        "run_at",
    ),
}


@pytest.mark.parametrize("path", list(SCHEDULING_PATHS))
@pytest.mark.parametrize("case", list(SCHEDULE_REFUSALS))
async def test_due_times_out_of_bounds_are_refused(queue: Queue, path: str, case: str) -> None:
    options, mentions = SCHEDULE_REFUSALS[case]
    await assert_refused(queue, SCHEDULING_PATHS[path], DockoError, mentions, **options)


async def test_due_times_within_the_bound_are_stored_and_read_back(queue: Queue) -> None:
    now = datetime.now(UTC)
    almost = MAX_SCHEDULE_AHEAD - timedelta(days=2)
    delayed = await queue.enqueue(QUEUE, TYPE, {}, delay=almost)
    [scheduled_id] = await queue.enqueue_many(QUEUE, TYPE, [{}], run_at=now + almost)
    [past_id] = await queue.enqueue_many(QUEUE, TYPE, [{}], run_at=now - almost, delay=almost)
    scheduled, past = await queue.get_job(scheduled_id), await queue.get_job(past_id)
    assert delayed.run_at > now + almost - timedelta(days=1)
    # Past 2106 a stored time reads back within a few microseconds (see ``job._timestamp``).
    assert scheduled is not None
    assert abs(scheduled.run_at - (now + almost)) < timedelta(milliseconds=1)
    assert past is not None and abs(past.run_at - now) < timedelta(days=1)
