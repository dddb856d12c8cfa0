"""Integer-nanosecond timestamps to and from ISO 8601 (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

NS = 1_000_000_000


def ns_to_iso(ns: int) -> str:
    seconds, rest = divmod(ns, NS)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rest // 1000:06d}Z"


def parse_time(text: str) -> int:
    """An ISO 8601 date/time (naive means UTC) or an integer of epoch nanoseconds."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use ISO 8601 like 2024-01-31T08:00 or epoch ns)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS + moment.microsecond * 1000
