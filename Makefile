# The two commands a newcomer needs (each sets everything up first):
#   make test   create .venv, install lit-snn with all extras, run the test suite
#   make apex   same set-up, then train APEX-SNN on MNIST: lightning fit --config recipes/apex.yaml
.PHONY: setup test apex lint
VENV ?= .venv

setup:
	bash scripts/setup.sh

test: setup
	$(VENV)/bin/python -m pytest -q

apex: setup
	$(VENV)/bin/lightning fit --config recipes/apex.yaml

lint: setup
	$(VENV)/bin/ruff check .
