"""``encode_copy_stream``: PostgreSQL's binary COPY format, one row per job, in small messages."""

from __future__ import annotations

import struct

import pytest

from docko_worker.copy_format import COPY_COLUMNS, COPY_HEADER, COPY_TRAILER, encode_copy_stream
from docko_worker.job import new_job_id_bytes


def decode_rows(stream: bytes) -> list[list[bytes | None]]:
    """The fields of each row of a binary COPY stream, read back by the format's own rules
    (``None`` for a NULL field)."""
    assert stream.startswith(COPY_HEADER) and stream.endswith(COPY_TRAILER)
    rows, offset, end = [], len(COPY_HEADER), len(stream) - len(COPY_TRAILER)
    while offset < end:
        (count,) = struct.unpack_from(">h", stream, offset)
        offset += 2
        fields: list[bytes | None] = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", stream, offset)
            offset += 4
            if length == -1:
                fields.append(None)
                continue
            fields.append(stream[offset : offset + length])
            offset += length
        rows.append(fields)
    assert offset == end
    return rows


def test_each_row_carries_its_id_payload_and_the_shared_columns() -> None:
    ids = new_job_id_bytes(3)
    payloads = ['{"n":1}', '{"text":"naïve café"}', "[]"]

    stream = b"".join(
        encode_copy_stream(
            ids, payloads, queue_name="dokumente", job_type="ocr-é", priority=-7, max_attempts=3
        )
    )

    rows = decode_rows(stream)
    assert len(COPY_COLUMNS) == 7
    assert rows == [
        [
            ids[16 * n : 16 * (n + 1)],
            b"dokumente",
            "ocr-é".encode(),
            payloads[n].encode(),
            struct.pack(">i", -7),
            struct.pack(">i", 3),
            None,  # no headers
        ]
        for n in range(3)
    ]


def test_every_row_carries_the_calls_headers() -> None:
    ids = new_job_id_bytes(2)
    headers = '{"traceparent":"00-abc-def-01","tenant":"été"}'

    stream = b"".join(
        encode_copy_stream(
            ids,
            ["{}", "{}"],
            queue_name="q",
            job_type="t",
            priority=0,
            max_attempts=1,
            headers_json=headers,
        )
    )

    assert [row[COPY_COLUMNS.index("headers")] for row in decode_rows(stream)] == [
        headers.encode()
    ] * 2


def test_the_stream_is_cut_into_messages_of_whole_rows() -> None:
    ids = new_job_id_bytes(10)
    payloads = [f'{{"n":{n}}}' for n in range(10)]

    messages = list(
        encode_copy_stream(
            ids,
            payloads,
            queue_name="q",
            job_type="t",
            priority=0,
            max_attempts=1,
            rows_per_message=4,
        )
    )

    assert len(messages) == 3  # 4 + 4 rows, then 2 rows and the trailer
    assert len(decode_rows(b"".join(messages))) == 10
    assert messages[0].startswith(COPY_HEADER) and not messages[1].startswith(COPY_HEADER)


def test_payloads_are_read_lazily_and_an_error_stops_the_stream() -> None:
    produced: list[int] = []

    def payloads() -> object:
        for n in range(10):
            if n == 6:
                raise RuntimeError("payload 6 cannot be encoded")
            produced.append(n)
            yield "{}"

    stream = encode_copy_stream(
        new_job_id_bytes(10),
        payloads(),  # type: ignore[arg-type]
        queue_name="q",
        job_type="t",
        priority=0,
        max_attempts=1,
        rows_per_message=4,
    )

    next(stream)
    assert produced == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="payload 6"):
        next(stream)


@pytest.mark.parametrize(("ids", "payloads"), [(2, 3), (3, 2)])
def test_ids_and_payloads_must_pair_up(ids: int, payloads: int) -> None:
    stream = encode_copy_stream(
        new_job_id_bytes(ids),
        ["{}"] * payloads,
        queue_name="q",
        job_type="t",
        priority=0,
        max_attempts=1,
    )

    with pytest.raises(ValueError, match="payloads than ids"):
        list(stream)
