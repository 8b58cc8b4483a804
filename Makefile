# Each target sets up what it needs: a .venv in the repo root with polyvae installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml setup.py examples/polyvae-vector/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/pip install --quiet ./examples/polyvae-vector
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/polyvae demo demo-out

test: $(STAMP)
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) demo-out
