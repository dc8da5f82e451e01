"""``method: probe_gate``: an adapter whose refuse-or-answer decision is a linear probe on the
base model's own activations, switched on only where the answer is decided.

docs/finetune.md, runs 8-10, shows why: a logistic probe on a middle layer of the base model tells
held-out attack families from benign look-alikes far better than any adapter trained end to end,
and a plain LoRA that writes the probe's verdict does so at every position, inside benign answers
too. So per chosen layer one SwiGLU neuron of the MLP (the one whose ``down_proj`` column is
smallest) is repurposed with three rank-1 LoRAs, an ordinary PEFT adapter that vLLM serves:

* ``gate_proj``'s row becomes ``g · x``: a logistic probe fitted on the MLP input ``x`` to fire on
  attack conversations at the decision position (the last prompt token) and the first ``window``
  answer positions, and nowhere in benign conversations (prompt, decision and answer positions),
  shifted by ``threshold`` through a direction whose projection is about 1 everywhere (the MLP
  input has one: LoRA has no bias);
* ``up_proj``'s row becomes that constant direction, so the neuron is about ``silu(g · x)``:
  close to 0 where the probe is below the threshold;
* ``down_proj`` cancels the neuron's own column and writes ``B · neuron``; ``B`` (hidden size
  numbers a layer) is all that training changes.

The probe's training positions: every row of ``train.jsonl`` with its target answer, and every
attack prompt again with the base model's own greedy answer (so the gate stays open when the
model starts to comply). Fitting needs the base model in full precision (its rows are read), so
QLoRA does not apply.

Reading and fitting take minutes on a CPU, so the fitted gates are kept beside the checkpoints
(:mod:`finetune.saved_gates`): a resumed run reuses them, ``--fresh`` deletes them, and
checkpoints whose gates were fitted to other inputs are an error rather than a silent mix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from finetune.chat_data import IGNORE, encode, read_jsonl
from finetune.saved_gates import CACHE, Gate, fingerprint, load_gates, save_gates
from finetune.train import CHECKPOINTS, TrainError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from finetune.train_config import ProbeGateSettings, TrainConfig

    Matrix = npt.NDArray[np.float32]
    Mask = npt.NDArray[np.bool_]

TARGETS = ("gate_proj", "up_proj", "down_proj")
DECISION_WEIGHT = 10.0
"""The decision position (one per conversation) against the many answer positions."""
CONSTANT_RIDGE = 100.0


class ProbeGateError(TrainError):
    """The base model or the dataset cannot carry a probe gate (reason in the message)."""


@dataclass(frozen=True)
class Conversation:
    """A user turn and its answer, as the gates read them."""

    messages: list[dict[str, str]]
    attack: bool
    family: str
    """``meta.family``: the attack family, or for benign rows the family a twin mirrors"""


@dataclass(frozen=True)
class Positions:
    """MLP inputs at the sampled positions of every conversation, per layer."""

    features: dict[int, Matrix]
    attack: Mask
    offset: npt.NDArray[np.int64]
    """position minus the decision position: < 0 prompt, 0 decision, > 0 answer"""
    conversation: npt.NDArray[np.int64]
    """the index of the conversation each position was read from"""

    def subset(self, keep: Mask) -> Positions:
        return Positions(
            features={layer: x[keep] for layer, x in self.features.items()},
            attack=self.attack[keep],
            offset=self.offset[keep],
            conversation=self.conversation[keep],
        )

    def positive(self, window: int) -> Mask:
        return self.attack & (self.offset >= 0) & (self.offset <= window)

    def negative(self) -> Mask:
        import numpy as np

        return np.asarray(~self.attack)


def mlp_of(model: Any, layer: int) -> Any:
    mlp = model.model.layers[layer].mlp
    if not all(hasattr(mlp, name) for name in TARGETS):
        raise ProbeGateError(
            f"layer {layer}: probe_gate needs a gated MLP with {', '.join(TARGETS)} "
            "(Llama, Mistral, Qwen, SmolLM)"
        )
    return mlp


def check_layers(model: Any, layers: Sequence[int]) -> None:
    total = int(model.config.num_hidden_layers)
    wrong = [layer for layer in layers if not 0 <= layer < total]
    if wrong:
        raise ProbeGateError(f"probe_gate.layers {wrong}: the base model has layers 0-{total - 1}")
    for layer in layers:
        mlp_of(model, layer)


def training_conversations(cfg: TrainConfig) -> list[Conversation]:
    """The rows the Trainer sees (all of them, or the same ``train.max_examples`` picked by the
    seed), in file order, with their kind and family."""
    from finetune.train import shuffled

    rows: list[Conversation] = []
    for i, row in enumerate(read_jsonl(cfg.dataset), 1):
        meta = row.get("meta")
        kind = meta.get("kind") if isinstance(meta, dict) else None
        if kind not in ("attack", "benign"):
            raise ProbeGateError(
                f"{cfg.dataset} line {i}: probe_gate needs meta.kind 'attack' or 'benign' "
                "(the rows `finetune dataset build` writes)"
            )
        family = str(meta.get("family") or "") if isinstance(meta, dict) else ""
        rows.append(Conversation(list(row["messages"])[-2:], kind == "attack", family))
    seen = sorted(int(r["index"]) for r in shuffled(cfg, [{"index": i} for i in range(len(rows))]))
    out = [rows[i] for i in seen]  # in file order
    if not any(c.attack for c in out) or all(c.attack for c in out):
        raise ProbeGateError(f"{cfg.dataset}: probe_gate needs both attack and benign rows")
    return out


def with_base_answers(
    model: Any, tokenizer: Any, conversations: Sequence[Conversation], tokens: int
) -> list[Conversation]:
    """``conversations`` and, after them, every attack again with the base model's own answer
    (so the gates stay open where the base model starts to comply)."""
    attacks = [c for c in conversations if c.attack]
    prompts = [c.messages[0]["content"] for c in attacks]
    answers = base_answers(model, tokenizer, prompts, tokens)
    return [
        *conversations,
        *(
            Conversation(
                [{"role": "user", "content": p}, {"role": "assistant", "content": a}],
                True,
                c.family,
            )
            for c, p, a in zip(attacks, prompts, answers, strict=True)
        ),
    ]


def base_answers(model: Any, tokenizer: Any, prompts: Sequence[str], tokens: int) -> list[str]:
    """The base model's greedy answers (batched, left-padded)."""
    import torch
    from rich.progress import track

    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    answers: list[str] = []
    try:
        for start in track(range(0, len(prompts), 16), description="probe gate: base answers"):
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
                )
                for p in prompts[start : start + 16]
            ]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            batch = batch.to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **batch,
                    max_new_tokens=tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            width = batch["input_ids"].shape[1]
            answers += tokenizer.batch_decode(out[:, width:].cpu(), skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return answers


def collect_positions(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Conversation],
    settings: ProbeGateSettings,
    *,
    max_len: int,
    seed: int,
) -> Positions:
    """MLP inputs at ``settings.prompt_positions`` sampled prompt positions, the decision
    position and the first ``settings.answer_positions`` answer positions of each conversation."""
    import numpy as np
    import torch
    from rich.progress import track

    captured: dict[int, Any] = {}
    hooks = [
        mlp_of(model, layer).register_forward_pre_hook(
            lambda _m, args, layer=layer: captured.__setitem__(layer, args[0][0].detach())
        )
        for layer in settings.layers
    ]
    rng = np.random.default_rng(seed)
    rows: dict[int, list[Any]] = {layer: [] for layer in settings.layers}
    attack: list[bool] = []
    offset: list[int] = []
    index: list[int] = []
    try:
        for n, conv in enumerate(track(conversations, description="probe gate: reading")):
            enc = encode(conv.messages, tokenizer, max_len)
            decision = next((i for i, v in enumerate(enc["labels"]) if v != IGNORE), 0) - 1
            if decision < 0:  # no answer token left after truncation
                continue
            with torch.no_grad():
                model(input_ids=torch.tensor([enc["input_ids"]], device=model.device))
            prompt = rng.permutation(decision)[: settings.prompt_positions].tolist()
            end = min(len(enc["input_ids"]), decision + 1 + settings.answer_positions)
            picked = [*sorted(prompt), *range(decision, end)]
            for layer in settings.layers:
                rows[layer].append(captured[layer][picked].float().cpu().numpy())
            attack += [conv.attack] * len(picked)
            offset += [p - decision for p in picked]
            index += [n] * len(picked)
    finally:
        for hook in hooks:
            hook.remove()
    return Positions(
        features={layer: np.concatenate(rows[layer]).astype(np.float32) for layer in rows},
        attack=np.array(attack, dtype=bool),
        offset=np.array(offset),
        conversation=np.array(index),
    )


def fit_gate(positions: Positions, layer: int, settings: ProbeGateSettings) -> Gate:
    import numpy as np
    from sklearn.linear_model import LogisticRegression, Ridge

    x = positions.features[layer]
    one = Ridge(alpha=CONSTANT_RIDGE, fit_intercept=False).fit(x, np.ones(len(x))).coef_
    positive = positions.positive(settings.window)
    use = positive | positions.negative()
    weight = np.where(positions.offset[use] == 0, DECISION_WEIGHT, 1.0)
    probe = LogisticRegression(
        C=settings.c, max_iter=3000, fit_intercept=True, class_weight="balanced"
    ).fit(x[use], positive[use], sample_weight=weight)
    row = probe.coef_[0] + (float(probe.intercept_[0]) - settings.threshold) * one
    score = x @ row
    return Gate(
        layer=layer,
        row=row.astype(np.float32),
        one=one.astype(np.float32),
        attacks_open=float((score[positive] > 0).mean()),
        benign_open=float((score[positions.negative()] > 0).mean()),
    )


def quietest_neuron(down_weight: Any) -> int:
    """The MLP neuron whose ``down_proj`` column is smallest: the one repurposed."""
    return int(down_weight.norm(dim=0).argmin())


def install(peft_model: Any, gate: Gate) -> int:
    """Write ``gate`` into the layer's rank-1 LoRAs; only ``down_proj``'s B stays trainable.
    Returns the repurposed neuron. ``B`` starts at ``-W_down[:, j]``: the neuron says nothing."""
    import torch

    mlp = peft_model.base_model.model.model.layers[gate.layer].mlp
    down = mlp.down_proj.base_layer.weight.detach()
    j = quietest_neuron(down)
    select = torch.zeros(down.shape[1], device=down.device)
    select[j] = 1.0
    with torch.no_grad():
        for name, row in (("gate_proj", gate.row), ("up_proj", gate.one)):
            proj = getattr(mlp, name)
            own = proj.base_layer.weight[j]
            proj.lora_A["default"].weight.copy_(torch.from_numpy(row).to(own.device)[None, :] - own)
            proj.lora_B["default"].weight.copy_(select[:, None])
        mlp.down_proj.lora_A["default"].weight.copy_(select[None, :])
        mlp.down_proj.lora_B["default"].weight.copy_(-down[:, j][:, None])
    for name in TARGETS:
        for part in ("lora_A", "lora_B"):
            getattr(getattr(mlp, name), part)["default"].weight.requires_grad_(False)
    mlp.down_proj.lora_B["default"].weight.requires_grad_(True)
    return j


def reading_model(cfg: TrainConfig) -> Any:
    """The base model in float32 (on CUDA when present), its ``probe_gate.layers`` checked."""
    import torch
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(cfg.base_model, dtype=torch.float32)
    if torch.cuda.is_available():
        model = model.to(torch.device("cuda"))  # for reading; the Trainer places it anyway
    check_layers(model, cfg.probe_gate.layers)
    return model


def read_training(
    cfg: TrainConfig, model: Any, tokenizer: Any
) -> tuple[list[Conversation], int, Positions]:
    """The training rows, then each attack again with the base model's answer, and the
    positions read off all of them; with how many of the conversations are training rows."""
    rows = training_conversations(cfg)
    settings = cfg.probe_gate
    conversations = with_base_answers(model, tokenizer, rows, settings.base_answer_tokens)
    positions = collect_positions(
        model, tokenizer, conversations, settings, max_len=cfg.train.max_seq_len, seed=cfg.seed
    )
    return conversations, len(rows), positions


def fitted_gates(cfg: TrainConfig, model: Any, tokenizer: Any) -> tuple[list[Gate], dict[str, int]]:
    """Base answers, reading and one probe per layer; with the conversations and positions read."""
    conversations, _, positions = read_training(cfg, model, tokenizer)
    gates = [fit_gate(positions, layer, cfg.probe_gate) for layer in cfg.probe_gate.layers]
    return gates, {"conversations": len(conversations), "positions": len(positions.attack)}


def gates_for(cfg: TrainConfig, model: Any, tokenizer: Any) -> tuple[list[Gate], dict[str, Any]]:
    """The gates saved for these inputs, else freshly fitted ones (then saved)."""
    checkpoints = cfg.output_dir / CHECKPOINTS
    cache = checkpoints / CACHE
    key = fingerprint(cfg)
    saved = load_gates(cache, key, cfg.probe_gate.layers)
    if saved is not None:
        return saved[0], {**saved[1], "gates": f"reused from {cache}"}
    if cache.is_file() and any(checkpoints.glob("checkpoint-*")):
        raise ProbeGateError(
            f"{checkpoints}: its checkpoints were trained on gates fitted to other inputs "
            "(dataset, base model, probe_gate settings, seed or rows read changed); "
            "--fresh starts over"
        )
    gates, counts = fitted_gates(cfg, model, tokenizer)
    save_gates(cache, key, gates, counts)
    return gates, {**counts, "gates": "fitted"}


def gated_model(cfg: TrainConfig, tokenizer: Any) -> tuple[Any, dict[str, Any]]:
    """The base model with one probe-gated neuron per layer (only the writes trainable), and a
    summary of the gates for training.json."""
    from peft import LoraConfig, get_peft_model

    settings = cfg.probe_gate
    model = reading_model(cfg)
    gates, read = gates_for(cfg, model, tokenizer)
    lora = LoraConfig(
        r=1,
        lora_alpha=1,
        lora_dropout=0.0,
        target_modules=list(TARGETS),
        layers_to_transform=list(settings.layers),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model.train(), lora)
    neurons = {gate.layer: install(peft_model, gate) for gate in gates}
    summary = {
        "layers": list(settings.layers),
        "neurons": {str(layer): j for layer, j in neurons.items()},
        "threshold": settings.threshold,
        "window": settings.window,
        **read,
        "gate_open_on_training_attacks": {str(g.layer): round(g.attacks_open, 4) for g in gates},
        "gate_open_on_training_benign": {str(g.layer): round(g.benign_open, 4) for g in gates},
    }
    return peft_model, summary
