"""The trading actors and their pure cores: portfolio/ledger, risk/pre-trade/regime/budget,
rebalancer/planner, router/order book, and the venue contract they trade through.

Depends on the kernel and the strategy API only.
"""
