# Two commands do all the set-up on a fresh machine: `make test` and `make demo`.
# The venv is (re)installed only when the dependency files change: the stamp
# file's name carries a hash of pyproject.toml, setup.py (the C extensions),
# their sources and this Makefile.
PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
DEPHASH := $(shell cat pyproject.toml setup.py $(wildcard src/initlab/*.c) Makefile | sha256sum | cut -c1-16)
STAMP   := $(VENV)/.installed-$(DEPHASH)

.PHONY: test demo bench install browser clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard src/initlab/*.c) Makefile
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

test: install browser
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/initlab tour

bench: install
	$(PY) -m pip install --quiet --no-deps lsuv==0.3.0
	for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) build src/*.egg-info src/initlab/*.so
