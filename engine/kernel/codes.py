"""The closed sets of codes a message may carry, checked before a message is journaled.

Codes (regime, trigger, mode, action, veto and other reasons) are ``Literal`` fields. msgspec
checks them when a record is decoded, not when a message is built or encoded, so a plug-in
publishing ``OrderVetoed(reason="my_code")`` would write a record no reader could decode: the
journal would look damaged and refuse its next writer. :func:`code_problem` finds such a value
first, so :meth:`Journal.append <ballast.engine.kernel.journal.Journal.append>` refuses the
message (the publisher's handler fails; the journal stays readable).
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import msgspec

_Check = tuple[str, frozenset[Any] | None, type[msgspec.Struct] | None]
"""(field, allowed codes or None, nested Struct type of a tuple field or None)."""


def _literal_values(hint: Any) -> frozenset[Any] | None:
    """The values a ``Literal`` (or ``Literal | None``, or a union of Literals) allows."""
    if get_origin(hint) is Literal:
        return frozenset(get_args(hint))
    if get_origin(hint) in (Union, types.UnionType):
        values: set[Any] = set()
        for arm in get_args(hint):
            if arm is type(None):
                values.add(None)
            elif get_origin(arm) is Literal:
                values.update(get_args(arm))
            else:
                return None
        return frozenset(values)
    return None


def _nested_struct(hint: Any) -> type[msgspec.Struct] | None:
    """``X`` of a ``tuple[X, ...]`` field whose items are Structs that carry codes."""
    if get_origin(hint) is tuple:
        args = [a for a in get_args(hint) if a is not Ellipsis]
        if len(args) == 1 and isinstance(args[0], type) and issubclass(args[0], msgspec.Struct):
            return args[0] if code_checks(args[0]) else None
    return None


@cache
def code_checks(cls: type[msgspec.Struct]) -> tuple[_Check, ...]:
    """What :func:`code_problem` checks of a ``cls`` message: empty for most market data."""
    hints = get_type_hints(cls)
    found: list[_Check] = []
    for field in cls.__struct_fields__:
        allowed = _literal_values(hints[field])
        nested = None if allowed is not None else _nested_struct(hints[field])
        if allowed is not None or nested is not None:
            found.append((field, allowed, nested))
    return tuple(found)


def code_problem(message: msgspec.Struct, checks: Iterable[_Check]) -> str | None:
    """``Type.field = value is not one of its codes (…)`` for the first field of ``message``
    holding a value its ``Literal`` does not allow, else None. ``checks``: the message type's
    :func:`code_checks`."""
    for field, allowed, nested in checks:
        value = getattr(message, field)
        if allowed is not None:
            if value not in allowed:
                codes = ", ".join(sorted(repr(v) for v in allowed))
                return (
                    f"{type(message).__name__}.{field} = {value!r} is not one of its codes "
                    f"({codes})"
                )
        elif nested is not None:
            for item in value:
                problem = code_problem(item, code_checks(nested))
                if problem is not None:
                    return problem
    return None
