"""The store's connection, its run lock and its failures (docs/design.md §4.3, §4.5).

Every statement runs on a guarded cursor, so a SQLite failure, also one met while rows are fetched, reaches the
user as a message that names the file and what to do (`store_error`), never as a traceback. `RunLock` is the one
writer per output folder. Nothing here knows a table: the queries live in the modules beside it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from ..errors import ArenaError, StoreError, StoreLockedError

# --- SQLite failures as messages ------------------------------------------------------------------------


class GuardedCursor(sqlite3.Cursor):
    """A cursor whose SQLite failures (also those that surface while rows are fetched) become StoreError."""

    def execute(self, *args: Any) -> GuardedCursor:
        try:
            return super().execute(*args)
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def executemany(self, *args: Any) -> GuardedCursor:
        try:
            return super().executemany(*args)
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def executescript(self, *args: Any) -> GuardedCursor:
        try:
            return super().executescript(*args)  # type: ignore[return-value]  # the factory makes it a GuardedCursor
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None

    def fetchmany(self, *args: Any) -> list[Any]:
        try:
            return super().fetchmany(*args)
        except sqlite3.Error as exc:
            raise store_error(self.connection, exc) from None


class GuardedConnection(sqlite3.Connection):
    """The store's connection: every statement runs on a GuardedCursor, commits too, so that a full disk or a
    damaged file reaches the user as a message that names the file and what to do, never as a traceback.
    (Connection.execute builds a plain cursor in C, so the shortcuts are overridden here.)"""

    path: Path = Path("arena.db")

    def cursor(self, factory: Any = GuardedCursor) -> Any:  # noqa: D102
        return super().cursor(factory)

    def execute(self, *args: Any) -> Any:
        return self.cursor().execute(*args)

    def executemany(self, *args: Any) -> Any:
        return self.cursor().executemany(*args)

    def executescript(self, *args: Any) -> Any:
        return self.cursor().executescript(*args)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as exc:
            raise store_error(self, exc) from None

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> Any:
        try:
            return super().__exit__(kind, value, traceback)
        except sqlite3.Error as exc:
            raise store_error(self, exc) from None


# SQLite's primary result codes (stable across its versions; the sqlite3 module names them only from Python 3.11).
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 3, 5, 6, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_AUTH, _SQLITE_NOTADB = 13, 14, 23, 26


def store_error(db: Any, exc: BaseException) -> StoreError:
    """A message for a failure of the database at `db.path`: which kind, and what the user can do about it."""
    path = getattr(db, "path", None) or Path("arena.db")
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF  # the primary result code
    text = str(exc)
    if code == _SQLITE_FULL or "disk is full" in text or getattr(exc, "errno", None) == errno.ENOSPC:
        return StoreError(
            f"the disk holding {path} is full{_free_space(path)} (SQLite: {text}). The run stopped; everything stored "
            "before is kept. Free some space there, then run the same command again to finish the missing work"
        )
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "disk image is malformed" in text \
            or "not a database" in text:
        return StoreError(
            f"the result database {path} is damaged (SQLite: {text}). Stop other programs writing to it, then "
            f"recover what it holds with `sqlite3 {path} .recover | sqlite3 recovered.db` and put recovered.db in its "
            "place, or move it away to start this output folder afresh"
        )
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM, _SQLITE_AUTH) \
            or "readonly" in text or "unable to open" in text:
        return StoreError(f"cannot write the result database {path} (SQLite: {text}). Make the output folder and "
                          "the database writable, or set `output` to a folder you can write to")
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return StoreError(f"the result database {path} is held by another program (SQLite: {text}); close it and "
                          "run again")
    if code == _SQLITE_IOERR or "disk I/O error" in text:
        return StoreError(f"reading or writing {path} failed (SQLite: {text}): check the disk and the file system, "
                          "then run again; what was stored before is kept")
    return StoreError(f"the result database {path} failed (SQLite: {text})")


def _free_space(path: Path) -> str:
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return ""
    return f" ({free / 2**20:.1f} MiB free)"


class RunLock:
    """Exclusive, non-blocking lock on `<output>/.arena.lock`; a second run stops at once."""

    def __init__(self, folder: Path):
        self.path = folder / ".arena.lock"
        self._handle: TextIO | None = None

    def acquire(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")
        except OSError as exc:  # e.g. a path below a regular file, a read-only mount, no permission
            raise ArenaError(
                f"cannot write to the output folder {self.path.parent}: {exc.strerror or exc} ({exc.filename}). "
                "Set `output` in the config to a folder you can write to."
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise StoreLockedError(
                f"another arena-eval run ({holder}) is using {self.path.parent}; "
                "wait for it to finish, or give this run another name or --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(folder: Path) -> str | None:
    """Who holds `folder`'s run lock right now ("pid N, started …"), or None when no run does (or the lock file
    cannot be read: then nothing can be learnt). Takes the lock shared for a moment, never waits."""
    try:
        handle = open(folder / ".arena.lock")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


# --- opening and transactions ------------------------------------------------------------------------------


def connect(path: Path, *, verify: bool = False) -> GuardedConnection:
    """The store's connection: autocommit (every write its own transaction unless one is opened), WAL,
    synchronous=NORMAL, a 5 s busy timeout, rows by name. With `verify`, an existing database is checked whole
    first (`PRAGMA quick_check`, reads only): a damaged file is a StoreError and stays byte for byte as it was."""
    existed = verify and path.is_file() and path.stat().st_size > 0
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, factory=GuardedConnection)
    db.path = path
    db.row_factory = sqlite3.Row
    if existed:
        _verify(db)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def _verify(db: GuardedConnection) -> None:
    """Raise StoreError (through the guarded cursor) when the database is damaged; closes it then."""
    try:
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
    except StoreError:
        db.close()
        raise
    if problems != ["ok"]:
        db.close()
        raise store_error(db, sqlite3.DatabaseError(f"database disk image is malformed: {'; '.join(problems)}"))


def read_only_uri(path: Path) -> str:
    """The URI that opens (or attaches) another folder's database read-only."""
    return f"file:{quote(str(path.resolve()))}?mode=ro"


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """A multi-row write as one transaction: committed when the block ends, rolled back when it raises."""
    with db:
        db.execute("BEGIN")
        yield


@contextmanager
def immediate_transaction(db: sqlite3.Connection, what: str) -> Iterator[None]:
    """One transaction that takes the write lock at once (BEGIN IMMEDIATE): committed when the block ends, rolled
    back on any exception, Ctrl-C included. Refused while another is open: it would be committed with this one."""
    if db.in_transaction:
        raise ArenaError(f"{what}: a transaction is already open on this connection; commit it first")
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
