# `make test` and `make demo` work on a fresh machine: each creates or updates
# the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_CONFIG ?= examples/generator-config.yaml

.PHONY: venv test demo demo-generate bench clean

$(STAMP): pyproject.toml setup.py telegen/_fastpath.pyx telegen/_fastpath.pxd
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# The main job on built-in defaults: generate small templates (seconds), start
# a local sink, send to it for 10 s, print sender and sink figures side by side.
demo: $(STAMP)
	$(VENV)/bin/telegen demo --seconds 10

# Generate the full example config (~1.15M spans) and show what was made.
demo-generate: $(STAMP)
	@dir="$${DEMO_DIR:-$$(mktemp -d -t telegen-demo.XXXXXX)}"; \
	$(VENV)/bin/telegen generate --config $(DEMO_CONFIG) --output-dir "$$dir" && \
	$(VENV)/bin/telegen inspect "$$dir"; status=$$?; \
	if [ -z "$${DEMO_DIR:-}" ]; then rm -rf "$$dir"; echo "(removed $$dir; run 'make demo-generate DEMO_DIR=./generated' to keep the files)"; fi; \
	exit $$status

bench: $(STAMP)
	$(PY) -m pytest benchmarks -q --benchmark-only -s

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks
