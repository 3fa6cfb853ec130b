# Two commands on a fresh machine: `make run` serves the hub, `make test` runs every test.
# Both create the environment first (uv, installed with pip when missing).

SHELL := /bin/bash
# uv on PATH, else the one pip installs for this Python (`python3 -m uv` finds it either way)
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PY_RUN = $(UV) run --frozen
CONFIG ?= deploy/embedded.toml

.PHONY: uv env browser run test test-unit test-integration test-e2e lint typecheck imports check bench bench-micro bench-stack faketime chaos chaos-short demo demo-octopia demo-spresso clean

uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

# The console's browser tests drive Debian's chromium (never a downloaded browser).
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

env: uv
	$(UV) sync --frozen --all-packages

run: env
	$(PY_RUN) orderhub --config $(CONFIG) serve

test: env browser
	$(PY_RUN) pytest -q -p no:cacheprovider

test-unit: env
	$(PY_RUN) pytest -q tests/unit adapters/*/tests/unit

test-integration: env
	$(PY_RUN) pytest -q tests/integration adapters/*/tests/integration

test-e2e: env browser
	$(PY_RUN) pytest -q tests/e2e adapters/*/tests/e2e

lint: env
	$(PY_RUN) ruff check .
	$(PY_RUN) ruff format --check .

typecheck: env
	$(PY_RUN) mypy src adapters/topi/src adapters/octopia/src adapters/spresso/src chaos

imports: env
	$(PY_RUN) lint-imports

check: lint typecheck imports

# Every benchmark: the micro-benchmarks of the hot paths (pytest-benchmark, `make
# bench-micro`), then the real-stack one (`make bench-stack`, docs/performance.md:
# PostgreSQL, Redis, serve, workers over loopback).
bench: bench-micro bench-stack

bench-micro: env
	$(PY_RUN) pytest -q benchmarks --benchmark-only

# The production topology under load, side by side with a plain receiver; ~20 min on a
# quiet machine. A quick check of the harness: make bench-stack BENCH_STACK_ARGS="--profile smoke"
BENCH_STACK_ARGS ?= --profile full
bench-stack: env
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(PY_RUN) python -m benchmarks.stack $(BENCH_STACK_ARGS)

# Faults over the whole production topology (PostgreSQL, a broker, 2 x serve, worker and
# scheduler, the three simulators), then an independent check (docs/reliability.md);
# < 15 min. CHAOS_ARGS: --seed N (reproduce), --broker rabbitmq, --kills N, --duration S.
CHAOS_ARGS ?=
# chaos and chaos-short skew some hub processes' clocks with Debian's libfaketime
faketime:
	@command -v faketime >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime; }

chaos: env faketime
	$(PY_RUN) python -m chaos $(CHAOS_ARGS)

# The same in about 2 minutes: 10 kills, 1 PostgreSQL and 1 broker fault, skewed clocks (CI)
chaos-short: env faketime
	$(PY_RUN) python -m chaos --short $(CHAOS_ARGS)

# The topi simulator and the hub as real processes, three order stories, the feed; < 60 s.
# Options through DEMO_ARGS, e.g. make demo DEMO_ARGS="--pace 1 --hold" (see --help).
# Needs orderhub-topi[simulator], which the dev group of `make env` installs.
demo: env
	$(PY_RUN) python -m orderhub_topi.demo $(DEMO_ARGS)

# The Octopia simulator and the hub (polling), two Cdiscount stories, the feed; ~15 s.
# Options through DEMO_ARGS as for demo (see python -m orderhub_octopia.demo --help).
demo-octopia: env
	$(PY_RUN) python -m orderhub_octopia.demo $(DEMO_ARGS)

# The Spresso simulator and the hub: two fulfilments in three parcels, a short ship, a
# cancellation in Foxtrot; < 60 s. Options through DEMO_ARGS (see --help).
demo-spresso: env
	$(PY_RUN) python -m orderhub_spresso.demo $(DEMO_ARGS)

clean:
	rm -rf .venv var .pytest_cache .mypy_cache .ruff_cache
