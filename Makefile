# `make test` and `make demo` work on a fresh machine: each creates or updates
# the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_CONFIG ?= examples/generator-config.yaml

.PHONY: venv test faults demo demo-generate bench bench-quick bench-check bench-baseline peers toxiproxy clean

$(STAMP): pyproject.toml setup.py $(wildcard telegen/*.pyx telegen/*.pxd telegen/*.pxi)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP) peers
	$(PY) -m pytest -q

# The fault-injection suite (docs/failure-behaviour.md, under ten minutes):
# toxiproxy between telegen and its receiver (latency, bandwidth, resets,
# blackholes, connections cut after N bytes), the receiver killed and
# restarted, signals, a worker process or a fleet sender killed, and the
# bad-input corpus (tests/test_failure_behaviour.py, also in `make test`). It
# needs Go to build toxiproxy and fails, never skips, without it. Each fault
# run's figures land in $(FAULTS_TABLE).
FAULTS_TABLE ?= faults-table.md
faults: $(STAMP) toxiproxy
	TELEGEN_FAULTS_TABLE=$(FAULTS_TABLE) $(PY) -m pytest -q -m "" tests/test_faults.py \
		tests/test_failure_behaviour.py "tests/test_fleet.py::test_a_killed_sender_is_reported_with_its_counts"
	@echo; cat $(FAULTS_TABLE)

# The main job on built-in defaults: generate small templates (seconds), start
# a local sink, send to it for 10 s, print sender and sink figures side by side.
demo: $(STAMP)
	$(VENV)/bin/telegen demo --seconds 10
	@echo
	@echo "telegen is installed in $(VENV). To have the telegen command on your PATH in this shell:"
	@echo "    source $(VENV)/bin/activate"

# Generate the full example config (~1.15M spans) and show what was made.
demo-generate: $(STAMP)
	@dir="$${DEMO_DIR:-$$(mktemp -d -t telegen-demo.XXXXXX)}"; \
	$(VENV)/bin/telegen generate --config $(DEMO_CONFIG) --output-dir "$$dir" && \
	$(VENV)/bin/telegen inspect "$$dir"; status=$$?; \
	if [ -z "$${DEMO_DIR:-}" ]; then rm -rf "$$dir"; echo "(removed $$dir; run 'make demo-generate DEMO_DIR=./generated' to keep the files)"; fi; \
	exit $$status

BENCH_STAMP := $(VENV)/.bench-stamp
BENCH = $(PY) -m pytest benchmarks -q --benchmark-only -s -p no:cacheprovider
RESULTS := benchmarks/results

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

# The whole suite (about 10 minutes): results JSON, Markdown table and chart.
bench: $(BENCH_STAMP)
	mkdir -p $(RESULTS)
	$(BENCH) --benchmark-json=$(RESULTS)/raw.json
	$(PY) benchmarks/report.py $(RESULTS)/raw.json $(RESULTS)

# Short runs of everything but the full-size generation and the 10 s rate checks.
bench-quick: $(BENCH_STAMP)
	mkdir -p $(RESULTS)/quick
	TELEGEN_BENCH_QUICK=1 $(BENCH) -k "not full_example and not rate_limit" --benchmark-json=$(RESULTS)/quick/raw.json
	$(PY) benchmarks/report.py $(RESULTS)/quick/raw.json $(RESULTS)/quick

# Re-measure what the baseline guards and fail on a regression: instructions per
# event on the send path (callgrind: repeatable), and the in-run ratios against
# floors taken from the spread of unchanged code (make bench-baseline).
CHECKED := -k "ceiling or naive or sdk or (telemetrygen and not http) or patchable_gzip or patchable_zstd_size or patchable_zstd_cpu or equal_rate"
bench-check: $(BENCH_STAMP) peers
	mkdir -p $(RESULTS)/check
	$(PY) benchmarks/instructions.py $(RESULTS)/check/instructions.json
	$(BENCH) $(CHECKED) --benchmark-json=$(RESULTS)/check/raw.json
	$(PY) benchmarks/report.py $(RESULTS)/check/raw.json $(RESULTS)/check > /dev/null
	$(PY) benchmarks/report.py --check $(RESULTS)/check/results.json benchmarks/baseline.json \
		--instructions $(RESULTS)/check/instructions.json

# A new baseline for bench-check on this machine, from unchanged code: the
# instruction counts, and floors from three runs of the ratios (about 30 minutes).
bench-baseline: $(BENCH_STAMP) peers
	for run in 1 2 3; do \
		mkdir -p $(RESULTS)/calibrate/$$run && \
		$(BENCH) $(CHECKED) --benchmark-json=$(RESULTS)/calibrate/$$run/raw.json && \
		$(PY) benchmarks/report.py $(RESULTS)/calibrate/$$run/raw.json $(RESULTS)/calibrate/$$run > /dev/null || exit 1; \
	done
	$(PY) benchmarks/instructions.py $(RESULTS)/calibrate/instructions.json
	$(PY) benchmarks/report.py --calibrate benchmarks/baseline.json --instructions $(RESULTS)/calibrate/instructions.json \
		$(RESULTS)/calibrate/1/results.json $(RESULTS)/calibrate/2/results.json $(RESULTS)/calibrate/3/results.json

# The real peers, built from pinned Go modules (nothing built is committed):
# an OpenTelemetry Collector (peers/otelcol: our main, upstream modules at one
# release), telemetrygen, and the real backends the interop tests read back
# from: Jaeger v2 (peers/jaeger pins it and its replace directive), Prometheus
# and VictoriaLogs (Loki and Tempo are AGPL: not these). Each lands in a
# cache directory named after what it is built from, so a second run, or a
# fresh clone on the same machine, does nothing; .peers/ links to them.
# Without Go, the interop tests skip.
TELEMETRYGEN_VERSION := v0.161.0
PROMETHEUS_VERSION := v0.316.0
VICTORIALOGS_VERSION := v1.52.2
PEERS_CACHE ?= $(HOME)/.cache/telegen-peers
PEERS_KEY := $(shell cat peers/otelcol/go.mod peers/otelcol/go.sum peers/otelcol/main.go 2>/dev/null | sha256sum | cut -c1-12)
PEERS_DIR ?= $(PEERS_CACHE)/otelcol-$(PEERS_KEY)-telemetrygen-$(TELEMETRYGEN_VERSION)
JAEGER_KEY := $(shell cat peers/jaeger/go.mod peers/jaeger/go.sum 2>/dev/null | sha256sum | cut -c1-12)
JAEGER_BIN := $(PEERS_CACHE)/jaeger-$(JAEGER_KEY)/jaeger
PROMETHEUS_BIN := $(PEERS_CACHE)/prometheus-$(PROMETHEUS_VERSION)/prometheus
VICTORIALOGS_BIN := $(PEERS_CACHE)/victorialogs-$(VICTORIALOGS_VERSION)/victoria-logs
TOXIPROXY_VERSION := v2.12.0
TOXIPROXY_BIN := $(PEERS_CACHE)/toxiproxy-$(TOXIPROXY_VERSION)/toxiproxy-server
PEER_BINS := $(PEERS_DIR)/otelcol-telegen $(PEERS_DIR)/telemetrygen $(JAEGER_BIN) $(PROMETHEUS_BIN) $(VICTORIALOGS_BIN)

peers:
	@if ! command -v go >/dev/null 2>&1; then \
		echo "make peers: no Go toolchain on PATH; the interop tests with the Collector, telemetrygen and the backends will skip"; \
	else \
		$(MAKE) --no-print-directory $(PEER_BINS) && \
		if [ -L .peers ]; then rm .peers; fi && mkdir -p .peers && \
		for bin in $(PEER_BINS); do ln -sfn $$bin .peers/; done; \
	fi

$(PEERS_DIR)/otelcol-telegen:
	mkdir -p $(PEERS_DIR)
	cd peers/otelcol && GOFLAGS=-mod=readonly go build -trimpath -o $@.tmp . && mv $@.tmp $@

$(PEERS_DIR)/telemetrygen:
	mkdir -p $(PEERS_DIR)/.gobin
	GOBIN=$(PEERS_DIR)/.gobin go install github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@$(TELEMETRYGEN_VERSION)
	mv $(PEERS_DIR)/.gobin/telemetrygen $@

# Jaeger's go.mod has a replace directive, so `go install pkg@version` refuses
# it: peers/jaeger is a module that names it as a tool, with the replace.
$(JAEGER_BIN):
	mkdir -p $(dir $@)
	cd peers/jaeger && GOFLAGS=-mod=readonly go build -trimpath -o $@.tmp github.com/jaegertracing/jaeger/cmd/jaeger && mv $@.tmp $@

$(PROMETHEUS_BIN):
	mkdir -p $(dir $@).gobin
	GOBIN=$(dir $@).gobin go install -trimpath github.com/prometheus/prometheus/cmd/prometheus@$(PROMETHEUS_VERSION)
	mv $(dir $@).gobin/prometheus $@

# toxiproxy is built on demand by `make faults` only (not by `make peers`).
toxiproxy:
	@command -v go >/dev/null 2>&1 || { echo "make faults: toxiproxy is built from its Go module and there is no Go toolchain on PATH"; exit 1; }
	@$(MAKE) --no-print-directory $(TOXIPROXY_BIN)
	@mkdir -p .peers && ln -sfn $(TOXIPROXY_BIN) .peers/

$(TOXIPROXY_BIN):
	mkdir -p $(dir $@).gobin
	GOBIN=$(dir $@).gobin go install -trimpath github.com/Shopify/toxiproxy/v2/cmd/server@$(TOXIPROXY_VERSION)
	mv $(dir $@).gobin/server $@

$(VICTORIALOGS_BIN):
	mkdir -p $(dir $@).gobin
	GOBIN=$(dir $@).gobin go install -trimpath github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$(VICTORIALOGS_VERSION)
	mv $(dir $@).gobin/victoria-logs $@

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .benchmarks .peers
