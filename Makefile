# predvis: `make demo` trains GOPC-1 on the embedded digits, predicts and writes the HTML report; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= quick
DEVICE ?= cpu
BENCH ?= quick
# jobs side by side in make reproduce-tables (one thread each): 2 on the CPU profiles, 1 for full (one GPU)
JOBS ?= $(if $(filter full,$(PROFILE)),1,2)
STAMP := $(VENV)/.installed

.PHONY: install test demo bench reproduce-tables clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch is pinned to the CPU build that pip finds on this machine; elsewhere pip takes it from PyPI.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==2.13.0" || $(BIN)/python -m pip install -q "torch<=2.14.1"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	@set -e; \
	run=$$($(BIN)/predvis train gopc1 --profile $(PROFILE) | tail -n 1); \
	out=$$($(BIN)/predvis predict $$run | tail -n 1); \
	echo; echo "run directory: $$run"; \
	echo "tables:        $$out/tables/recon.md $$out/tables/prior.md"; \
	echo "GIFs:          $$out/gifs/"; \
	cat $$out/tables/prior.md; \
	report=$$($(BIN)/predvis report $$run | tail -n 1); \
	echo; echo "report (open in a browser): $$report"

bench: $(STAMP)
	$(BIN)/python -m predvis.bench --size $(BENCH) --device $(DEVICE)

# Every paper table (docs/reproduce.md): runs what is missing, resumes what was interrupted, skips what is done;
# tables/$(PROFILE)/README.md indexes the tables. DRY=1 lists every cell and its status; CELLS=gopc1,vae1 runs some.
reproduce-tables: $(STAMP)
	$(BIN)/python -m predvis.reproduce --profile $(PROFILE) --workers $(JOBS) $(if $(filter 1 yes true,$(DRY)),--dry-run) $(if $(CELLS),--only $(CELLS))

clean-venv:
	rm -rf $(VENV)
