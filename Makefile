# Every target bootstraps what it needs on a fresh Debian machine: .venv, pip, npm.
# `make demo` runs the simulated compound; `make test` runs lint and every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP_PY  := $(VENV)/.stamp-install
STAMP_NPM := node_modules/.stamp-install
PYTEST_ARGS ?=

.PHONY: all bootstrap demo test test-fast test-slow lint bench clean

all: test

$(STAMP_PY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

bootstrap: $(STAMP_PY) $(STAMP_NPM)

demo: bootstrap
	$(VENV)/bin/compound-gw demo

lint: $(STAMP_PY)
	$(VENV)/bin/ruff check gateway drivers wire centre tests hil_tests bench
	$(VENV)/bin/ruff check --config firmware_mpy/ruff.toml firmware_mpy
	$(VENV)/bin/mypy

test: bootstrap lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: bootstrap
	$(PY) -m pytest --slow $(PYTEST_ARGS)

bench: bootstrap
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
