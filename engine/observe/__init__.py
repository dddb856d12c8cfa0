"""Observation: Prometheus metrics, health, the HTTP endpoints, performance statistics, reports.

Reads what the trading actors publish; nothing in the trading layer depends on it.
"""
