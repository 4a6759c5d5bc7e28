# The two commands: `make run` and `make test`. Both install what is missing.
SHELL := /bin/bash
# A build cache outside the clone keeps repeated and CI runs fast.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/conclave/target
export CARGO_TERM_COLOR ?= never
PROFILE ?= default

.PHONY: run test setup build lint unit daemon

setup:
	@scripts/setup.sh

build: setup
	cargo build --workspace --all-targets

## Starts the node in the foreground (Ctrl-C stops it).
run: setup
	cargo build --release -p conclave-node --bins
	$(CARGO_TARGET_DIR)/release/conclaved --profile $(PROFILE)

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## Every test: formatting, lints, unit, in-process and cross-process tests.
test: setup lint
	cargo test --workspace --all-targets
