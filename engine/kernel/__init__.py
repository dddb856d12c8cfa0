"""The kernel: events, commands, the bus, the journal, clocks, configuration, instruments.

Depends on nothing else in Ballast; everything else depends on it.
"""
