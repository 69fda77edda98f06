# The whole set-up is `make demo` or `make test`: each creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo server-demo test stress bench lint format screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tfa --demo

# The server alone, on loopback with a throw-away database, for curl or another client.
server-demo: $(STAMP)
	$(BIN)/tfa-server demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# Three workers on two CPUs: the pilot tests and the PostgreSQL tests spend much of their time
# waiting (timers, another process), and a third worker fills it (11.5 min against 17 with
# two). A test file stays on one worker (module fixtures, the schemathesis phases that run in
# order, the snapshot scenes' fixed port).
test: lint
	$(BIN)/python -m pytest -n 3 --dist loadfile

# The activity and users-list timings at 10^6 history rows and 10^4, 10^5 accounts
# (tests/scale/activity_scale.py), sign-ins per second and /me latency of one instance on
# SQLite beside two on PostgreSQL (tests/scale/instances_scale.py), then the reliability tests with large counts and every
# test of a review finding (tests/findings.py);
# rewrites docs/reliability.md from what they recorded and what pytest saw them do. The report
# runs even when pytest fails, says which test failed or recorded nothing and which finding has
# no passing test, and then fails the target.
stress: $(STAMP)
	$(BIN)/python -m tests.scale.activity_scale
	$(BIN)/python -m tests.scale.instances_scale
	rm -f .stress/figures.jsonl
	TFA_STRESS=1 TFA_FIGURES=.stress/figures.jsonl $(BIN)/python -m pytest tests \
		-m "reliability or finding" -p tests.reliability.observed -p no:cacheprovider; \
	$(BIN)/python -m tests.reliability.report .stress/figures.jsonl docs/reliability.md

# Every benchmark of bench/ at full size on SQLite and PostgreSQL, medians of 3 runs, beside
# baselines measured in the same run; rewrites bench/results.md. Needs wrk (Debian package).
bench: $(STAMP)
	$(BIN)/python -m bench

# Every screen as SVG at 100x30, from a fixed clock, secret and port (tests/tui/scenes.py).
screenshots: $(STAMP)
	rm -f screenshots/*.svg
	$(BIN)/python -m tests.tui.scenes screenshots 100 30

clean:
	rm -rf $(VENV) .stress build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
