# healthwallet developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
NODE_STAMP := tests/node/node_modules/.installed

.PHONY: demo test lint typecheck unit bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# Without npm the Node-based tests skip locally (and fail under CI=true); make itself goes on.
$(NODE_STAMP): tests/node/package.json tests/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd tests/node && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else \
	  echo "note: npm not found; the Node.js verifier and Anvil tests will be skipped (they fail under CI=true)"; \
	fi

demo: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash scripts/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check healthwallet tests benchmarks scripts
	$(VENV)/bin/ruff format --check healthwallet

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# One worker per core; a test file stays on one worker, so its module fixtures are built once.
test: $(STAMP) $(NODE_STAMP) lint typecheck
	$(VENV)/bin/pytest -q -p no:cacheprovider -n auto --dist loadfile

# The fuzz suite also runs in `make test` (HYPOTHESIS_PROFILE=ci, derandomized); this is the
# long, randomized run. FUZZ_SCALE multiplies its example counts further.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=long $(VENV)/bin/pytest -q -p no:cacheprovider tests/fuzz --hypothesis-show-statistics

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) tests/node/node_modules .mypy_cache .ruff_cache
