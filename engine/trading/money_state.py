"""The actors whose state is money: the book (Portfolio), the risk state (RiskManager) and the
orders (OrderRouter). A failed handler of one of them leaves that state unknown, so the risk
actor trips the kill switch (reason ``handler_failed``) and the metrics count it from zero."""

from typing import Final

MONEY_STATE_OWNERS: Final = frozenset({"Portfolio", "RiskManager", "OrderRouter"})
