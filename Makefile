# Every target bootstraps what it needs on a fresh Debian machine: .venv, pip, npm.
# `make demo` runs the simulated compound; `make test` runs lint and every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP_PY  := $(VENV)/.stamp-install
STAMP_NPM := node_modules/.stamp-install
STAMP_APT := $(VENV)/.stamp-apt
# libosdp built from its source with the patches in drivers/libosdp/ (its README says why);
# build.sh installs the Debian tools it needs (gcc, patch, Python's headers) when missing.
STAMP_OSDP := $(VENV)/.stamp-libosdp
# Debian tools the tests drive: headless Chromium (page screenshots), shellcheck (install
# script), systemd-analyze (unit verification), stress-ng (the load beside `make test-loaded`),
# pdftoppm (the monthly bulletin PDF's first page as a PNG); postgresql (initdb and pg_ctl
# for the tests' throwaway PostgreSQL, tests/pg_cluster.py: Debian keeps them off PATH, in
# /usr/lib/postgresql/<version>/bin, so they are looked for there).
# Installed only when missing.
APT_TOOLS := chromium:chromium shellcheck:shellcheck systemd-analyze:systemd stress-ng:stress-ng \
  pdftoppm:poppler-utils ffmpeg:ffmpeg ffprobe:ffmpeg espeak-ng:espeak-ng arecord:alsa-utils
# `make test-loaded`: the CPU load that runs beside the tests (CI machines are never idle).
LOAD_ARGS ?= --cpu 2
PYTEST_ARGS ?=

.PHONY: all bootstrap catalogues cjk-font demo test test-loaded test-fast test-slow lint bench clean

all: test

$(STAMP_PY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev,postgres]'
	touch $@

$(STAMP_NPM): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(STAMP_APT): Makefile | $(STAMP_PY)
	@missing=""; for pair in $(APT_TOOLS); do \
	  bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	touch $@

$(STAMP_OSDP): $(STAMP_PY) drivers/libosdp/build.sh $(wildcard drivers/libosdp/*.patch)
	bash drivers/libosdp/build.sh $(PY)
	touch $@

bootstrap: $(STAMP_PY) $(STAMP_NPM) $(STAMP_APT) $(STAMP_OSDP)
bootstrap: catalogues cjk-font

# Compiled gettext catalogues (.po -> .mo); a stale .mo is recompiled in memory at run time.
catalogues: $(STAMP_PY)
	$(PY) -m i18n compile i18n/locale gateway/locale centre/push/locale centre/bulletins/locale \
	  centre/web/locale centre/announce/locale

# A CJK font, so Chromium's screenshots of the (Chinese by default) status page show Chinese.
cjk-font:
	@if [ -z "$$(fc-list :lang=zh 2>/dev/null)" ]; then \
	  echo "installing Debian package: fonts-wqy-zenhei"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	    fonts-wqy-zenhei fontconfig; \
	fi

demo: $(STAMP_PY) $(STAMP_OSDP)
	$(VENV)/bin/compound-gw demo

lint: $(STAMP_PY)
	$(VENV)/bin/ruff check gateway drivers wire centre i18n tests hil_tests bench
	$(VENV)/bin/ruff check --config firmware_mpy/ruff.toml firmware_mpy
	$(VENV)/bin/mypy

test: bootstrap lint
	$(PY) -m pytest $(PYTEST_ARGS)

# `make test` with stress-ng beside it; the load stops when the tests end, pass or fail.
test-loaded: bootstrap
	@command -v stress-ng >/dev/null || { echo "stress-ng missing: make bootstrap" >&2; exit 1; }
	@stress-ng $(LOAD_ARGS) --timeout 0 --quiet & load=$$!; \
	trap 'kill $$load 2>/dev/null; wait $$load 2>/dev/null' EXIT INT TERM; \
	echo "stress-ng $(LOAD_ARGS) running beside the tests (pid $$load)"; \
	$(MAKE) --no-print-directory test

test-slow: bootstrap
	$(PY) -m pytest --slow $(PYTEST_ARGS)

bench: bootstrap
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache build/libosdp
