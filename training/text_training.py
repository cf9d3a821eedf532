"""Shared training loop and evaluation for the hashed-feature text classifiers (sentiment, intent)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from safetensors.torch import save_file

from engine.agents.runtime import CARDS_DIR, WEIGHTS_DIR
from engine.agents.text_models import TextClassifier, bag_batch, text_features


def fit_classifier(texts: Sequence[str], labels: Sequence[int], n_classes: int, *, seed: int,
                   epochs: int = 12, batch: int = 64, lr: float = 0.02) -> TextClassifier:
    """Train a TextClassifier with Adam on hashed features; deterministic for a seed."""
    torch.manual_seed(seed)
    model = TextClassifier(n_classes)
    feats = [text_features(t) for t in texts]
    y = torch.tensor(list(labels))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(feats), generator=gen).tolist()
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            ids, offsets = bag_batch([feats[i] for i in idx])
            loss = torch.nn.functional.cross_entropy(model(ids, offsets), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: TextClassifier, texts: Sequence[str], labels: Sequence[int]) -> float:
    """Fraction of ``texts`` whose predicted class equals the label."""
    ids, offsets = bag_batch([text_features(t) for t in texts])
    pred = model(ids, offsets).argmax(1)
    return float((pred == torch.tensor(list(labels))).float().mean())


def save_model(name: str, model: torch.nn.Module, card: str) -> None:
    """Write weights/<name>.safetensors and cards/<name>.md."""
    WEIGHTS_DIR.mkdir(exist_ok=True)
    CARDS_DIR.mkdir(exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(WEIGHTS_DIR / f"{name}.safetensors"))
    (CARDS_DIR / f"{name}.md").write_text(card, encoding="utf-8")


class Stopwatch:
    """Seconds since creation, for the card's training-time line."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start
