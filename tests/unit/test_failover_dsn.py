"""DSNs for a failover pair: several hosts and ``target_session_attrs`` pass as asyncpg reads them.

A multi-host DSN is how a daemon follows a promoted standby (asyncpg tries the hosts in order and
keeps the first whose session matches ``target_session_attrs``). It must pass the DSN check and
the configuration, keep its hosts and attribute when redacted, and a misspelt attribute is refused
at once with one line instead of at the first connection. A moment with no host that qualifies
(mid-failover) is an outage to wait out, not a crash.
"""

from __future__ import annotations

import inspect

import pytest
from asyncpg import connect_utils
from asyncpg import exceptions as pg

from docko_worker import load_config
from docko_worker.db import is_read_only, is_transient
from docko_worker.dsn import check_dsn, redact_dsn
from docko_worker.errors import ConfigError
from docko_worker.pool import CONNECT_ERRORS

FAILOVER_DSNS = {
    "hosts with ports": (
        "postgresql://app:Secr3t@10.0.0.1:5432,10.0.0.2:5433/documents"
        "?target_session_attrs=read-write"
    ),
    "ports in the query": (
        "postgresql://app:Secr3t@db1,db2/documents?port=5432,5433&target_session_attrs=primary"
    ),
    "ipv6 hosts": (
        "postgresql://app:Secr3t@[fd00::1]:5432,[fd00::2]:5432/documents"
        "?target_session_attrs=read-write&sslmode=require"
    ),
}


def asyncpg_reads(dsn: str) -> tuple[list[tuple[str, int]], str]:
    """The addresses and session attribute asyncpg reads from ``dsn`` (its own parser)."""
    parse = connect_utils._parse_connect_dsn_and_args
    arguments = {name: None for name in inspect.signature(parse).parameters}
    arguments["dsn"] = dsn
    addresses, params = parse(**arguments)
    return [tuple(address) for address in addresses], str(params.target_session_attrs.value)


@pytest.mark.parametrize("dsn", FAILOVER_DSNS.values(), ids=FAILOVER_DSNS.keys())
def test_multi_host_dsns_with_a_session_attribute_are_accepted(dsn: str) -> None:
    assert check_dsn(dsn) == dsn
    assert load_config(database_url=dsn).database_url == dsn
    addresses, attribute = asyncpg_reads(dsn)
    assert len(addresses) == 2
    redacted = redact_dsn(dsn)
    assert "Secr3t" not in redacted
    assert f"target_session_attrs={attribute}" in redacted
    assert redacted.split("@", 1)[1] == dsn.split("@", 1)[1]


def test_a_misspelt_session_attribute_is_refused_in_one_line() -> None:
    dsn = "postgresql://app:Secr3t@db1:5432,db2:5432/documents?target_session_attrs=read_write"
    with pytest.raises(ValueError, match="target_session_attrs must be one of") as refused:
        check_dsn(dsn)
    assert "Secr3t" not in str(refused.value)
    with pytest.raises(ConfigError):
        load_config(database_url=dsn)


def test_no_host_matching_the_session_attribute_is_waited_out() -> None:
    # Between the primary's loss and the standby's promotion no host is read-write.
    error = pg.TargetServerAttributeNotMatched("None of the hosts match")
    assert isinstance(error, CONNECT_ERRORS)
    assert is_transient(error)


def test_a_read_only_server_is_told_from_other_errors() -> None:
    assert is_read_only(pg.ReadOnlySQLTransactionError("cannot execute UPDATE in a read-only"))
    assert not is_read_only(pg.ConnectionDoesNotExistError("closed"))
    assert not is_read_only(pg.UniqueViolationError("duplicate key"))
