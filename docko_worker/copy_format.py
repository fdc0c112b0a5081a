"""New jobs as PostgreSQL's binary COPY stream: the bytes ``enqueue_many`` sends the server.

The stream is produced a message at a time, while the server inserts the rows already sent, so
the client's encoding overlaps the server's inserts within one COPY. Each row carries the columns
of ``COPY_COLUMNS``; the table's defaults fill the rest (state available, run_at now()). A json
field's binary form is its UTF-8 text, so the payloads go to the server exactly as encoded.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

COPY_COLUMNS = ("id", "queue_name", "job_type", "payload", "priority", "max_attempts", "headers")

# Signature, flags (no OIDs), header extension length: PostgreSQL's "COPY ... (FORMAT binary)".
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = struct.pack(">h", -1)

# Rows per CopyData message: about 25 kB for a small payload, so the server starts inserting
# after the first few hundred rows rather than after the whole call.
ROWS_PER_MESSAGE = 256

_UUID_SIZE = 16
_LENGTH = struct.Struct(">i")
# A NULL field: length -1, no data.
_NULL = _LENGTH.pack(-1)


def _field(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def encode_copy_stream(
    id_bytes: bytes,
    payloads_json: Iterable[str],
    *,
    queue_name: str,
    job_type: str,
    priority: int,
    max_attempts: int,
    headers_json: str | None = None,
    rows_per_message: int = ROWS_PER_MESSAGE,
) -> Iterator[bytes]:
    """Yield the COPY stream in messages of ``rows_per_message`` rows.

    ``id_bytes`` holds each job's 16-byte UUID back to back, one per payload, in order. Payloads
    are consumed lazily, so an error raised while producing one surfaces mid-stream, before the
    rest are encoded. Every row carries ``headers_json`` (NULL when None).
    """
    if len(id_bytes) % _UUID_SIZE:
        raise ValueError("id_bytes must hold whole 16-byte UUIDs")
    # Every row shares all but its id and payload: the field count, the id's length, the queue
    # and type, the priority, the attempt limit and the headers.
    row_start = struct.pack(">hi", len(COPY_COLUMNS), _UUID_SIZE)
    after_id = _field(queue_name.encode()) + _field(job_type.encode())
    row_end = _field(struct.pack(">i", priority)) + _field(struct.pack(">i", max_attempts))
    row_end += _NULL if headers_json is None else _field(headers_json.encode())
    pack_length = _LENGTH.pack
    message = bytearray(COPY_HEADER)
    in_message = 0
    offset = 0
    size = len(id_bytes)
    for payload_json in payloads_json:
        if offset >= size:
            raise ValueError("more payloads than ids")
        payload = payload_json.encode()
        message += row_start
        message += id_bytes[offset : offset + _UUID_SIZE]
        message += after_id
        message += pack_length(len(payload))
        message += payload
        message += row_end
        offset += _UUID_SIZE
        in_message += 1
        if in_message == rows_per_message:
            yield bytes(message)
            message = bytearray()
            in_message = 0
    if offset != size:
        raise ValueError("fewer payloads than ids")
    message += COPY_TRAILER
    yield bytes(message)
