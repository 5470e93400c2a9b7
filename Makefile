# The README's commands live here. `make run` needs only Python 3.11+. `make test` uses
# PostgreSQL and Redis when DATABASE_URL / REDIS_URL point at them (CI sets both), and
# otherwise starts throwaway ones of its own for the run (tests/servers.py).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export DEBUG ?= true

.PHONY: setup run test test-lab test-containers reliability bench lint typecheck format check ci

$(BIN)/activate: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

setup: $(BIN)/activate

# The product on embedded defaults: SQLite, the file broker, simulated devices.
# `make run PORT=8001` serves the web on another port.
PORT ?= 8000
run: setup
	$(BIN)/python manage.py rundemo --port $(PORT)

# The suite mostly waits (on devices, workers, timeouts), so it runs in parallel
# processes, each with its own test database and Redis database (pytest-xdist; a file's
# tests stay together with their fixtures). `make test PYTEST_WORKERS=0` runs in one.
PYTEST_WORKERS ?= 3
PARALLEL := -n $(PYTEST_WORKERS) --dist loadfile
test: setup
	DEBUG=false $(BIN)/python -m pytest $(PARALLEL) $(PYTEST_ARGS)

# The suite plus the tests that build a Linux bridge and a route on this host (root).
test-lab: setup
	BACNET_TEST_LAB=1 DEBUG=false $(BIN)/python -m pytest $(PARALLEL) $(PYTEST_ARGS)

# The compose deployment for real (tests/deploy/test_containers_*.py): docker-compose.yml
# with the bacnet profile and the Windows topology, built, started, used through the web,
# restarted and torn down. Docker Engine when one answers; else podman and podman-compose
# set up by .ci/containers/setup.sh (root; a few seconds once its images exist).
test-containers: setup
	docker info >/dev/null 2>&1 || bash .ci/containers/setup.sh
	BACNET_TEST_CONTAINERS=1 BACNET_TEST_SERVERS=none DEBUG=false \
		$(BIN)/python -m pytest -m containers tests/deploy $(PYTEST_ARGS)

# Faults survived, bad input refused, nobody let in (also part of `make test`).
reliability: setup
	DEBUG=false $(BIN)/python -m pytest tests/reliability $(PYTEST_ARGS)

# Benchmarks against baselines measured in the same run; results in bench/RESULTS.md.
bench: setup
	DEBUG=false $(BIN)/python -m bench $(BENCH_ARGS)

lint: setup typecheck
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

# mypy with the Django, DRF and Celery stubs over the product and the benchmarks.
typecheck: setup
	DEBUG=true $(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: setup
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

ci:
	bash .ci/run
