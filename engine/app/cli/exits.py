"""Exit codes of every ballast subcommand."""

OK = 0
FAILURE = 1  # runtime failure, replay divergence
USAGE = 2  # bad usage or bad configuration
