"""Venue adapters and market-data sources. Each I/O kind has an async interface and a fake beside
the real thing."""
