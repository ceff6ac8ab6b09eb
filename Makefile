# predvis: `make demo` trains GOPC-1 on the embedded digits, predicts and writes the HTML report; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= quick
DEVICE ?= cpu
BENCH ?= quick
# where make reproduce-tables runs its jobs: local (processes here) or slurm (SLURM jobs via submitit; SLURM=... adds
# options such as --slurm-partition gpu --slurm-gpus 1 --slurm-time 4:00:00, docs/scaling.md)
LAUNCHER ?= local
SLURM ?=
# jobs side by side in make reproduce-tables (one thread each): 2 on the CPU profiles, 1 for full (one GPU)
JOBS ?= $(if $(filter full,$(PROFILE)),1,2)
STAMP := $(VENV)/.installed

.PHONY: install test demo bench reproduce-tables clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch: from TORCH_INDEX when given (a PyTorch wheel index, e.g. https://download.pytorch.org/whl/cpu or
# .../whl/cu126); else a wheel already on this machine (pip's find-links) if one fits; else PyPI (via pyproject).
TORCH_INDEX ?=
TORCH_SPEC := torch>=2.2,<3
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install -q --index-url $(TORCH_INDEX) "$(TORCH_SPEC)",$(BIN)/python -m pip install -q --no-index --no-deps "$(TORCH_SPEC)" 2>/dev/null || true)
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
	$(BIN)/predvis bench --size $(BENCH) --device $(DEVICE)

# Every paper table (docs/reproduce.md): runs what is missing, resumes what was interrupted, skips what is done;
# tables/$(PROFILE)/README.md indexes the tables. DRY=1 lists every cell and its status; CELLS=gopc1,vae1 runs some;
# LAUNCHER=slurm submits every job to SLURM (JOBS at a time).
reproduce-tables: $(STAMP)
	$(BIN)/predvis reproduce --profile $(PROFILE) --workers $(JOBS) --launcher $(LAUNCHER) $(SLURM) $(if $(filter 1 yes true,$(DRY)),--dry-run) $(if $(filter 1 yes true,$(TABLES_ONLY)),--tables-only) $(if $(CELLS),--only $(CELLS))

clean-venv:
	rm -rf $(VENV)
