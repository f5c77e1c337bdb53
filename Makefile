# The README's two commands are `make up` and `make test`; the rest are helpers.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: up down status test lint unit fuzz test-cluster manifests

# The virtual environment is (re)built whenever pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

up: $(BIN)/.installed        ## start Kafka, Cassandra, workers and the API
	$(BIN)/backbone up

down: $(BIN)/.installed
	$(BIN)/backbone down

status: $(BIN)/.installed
	$(BIN)/backbone status

test: $(BIN)/.installed      ## the whole suite; starts Kafka and Cassandra when none runs
	$(BIN)/pytest

unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

# Not part of `test`: schemathesis over the whole OpenAPI document, without and with a token,
# against a stack of its own (minutes; FUZZ_EXAMPLES=n examples per operation, default 25).
fuzz: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,fuzz]'
	BACKBONE_FUZZ=1 $(BIN)/pytest -s tests/integration/test_openapi_fuzz.py

# Not part of `test`: the failover test on a 3-node Kafka cluster and Cassandra ring of its
# own on 127.0.0.1-3 (`backbone infra up --nodes 3`); about 10 minutes, ~6 GB of memory.
test-cluster: $(BIN)/.installed
	BACKBONE_CLUSTER_TESTS=1 $(BIN)/pytest -s tests/cluster

# The deployment files' checks (also part of `test`): helm lint and template with both values
# files, the objects against Kubernetes' schemas, the Compose file against its specification.
# The first run builds helm from source through the Go module proxy (a few minutes).
manifests: $(BIN)/.installed
	$(BIN)/pytest -q tests/unit/test_deployment_manifests.py

# The formatter's layout everywhere: a `# fmt: skip` is refused, not reviewed line by line.
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@! grep -rn --include='*.py' 'fmt: skip' api backbone bench connector deploy domain localproc schemas store streams tests || { echo 'lint: remove the # fmt: skip above'; exit 1; }
	$(BIN)/mypy
