"""docko-worker's exceptions.

DockoError
├── ConfigError          bad configuration (the CLI exits 2)
├── RegistryError        a handler that will not load, or two handlers for one job type
├── PayloadError         a payload that is not JSON (raised before anything is written)
└── MigrationError       the schema could not be brought up to date

PermanentError           raised by a handler: fail the job now, do not retry
"""

from __future__ import annotations


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


class PermanentError(Exception):
    """Raise from a handler to fail the job at once, without further attempts."""
