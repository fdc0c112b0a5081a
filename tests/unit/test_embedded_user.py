"""The embedded server's footprint as root: which system user it runs as, and what is undone.

No user is created here: ``useradd``/``userdel`` are replaced by a recorder. The demo itself, run
as root without a database, is covered by ``.ci/run``, which compares the machine's users before
and after ``make demo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from docko_worker.embedded_user import (
    PGSERVER_USER,
    DirectoryModes,
    SystemUser,
    prepare_system_user,
)


class Commands:
    def __init__(self) -> None:
        self.ran: list[list[str]] = []

    def __call__(self, command: Sequence[str]) -> None:
        self.ran.append(list(command))


def test_not_root_needs_no_system_user() -> None:
    commands = Commands()
    assert prepare_system_user(1000, user_exists=lambda _name: False, run=commands) is None
    assert commands.ran == []


def test_an_existing_pgserver_user_is_reused_and_left_as_it_is() -> None:
    commands = Commands()
    user = prepare_system_user(0, user_exists=lambda name: name == PGSERVER_USER, run=commands)
    assert user == SystemUser(PGSERVER_USER, created=False)
    user.remove(run=commands, group_exists=lambda _name: True)
    assert commands.ran == []
    assert "existing system user 'pgserver', left as it is" in user.describe()


def test_a_missing_user_is_created_without_login_shell_or_home_and_removed_again() -> None:
    commands = Commands()
    user = prepare_system_user(0, user_exists=lambda _name: False, run=commands)
    assert user == SystemUser(PGSERVER_USER, created=True)
    [useradd] = commands.ran
    assert useradd[0] == "useradd" and useradd[-1] == PGSERVER_USER
    assert "--system" in useradd and "--no-create-home" in useradd
    shell = useradd[useradd.index("--shell") + 1]
    assert shell.endswith(("/nologin", "/false")), shell
    assert "removed when it stops" in user.describe()

    user.remove(run=commands, group_exists=lambda _name: True)
    assert commands.ran[1:] == [["userdel", PGSERVER_USER], ["groupdel", PGSERVER_USER]]
    user.remove(run=commands, group_exists=lambda _name: True)  # once only
    assert len(commands.ran) == 3


def test_a_user_that_cannot_be_removed_says_why() -> None:
    def refuse(command: Sequence[str]) -> None:
        raise OSError(f"{' '.join(command)}: user pgserver is currently used by process 42")

    user = SystemUser(PGSERVER_USER, created=True)
    with pytest.raises(OSError, match="currently used by process 42"):
        user.remove(run=refuse)


def test_directory_modes_opened_up_are_put_back_and_new_directories_removed(
    tmp_path: Path,
) -> None:
    home = tmp_path / "root"
    data = home / "checkout" / "pgdata"
    data.mkdir(parents=True)
    home.chmod(0o700)
    lock_dir = tmp_path / "runtime-0" / "python_PostgresServer"
    saved = DirectoryModes.record([data], new_dirs=[lock_dir])

    home.chmod(0o755)  # what pgserver's ensure_prefix_permissions does
    lock_dir.mkdir(parents=True)
    assert saved.restore() == []
    assert home.stat().st_mode & 0o777 == 0o700
    assert not (tmp_path / "runtime-0").exists()
