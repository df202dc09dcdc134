# Two commands do all the set-up on a fresh machine: `make test` and `make demo`.
# The venv is (re)installed only when the dependency files change: the stamp
# file's name carries a hash of pyproject.toml and this Makefile.
PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
DEPHASH := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
STAMP   := $(VENV)/.installed-$(DEPHASH)
WHEEL_DIR  := build/wheel
WHEEL_VENV := build/wheel-venv

.PHONY: test pytest lint typecheck wheel-check docs demo claim-table bench install browser clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# exact pin first: a CPU build of this version lies on the machine's disk
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Debian's headless chromium for the browser tests of the HTML reports (required).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the HTML report tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# ruff lint on src/, tests/ and benchmarks/, ruff format and mypy on src/: zero findings
lint: typecheck
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src

# mypy on src/ (the files and options are in pyproject.toml)
typecheck: install
	$(VENV)/bin/mypy

# the pure-Python wheel, installed with the core dependencies only into a fresh venv, smoke-tested there
wheel-check: install
	rm -rf $(WHEEL_DIR) $(WHEEL_VENV)
	$(PY) -m build --wheel --outdir $(WHEEL_DIR) . >/dev/null
	ls $(WHEEL_DIR)/initlab-*-py3-none-any.whl
	$(PYTHON3) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(WHEEL_VENV)/bin/python -m pip install --quiet $(WHEEL_DIR)/initlab-*-py3-none-any.whl
	cd $(WHEEL_VENV) && bin/python $(CURDIR)/tests/smoke/wheel_smoke.py
	cd $(WHEEL_VENV) && bin/initlab --version && bin/initlab gain tanh

pytest: install browser
	$(PY) -m pytest -q

# the documentation site, into site/: --strict fails on a broken link, a missing API reference
# or a tutorial page whose code raises (the tutorials execute while the site is built)
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

# what .ci/run calls: lint, the whole test suite, the wheel in a fresh venv, the docs site
test: lint pytest wheel-check docs

demo: install
	$(VENV)/bin/initlab tour

# the README's and the docs' claim table, from a fresh store (tests/report/test_claim_table.py checks it)
claim-table: install
	rm -rf build/claim-table && mkdir -p build/claim-table
	$(VENV)/bin/initlab tour --store build/claim-table/runs.sqlite --out build/claim-table/reports \
	  --markdown-into README.md --markdown-into docs/claims.md

bench: install
	$(PY) -m pip install --quiet --no-deps lsuv==0.3.0
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info
