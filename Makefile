# `make test` and `make demo` create or refresh .venv themselves (pinned torch/torchvision
# for CPU machines, from constraints/local.txt), then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-slow demo bench clean

$(STAMP): pyproject.toml constraints/local.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints/local.txt -e '.[dev,serve,onnx]'
	touch $(STAMP)

venv: $(STAMP)

test: venv
	$(BIN)/python -m pytest -q

# Slower tests (marked slow or cluster); pytest's "no tests collected" (5) is not a failure.
test-slow: venv
	$(BIN)/python -m pytest -q -m "slow or cluster"; rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

demo: venv
	$(BIN)/raynas demo

bench: venv
	$(BIN)/python benchmarks/loader_throughput.py
	$(BIN)/python benchmarks/search_step.py
	$(BIN)/python benchmarks/ot_query.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info
