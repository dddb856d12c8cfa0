"""Real resource faults on a journal, for tests/test_journal_faults.py: the kernel refuses the
writes, nothing of Ballast's is patched.

- :func:`immutable`: ``chattr +i`` on the journal and its WAL: every write, through descriptors
  already open too, fails with EPERM (SQLite: ``SQLITE_IOERR_WRITE``), as on a file system
  remounted read-only. Needs CAP_LINUX_IMMUTABLE (root) and a file system with the flag (ext4,
  xfs, btrfs; not tmpfs, which lets open descriptors write): :func:`immutable_supported` says
  why not where it is not.
- :func:`file_size_limit`: ``RLIMIT_FSIZE`` of a running process lowered with ``prlimit(2)``
  (any Linux, root or not, for a process of the same user): a write past the limit fails with
  EFBIG (SQLite: ``SQLITE_FULL`` when cut short, ``SQLITE_IOERR_WRITE`` else), the way a full
  disk refuses it; raising the limit again is the space coming back. Python ignores SIGXFSZ,
  so the process gets the error, not the signal. Applies to the process's regular files only
  (its stderr must be a pipe to stay readable: :mod:`tests.support.live_exchange` writes it to a
  file, this module's :func:`engine_piped` to a pipe).
- :func:`small_disk` and :func:`disk_filled`: a real full disk: a small ext4 image loop-mounted
  for the journal, filled to the last byte by a ballast file (writes fail with ENOSPC: SQLite's
  ``SQLITE_FULL``, "database or disk is full"); removing the file is the space coming back.
  Needs the right to mount and loop devices (root outside a container, a privileged container):
  :func:`mount_supported` says why not where it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.live_exchange import BALLAST, ENV, Engine


def _chattr(flag: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chattr", flag, *map(str, paths)], capture_output=True, text=True, check=False
    )


def immutable_supported(folder: Path) -> str | None:
    """None when ``chattr +i`` works on files in ``folder``; else why not (the skip reason)."""
    if shutil.which("chattr") is None:
        return "no chattr(1) on this machine (e2fsprogs)"
    probe = folder / ".chattr-probe"
    probe.write_bytes(b"x")
    fd = os.open(probe, os.O_WRONLY)
    try:
        done = _chattr("+i", probe)
        if done.returncode != 0:
            return (
                "chattr +i is not permitted here (needs CAP_LINUX_IMMUTABLE, i.e. root, and a "
                f"file system with the immutable flag): {done.stderr.strip()}"
            )
        try:
            os.write(fd, b"y")
        except PermissionError:
            return None  # refused through a descriptor opened before, as a journal's are
        finally:
            _chattr("-i", probe)
        return "chattr +i on this file system does not stop writes through open descriptors"
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """The files are immutable inside (read-only to every writer, root included)."""
    present = [p for p in paths if p.exists()]
    done = _chattr("+i", *present)
    assert done.returncode == 0, done.stderr
    try:
        yield
    finally:
        _chattr("-i", *present)


def journal_files(path: Path) -> tuple[Path, Path]:
    return path, Path(f"{path}-wal")


@contextlib.contextmanager
def file_size_limit(pid: int, limit_bytes: int) -> Iterator[None]:
    """Process ``pid`` may write no regular file past ``limit_bytes`` inside (its soft
    RLIMIT_FSIZE); the old limit comes back on exit."""
    old = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit_bytes, old[1]))
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            resource.prlimit(pid, resource.RLIMIT_FSIZE, old)


@dataclass
class PipedEngine(Engine):
    """An engine whose stderr is read from a pipe (into :attr:`errors` and the log file)."""

    errors: list[str] = field(default_factory=list)

    def stderr(self) -> str:
        return "\n".join(self.errors)

    def logged(self, text: str) -> list[str]:
        return [line for line in self.errors if text in line]


async def _drain(stream: asyncio.StreamReader, into: list[str], log: Path) -> None:
    with log.open("a") as out:
        while raw := await stream.readline():
            line = raw.decode(errors="replace").rstrip("\n")
            into.append(line)
            out.write(line + "\n")
            out.flush()


@contextlib.asynccontextmanager
async def engine_piped(
    tmp_path: Path, config_file: Path, *args: str, log: str = "engine.log"
) -> AsyncIterator[PipedEngine]:
    """``ballast run -c CONFIG ARGS`` in tmp_path, stderr through a pipe; killed on exit if
    still running."""
    proc = await asyncio.create_subprocess_exec(
        str(BALLAST),
        "run",
        "-c",
        str(config_file),
        *args,
        cwd=tmp_path,
        env=ENV,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    engine = PipedEngine(proc, tmp_path / log)
    assert proc.stderr is not None
    reader = asyncio.create_task(_drain(proc.stderr, engine.errors, engine.log))
    try:
        yield engine
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await reader


def _mount_ext4(image: Path, folder: Path, size_mb: int) -> subprocess.CompletedProcess[str]:
    with image.open("wb") as out:
        out.truncate(size_mb << 20)
    made = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], capture_output=True, text=True
    )
    if made.returncode != 0:
        return made
    folder.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        ["mount", "-o", "loop", str(image), str(folder)], capture_output=True, text=True
    )


def mount_supported(folder: Path) -> str | None:
    """None when a small ext4 image can be loop-mounted under ``folder``; else why not (the skip
    reason)."""
    missing = [t for t in ("mount", "umount", "mkfs.ext4") if shutil.which(t) is None]
    if missing:
        return f"no {', '.join(missing)} on this machine"
    image, probe = folder / ".mount-probe.img", folder / ".mount-probe"
    try:
        done = _mount_ext4(image, probe, 4)
        if done.returncode != 0:
            return (
                "loop-mounting a small ext4 image is not permitted here (needs root and loop "
                f"devices, e.g. a privileged container): {done.stderr.strip()}"
            )
        subprocess.run(["umount", str(probe)], capture_output=True, check=False)
        return None
    finally:
        image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            probe.rmdir()


@contextlib.contextmanager
def small_disk(folder: Path, size_mb: int) -> Iterator[Path]:
    """A file system of ``size_mb`` MiB (ext4 in an image file, loop-mounted) at ``folder``
    inside; unmounted on exit."""
    image = folder.with_name(folder.name + ".img")
    done = _mount_ext4(image, folder, size_mb)
    assert done.returncode == 0, done.stderr
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)
        image.unlink(missing_ok=True)


@contextlib.contextmanager
def disk_filled(folder: Path) -> Iterator[int]:
    """The file system of ``folder`` full inside (a ballast file takes every free byte; yields
    its size); the space back on exit."""
    ballast = folder / "ballast.fill"
    written = 0
    chunk = b"\0" * (1 << 20)
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while True:
            try:
                n = os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
                continue
            written += n
    finally:
        os.close(fd)
    try:
        yield written
    finally:
        ballast.unlink(missing_ok=True)
