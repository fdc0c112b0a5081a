"""docko-worker's exceptions, and the one way an error becomes text.

DockoError
├── ConfigError          bad configuration (the CLI exits 2)
├── RegistryError        a handler that will not load, or two handlers for one job type
├── PayloadError         a payload, priority or max_attempts refused before anything is written
├── LeaseLost            transactional completion by an attempt that no longer holds its job
├── MigrationError       the schema could not be brought up to date
└── LeaseLost            a transactional completion whose attempt no longer holds the job

PermanentError           raised by a handler: fail the job now, do not retry

``describe_error`` turns any exception into text that can be logged and stored in ``last_error``:
it never raises (an error's ``__str__`` may itself fail) and what it returns is valid UTF-8 without
NUL characters, which PostgreSQL's ``text`` cannot hold.
"""

from __future__ import annotations

# Most characters of an error message kept in ``last_error``.
MAX_ERROR_LENGTH = 4000


class DockoError(Exception):
    """Base of the errors docko-worker raises."""


class ConfigError(DockoError):
    """The configuration is invalid; the message names the setting."""


class RegistryError(DockoError):
    """A handler could not be registered or loaded."""


class PayloadError(DockoError, ValueError):
    """A job payload cannot be stored as JSON."""


class MigrationError(DockoError):
    """The database schema could not be migrated."""


class LeaseLost(DockoError):
    """``complete(conn, job)``: this attempt no longer holds the job (its lease expired and another
    attempt claimed it, or it already finished). Let the caller's transaction roll back."""


class PermanentError(Exception):
    """Raise from a handler to fail the job at once, without further attempts."""


def describe_error(exc: BaseException) -> str:
    """``Type: message`` (or ``Type`` alone), storable and at most ``MAX_ERROR_LENGTH`` long."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except BaseException as failure:  # a broken __str__ must not lose the outcome
        message = f"<the error's message could not be read: {type(failure).__name__}>"
    text = f"{name}: {message}" if message else name
    return storable_text(text[:MAX_ERROR_LENGTH])


def storable_text(text: str) -> str:
    """``text`` with NUL characters and lone surrogates written as escapes.

    An error message built from binary data or a non-UTF-8 file name is still worth keeping; as
    it is, PostgreSQL would refuse it (NUL) or the driver could not encode it (a surrogate).
    """
    if text.isascii():
        return text.replace("\x00", "\\x00") if "\x00" in text else text
    text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
