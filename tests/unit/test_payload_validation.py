"""``docko_worker.payloads``: what no daemon could handle is refused before anything is written.

Colliding object keys, nesting past ``MAX_PAYLOAD_DEPTH``, integers longer than a daemon decodes,
integers outside PostgreSQL's ``integer``, and due times beyond ``MAX_SCHEDULE_AHEAD``. The cheap
paths (the batched key scan of ``encode_payloads``, the length and bracket pre-checks) must agree
with the exact checks they stand in for.
"""

from __future__ import annotations

import enum
import json
import sys
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest

from docko_worker import DockoError, PayloadError
from docko_worker.payloads import (
    DAEMON_INT_DIGITS,
    INT4_MAX,
    INT4_MIN,
    MAX_PAYLOAD_DEPTH,
    MAX_SCHEDULE_AHEAD,
    check_max_attempts,
    check_priority,
    check_schedule,
    encode_payload,
    encode_payloads,
)


class Level(enum.IntEnum):
    HIGH = 7


class Ratio(float):
    pass


def nested(depth: int, bottom: Any = 0) -> Any:
    value = bottom
    for level in range(depth):
        value = [value] if level % 2 else {"d": value}
    return value


@pytest.fixture
def unlimited_int_digits() -> Iterator[None]:
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


# Keys

NON_STRING_KEYS = [1, 0, -12, 10**30, 1.5, -0.25, 1e16, 1e-7, True, False, None, Level.HIGH]
NON_STRING_KEYS.append(Ratio(2.5))


@pytest.mark.parametrize("key", NON_STRING_KEYS, ids=repr)
def test_a_non_string_key_colliding_with_its_json_string_is_refused(key: Any) -> None:
    as_json = next(iter(json.loads(json.dumps({key: 0}))))
    assert encode_payload({key: "a"}) == json.dumps({as_json: "a"}, separators=(",", ":"))
    with pytest.raises(PayloadError, match="keys"):
        encode_payload({key: "a", as_json: "b"})
    with pytest.raises(PayloadError, match="keys"):
        encode_payload({"outer": [{as_json: "b", key: "a"}]})


def test_the_collision_message_names_both_keys() -> None:
    with pytest.raises(PayloadError) as raised:
        encode_payload({"n": {1: "a", "1": "b"}})
    assert str(raised.value) == (
        "payload has an object whose keys 1 and '1' are both '1' in JSON: "
        "a worker would receive only one of them"
    )


@pytest.mark.parametrize(
    "payload",
    [
        {1: "a", 2: "b", "3": "c"},
        {"1": "a", "true": "b", "null": "c", "-1.5e+16": "d", "": "e"},
        OrderedDict([(1, "a"), ("x", (2, {3: "b"}))]),
        [{1: "a"}, {"1": "b"}],  # the same text in different objects
        {"text": '{"1":1,1:2}'},  # looks like a collision only inside a string
    ],
    ids=repr,
)
def test_keys_that_do_not_collide_are_accepted(payload: Any) -> None:
    assert json.loads(encode_payload(payload)) == json.loads(json.dumps(payload))


def test_bulk_encoding_matches_one_at_a_time_across_batches() -> None:
    payloads: list[Any] = [{"n": n, "t": 1.5} for n in range(700)]
    payloads[3] = {"1": "a digit key"}
    payloads[300] = {2: "a converted key"}
    payloads[301] = '"1'  # a text ending where the next one could seem to start a key
    payloads[302] = 'x":'
    assert list(encode_payloads(payloads)) == [encode_payload(p) for p in payloads]


def test_bulk_encoding_refuses_a_collision_in_a_late_batch() -> None:
    payloads: list[Any] = [{"n": n} for n in range(700)]
    payloads[650] = {"n": 1, 5: "a", "5": "b"}
    with pytest.raises(PayloadError, match="keys 5 and '5'"):
        list(encode_payloads(payloads))


LONG = "x" * 1500  # makes a text long enough for the checks that look before they scan


@pytest.mark.parametrize(
    "payload",
    [
        {1: LONG, "1": "b"},
        {"pad": LONG, "in": {2: "a", "2": "b"}},
        [LONG, {3: "a", "3": "b"}],
        {"{": LONG, None: 1, "null": 2},  # a brace in a string, nothing nested
    ],
    ids=["flat", "nested", "in a list", "brace in a key"],
)
def test_collisions_in_long_texts_are_refused(payload: Any) -> None:
    with pytest.raises(PayloadError, match="keys"):
        encode_payload(payload)
    with pytest.raises(PayloadError, match="keys"):
        list(encode_payloads([{"short": 1}, payload]))


def test_a_batch_of_long_and_short_texts_is_checked_throughout() -> None:
    payloads: list[Any] = [{"n": 1}, {1: LONG}, {"pad": LONG, "in": {2: "a"}}, {"s": 1, 4: "a"}]
    payloads += [[LONG, 1], {"s": LONG}]
    assert list(encode_payloads(payloads)) == [encode_payload(p) for p in payloads]
    with pytest.raises(PayloadError, match="keys 5 and '5'"):
        list(encode_payloads([*payloads, {5: "a", "5": "b"}]))


# Depth


def test_the_nesting_limit_is_exact() -> None:
    deepest = nested(MAX_PAYLOAD_DEPTH)
    assert json.loads(encode_payload(deepest)) == deepest
    with pytest.raises(PayloadError) as raised:
        encode_payload(nested(MAX_PAYLOAD_DEPTH + 1))
    assert str(raised.value) == (
        f"payload is nested {MAX_PAYLOAD_DEPTH + 1} levels deep; the limit is "
        f"{MAX_PAYLOAD_DEPTH} (a worker could not decode it)"
    )
    with pytest.raises(PayloadError, match="nested"):
        list(encode_payloads([{}, nested(MAX_PAYLOAD_DEPTH + 1)]))


@pytest.mark.parametrize(
    "payload",
    [
        ["[" * 2000, "{" * 2000],
        {"k": '\\"' + "[" * 1000 + '"'},
        {"[" * 600: nested(MAX_PAYLOAD_DEPTH - 1)},
        [[n] for n in range(5000)],  # many brackets, little depth
    ],
    ids=["brackets in text", "escaped quotes", "brackets in a key", "wide"],
)
def test_brackets_that_are_not_depth_are_accepted(payload: Any) -> None:
    assert json.loads(encode_payload(payload)) == payload


# Integer digits


def test_integers_a_daemon_cannot_decode_are_refused(unlimited_int_digits: None) -> None:
    longest = 10**DAEMON_INT_DIGITS - 1
    assert json.loads(encode_payload([-longest, longest])) == [-longest, longest]
    for too_long in (10**DAEMON_INT_DIGITS, -(10**DAEMON_INT_DIGITS), 10**6000):
        with pytest.raises(PayloadError, match=f"more than {DAEMON_INT_DIGITS} digits"):
            encode_payload({"n": [1, too_long]})


def test_digits_in_text_are_not_integers(unlimited_int_digits: None) -> None:
    payload = {"digits": "7" * 9000, "quoted": '"' + "8" * 9000}
    assert json.loads(encode_payload(payload)) == payload


def test_under_the_default_limit_the_encoder_refuses_long_integers_itself() -> None:
    with pytest.raises(PayloadError, match="JSON"):
        encode_payload({"n": 10**5000})


# Integer fields


@pytest.mark.parametrize("value", [0, 1, -1, INT4_MIN, INT4_MAX, Level.HIGH])
def test_priorities_in_int4_are_accepted(value: int) -> None:
    assert check_priority(value) == int(value)
    assert type(check_priority(value)) is int


@pytest.mark.parametrize(
    "value", [INT4_MAX + 1, INT4_MIN - 1, 10**40, 1.5, 2.0, True, False, "3", None]
)
def test_priorities_outside_int4_or_not_integers_are_refused(value: object) -> None:
    with pytest.raises(PayloadError, match="priority must be an integer from -2147483648"):
        check_priority(value)


@pytest.mark.parametrize("value", [0, -1, INT4_MAX + 1, 3.0, True, "5", None])
def test_max_attempts_outside_1_to_int4_max_are_refused(value: object) -> None:
    with pytest.raises(PayloadError, match="max_attempts must be an integer from 1 to"):
        check_max_attempts(value)
    assert check_max_attempts(INT4_MAX) == INT4_MAX


def test_a_huge_value_is_shown_short() -> None:
    with pytest.raises(PayloadError) as raised:
        check_priority(10**5000)
    assert len(str(raised.value)) < 120


# Due times


class NoOffset(tzinfo):
    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None


def test_schedule_passes_good_values_through() -> None:
    at = datetime.now(UTC) + timedelta(days=1)
    assert check_schedule(None, None) == (None, 0.0)
    assert check_schedule(at, timedelta(minutes=1)) == (at, 60.0)
    assert check_schedule(None, 2) == (None, 2.0)


@pytest.mark.parametrize(
    "delay",
    [
        -1,
        float("nan"),
        float("inf"),
        3e11,
        10**400,
        timedelta.max,
        timedelta(seconds=-1),
        MAX_SCHEDULE_AHEAD + timedelta(seconds=1),
        "soon",
    ],
    ids=repr,
)
def test_delays_outside_the_bound_are_refused(delay: Any) -> None:
    with pytest.raises(DockoError, match="delay must be") as raised:
        check_schedule(None, delay)
    assert len(str(raised.value)) < 120


@pytest.mark.parametrize(
    "run_at",
    [
        datetime.max.replace(tzinfo=UTC),
        datetime.min.replace(tzinfo=UTC),
        datetime.min.replace(tzinfo=timezone(timedelta(hours=5))),
        datetime(9999, 12, 31, tzinfo=timezone(timedelta(hours=-5))),
        MAX_SCHEDULE_AHEAD + timedelta(minutes=1),  # from now
        -MAX_SCHEDULE_AHEAD - timedelta(minutes=1),
    ],
    ids=repr,
)
def test_run_at_outside_the_bound_is_refused(run_at: datetime | timedelta) -> None:
    if isinstance(run_at, timedelta):
        run_at = datetime.now(UTC) + run_at
    with pytest.raises(DockoError, match="run_at must lie within 100 years of now"):
        check_schedule(run_at, None)


def test_the_due_time_counts_run_at_and_delay_together() -> None:
    half = MAX_SCHEDULE_AHEAD / 2
    with pytest.raises(DockoError, match="run_at plus delay"):
        check_schedule(datetime.now(UTC) + half, half + timedelta(minutes=1))
    long_ago = datetime.now(UTC) - MAX_SCHEDULE_AHEAD + timedelta(days=1)
    assert check_schedule(long_ago, MAX_SCHEDULE_AHEAD)[0] == long_ago


@pytest.mark.parametrize(
    "run_at", [datetime(2030, 1, 1), datetime(2030, 1, 1, tzinfo=NoOffset()), "2030-01-01"]
)
def test_run_at_must_be_timezone_aware(run_at: Any) -> None:
    with pytest.raises(DockoError, match="timezone-aware"):
        check_schedule(run_at, None)
