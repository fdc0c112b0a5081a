"""``new_job_ids``: version 7 UUIDs, unique, time-ordered, usable wherever a ``uuid.UUID`` is."""

from __future__ import annotations

import time
import uuid

import pytest

from docko_worker.job import new_job_id, new_job_ids


@pytest.mark.parametrize("count", [1, 2, 17, 4097, 5000])
def test_ids_are_version_7_with_the_rfc_variant(count: int) -> None:
    ids = new_job_ids(count)
    assert len(ids) == count
    assert {job_id.version for job_id in ids} == {7}
    assert {job_id.variant for job_id in ids} == {uuid.RFC_4122}


def test_ids_are_unique() -> None:
    ids = new_job_ids(20_000) + new_job_ids(20_000)
    assert len(set(ids)) == len(ids)


def test_ids_carry_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    job_id = new_job_id()
    after = time.time_ns() // 1_000_000
    assert before <= job_id.int >> 80 <= after


def test_later_batches_sort_after_earlier_ones() -> None:
    first = new_job_ids(100)
    time.sleep(0.002)
    second = new_job_ids(100)
    assert max(first) < min(second)


def test_ids_behave_as_standard_uuids() -> None:
    job_id = new_job_id()
    plain = uuid.UUID(str(job_id))
    assert isinstance(job_id, uuid.UUID)
    assert job_id == plain and plain == job_id
    assert hash(job_id) == hash(plain)
    assert {plain: 1}[job_id] == 1
    assert uuid.UUID(bytes=job_id.bytes) == job_id


def test_random_bits_differ_between_ids() -> None:
    ids = new_job_ids(64)
    low_bits = {job_id.int & ((1 << 62) - 1) for job_id in ids}  # the 62 random bits
    assert len(low_bits) == 64


@pytest.mark.parametrize("count", [2, 1000, 4096, 5000])
def test_a_batch_ascends(count: int) -> None:
    ids = new_job_ids(count)
    keys = [job_id.int for job_id in ids]
    if count <= 4096:
        assert keys == sorted(keys)
        assert len(set(keys)) == count
    else:  # more ids than counter values: the counter still never goes down
        assert [key >> 64 for key in keys] == sorted(key >> 64 for key in keys)


def test_no_ids_for_an_empty_batch() -> None:
    assert new_job_ids(0) == []
