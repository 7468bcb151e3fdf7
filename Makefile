# salient: the two set-up commands are `make demo` and `make test` (see README).
# Each creates .venv when missing and installs what it needs; torch is pinned to the 2.13.0 CPU wheel.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
TORCH  ?= torch==2.13.0

.PHONY: demo test bench install clean system-deps

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

install: system-deps $(BIN)/.installed

# ---- system packages (Debian, as root): what tests need outside the venv ----
# docker-compose: tests/deploy validates docker-compose.yml with `docker-compose config`;
# chromium: the browser the HTML view tests drive. Skipped with a note when not root on Debian
# (then install them yourself: apt-get install docker-compose chromium).
SYSTEM_PACKAGES ?= docker-compose chromium
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do command -v $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ -f /etc/debian_version ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else \
		echo "system-deps: missing:$$missing (not root on Debian: apt-get install$$missing)"; \
	fi

demo: $(BIN)/.installed
	$(BIN)/salient --store ./salient-data demo

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/sql_scan.py
	$(BIN)/python benchmarks/attribution.py --jobs

clean:
	rm -rf $(VENV) salient-data
