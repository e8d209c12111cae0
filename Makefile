# Every target sets up what it needs: a private uv, the virtual environment, the database.
SHELL := bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test test-crash test-browser screenshots test-fuzz corpus lint fmt migrate bench clean deploy-check compose-env compose-smoke

run: $(VENV)/.synced ## Start PostgreSQL (embedded unless DATABASE_URL), migrate, serve everything
	$(VENV)/bin/python -m scripts.stack

# Under `make test` the two outbox crash tests kill fewer times under a lighter load; `make
# test-crash` runs them with their full counts (docs/testing.md). Set in the environment,
# either count wins.
CRASH_QUICK := CRASH_KILLS=$${CRASH_KILLS:-2} CRASH_USERS=$${CRASH_USERS:-20} \
	CRASH_WORKER_KILLS=$${CRASH_WORKER_KILLS:-2} CRASH_PG_KILLS=$${CRASH_PG_KILLS:-1} \
	CRASH_TODO_USERS=$${CRASH_TODO_USERS:-12} CRASH_TODO_CHANGES=$${CRASH_TODO_CHANGES:-6}

# Test files run in TEST_WORKERS pytest-xdist processes, each with its own PostgreSQL (or its
# own database on TEST_DATABASE_URL's server); a file stays on one worker, so the fixtures a
# file shares start once, and so does a package that shares a running stack (tests/e2e,
# tests/security); the longest go first (tests/support/schedule.py). TEST_WORKERS=0 runs them
# in this process.
TEST_WORKERS ?= 2

test: $(VENV)/.synced ## The whole test suite but the fuzzers and the browser (its own throw-away PostgreSQL)
	$(CRASH_QUICK) $(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/fuzz --ignore=tests/browser

test-crash: $(VENV)/.synced ## The outbox crash tests with their full kill counts and load
	$(VENV)/bin/pytest tests/events/test_outbox_crash.py tests/events/test_todo_outbox_crash.py

test-browser: $(VENV)/.synced ## The web client in Debian's Chromium against the whole stack (docs/testing.md)
	$(VENV)/bin/pytest tests/browser

screenshots: $(VENV)/.synced ## The sign-in, tasks, chat and overview pages at 1440 and 375 px to docs/screenshots/
	$(VENV)/bin/python -m tests.browser.screenshots

test-fuzz: $(VENV)/.synced ## Fuzz every OpenAPI document (FUZZ_MAX_EXAMPLES, FUZZ_SEED; docs/security.md)
	$(VENV)/bin/pytest tests/fuzz

corpus: $(VENV)/.synced ## The chat corpus against the rules agent: accuracy per intent and per set
	$(VENV)/bin/pytest tests/chat/test_corpus.py -s -q

lint: $(VENV)/.synced ## ruff check + ruff format --check + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared auth_service todo_service chat_service gateway web_service scripts

fmt: $(VENV)/.synced
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(VENV)/.synced ## Hot paths through the gateway; BEFORE=<checkout> alternates with it (bench/RESULTS.md)
	$(VENV)/bin/python -m bench.hotpaths $(if $(BEFORE),--before $(BEFORE))

migrate: $(VENV)/.synced ## Migrate every service (embedded PostgreSQL unless DATABASE_URL)
	$(VENV)/bin/python -m scripts.stack --migrate-only

deploy-check: $(VENV)/.synced ## Lint the Dockerfile, validate compose and Kubernetes manifests (offline)
	$(VENV)/bin/python deploy/check.py

compose-env: $(VENV)/.synced ## Local passwords in .env and a signing key for docker compose
	$(VENV)/bin/python deploy/local_secrets.py compose

compose-smoke: $(VENV)/.synced ## Build and run the compose stack under Docker, prove it, tear it down
	$(VENV)/bin/python deploy/smoke.py

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-extras
	touch $@

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
