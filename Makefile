# The two commands a newcomer needs (each sets everything up first):
#   make test   create .venv, install lit-snn with all extras, run the test suite
#   make apex   same set-up, then train APEX-SNN on MNIST: lightning fit --config recipes/apex.yaml
.PHONY: setup test apex lint
VENV ?= .venv

# Where datasets live: $LIT_SNN_DATA_DIR if set; else ../shared/data when it holds MNIST (the project's machines,
# which cannot download); else ./data (the recipes download MNIST there on first use).
LIT_SNN_DATA_DIR ?= $(if $(wildcard ../shared/data/mnist),$(abspath ../shared/data),$(abspath data))
export LIT_SNN_DATA_DIR

setup:
	bash scripts/setup.sh

test: setup
	$(VENV)/bin/python -m pytest -q

apex: setup
	@echo "data: $(LIT_SNN_DATA_DIR)"
	$(VENV)/bin/lightning fit --config recipes/apex.yaml

lint: setup
	$(VENV)/bin/ruff check .
