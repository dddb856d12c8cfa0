# Ballast: `make demo` and `make test` each bootstrap .venv on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test lint typecheck bench clean prometheus

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ballast demo

# mypy checks the sources under their installed names (ballast.engine, ...), through links.
TYPECHECK := .typecheck/ballast

lint: $(STAMP)
	$(VENV)/bin/ruff check engine adapters strategies tests bench
	mkdir -p $(TYPECHECK) && for d in engine adapters strategies; do ln -sfn ../../$$d $(TYPECHECK)/$$d; done
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench

# Debian's prometheus + prometheus-alertmanager (prometheus, promtool, amtool) for the monitoring
# integration test; needs root. `make test` installs them itself when root, else skips that test.
prometheus: $(STAMP)
	$(PY) -m tests.support.prometheus

clean:
	rm -rf $(VENV) var .typecheck build .pytest_cache .mypy_cache .ruff_cache
