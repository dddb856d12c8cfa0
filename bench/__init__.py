"""Ballast benchmarks: ``python -m bench [bus|latency|replay]`` (``make bench`` runs them all).

Benchmarks print figures next to their targets; they never assert timings.
"""
