# Ballast: `make demo` and `make test` each bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo demo-backtest test test-fast lint typecheck bench bench-peers reliability clean prometheus

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# The engine live through the real ccxt.pro client against the loopback exchange on 127.0.0.1,
# replaying three months of bundled Binance data in about a minute (journal: var/demo/journal.db).
demo: $(STAMP)
	$(VENV)/bin/ballast demo

# The two-year backtest comparison: growth_optimizer vs buy-and-hold vs calendar.
demo-backtest: $(STAMP)
	$(VENV)/bin/ballast demo --backtest

# What ruff lints and checks the formatting of (mypy's files are in pyproject's [tool.mypy]).
SOURCES := engine adapters strategies tests bench
# mypy checks the sources under their installed names (ballast.engine, ...), through links.
TYPECHECK := .typecheck/ballast
# pytest-xdist, one worker per core and one more (tests/conftest.py: the live tests wait much of
# their time, which left a core idle): every test keeps its files in tmp_path and listens on port 0;
# tests that share an expensive module fixture are one xdist_group, run by one worker (loadgroup).
# `make test PARALLEL=` runs the suite in one process (to compare, or to debug a test).
PARALLEL ?= -n auto --dist loadgroup

# The same checks run from .pre-commit-config.yaml (`pre-commit run --all-files`).
lint: $(STAMP)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(MAKE) --no-print-directory typecheck

typecheck: $(STAMP)
	mkdir -p $(TYPECHECK) && for d in engine adapters strategies; do ln -sfn ../../$$d $(TYPECHECK)/$$d; done
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q $(PARALLEL)

# The quick loop: no lint (pre-commit runs it), no test marked slow (subprocess campaigns,
# multi-year backtests). `make test` still runs everything.
test-fast: $(STAMP)
	$(PY) -m pytest -q $(PARALLEL) -m "not slow"

# Each figure beside its target or floor and beside the previous release's (the newest v* tag
# before HEAD, or without tags the newest recorded release HEAD contains, archived into
# .bench-previous/), measured in the same run: bench/previous.py.
# BENCH_PREVIOUS=<rev> compares with another revision, BENCH_PREVIOUS=off skips; sweep shows the
# release's recorded figures (bench/releases/) unless BENCH_PREVIOUS_SKIP= (~9 min; default ~7).
bench: $(STAMP)
	$(PY) -m bench

# The peer benchmark: the same rebalance on Ballast and NautilusTrader, interleaved runs, each in a
# fresh subprocess. NautilusTrader lives in its own environment (.venv-peers), not a dependency;
# its script (bench/peers/nautilus_side.py) imports nothing of Ballast and reads the same CSVs.
# BALLAST_PEERS_ROUNDS (default 3) rounds; BALLAST_PEERS_MONTHS=N runs the first N months only.
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed
NAUTILUS    ?= nautilus_trader==1.221.0

$(PEERS_STAMP):
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --disable-pip-version-check '$(NAUTILUS)'
	touch $(PEERS_STAMP)

bench-peers: $(STAMP) $(PEERS_STAMP)
	$(PY) -m bench.peers --peer-python $(PEERS_VENV)/bin/python

# The reliability campaign: every test marked `reliability` at its full size (BALLAST_RELIABILITY=full),
# pytest-xdist on the machine's cores, then one table of what they counted; exits 1 when a count that
# must be zero is not, a growth reaches 5 %, a test fails or a part left no record
# (tests/reliability_campaign.py; `make reliability RELIABILITY_ARGS="--expect kills tests/test_live_kill.py"`).
reliability: $(STAMP)
	$(PY) -m tests.reliability_campaign $(RELIABILITY_ARGS)

# Debian's prometheus + prometheus-alertmanager (prometheus, promtool, amtool) for the monitoring
# integration test; needs root. `make test` installs them itself when root, else skips that test.
prometheus: $(STAMP)
	$(PY) -m tests.support.prometheus

clean:
	rm -rf $(VENV) $(PEERS_VENV) var .bench-previous .typecheck build .pytest_cache .mypy_cache .ruff_cache
