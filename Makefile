# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-unit test-integration test-infra test-e2e lint synth bench bench-quick torture clean

$(STAMP): requirements.txt requirements-dev.txt requirements-local.txt agent/requirements.txt lambdas/validator/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e ".[local]" 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -c "import dagsync.agent.cli, dagsync.local.stack, boto3, moto, aws_cdk"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m dagsync.local.demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest tests

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest tests/integration

test-infra: $(STAMP)
	$(PY) -m pytest tests/infrastructure

test-e2e: $(STAMP)
	$(PY) -m pytest tests/e2e

# The long SIGKILL torture (500 kills by default; DAGSYNC_TORTURE_KILLS=N to change). `make test` runs 50.
torture: $(STAMP)
	DAGSYNC_TORTURE=1 $(PY) -m pytest tests/e2e/test_torture.py -m torture -rA -s

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

# Synthesize every environment with the pinned CDK CLI (Node 20; jsii's end-of-life banner silenced).
synth: $(STAMP)
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 npx --yes aws-cdk@2.1148.1 synth --quiet

# Benchmarks (bench/): tools under test go into their own venvs in .bench-cache/ (bench/setup.sh, pinned).
bench: $(STAMP)
	bash bench/setup.sh
	$(PY) -m bench.suite

bench-quick: $(STAMP)
	bash bench/setup.sh
	$(PY) -m bench.suite --quick

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache
