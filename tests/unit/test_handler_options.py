"""``handler_options``: per-type defaults beside the handler, checked when it is registered."""

from __future__ import annotations

import pytest

from docko_worker import HandlerOptions, HandlerRegistry, Job, RegistryError, handler_options


@handler_options(timeout=600, max_attempts=10, priority=-5, retry_base_delay=5, retry_max_delay=60)
async def flaky_ocr(job: Job) -> None:
    return None


def test_the_decorator_options_are_registered_with_the_handler() -> None:
    registry = HandlerRegistry()
    registry.register("ocr", flaky_ocr)
    registered = registry.get("ocr")
    assert registered is not None
    assert registered.options == HandlerOptions(600, 10, -5, 5, 60)
    assert registered.timeout == 600


def test_a_timeout_given_at_registration_overrides_the_decorators() -> None:
    registry = HandlerRegistry()
    registry.register("ocr", flaky_ocr, timeout=30)
    registered = registry.get("ocr")
    assert registered is not None
    assert registered.timeout == 30
    assert registered.options.max_attempts == 10


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (HandlerOptions(timeout=0), "timeout .* must be positive"),
        (HandlerOptions(retry_base_delay=float("inf")), "retry_base_delay .* must be positive"),
        (HandlerOptions(retry_base_delay=10, retry_max_delay=1), "must not be below"),
        (HandlerOptions(max_attempts=0), "max_attempts"),
        (HandlerOptions(priority=2**31), "priority"),
    ],
)
def test_bad_options_are_a_registry_error_naming_the_type(
    options: HandlerOptions, complaint: str
) -> None:
    async def handle(job: Job) -> None:
        return None

    with pytest.raises(RegistryError, match=complaint) as caught:
        HandlerRegistry().register("thumbnail", handle, options=options)
    assert "thumbnail" in str(caught.value)
