"""One writer per journal: an OS-level lock held for the life of the writer.

The lock is ``fcntl.flock`` on a sidecar file, ``<journal>.lock``, that holds the owner's pid (for
the message a refused writer prints). A sidecar rather than the database file itself, because:

- the lock must cover the file's replacement (a backtest deletes its earlier journal and creates a
  new one under the lock); a lock on the database's inode would not outlive that inode;
- it must exist before SQLite creates the database, so that two writers cannot both create it;
- SQLite keeps POSIX record locks on the database, and the kernel drops every POSIX lock a process
  holds on a file when *any* descriptor of that file in the process is closed: a second
  descriptor of the database, opened only to lock it, could silently release SQLite's own locks.

The kernel releases a ``flock`` when its holder dies, however it dies (SIGKILL included): a stale
lock file never blocks the next writer. A writer that stops cleanly deletes the lock file while it
still holds it; a writer that takes a lock checks that the file it locked is still the one at the
path (else it was deleted by its previous holder, and it locks the new one).

Readers (replay, ``ballast journal``) never take the lock: they are not blocked by a writer.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from ballast.engine.kernel.errors import JournalError, JournalLockedError


def lock_path(journal: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(journal)}.lock")


class JournalLock:
    """``with JournalLock(journal_path):`` holds the journal's writer lock (or raises
    :class:`JournalLockedError` naming the holder's pid)."""

    def __init__(self, journal: str | os.PathLike[str]) -> None:
        self.journal = Path(journal)
        self.path = lock_path(journal)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> Self:
        if self._fd is not None:
            return self
        self._make_folder()
        while (fd := self._try_lock()) is None:
            pass  # the file we locked was deleted by its previous holder: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Delete the lock file while still holding it, then let go (see the module docstring)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _same_file(fd, self.path):
                self.path.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def _make_folder(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"{self.journal}: cannot create the journal's folder: {exc.strerror or exc}"
            ) from None

    def _try_lock(self) -> int | None:
        """The descriptor of the locked lock file, or None if that file is no longer at the path."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise JournalError(
                f"{self.journal}: cannot open its lock file {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise JournalLockedError(
                f"{self.journal}: in use by another writer ({holder}, lock {self.path}); a journal "
                "has one writer at a time: stop that process first, or give another journal"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise JournalError(f"{self.journal}: cannot lock {self.path}: {exc.strerror}") from None
        if _same_file(fd, self.path):
            return fd
        os.close(fd)
        return None


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _holder(fd: int) -> str:
    """'pid N' as written by the holder ('pid unknown' if it has not written it yet)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f"pid {text}" if text.isdigit() else "pid unknown"
