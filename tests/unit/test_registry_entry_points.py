"""``HandlerRegistry``: handlers from hand-made entry points and from code, and its errors.

The entry points point at ``handlers_for_registry`` and ``handlers_that_do_not_import``, helper
modules beside this file; the directory is put on ``sys.path`` so ``EntryPoint.load`` finds them.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from docko_worker import ENTRY_POINT_GROUP, HandlerRegistry, Job, RegistryError, handler_options

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def helper_modules_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(HERE))


def entry_point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_group_name() -> None:
    assert ENTRY_POINT_GROUP == "docko_worker.handlers"


def test_loads_async_handlers_from_entry_points() -> None:
    import handlers_for_registry as module

    registry = HandlerRegistry()
    added = registry.load_entry_points(
        [
            entry_point("ocr", "handlers_for_registry:ocr"),
            entry_point("thumbnail", "handlers_for_registry:thumbnail"),
        ]
    )
    assert added == ["ocr", "thumbnail"]
    assert registry.job_types == ["ocr", "thumbnail"]
    assert len(registry) == 2
    assert "ocr" in registry
    assert "index" not in registry
    ocr = registry.get("ocr")
    assert ocr is not None
    assert ocr.handler is module.ocr
    assert ocr.timeout is None
    assert "handlers_for_registry:ocr" in ocr.source
    assert registry.get("index") is None


def test_async_callable_object_is_accepted() -> None:
    registry = HandlerRegistry()
    registry.load_entry_points([entry_point("render", "handlers_for_registry:callable_handler")])
    assert "render" in registry


def test_entry_point_whose_module_does_not_import_names_the_entry_point() -> None:
    registry = HandlerRegistry()
    with pytest.raises(RegistryError) as caught:
        registry.load_entry_points([entry_point("ocr", "handlers_that_do_not_import:ocr")])
    message = str(caught.value)
    assert "ocr" in message
    assert "handlers_that_do_not_import:ocr" in message
    assert "docko_missing_ocr_engine" in message
    assert "ocr" not in registry


def test_entry_point_to_a_missing_module_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="no_such_handler_module"):
        HandlerRegistry().load_entry_points([entry_point("x", "no_such_handler_module:run")])


def test_entry_point_to_a_missing_attribute_is_a_registry_error() -> None:
    with pytest.raises(RegistryError, match="handlers_for_registry:vanished"):
        HandlerRegistry().load_entry_points([entry_point("x", "handlers_for_registry:vanished")])


def test_two_handlers_for_one_type_is_a_registry_error() -> None:
    registry = HandlerRegistry()
    with pytest.raises(RegistryError) as caught:
        registry.load_entry_points(
            [
                entry_point("ocr", "handlers_for_registry:ocr"),
                entry_point("ocr", "handlers_for_registry:thumbnail"),
            ]
        )
    message = str(caught.value)
    assert "two handlers" in message
    assert "handlers_for_registry:ocr" in message
    assert "handlers_for_registry:thumbnail" in message


def test_entry_point_clashing_with_a_code_handler_is_a_registry_error() -> None:
    import handlers_for_registry as module

    registry = HandlerRegistry()
    registry.register("ocr", module.thumbnail)
    with pytest.raises(RegistryError, match="'ocr'"):
        registry.load_entry_points([entry_point("ocr", "handlers_for_registry:ocr")])


@pytest.mark.parametrize("attribute", ["generator_handler", "HandlerClass", "not_a_handler"])
def test_what_is_not_a_function_is_a_registry_error(attribute: str) -> None:
    with pytest.raises(RegistryError, match="must be a function"):
        HandlerRegistry().load_entry_points(
            [entry_point("sync", f"handlers_for_registry:{attribute}")]
        )


def test_plain_def_handler_is_registered_to_run_in_a_thread() -> None:
    import handlers_for_registry as module

    registry = HandlerRegistry()
    registry.load_entry_points([entry_point("sync", "handlers_for_registry:blocking_handler")])

    def blocking(job: Job) -> None:
        return None

    registry.register("blocking", blocking, timeout=3)
    for job_type, handler in [("sync", module.blocking_handler), ("blocking", blocking)]:
        registered = registry.get(job_type)
        assert registered is not None
        assert registered.handler is handler
        assert not registered.is_async
    registered = registry.get("blocking")
    assert registered is not None and registered.timeout == 3


def test_async_handlers_are_marked_async() -> None:
    import handlers_for_registry as module

    registry = HandlerRegistry()
    registry.register("ocr", module.ocr)
    registry.register("object", module.callable_handler)
    assert all(r is not None and r.is_async for r in map(registry.get, ("ocr", "object")))


@pytest.mark.parametrize("job_type", ["", None, 3])
def test_job_type_must_be_a_non_empty_string(job_type: object) -> None:
    async def handler(job: Job) -> None:
        return None

    with pytest.raises(RegistryError):
        HandlerRegistry().register(job_type, handler)  # type: ignore[arg-type]


def test_handler_options_timeout_sets_the_per_handler_timeout() -> None:
    registry = HandlerRegistry()
    registry.load_entry_points([entry_point("index", "handlers_for_registry:slow_index")])
    registered = registry.get("index")
    assert registered is not None
    assert registered.timeout == 12.5


def test_handler_options_in_code() -> None:
    @handler_options(timeout=3)
    async def render(job: Job) -> None:
        return None

    registry = HandlerRegistry()
    registry.register("render", render)
    registered = registry.get("render")
    assert registered is not None
    assert registered.timeout == 3


def test_explicit_timeout_beats_handler_options() -> None:
    @handler_options(timeout=3)
    async def render(job: Job) -> None:
        return None

    registry = HandlerRegistry()
    registry.register("render", render, timeout=0.5)
    registered = registry.get("render")
    assert registered is not None
    assert registered.timeout == 0.5


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_non_positive_timeout_is_a_registry_error(timeout: float) -> None:
    async def render(job: Job) -> None:
        return None

    with pytest.raises(RegistryError, match="positive"):
        HandlerRegistry().register("render", render, timeout=timeout)
