"""The composition root: session wiring, backtest and paper runners, replay, the CLI.

The only place that imports concrete adapters and built-in strategies.
"""
