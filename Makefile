# The two front-door commands: `make demo` (the main job) and `make test` (the test suite).
# They work on a fresh machine with only Python and pip: uv is bootstrapped if it is missing,
# then the locked environment (CPU build of vLLM) is synced into .venv.

SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
SYNC := $(UV) sync --locked --extra cpu
RUN := $(UV) run --locked --extra cpu
DEMO_OUT ?= runs/demo

# Debian packages the product uses: tesseract (OCR in the rationale teacher and M2FN's text
# input), DejaVu fonts (CreativeSim's renderer), Chromium (browser tests of the UI).
SYSTEM_PKGS := tesseract-ocr tesseract-ocr-eng fonts-dejavu-core chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup system-deps test demo bench lint format

$(HOME)/.local/bin/uv:
	python3 -m pip install --quiet --user uv

system-deps:
	@if ! command -v tesseract >/dev/null || ! command -v chromium >/dev/null \
	    || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then \
	  echo "installing $(SYSTEM_PKGS)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PKGS); \
	fi

setup: $(UV) system-deps
	$(SYNC)

test: setup
	$(RUN) pytest

demo: setup
	$(RUN) creative4u demo --out $(DEMO_OUT)

bench: setup
	$(RUN) python bench/run_all.py

lint: setup
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: setup
	$(RUN) ruff check --fix .
	$(RUN) ruff format .
