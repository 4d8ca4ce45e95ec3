# The two commands a reader needs are `make demo` and `make test`; both
# create the virtual environment in .venv and install into it first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# promtool for the chapter 11 rule tests, when none is installed:
# Debian's prometheus package unpacked here, no root needed.
PROMTOOL_DIR := build/promtool

.PHONY: demo test check snippets bench audio lock clean help promtool \
  protos

help:
	@echo "make demo      the guided tour of every chapter's service"
	@echo "               (make demo CHAPTER=6: one chapter's stop)"
	@echo "make test      the test suite under coverage, then snippet checks"
	@echo "make check     fast static checks: ruff, mypy, layers, snippets"
	@echo "make snippets  extract the book's snippets to build/snippets/"
	@echo "make bench     run the benchmarks, write bench/results/"
	@echo "make audio     regenerate examples/audio/ (espeak-ng, sox, opus-tools)"
	@echo "make lock      re-resolve dependencies into constraints.txt"
	@echo "make protos    regenerate the Python stubs of protos/"
	@echo "make promtool  unpack promtool into build/ if it is not installed"

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	  || { echo "Python 3.11 or newer is needed; set PYTHON=python3.x" >&2; \
	       exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) \
	  || { echo "Cannot create $(VENV). On Debian or Ubuntu:" \
	            "apt-get install python3-venv" >&2; exit 1; }
	@echo "installing into $(VENV) (log: $(VENV)/install.log)"
	@{ $(PY) -m pip install --upgrade pip \
	   && $(PY) -m pip install -c constraints.txt -e '.[dev]'; } \
	  > $(VENV)/install.log 2>&1 \
	  || { tail -n 40 $(VENV)/install.log >&2; exit 1; }
	@touch $@

demo: $(STAMP)
	$(PY) -m examples.tour $(if $(CHAPTER),--chapter $(CHAPTER))

test: $(STAMP) promtool
	@rm -f .coverage .coverage.*
	PATH="$(CURDIR)/$(PROMTOOL_DIR)/usr/bin:$$PATH" \
	  $(PY) -m coverage run -m pytest $(PYTEST_ARGS)
	@$(PY) -m coverage combine --quiet
	$(PY) -m coverage report --skip-covered
	$(PY) -m tools.snippets check --coverage .coverage

check: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy .
	$(PY) -m tools.layers
	$(PY) -m tools.snippets check
	$(PY) -m tools.readme_figures --check
	$(PY) -m tools.protos --check

snippets: $(STAMP)
	$(PY) -m tools.snippets extract

bench: $(STAMP)
	$(PY) -m bench

protos: $(STAMP)
	$(PY) -m tools.protos

audio: $(STAMP)
	$(PY) -m examples.make_audio

# Never fails: without apt (not Debian or Ubuntu) or without network,
# the promtool tests are skipped, and fail only in CI.
promtool:
	@command -v promtool >/dev/null \
	  || test -x $(PROMTOOL_DIR)/usr/bin/promtool \
	  || { rm -rf $(PROMTOOL_DIR) && mkdir -p $(PROMTOOL_DIR) \
	       && cd $(PROMTOOL_DIR) \
	       && apt-get download prometheus >/dev/null 2>&1 \
	       && dpkg -x prometheus_*.deb . && rm -f prometheus_*.deb \
	       && echo "promtool unpacked into $(PROMTOOL_DIR)"; } \
	  || echo "promtool is not available; its tests will be skipped" \
	          "(apt-get install prometheus)" >&2

lock:
	rm -rf build/lock-venv
	$(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/python -m pip install --quiet --upgrade pip
	build/lock-venv/bin/python -m pip install --quiet -e '.[dev]'
	build/lock-venv/bin/python -m pip freeze --exclude-editable \
	  | grep -v '^ml-inference-apis-companion' > constraints.txt
	rm -rf build/lock-venv

clean:
	rm -rf build .coverage .coverage.* .mypy_cache .ruff_cache \
	  .pytest_cache
