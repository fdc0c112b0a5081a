"""The public surface: ``docko_worker.__all__`` is sorted, complete and importable."""

from __future__ import annotations

import importlib

import docko_worker


def isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps ``__all__`` in: CONSTANTS, then Classes, then functions."""
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted_without_duplicates() -> None:
    names = list(docko_worker.__all__)
    assert names == sorted(names, key=isort_key)
    assert len(set(names)) == len(names)


def test_every_public_name_is_importable() -> None:
    module = importlib.import_module("docko_worker")
    for name in docko_worker.__all__:
        assert getattr(module, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from docko_worker import *", namespace)
    assert set(docko_worker.__all__) <= set(namespace)


def test_contract_names_are_public() -> None:
    expected = {
        "Config",
        "Queue",
        "Job",
        "JobState",
        "JobError",
        "QueueInfo",
        "PermanentError",
        "PayloadError",
        "ConfigError",
        "RegistryError",
        "ENTRY_POINT_GROUP",
        "handler_options",
        "load_config",
        "next_retry_delay",
    }
    assert expected <= set(docko_worker.__all__)


def test_exception_hierarchy() -> None:
    for name in ("ConfigError", "RegistryError", "PayloadError", "MigrationError"):
        assert issubclass(getattr(docko_worker, name), docko_worker.DockoError), name
    # A handler's "do not retry" signal is not a docko error: handlers raise it, docko doesn't.
    assert not issubclass(docko_worker.PermanentError, docko_worker.DockoError)


def test_version_is_a_string() -> None:
    assert isinstance(docko_worker.__version__, str)
