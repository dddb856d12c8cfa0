"""Helpers shared by tests: actors, scripts, waiting."""
