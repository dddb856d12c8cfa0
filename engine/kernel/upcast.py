"""Upcasting: reading a journal record written by an older version of the events.

Every journal record is one message encoded by :mod:`ballast.engine.kernel.codec`: a msgpack
array of its wire tag, then its fields in declaration order. :data:`EVENTS_VERSION` numbers the
shape of those arrays. It goes up by one with each release that changes a shape in a way the
schema-evolution rules of :mod:`ballast.engine.kernel.events` do not allow (a field removed or
retyped, a code renamed, an event split in two), and that release registers, for every tag it
changed, an *upcaster* from the previous version: a function from the record as the old version
wrote it to the record as the new one would have (a plain list: ``[tag, ts_event, ts_init,
field, ...]``, decimals as strings, nested structs as lists).

A journal says which version wrote which records (:class:`RecordVersions`, in its
``ballast_meta`` table: key ``events_version@<first seq>``; a journal without such a key was
written at version 1). A writer opening a journal last written at an older version records the
seq from which its own records start; readers then decode the older records through the
upcasters, each of its version and tag in turn up to the current version, and the newer ones
directly (the fast path: no upcaster runs on a journal written by the current version).

Adding a field with a default at the end needs no upcaster (an older record simply lacks it), nor
does renaming a field or a class (the wire holds positions and tags, not names). Examples for
a release that sets ``EVENTS_VERSION = 2``, written at the end of this module (so that every
reader has them)::

    @UPCASTERS.register("KillSwitchTriggered", 1)
    def _drawdown_code(raw: Raw) -> Raw:
        # version 2 renamed the reason code "max_drawdown" to "drawdown"
        tag, ts_event, ts_init, reason, detail = raw
        return [tag, ts_event, ts_init, "drawdown" if reason == "max_drawdown" else reason, detail]

    @UPCASTERS.register("OrderCanceled", 1)
    def _expired_split(raw: Raw) -> Raw:
        # version 2 split OrderCanceled: an order the venue expired is now an OrderExpired
        tag, ts_event, ts_init, client_order_id, symbol, reason = raw
        if reason == "expired":
            return ["OrderExpired", ts_event, ts_init, client_order_id, symbol]
        return raw

One record stays one record (its seq is its identity): an event split in two becomes one of the
two. An upcaster that raises, or a record that still does not decode afterwards, is a damaged
record (:class:`~ballast.engine.kernel.errors.JournalCorruptError`), as for any payload.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from ballast.engine.kernel.codec import DECODER, ENCODER, decode
from ballast.engine.kernel.errors import JournalCorruptError, JournalSchemaError
from ballast.engine.kernel.events import Message

EVENTS_VERSION: Final = 1
"""The shape of the records this build writes (see the module docstring)."""
VERSION_KEY: Final = "events_version@"
"""``ballast_meta`` key prefix: ``events_version@<seq>`` = the version records from seq on have."""

Raw = list[Any]
"""A record as msgpack decodes it without a type: ``[tag, ts_event, ts_init, field, ...]``."""
Upcaster = Callable[[Raw], Raw]


class Upcasters:
    """Upcasters by (tag, version they read), for a build writing version ``current``."""

    def __init__(self, current: int = EVENTS_VERSION) -> None:
        if current < 1:
            raise ValueError(f"events version {current} is not >= 1")
        self.current = current
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def register(self, tag: str, version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: the function turns a ``tag`` record of ``version`` into version + 1."""

        def add(upcaster: Upcaster) -> Upcaster:
            if not 1 <= version < self.current:
                raise ValueError(
                    f"an upcaster reads a version from 1 to {self.current - 1}, not {version}"
                )
            if (tag, version) in self._steps:
                raise ValueError(f"an upcaster of {tag} records of version {version} exists")
            self._steps[(tag, version)] = upcaster
            return upcaster

        return add

    def upcast(self, raw: Raw, version: int) -> Raw:
        """``raw`` as written at ``version``, brought to the current version step by step (its tag
        may change on the way; a step without an upcaster leaves the record as it is)."""
        for step in range(version, self.current):
            upcaster = self._steps.get((str(raw[0]), step))
            if upcaster is not None:
                raw = upcaster(raw)
        return raw

    def decode(self, payload: bytes, version: int, *, seq: int | None = None) -> Message:
        """The message of a payload written at ``version`` (older than the current one)."""
        where = f"record seq {seq}" if seq is not None else "payload"
        try:
            raw = msgspec.msgpack.decode(payload)
            if not isinstance(raw, list) or not raw:
                raise JournalCorruptError(f"{where} is not an encoded message: {raw!r:.80}")
            message: Message = DECODER.decode(ENCODER.encode(self.upcast(raw, version)))
        except JournalCorruptError:
            raise
        except Exception as exc:  # msgspec's errors and whatever an upcaster raised
            raise JournalCorruptError(
                f"{where} (events version {version}) does not decode: {exc}"
            ) from exc
        return message


UPCASTERS: Final = Upcasters()
"""The upcasters of this build: the journal reads with these."""


class RecordVersions:
    """Which events version wrote each seq of one journal (from its ``ballast_meta``)."""

    def __init__(self, meta: Mapping[str, str]) -> None:
        starts = sorted(
            (int(key.removeprefix(VERSION_KEY)), int(value))
            for key, value in meta.items()
            if key.startswith(VERSION_KEY)
        )
        if not starts or starts[0][0] > 1:
            starts.insert(0, (1, 1))  # before the first key: version 1 (no key was written)
        self._seqs = [seq for seq, _ in starts]
        self._versions = [version for _, version in starts]

    @property
    def last(self) -> int:
        """The version of the journal's latest records."""
        return self._versions[-1]

    def at(self, seq: int) -> int:
        return self._versions[bisect.bisect_right(self._seqs, seq) - 1]

    def first_seq_of(self, version: int) -> int | None:
        """The seq from which every record has ``version`` (None: the latest have another)."""
        return self._seqs[-1] if self.last == version else None


class RecordDecoder:
    """Decodes the records of one journal: directly from the first seq written at the current
    version on, through the upcasters before it."""

    def __init__(
        self, meta: Mapping[str, str], path: object, upcasters: Upcasters = UPCASTERS
    ) -> None:
        self.versions = RecordVersions(meta)
        self.upcasters = upcasters
        if self.versions.last > upcasters.current:
            raise JournalSchemaError(
                f"{path}: its records were written at events version {self.versions.last} by a "
                f"newer Ballast; this build reads versions up to {upcasters.current}. "
                "Upgrade Ballast to read it."
            )
        current_from = self.versions.first_seq_of(upcasters.current)
        self.current_from = current_from if current_from is not None else 2**63
        """Records from this seq on decode directly."""

    def decode(self, payload: bytes, seq: int) -> Message:
        if seq >= self.current_from:
            return decode(payload, seq=seq)
        return self.upcasters.decode(payload, self.versions.at(seq), seq=seq)

    def needs_recording(self) -> bool:
        """Whether a writer must record the seq its records (current version) start from."""
        return self.versions.last != self.upcasters.current
