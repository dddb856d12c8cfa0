"""Wire tags: every event and command class names its tag, no two share one, none disappears.

A stored record starts with its class's tag (:mod:`ballast.engine.kernel.codec`). An implicit tag
(``tag=True``) is the class name, so renaming the class would break every stored journal; the
classes therefore name their tag, and these tests fail the build on a class that does not.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections import Counter
from collections.abc import Iterator

import msgspec
import pytest

from ballast.engine.kernel.codec import MESSAGE_TYPES, TAGS, tag_of
from ballast.engine.kernel.events import Message

WRITTEN_TAGS = frozenset(
    {
        "QuoteTick",
        "TradeTick",
        "Bar",
        "MarkPriceUpdated",
        "BalanceUpdated",
        "PositionUpdated",
        "FundingPaid",
        "OrderSubmitted",
        "OrderAccepted",
        "OrderRejected",
        "OrderCanceled",
        "OrderStatusReported",
        "OrderFilled",
        "PortfolioSnapshot",
        "RiskBudgetChanged",
        "RebalanceDecided",
        "IntentApproved",
        "OrderVetoed",
        "DataStale",
        "DataRejected",
        "KillSwitchTriggered",
        "KillSwitchReset",
        "DeleverageRequired",
        "TimerFired",
        "InstrumentsLoaded",
        "HandlerFailed",
        "StrategyFailed",
        "SessionStarted",
        "SessionStopped",
        "FeedAdvanced",
        "VenueConnectionChanged",
        "VenueMessageRejected",
        "ReconcileMismatch",
        "ReconcileResolved",
        "JournalWriteChanged",
        "SubmitOrder",
        "CancelOrder",
    }
)
"""Every tag journals hold. Add to it; never remove one (or add an upcaster that maps it)."""


def subclasses(cls: type) -> Iterator[type]:
    sub: type
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def encoded_classes() -> list[type[Message]]:
    """The classes whose instances are encoded: the union's, and any class nothing derives from
    (a forgotten one would be journaled by the bus and fail to decode)."""
    found = set(MESSAGE_TYPES.values())
    found |= {sub for sub in subclasses(Message) if not sub.__subclasses__()}
    return sorted(found, key=lambda c: c.__qualname__)


def tag_keyword(statement: str) -> str | None:
    """The string literal a class statement gives as ``tag=``; None if it gives none, or
    ``tag=True`` (the implicit tag: the class name)."""
    node = ast.parse(textwrap.dedent(statement)).body[0]
    assert isinstance(node, ast.ClassDef)
    for keyword in node.keywords:
        if keyword.arg == "tag" and isinstance(keyword.value, ast.Constant):
            value = keyword.value.value
            return value if isinstance(value, str) else None
    return None


def implicit(classes: list[type[Message]]) -> list[str]:
    return [c.__qualname__ for c in classes if tag_keyword(inspect.getsource(c)) is None]


def shared(tags: list[str]) -> list[str]:
    return sorted(tag for tag, n in Counter(tags).items() if n > 1)


def test_every_encoded_class_names_its_tag() -> None:
    classes = encoded_classes()
    assert len(classes) == len(WRITTEN_TAGS)
    assert implicit(classes) == []
    for cls in classes:
        assert tag_keyword(inspect.getsource(cls)) == tag_of(cls) == TAGS[cls]


def test_every_encoded_class_is_in_the_codec_union() -> None:
    assert set(encoded_classes()) == set(MESSAGE_TYPES.values())


def test_no_two_classes_share_a_tag() -> None:
    assert shared([tag_of(c) for c in subclasses(Message)]) == []


def test_no_tag_a_journal_holds_disappears() -> None:
    assert set(MESSAGE_TYPES) >= WRITTEN_TAGS


def test_an_implicit_tag_is_caught() -> None:
    """The checks above on planted classes (parsed, never defined, so they cannot leak into the
    class tree the other tests walk)."""
    assert tag_keyword('class Later(DecisionEvent, frozen=True, tag="Later"):\n    pass') == "Later"
    assert tag_keyword("class Later(DecisionEvent, frozen=True, tag=True):\n    pass") is None
    assert tag_keyword("class Later(DecisionEvent, frozen=True):\n    pass") is None
    assert shared(["OrderFilled", "Bar", "OrderFilled"]) == ["OrderFilled"]


def test_two_classes_with_one_tag_cannot_form_a_union() -> None:
    """msgspec itself refuses to build a decoder over a shared tag (what the codec would do)."""

    class First(msgspec.Struct, tag="Same", array_like=True):
        x: int

    class Second(msgspec.Struct, tag="Same", array_like=True):
        y: str

    with pytest.raises(TypeError, match="unique `tag` values"):
        msgspec.msgpack.Decoder(First | Second)
