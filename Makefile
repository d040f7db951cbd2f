# The two commands of the README. Both create .venv from requirements.lock when needed.
.PHONY: plan test lint setup bench

setup:
	@./scripts/setup.sh

plan: setup
	@.venv/bin/vllm-fleet plan --stack dev

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

node_modules/.package-lock.json: package-lock.json
	npm ci --silent --no-audit --no-fund

test: lint node_modules/.package-lock.json
	.venv/bin/python -m pytest

bench: setup
	bench/plan_scaling
