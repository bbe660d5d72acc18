# Two commands do everything on a fresh machine: `make run` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench gate fuzz mutation lock clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -n "$(PY)" || { echo "need python3.11 on PATH" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	# Bytecode compiled at install: with PYTHONDONTWRITEBYTECODE set (as in many images)
	# every process would otherwise compile pandas, SQLAlchemy and the rest from source.
	$(BIN)/uv pip install --python $(BIN)/python -q --compile-bytecode -r requirements-dev.txt
	$(BIN)/uv pip install --python $(BIN)/python -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the project installed (.venv/bin/liquidity)

run: setup  ## start the system on embedded defaults (SQLite, folders under var/)
	$(BIN)/python -m devtools.local_stack

test: setup  ## the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# Both cores, one worker per file. The schemathesis file runs alone afterwards: its
	# generated tests share one node id, which xdist would collapse into one.
	$(BIN)/python -m pytest -n 2 --dist loadfile --ignore=tests/integration/fuzz/test_openapi_fuzz.py
	$(BIN)/python -m pytest tests/integration/fuzz/test_openapi_fuzz.py

lint: setup  ## ruff, and the layers of pyproject.toml's import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

bench: setup
	$(BIN)/python -m bench

gate: setup  ## the skill gate: each panel's skill within 0.02 of bench/skill_baseline.json
	$(BIN)/python -m bench.gate

# Generated inputs per target and the seed that picks them (the same seed, the same inputs).
FUZZ_BUDGET ?= 10000
FUZZ_SEED ?= 16

# schemathesis (every check and phase, seed fixed in the test): cases per API operation and
# phase; `make test` runs the same file with 25.
SCHEMATHESIS_MAX_EXAMPLES ?= 1000

fuzz: setup  ## fuzz ingest, the API, the form and the routes: FUZZ_BUDGET inputs each
	FUZZ_BUDGET=$(FUZZ_BUDGET) FUZZ_SEED=$(FUZZ_SEED) $(BIN)/python -m pytest tests/integration/fuzz/test_fuzz_scale.py -s -q
	SCHEMATHESIS_MAX_EXAMPLES=$(SCHEMATHESIS_MAX_EXAMPLES) $(BIN)/python -m pytest tests/integration/fuzz/test_openapi_fuzz.py -q

# Seconds of mutmut per module of the decision core; MUTATION_MODULES narrows the run
# (e.g. "splits compare").
MUTATION_BUDGET ?= 600
MUTATION_MODULES ?=

mutation: setup  ## mutation testing of the decision core (mutmut); report in var/mutation/report.md
	MUTATION_BUDGET=$(MUTATION_BUDGET) $(BIN)/python -m devtools.mutation $(MUTATION_MODULES)

lock:  ## compile pyproject.toml's dependencies into requirements.txt (runtime) and requirements-dev.txt (+ dev)
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --no-header -o requirements.txt
	# The dev lock is constrained by the runtime lock: a package in both has one version.
	$(BIN)/uv pip compile pyproject.toml --extra dev --constraint requirements.txt \
		--python-version 3.11 --no-header -o requirements-dev.txt

clean:
	rm -rf $(VENV) var build *.egg-info
