# The README's two set-up commands are `make demo` and `make test`; both create .venv on first use.
#
# Without an NVIDIA GPU (no working `nvidia-smi`) the CPU build of torch is installed first and pinned, so no later
# requirement can pull the multi-GB CUDA build; with a GPU the usual CUDA build is installed.
# Overrides: TORCH_VERSION=2.13.0, TORCH_SPEC="torch==X" (exact requirement), TORCH_CPU_INDEX=<url>, PYTHON=python3.11.
SHELL := bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c
.PHONY: demo test test-fast test-slow setup lint bench validate results-index mini-model smoke-realsize notebooks

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
EXTRAS ?=

demo:  ## install, then run World-R1 on the shipped mini Wan on CPU (under 10 minutes on 2 cores)
	$(MAKE) --no-print-directory setup
	$(VENV)/bin/python -m world_r1 fit --config configs/mini.yaml

test:  ## install with the dev extra, then run the whole test suite (CPU, offline); prints the 15 slowest
	$(MAKE) --no-print-directory setup EXTRAS=dev
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q --durations=15

test-fast:  ## the unit tier for the edit loop (under 3 minutes on 2 cores): all but the tests marked slow
	$(MAKE) --no-print-directory setup EXTRAS=dev
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q -m "not slow and not realsize" --durations=10

test-slow:  ## only the tests marked slow: subprocess runs, notebooks, whole-pipeline fits, benchmark runs
	$(MAKE) --no-print-directory setup EXTRAS=dev
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q -m slow --durations=15

setup:  ## create $(VENV) and install world-r1 (+ EXTRAS) with the right torch build for this machine
	@[ -x "$(VENV)/bin/python" ] || $(PYTHON) -m venv "$(VENV)"
	pip="$(VENV)/bin/python -m pip"
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
	  spec="$${TORCH_SPEC:-torch==$(TORCH_VERSION)}"; extra=(); echo "[setup] GPU found: $$spec (CUDA build)"
	else
	  spec="$${TORCH_SPEC:-torch==$(TORCH_VERSION)+cpu}"; extra=(--extra-index-url "$(TORCH_CPU_INDEX)")
	  echo "[setup] no GPU found: $$spec (CPU build)"
	fi
	if ! $(VENV)/bin/python -c "import torch" 2>/dev/null; then
	  # a local wheel (pip's find-links, a wheelhouse) first, then the configured index, then PyTorch's own index
	  $$pip install -q "$$spec" --no-index 2>/dev/null || $$pip install -q "$$spec" 2>/dev/null \
	    || $$pip install -q "$$spec" "$${extra[@]}"
	fi
	constraints="$$(mktemp)"; trap 'rm -f "$$constraints"' EXIT
	$(VENV)/bin/python -c "import torch; print(f'torch=={torch.__version__}')" 2>/dev/null >"$$constraints"
	target="."; [ -z "$(EXTRAS)" ] || target=".[$(EXTRAS)]"
	$$pip install -q -c "$$constraints" -e "$$target"
	if [[ ",$(EXTRAS)," == *,recon,* || ",$(EXTRAS)," == *,dev,* ]]; then  # S_recon's network (pyproject: recon)
	  $$pip install -q -c "$$constraints" --no-deps depth-anything-3==0.1.1 evo==1.38.1 e3nn==0.6.0
	fi
	echo "[setup] ready: $$(cat "$$constraints") in $(VENV)"

mini-model:  ## re-train the shipped mini Wan from scratch into .cache/world_r1/mini-wan (49 minutes measured on 2 CPU cores)
	$(MAKE) --no-print-directory setup
	$(VENV)/bin/python -m world_r1 pretrain --config configs/mini_vae.yaml
	$(VENV)/bin/python -m world_r1 pretrain --config configs/mini_base.yaml

smoke-realsize:  ## World-R1 on the real-size Wan 2.1 1.3B with random weights: step time, peak memory, file sizes
	$(MAKE) --no-print-directory setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m world_r1 smoke $(SMOKE_ARGS)

notebooks:  ## execute the notebooks and save them with their figures (committed executed)
	$(MAKE) --no-print-directory setup EXTRAS=dev
	HF_HUB_OFFLINE=1 $(VENV)/bin/python notebooks/execute.py

lint:  ## ruff lint and format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench:  ## speed ratios against baselines measured in the same run (results/speed/)
	$(VENV)/bin/python -m benchmarks

validate:  ## every reward and trajectory validation with its default arguments (results/validation/; about 15 min)
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m benchmarks.validation

results-index:  ## regenerate benchmarks/results/INDEX.md from the result files
	$(VENV)/bin/python -m benchmarks.index
