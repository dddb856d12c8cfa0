"""Ballast benchmarks: ``python -m bench [NAME ...]`` (``make bench`` runs them all).

Benchmarks print figures next to their targets, and next to the previous release's measured in
the same run (:mod:`bench.previous`); they never assert timings.
"""
