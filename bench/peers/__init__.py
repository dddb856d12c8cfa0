"""``make bench-peers``: Ballast beside NautilusTrader on the same rebalance and the same data
(issue 13). :mod:`bench.peers.scenario` is the scenario, :mod:`bench.peers.ballast_side` and
``bench/peers/nautilus_side.py`` (run in its own environment) its two sides, ``python -m
bench.peers`` the interleaved comparison."""
