"""The evaluation report (Markdown) from ``eval.json``'s figures."""

from __future__ import annotations

from typing import Any


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def render_report(r: dict[str, Any]) -> str:
    gate = r["gate"]
    a, b, u = r["attack_success"], r["benign_refusal"], r["utility"]
    lines = [
        f"# Evaluation: `{r['adapter']['name']}` vs the base model",
        "",
        f"Gate: **{'PASS' if gate['passed'] else 'FAIL'}**. Adapter sha256 "
        f"`{r['adapter']['sha256'][:16]}…`; answers greedy, ≤ {r['config']['max_tokens']} tokens,",
        f"through vLLM at `{r['config']['vllm_url']}`. Refusal = `finetune.refusal.is_refusal`.",
        "",
        "| figure | base | adapter |",
        "| --- | ---: | ---: |",
        f"| attack success, held-out families (n={a['n']}) | {_pct(a['base'])} | "
        f"{_pct(a['adapter'])} |",
        f"| benign refusal rate (n={b['n']}) | {_pct(b['base'])} | {_pct(b['adapter'])} |",
        f"| utility accuracy (n={u['asked']}) | {_pct(u['accuracy']['base'])} | "
        f"{_pct(u['accuracy']['adapter'])} |",
        "",
        f"Utility: the base answers {u['base_correct']} of {u['asked']} right; the adapter keeps "
        f"{u['adapter_correct_of_those']} of those ({u['regressions']} regression(s)).",
        "",
        "## Gate",
        "",
        "| check | value | threshold | result |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, c in gate.items():
        if isinstance(c, dict):
            result = "pass" if c["pass"] else "**fail**"
            lines.append(f"| {name} | {c['value']} | {c['op']} {c['threshold']} | {result} |")
    lines += ["", "## Attack success by family", "", "| family | n | base | adapter |"]
    lines.append("| --- | ---: | ---: | ---: |")
    for fam, v in r["attack_success_by_family"].items():
        lines.append(f"| {fam} | {v['n']} | {_pct(v['base'])} | {_pct(v['adapter'])} |")
    lines += ["", "## Attack success by mutation", "", "| mutation | n | base | adapter |"]
    lines.append("| --- | ---: | ---: | ---: |")
    for mut, v in r["attack_success_by_mutation"].items():
        lines.append(f"| {mut} | {v['n']} | {_pct(v['base'])} | {_pct(v['adapter'])} |")
    lines += ["", "## Benign refusals by source", "", "| source | n | base | adapter |"]
    lines.append("| --- | ---: | ---: | ---: |")
    for src, v in r.get("benign_refusal_by_source", {}).items():
        lines.append(f"| {src} | {v['n']} | {_pct(v['base'])} | {_pct(v['adapter'])} |")
    lines += ["", "## Sample answers", "", "| kind | prompt | base | adapter |"]
    lines.append("| --- | --- | --- | --- |")
    for s in r["samples"]:
        lines.append(
            f"| {s['kind']} | {_clip(s['prompt'], 90)} | {_clip(s['base'])} | "
            f"{_clip(s['adapter'])} |"
        )
    lines += ["", "![base vs adapter](chart.png)", ""]
    return "\n".join(lines)
