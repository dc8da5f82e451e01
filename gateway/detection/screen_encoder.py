"""MiniLM tuned for the screen: LoRA on the encoder, trained with the screen's head end to end.

The screen's head (:mod:`.screen`) reads a screened text's lexical logit and two poolings of its
MiniLM piece embeddings (:meth:`~.semantic.TextEmbedding.pooled`). With MiniLM frozen only the
linear head learns; here the encoder learns too: low-rank adapters (LoRA, through PEFT) on every
linear layer of MiniLM's six blocks, trained with the head on the same texts, the same pieces
and the same pooling, so the tuned encoder is a drop-in :class:`~.semantic.Embedder`.

What is kept is small: each adapted weight's two low-rank factors (:class:`EncoderDelta`,
``gateway/detection/data/screen_encoder.npz``), merged into a plain MiniLM at load, so serving
needs neither PEFT nor a second copy of the model's files. Training needs the ``finetune``
extra (PEFT); it is seeded, on CPU.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.detection.screen import FEATURES, features, lexical_logit
from gateway.detection.semantic import Embedder, FloatArray, embed_texts, pieces

TARGETS = ("query", "key", "value", "dense")
"""MiniLM's linear layers (``dense``: the attention output and both feed-forward layers)."""
TARGET_PATTERN = rf".*encoder\.layer\.\d+\..*\.({'|'.join(TARGETS)})"
"""Those of the six blocks only (PEFT matches the whole module name): not the pooler, which
mean pooling never reads."""
MAX_TOKENS = 256
"""sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2: pieces are cut there."""


@dataclass(frozen=True, slots=True)
class TuneSettings:
    rank: int = 16
    alpha: int = 32
    epochs: int = 2
    batch: int = 16
    lr: float = 5e-4
    head_lr: float = 1e-3
    seed: int = 0


@dataclass(frozen=True, slots=True)
class EncoderDelta:
    """Low-rank updates of MiniLM's weights: ``weight += scale * b @ a`` for each named one."""

    factors: dict[str, tuple[FloatArray, FloatArray]]
    """Weight name (as in the plain model's ``state_dict``) -> (a, b)."""
    scale: float

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {"scale": np.array([self.scale])}
        for name, (a, b) in self.factors.items():
            arrays[f"a:{name}"] = a.astype(np.float16)
            arrays[f"b:{name}"] = b.astype(np.float16)
        np.savez_compressed(path, **arrays)

    def merge_into(self, model: Any) -> None:
        """Add the updates to ``model``'s weights in place (a plain transformers BertModel)."""
        import torch

        params = dict(model.named_parameters())
        missing = sorted(set(self.factors) - set(params))
        if missing:
            raise ValueError(f"the encoder has no weights named {', '.join(missing[:3])}")
        with torch.no_grad():
            for name, (a, b) in self.factors.items():
                update = torch.from_numpy(b.astype(np.float32) @ a.astype(np.float32))
                if update.shape != params[name].shape:
                    raise ValueError(f"{name}: update {tuple(update.shape)} does not fit")
                params[name].add_(update * self.scale)


def load_delta(path: Path) -> EncoderDelta:
    with np.load(path) as data:
        names = sorted(k[2:] for k in data.files if k.startswith("a:"))
        factors = {
            n: (data[f"a:{n}"].astype(np.float32), data[f"b:{n}"].astype(np.float32)) for n in names
        }
        return EncoderDelta(factors, float(data["scale"][0]))


@dataclass(frozen=True, slots=True)
class Tuned:
    delta: EncoderDelta
    coef: list[float]
    intercept: float


def fit(
    texts: Sequence[str],
    lexical: Sequence[float],
    labels: Sequence[int],
    model_dir: Path,
    settings: TuneSettings = TuneSettings(),
    progress: Callable[[str], None] | None = None,
) -> Tuned:
    """Tune LoRA on MiniLM (``model_dir``: the sentence-transformers folder) and the screen's
    linear head together on ``texts`` (their lexical scores and labels given); attacks weighted
    so both classes count alike, as the frozen head's ``class_weight="balanced"``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    random.seed(settings.seed)
    np.random.seed(settings.seed)
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    base = AutoModel.from_pretrained(str(model_dir), local_files_only=True)
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        target_modules=TARGET_PATTERN,
        lora_dropout=0.0,
        bias="none",
    )
    model = get_peft_model(base, config)
    head = torch.nn.Linear(FEATURES, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    lora = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": lora, "lr": settings.lr},
            {"params": head.parameters(), "lr": settings.head_lr},
        ],
        weight_decay=0.01,
    )
    y = np.asarray(labels, dtype=np.float32)
    positives = max(float(y.sum()), 1.0)
    pos_weight = torch.tensor([(len(y) - positives) / positives])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    split = [pieces(t) for t in texts]
    logits = torch.tensor([lexical_logit(s) for s in lexical], dtype=torch.float32)
    steps = settings.epochs * math.ceil(len(texts) / settings.batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / max(steps, 1))
    )
    order = list(range(len(texts)))
    rng = random.Random(settings.seed)
    model.train()
    step = 0
    for epoch in range(settings.epochs):
        rng.shuffle(order)
        total = 0.0
        for start in range(0, len(order), settings.batch):
            batch = order[start : start + settings.batch]
            x = _features(model, tokenizer, [split[i] for i in batch], logits[batch])
            loss = loss_fn(head(x).squeeze(1), torch.from_numpy(y[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            total += float(loss.detach()) * len(batch)
            if progress and step % 50 == 0:
                progress(f"epoch {epoch + 1}, step {step}/{steps}, loss {float(loss.detach()):.4f}")
        if progress:
            progress(f"epoch {epoch + 1}: mean loss {total / len(order):.4f}")
    return Tuned(
        _delta(model, settings),
        [float(c) for c in head.weight.detach().numpy()[0]],
        float(head.bias.detach().numpy()[0]),
    )


def _features(
    model: Any, tokenizer: Any, split: list[tuple[list[str], list[str]]], logits: Any
) -> Any:
    """The screen head's features of a batch of texts (their pieces), differentiably: each
    piece mean-pooled and normalised as sentence-transformers does, then
    :meth:`~.semantic.TextEmbedding.pooled` and the lexical logit in front."""
    import torch

    flat = [p for w, d in split for p in (*w, *d)]
    enc = tokenizer(flat, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(emb, dim=1)
    rows = []
    at = 0
    for w, d in split:
        piece = emb[at : at + len(w) + len(d)]
        at += len(w) + len(d)
        whole = torch.nn.functional.normalize(piece[: len(w)].mean(0), dim=0)
        rows.append(torch.cat([whole, piece.max(0).values]))
    return torch.cat([logits.unsqueeze(1), torch.stack(rows)], dim=1)


def _delta(model: Any, settings: TuneSettings) -> EncoderDelta:
    """The trained LoRA factors, named as the plain model's weights."""
    factors: dict[str, tuple[FloatArray, FloatArray]] = {}
    for name, module in model.named_modules():
        if not hasattr(module, "lora_A") or "default" not in module.lora_A:
            continue
        plain = name.removeprefix("base_model.model.") + ".weight"
        a = module.lora_A["default"].weight.detach().numpy().astype(np.float32)
        b = module.lora_B["default"].weight.detach().numpy().astype(np.float32)
        factors[plain] = (a, b)
    if not factors:
        raise RuntimeError("no LoRA layers found in the tuned model")
    return EncoderDelta(factors, settings.alpha / settings.rank)


def probabilities(
    tuned: Tuned, texts: Sequence[str], lexical: Sequence[float], model_dir: Path
) -> FloatArray:
    """The tuned head's probabilities of ``texts`` through the serving path: the updates saved,
    merged into a freshly loaded MiniLM (:class:`~.semantic.Embedder`), the pieces embedded."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "delta.npz"
        tuned.delta.save(path)
        embedded = embed_texts(list(texts), Embedder(model_dir, delta=path).encode)
    x = np.stack([features(s, e) for s, e in zip(lexical, embedded, strict=True)])
    logit = x.astype(np.float64) @ np.asarray(tuned.coef) + tuned.intercept
    out: FloatArray = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return out


def out_of_fold(
    texts: Sequence[str],
    lexical: Sequence[float],
    labels: Sequence[int],
    folds: Sequence[tuple[Sequence[int], Sequence[int]]],
    model_dir: Path,
    settings: TuneSettings = TuneSettings(),
    progress: Callable[[str], None] | None = None,
) -> FloatArray:
    """Each text's probability from the encoder and head tuned on the other folds
    (``folds``: (train, held) indices)."""
    out = np.zeros(len(texts), dtype=np.float32)
    for k, (train_idx, held_idx) in enumerate(folds):
        say = (lambda m, k=k: progress(f"fold {k + 1}/{len(folds)}: {m}")) if progress else None
        tuned = fit(
            [texts[i] for i in train_idx],
            [lexical[i] for i in train_idx],
            [labels[i] for i in train_idx],
            model_dir,
            settings,
            say,
        )
        held = list(held_idx)
        out[held] = probabilities(
            tuned, [texts[i] for i in held], [lexical[i] for i in held], model_dir
        )
    return out
