"""Ballast: keeps a crypto spot core plus a perpetual-futures overlay on its risk budget."""

__version__ = "0.2.0.dev0"
