"""Secrets never reach logs, the journal, metrics or error messages.

Every secret read from the environment is registered here; ``redact`` replaces any registered
value (and its URL-encoded form) inside a text with ``***``. A logging filter applies it to every
log record.
"""

from __future__ import annotations

import logging
import urllib.parse

_SECRETS: set[str] = set()
MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask innocent text; they are refused by the config


def register_secret(value: str) -> None:
    if len(value) >= _MIN_LENGTH:
        _SECRETS.add(value)
        _SECRETS.add(urllib.parse.quote(value, safe=""))


def forget_secrets() -> None:
    _SECRETS.clear()


def redact(text: str) -> str:
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks registered secrets in log records (message and arguments, once formatted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = redact(record.getMessage())
            record.args = None
            if record.exc_text:
                record.exc_text = redact(record.exc_text)
        return True
