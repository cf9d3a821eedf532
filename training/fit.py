"""Shared training steps for the built-in models: a seeded Adam loop, held-out accuracy,
saving weights as safetensors and writing the model card next to them.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from engine.agents.runtime import CARDS_DIR, WEIGHTS_DIR


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    augment: object = None,
) -> float:
    """Train with Adam + cross-entropy on (x, y), one torch thread (reproducible on any machine);
    returns the CPU time in seconds."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    start = time.process_time()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            xb = x[idx]
            if callable(augment):
                xb = augment(xb, epoch * 100_000 + i)
            opt.zero_grad()
            loss_fn(model(xb), y[idx]).backward()
            opt.step()
    model.eval()
    return time.process_time() - start


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def save_model(name: str, model: nn.Module) -> Path:
    """Weights as ``engine/agents/weights/<name>.safetensors`` (contiguous CPU tensors)."""
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    path = WEIGHTS_DIR / f"{name}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"model": name})
    return path


def write_card(name: str, text: str) -> Path:
    CARDS_DIR.mkdir(parents=True, exist_ok=True)
    path = CARDS_DIR / f"{name}.md"
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def table_matrix(table: dict, features: tuple[str, ...]) -> torch.Tensor:
    """The feature columns of a table payload as an N x F float tensor (in ``features`` order)."""
    return torch.tensor([table["columns"][f] for f in features], dtype=torch.float32).T


def auc(scores: torch.Tensor, truth: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties half."""
    pos, neg = scores[truth == 1], scores[truth == 0]
    greater = (pos.view(-1, 1) > neg.view(1, -1)).float().mean()
    ties = (pos.view(-1, 1) == neg.view(1, -1)).float().mean()
    return float(greater + 0.5 * ties)


def fit_mlp(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
            class_weight: torch.Tensor | None = None, seed: int = 0) -> float:
    """Set the model's standardisation buffers from ``x`` and train it (one torch thread);
    returns CPU seconds."""
    torch.set_num_threads(1)
    model.mean.copy_(x.mean(0))
    model.std.copy_(x.std(0).clamp_min(1e-6))
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(weight=class_weight)
    start = time.process_time()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            idx = order[i:i + 128]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    return time.process_time() - start
