"""What the embedded PostgreSQL changes on the machine when started by root, and undoing it.

PostgreSQL refuses to run as root, so pgserver runs it as a system user named ``pgserver``, which it
would otherwise create with ``useradd -s /bin/bash`` (a login shell and a home directory entry) and
leave behind. This module owns that user: ``prepare_system_user`` reuses an existing ``pgserver``
user as it is, or creates one first as an unprivileged *system* user with no login shell
(``nologin``) and no home directory, which ``SystemUser.remove`` deletes again (with its group)
once the server has stopped. pgserver also makes every parent directory of the data directory, of
its own binaries and of its lock directory readable and traversable by others (``chmod o+rx``):
``DirectoryModes`` records their modes before the start and puts back any that changed, and removes
the lock directory if the start created it. Nothing of this happens when not root.

Only SIGKILL (or a power cut) skips the undoing: then the user ``pgserver`` stays, without a login
shell, and ``userdel pgserver`` removes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: The name pgserver runs PostgreSQL as when started by root (fixed in pgserver).
PGSERVER_USER = "pgserver"

Runner = Callable[[Sequence[str]], None]


def _run(command: Sequence[str]) -> None:
    """Run ``command``; raises ``OSError`` with its own error output when it fails."""
    try:
        subprocess.run(list(command), check=True, capture_output=True, text=True, timeout=60)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or exc.stdout or "").strip() or f"exit status {exc.returncode}"
        raise OSError(f"{' '.join(command)}: {detail}") from None
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OSError(f"{' '.join(command)}: {exc}") from None


def _user_exists(name: str) -> bool:
    import pwd  # POSIX only, as is running as root

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    import grp

    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def nologin_shell() -> str:
    """The shell that refuses logins on this system (``/usr/sbin/nologin`` on Debian)."""
    for candidate in ("/usr/sbin/nologin", "/sbin/nologin"):
        if os.path.exists(candidate):
            return candidate
    return "/bin/false"


def useradd_command(name: str, shell: str) -> list[str]:
    """A system user of its own group, without a home directory and with ``shell``."""
    return [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        shell,
        "--comment",
        "docko-worker embedded PostgreSQL, removed when it stops",
        name,
    ]


@dataclass
class SystemUser:
    """The system user the embedded server runs as; ``created``: by this process, which removes
    it again."""

    name: str
    created: bool

    def describe(self) -> str:
        """One line for the demo's output."""
        if self.created:
            return (
                f"running as root: PostgreSQL runs as system user {self.name!r}, created now "
                "without a login shell or home directory, and removed when it stops"
            )
        return (
            f"running as root: PostgreSQL runs as the existing system user {self.name!r}, "
            "left as it is"
        )

    def remove(
        self, run: Runner = _run, group_exists: Callable[[str], bool] = _group_exists
    ) -> None:
        """Delete the user (and its group) if this process created it; raises ``OSError``."""
        if not self.created:
            return
        run(["userdel", self.name])
        if group_exists(self.name):  # userdel keeps it where USERGROUPS_ENAB is off
            run(["groupdel", self.name])
        self.created = False


def prepare_system_user(
    euid: int | None = None,
    *,
    user_exists: Callable[[str], bool] = _user_exists,
    run: Runner = _run,
) -> SystemUser | None:
    """The user pgserver will run PostgreSQL as, created first if missing; None when not root.

    Raises ``OSError`` when the user cannot be created.
    """
    if os.name != "posix" or (os.geteuid() if euid is None else euid) != 0:
        return None
    if user_exists(PGSERVER_USER):
        return SystemUser(PGSERVER_USER, created=False)
    run(useradd_command(PGSERVER_USER, nologin_shell()))
    return SystemUser(PGSERVER_USER, created=True)


def _first_missing(path: Path) -> Path | None:
    """The outermost directory on the way to ``path`` that does not exist yet (None: all do)."""
    missing = None
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing = candidate
    return missing


@dataclass
class DirectoryModes:
    """The modes of every parent of some paths, recorded before pgserver opens them up."""

    modes: dict[Path, int] = field(default_factory=dict)
    created: list[Path] = field(default_factory=list)

    @classmethod
    def record(cls, paths: Iterable[Path], new_dirs: Iterable[Path] = ()) -> DirectoryModes:
        """Record the parents of ``paths``, and which of ``new_dirs`` do not exist yet (the
        outermost missing directory of each, removed again by ``restore``)."""
        saved = cls()
        for path in paths:
            for parent in path.parents:
                if parent not in saved.modes and parent.exists():
                    saved.modes[parent] = parent.stat().st_mode & 0o7777
        for path in new_dirs:
            missing = _first_missing(path)
            if missing is not None:
                saved.created.append(missing)
        return saved

    def restore(self) -> list[str]:
        """Put back changed modes and remove the created directories; returns what failed."""
        failed = []
        for path in self.created:
            shutil.rmtree(path, ignore_errors=True)
        for path, mode in self.modes.items():
            try:
                if path.exists() and path.stat().st_mode & 0o7777 != mode:
                    path.chmod(mode)
            except OSError as exc:
                failed.append(f"mode of {path}: {exc}")
        return failed
