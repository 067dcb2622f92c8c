# hull's entry points. Quiet by default (V=1 shows every command); errors always show.
#   make setup   Debian packages (only those missing), .venv, editable install with dev tools
#   make test    the whole pytest suite, then lint; what CI runs
#   make lint    ruff check and mypy
#   make bench   hull against its peers (bench/run.py; ARGS='--runs 5 --only NAME')
#   make demo    a busybox container run by hull-runtime (the main job until hulld exists)
#   make clean   remove .venv, build/ and caches

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := test

Q := $(if $(V),,@)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done

# Debian packages the project uses at run or test time. python3 and ca-certificates are for a
# bare Debian (pip needs both); the hull machines have python3 from pyenv on PATH as well.
APT_PACKAGES := busybox-static runc libseccomp2 iproute2 procps util-linux python3 python3-venv docker.io skopeo tini lxcfs \
	docker-registry apache2-utils tmux ca-certificates make hyperfine iptables nftables

PYTEST_ARGS ?= -q
# A hung container test would otherwise eat CI's whole time budget without saying which one.
PYTEST_TIMEOUT ?= 600
ARGS ?=

.PHONY: setup apt test lint bench demo clean

setup: apt $(STAMP)

# Cheap enough to run every time: apt-get is called only when a package is missing.
apt:
	$(Q)missing=""; \
	for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${db:Status-Abbrev}' $$p 2>/dev/null | grep -q '^ii' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	fi

# Reinstalls only when pyproject.toml changes (new dependencies, new console scripts).
$(STAMP): pyproject.toml
	$(Q)[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(Q)$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	$(Q)touch $@

test: setup
	$(Q)$(PY) -m pytest $(PYTEST_ARGS) --timeout=$(PYTEST_TIMEOUT)
	$(Q)$(MAKE) lint

lint: setup
	$(Q)$(VENV)/bin/ruff check -q src tests bench
	$(Q)$(VENV)/bin/mypy src/hull bench

# Bytecode first: where PYTHONDONTWRITEBYTECODE is set, every run would compile hull again.
bench: setup
	$(Q)$(PY) -m compileall -q src
	$(Q)$(PY) bench/run.py $(ARGS)

demo: setup
	$(Q)$(PY) -m hull.testing.demo build/demo

# rm -rf would descend into a mount that a broken container run left under build/: refuse instead.
clean:
	$(Q)! grep -qF " $(CURDIR)/build/" /proc/self/mountinfo || \
		{ echo "refusing to remove build/: something is still mounted below it" >&2; exit 1; }
	$(Q)rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
	$(Q)find src tests bench -name __pycache__ -type d -prune -exec rm -rf {} +
