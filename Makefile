# The commands people run. `make help` lists them.
# Everything installs into .venv from this repo's own files: a fresh machine needs only
# Python 3.11, cargo and the package registries.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test test-rust test-python stubtest build-dev build-prod bench lint fmt clean browser postgres

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "maturin>=1.7,<2"
	$(BIN)/maturin develop --quiet --extras dev
	touch $(STAMP)

build-dev: $(STAMP) ## build the Rust extension (dev profile) into the venv
	$(BIN)/maturin develop --quiet

build-prod: $(STAMP) ## build the Rust extension with the release profile (for benchmarks)
	$(BIN)/maturin develop --quiet --release

run: build-prod ## run paymux on its embedded default
	$(BIN)/python -m paymux.cli run-default

test: test-rust test-python ## run all the tests (Rust and Python)

test-rust: ## cargo test on the plain Rust core (no Python needed)
	cargo test --manifest-path rust_core/Cargo.toml --quiet

browser: ## install Debian's chromium for the dashboard browser test (no-op when present)
	./scripts/install-browser.sh

postgres: ## install Debian's PostgreSQL server and the paymux-pg user for the tests (no-op when present)
	./scripts/install-postgres.sh

test-python: build-dev stubtest browser postgres ## pytest: bindings, properties, connectors, sandbox, gateway
	$(BIN)/python -m pytest -q

stubtest: build-dev ## check python/paymux/_core.pyi against the compiled module
	$(BIN)/python -m mypy.stubtest paymux._core --ignore-missing-stub

bench: build-prod ## print the core benchmark (Rust vs pure-Python reference)
	$(BIN)/python benchmarks/bench_core.py

lint: $(STAMP) ## ruff, mypy, cargo fmt --check, clippy
	$(BIN)/ruff check python tests benchmarks loadtests
	$(BIN)/ruff format --check python tests benchmarks loadtests
	$(BIN)/python -m mypy python/paymux
	cargo fmt --manifest-path rust_core/Cargo.toml --check
	cargo clippy --manifest-path rust_core/Cargo.toml --features python -- -D warnings

fmt: $(STAMP) ## format Python and Rust
	$(BIN)/ruff format python tests benchmarks loadtests
	cargo fmt --manifest-path rust_core/Cargo.toml

clean: ## remove the venv and build output
	rm -rf $(VENV) target
