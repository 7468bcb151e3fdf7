# salient: the two set-up commands are `make demo` and `make test` (see README).
# Each creates .venv when missing and installs what it needs; torch is pinned to the 2.13.0 CPU wheel.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: demo test bench install clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/salient --store ./salient-data demo --via-service

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/sql_scan.py
	$(BIN)/python benchmarks/attribution.py --jobs

clean:
	rm -rf $(VENV) salient-data
