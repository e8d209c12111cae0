# Every target sets up what it needs: a private uv, the virtual environment, the database.
SHELL := bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test test-fuzz corpus lint fmt migrate bench clean deploy-check compose-env compose-smoke

run: $(VENV)/.synced ## Start PostgreSQL (embedded unless DATABASE_URL), migrate, serve everything
	$(VENV)/bin/python -m scripts.stack

test: $(VENV)/.synced ## The whole test suite but the fuzzers (its own throw-away PostgreSQL)
	$(VENV)/bin/pytest --ignore=tests/fuzz

test-fuzz: $(VENV)/.synced ## Fuzz every OpenAPI document (FUZZ_MAX_EXAMPLES, FUZZ_SEED; docs/security.md)
	$(VENV)/bin/pytest tests/fuzz

corpus: $(VENV)/.synced ## The chat corpus against the rules agent: accuracy per intent and per set
	$(VENV)/bin/pytest tests/chat/test_corpus.py -s -q

lint: $(VENV)/.synced ## ruff check + ruff format --check + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared auth_service todo_service chat_service gateway scripts

fmt: $(VENV)/.synced
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

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
