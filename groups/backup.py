"""``yihu backup FILE``: a consistent copy of the SQLite database while yihu serves.

SQLite's online backup API (``sqlite3.Connection.backup``) copies every page in one step under a read
transaction: in WAL mode writers go on meanwhile and the copy is the database as of one moment. The
copy is written beside FILE, checked (``PRAGMA integrity_check``), switched out of WAL so that it is one
self-contained file, and only then renamed to FILE: a failed backup never leaves half a file there.
PostgreSQL has pg_dump for this.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupRefused(Exception):
    """The database cannot be copied by yihu: ``key`` is a catalogue key, ``params`` its parameters."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


@dataclass(frozen=True)
class BackupResult:
    source: Path
    file: Path
    size: int
    incidents: int
    members: int


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL; BackupRefused("ops.backup_postgres") for any other database."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        raise BackupRefused("ops.backup_postgres")
    if not parsed.database or parsed.database == ":memory:":
        raise BackupRefused("ops.backup_no_database", path=parsed.database or ":memory:")
    return Path(parsed.database)


def backup_database(url: str, file: Path) -> BackupResult:
    """Copy the SQLite database at ``url`` to ``file`` (replaced if it exists) while others write to it."""
    source = sqlite_path(url)
    if not source.is_file():
        raise BackupRefused("ops.backup_no_database", path=str(source))
    file = file.resolve()
    if file == source.resolve():
        raise BackupRefused("ops.backup_same_file", file=str(file))
    temporary = file.with_name(f".{file.name}.partial")
    _remove(temporary)
    # busy_timeout: a checkpoint or a writer may hold a lock for a moment.
    live = sqlite3.connect(source, timeout=30)
    try:
        copy = sqlite3.connect(temporary)
        try:
            live.backup(copy)  # all pages in one step: one consistent moment
            copy.execute("PRAGMA journal_mode=DELETE")
            (check,) = copy.execute("PRAGMA integrity_check").fetchone()
            if check != "ok":
                raise BackupRefused("ops.backup_corrupt", detail=str(check))
            incidents = _count(copy, "incident")
            members = _count(copy, "member")
        finally:
            copy.close()
    except BaseException:
        _remove(temporary)
        raise
    finally:
        live.close()
    os.replace(temporary, file)
    return BackupResult(source, file, file.stat().st_size, incidents, members)


def _count(connection: sqlite3.Connection, table: str) -> int:
    try:
        (count,) = connection.execute(f"SELECT count(*) FROM {table}").fetchone()  # a table of ours, never input
    except sqlite3.OperationalError:  # a database yihu has not migrated yet
        return 0
    return int(count)


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
