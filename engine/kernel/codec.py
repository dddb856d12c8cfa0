"""The one msgpack encoder/decoder shared by the bus and the journal.

A message is encoded as a msgpack array: its wire tag, then its fields in declaration order
(``array_like``). The tag is the ``tag="..."`` every event and command class names explicitly, so
a class can be renamed without breaking a stored journal (tests/test_wire_tags.py checks that
every class names its tag and that no two share one). The journal's ``type`` column holds it too.
"""

from __future__ import annotations

from typing import Any, Final, get_args

import msgspec

from ballast.engine.kernel.commands import CommandData
from ballast.engine.kernel.errors import JournalCorruptError
from ballast.engine.kernel.events import Event, Message

AnyMessage = Event | CommandData

ENCODER: Final = msgspec.msgpack.Encoder()
DECODER: Final = msgspec.msgpack.Decoder(AnyMessage)


def tag_of(message_type: type[Message]) -> str:
    """The wire tag of a message class."""
    tag = message_type.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{message_type.__name__} has no string wire tag: {tag!r}")
    return tag


MESSAGE_TYPES: Final[dict[str, type[Message]]] = {tag_of(cls): cls for cls in get_args(AnyMessage)}
"""Every message class of the union, by wire tag."""
TAGS: Final[dict[type[Message], str]] = {cls: tag for tag, cls in MESSAGE_TYPES.items()}
"""The wire tag of every message class of the union."""


def encode(message: Message) -> bytes:
    return ENCODER.encode(message)


def decode(payload: bytes, *, seq: int | None = None) -> Message:
    """Decode one stored message. A payload that does not decode raises JournalCorruptError."""
    try:
        message: Message = DECODER.decode(payload)
    except msgspec.DecodeError as exc:
        where = f"record seq {seq}" if seq is not None else "payload"
        raise JournalCorruptError(f"{where} does not decode: {exc}") from exc
    return message


def to_json_dict(message: msgspec.Struct) -> dict[str, Any]:
    """A readable mapping (field names, nested structs as mappings, decimals as strings)."""
    return {name: _readable(getattr(message, name)) for name in message.__struct_fields__}


def _readable(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return to_json_dict(value)
    if isinstance(value, tuple | list):
        return [_readable(v) for v in value]
    return msgspec.to_builtins(value)
