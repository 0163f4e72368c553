# The two set-up commands of the README: 'make demo' and 'make test'.
.PHONY: deps demo test lint unit down

deps:
	bash scripts/install-deps.sh

demo: deps
	bash scripts/demo.sh

lint: deps
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

test: deps lint
	WHIMBREL_REQUIRE_LAB=1 .venv/bin/pytest -v --durations=15 tests

unit: deps
	.venv/bin/pytest -q tests/unit

down:
	.venv/bin/whimbrel serve --stop || true
	.venv/bin/whimbrel lab down
