"""The project's own error types. Storage and config errors are wrapped in these."""

from __future__ import annotations


class BallastError(Exception):
    """Base of every error Ballast raises on purpose."""


class ConfigError(BallastError):
    """A configuration file is missing, unreadable or invalid. ``key`` names the bad key path."""

    def __init__(self, key: str, problem: str, *, source: str = "", line: str = "") -> None:
        self.key = key
        self.problem = problem
        self.source = source
        self.line = line
        """Where in the file, as "LINE:COLUMN", when known (TOML syntax errors)."""
        where = ":".join(part for part in (source, line) if part)
        super().__init__(": ".join(part for part in (where, key, problem) if part))


class JournalError(BallastError):
    """The journal cannot be opened, written or read."""


class JournalSchemaError(JournalError):
    """The journal was written by a schema this build does not understand."""


class JournalCorruptError(JournalError):
    """A stored record cannot be decoded."""


class JournalClosedError(JournalError):
    """An append was attempted on a closed or failed journal."""


class JournalUnwritableError(JournalError):
    """The journal cannot be written for now (disk full, read-only, an I/O error): what is not
    written stays pending in order and the writer retries; nothing waiting on it is durable."""


class JournalLockedError(JournalError):
    """Another writer holds the journal: a journal has one writer at a time."""


class JournalReplaceError(JournalError):
    """A backtest was asked to write where a file it may not replace already is."""


class StrategyError(BallastError):
    """A strategy plug-in raised; the strategy is halted, the engine keeps running."""
