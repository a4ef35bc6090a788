# continuity: `make test` and `make demo` work on a fresh clone.
# Both create a virtualenv in .venv (idempotent) with what they need.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

# pytest workers (pytest-xdist): one per core by default; `make test JOBS=0` runs in one process.
JOBS   ?= auto

.PHONY: test lint bytecode demo docs bench venv clean

# The checks first (seconds), then the suite on every core, then the docs.
test: lint bytecode
	sh scripts/test-deps.sh
	$(BIN)/python -m pytest -ra -n $(JOBS) --dist worksteal tests
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

lint: $(STAMP)
	$(BIN)/ruff check continuity tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# pip compiles an installed package's bytecode; an editable install is left to
# import time, which PYTHONDONTWRITEBYTECODE (set on some CI machines) turns
# into a compile on every `fab` start. Compile once, as an install would.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q continuity

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/demo.py

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(STAMP) bytecode
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/roundtrips.py
	$(BIN)/python benchmarks/hosts.py
	$(BIN)/python benchmarks/docker_context.py
	$(BIN)/python benchmarks/shards.py

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py
	@command -v git >/dev/null || (apt-get update && apt-get install -y git)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip uninstall --quiet --yes continuity 2>/dev/null || true  # the distribution's name before fabric-continuity
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) docs/_build build dist *.egg-info demo
