"""``docko_worker.payloads.encode_payload``: what a job payload may be, checked before any write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from docko_worker import DockoError, PayloadError
from docko_worker.payloads import encode_payload


class Opaque:
    pass


@pytest.mark.parametrize(
    "payload",
    [
        {1, 2},
        object(),
        Opaque(),
        b"bytes",
        float("nan"),
        float("inf"),
        {"score": float("-inf")},
        {"nested": [1, {"bad": {3}}]},
        {("tuple", "key"): 1},
    ],
)
def test_non_json_payload_raises_payload_error(payload: Any) -> None:
    with pytest.raises(PayloadError):
        encode_payload(payload)


@pytest.mark.parametrize("payload", ["nul\x00char", {"text": "a\x00b"}, {"k\x00ey": 1}, ["\x00"]])
def test_nul_character_round_trips(payload: Any) -> None:
    # Payloads are stored as json (not jsonb), which keeps the \u0000 escape as written.
    assert json.loads(encode_payload(payload)) == payload


@pytest.mark.parametrize(
    "payload",
    [
        {"document_id": 42},
        {"nested": {"list": [1, 2.5, None, True, "x"]}, "empty": {}},
        [],
        "just a string",
        0,
        None,
        {"unicode": "Grüße, 文字, emoji \U0001f600"},
        {"escapes": 'quote " backslash \\ newline \n tab \t'},
        {"big": 2**62, "negative": -1.5e-9},
    ],
)
def test_json_payloads_round_trip(payload: Any) -> None:
    assert json.loads(encode_payload(payload)) == payload


def test_literal_backslash_u0000_text_is_not_a_nul_character() -> None:
    # Six characters: backslash, 'u', '0', '0', '0', '0' -- ordinary text (a Windows path, a code
    # sample in an OCR'd page), not an escape.
    payload = {"text": "C:\\u0000\\new"}
    assert json.loads(encode_payload(payload)) == payload


def test_payload_error_is_a_docko_error_and_a_value_error() -> None:
    assert issubclass(PayloadError, DockoError)
    assert issubclass(PayloadError, ValueError)


def test_encoding_is_compact() -> None:
    assert encode_payload({"a": [1, 2]}) == '{"a":[1,2]}'


def test_a_payload_that_contains_itself_raises_payload_error() -> None:
    looped: dict[str, Any] = {"name": "loop"}
    looped["self"] = looped
    with pytest.raises(PayloadError, match="contains itself"):
        encode_payload(looped)
    assert encode_payload({"name": "after"}) == '{"name":"after"}'


def test_an_error_leaves_the_encoder_usable_for_the_same_objects() -> None:
    inner = {"ok": 1}
    with pytest.raises(PayloadError):
        encode_payload([inner, {1, 2}])
    assert encode_payload([inner, inner]) == '[{"ok":1},{"ok":1}]'


def test_a_top_level_string_is_quoted() -> None:
    assert encode_payload('say "hi"') == '"say \\"hi\\""'
