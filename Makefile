# The two commands: `make run` and `make test`. Both install what is missing.
SHELL := /bin/bash
# A build cache outside the clone keeps repeated and CI runs fast.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/conclave/target
export CARGO_TERM_COLOR ?= never
PROFILE ?= default
# Where setup installs cargo tools (tauri-driver, cargo-deny).
TOOLS ?= $(or $(CONCLAVE_TOOLS),$(HOME)/.cache/conclave/cargo-bin)
# Clippy rides on the build: its driver compiles the workspace's own crates
# (as `cargo clippy` does on `cargo check`) and fails on any warning, so the
# lints and the build are one compile, not two. Every cargo command below
# that builds the workspace in debug passes it, so they share artifacts.
CLIPPY = RUSTC_WORKSPACE_WRAPPER="$$(rustc --print sysroot)/bin/clippy-driver" \
	CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__

.PHONY: run test setup build ui lint unit ui-test bench daemon nat-test chain-test package package-test service-test metrics-test screenshots

setup:
	@scripts/setup.sh

## The UI bundle (ui/dist), which the app embeds at compile time.
ui: setup
	cd ui && npm run --silent build -- --logLevel warn

## Every target of the workspace, with the features `cargo test` uses and
## clippy's lints (-D warnings): the test targets below build this way, so
## nothing is compiled twice. `cargo test` alone builds examples without
## their plain names, which the example tests run: unit and test build first.
build: setup ui
	$(CLIPPY) cargo build --workspace --all-targets

## Starts the desktop app on the PROFILE profile (its window closes it). The
## app is built with tauri's custom-protocol feature (on by default in
## src-tauri), so it loads the bundled UI, not a dev server.
run: setup ui
	cargo build -p conclave-app --bin conclave
	$(CARGO_TARGET_DIR)/debug/conclave --profile $(PROFILE)

## Starts the headless node in the foreground (Ctrl-C stops it).
daemon: setup
	cargo build --release -p conclave-daemon --bins
	$(CARGO_TARGET_DIR)/release/conclaved --profile $(PROFILE)

## Formatting, licences and sources, the UI's type check; clippy's lints
## run with the build (see CLIPPY).
lint: setup ui
	cargo fmt --all --check
	$(TOOLS)/bin/cargo-deny --log-level error check bans licenses sources
	cd ui && npm run --silent check

## Rust tests run inside a private D-Bus session with a fresh gnome-keyring,
## so keychain tests use a real Secret Service.
unit: build
	cd ui && npm run --silent test
	$(CLIPPY) scripts/with-keyring.sh cargo test --workspace --all-targets

## The desktop UI tests, headless (screenshots in tests/ui/screenshots/).
ui-test: build
	tests/ui/run.sh test

## The README's pictures (assets/*.png), rewritten from a UI test run.
screenshots: build
	scripts/screenshots.sh

## Launch-to-first-render, Peers-view frame time, and CPU and memory at rest.
bench: build
	tests/ui/run.sh bench

## The NAT test network: daemons in network namespaces behind nftables NATs
## (needs root; skipped where network namespaces are unavailable).
nat-test: build
	tests/nat/run.sh

## The desktop app as a Debian package: Tauri's bundler packages the binary
## cargo built (it downloads nothing) into
## $(CARGO_TARGET_DIR)/debug/bundle/deb/. The debug build is the one the
## tests use; RELEASE=1 packages an optimised build (.../release/bundle/deb/).
## --no-binary-patching leaves the shared build's binary as cargo made it.
package: setup ui
ifdef RELEASE
	cargo build --release -p conclave-app --bin conclave
	ui/node_modules/.bin/tauri bundle --ci --bundles deb --no-sign --no-binary-patching
else
	$(MAKE) --no-print-directory build
	ui/node_modules/.bin/tauri bundle --ci --debug --bundles deb --no-sign --no-binary-patching
endif

## Installs the debug .deb into this machine (needs root), launches the
## installed app under tauri-driver, purges it and checks what is left.
package-test: package
	tests/package/run.sh

## The systemd unit for relay and bootstrap servers: systemd-analyze verify,
## its conclaved flags, and the sample relay config on loopback.
service-test: build
	tests/package/service.sh

## Live conclaved metrics: promtool check metrics, the scrape example, and
## every series the Grafana dashboard queries.
metrics-test: build
	tests/metrics/run.sh

## The kernel-backed regtest node's own tests (tests/chain).
chain-test: setup
	tests/chain/run.sh

## Every test: formatting, lints, unit, in-process and cross-process tests,
## the regtest node, the NAT network, the service unit, the metrics, the
## desktop UI tests and the Debian package.
test: setup lint build
	cd ui && npm run --silent test
	$(CLIPPY) scripts/with-keyring.sh cargo test --workspace --all-targets
	$(MAKE) --no-print-directory chain-test
	$(MAKE) --no-print-directory nat-test
	$(MAKE) --no-print-directory service-test
	$(MAKE) --no-print-directory metrics-test
	$(MAKE) --no-print-directory ui-test
	$(MAKE) --no-print-directory package-test
