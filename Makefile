# Each target sets up what it needs: a .venv in the repo root with polyvae installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# headless browser for tests/test_report_browser.py: Debian's package, never a downloaded one
CHROMIUM := /usr/bin/chromium

.PHONY: demo test install clean

$(STAMP): pyproject.toml setup.py examples/polyvae-vector/pyproject.toml $(wildcard examples/polyvae-vector/polyvae_vector/*.py)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet ./examples/polyvae-vector
	test -x $(CHROMIUM) || { apt-get update && apt-get install -y --no-install-recommends chromium; }
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/polyvae demo demo-out

test: $(STAMP)
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) demo-out
