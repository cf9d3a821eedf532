"""Matrix factorisation for implicit feedback (BPR loss), its training loop, and the held-out
metrics (leave-last-out hit-rate@k and AUC) used by training/mf.py and the tests.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class MatrixFactorization(nn.Module):
    """score(u, i) = <user_u, item_i> + bias_i."""

    def __init__(self, n_users: int, n_items: int, dim: int = 16) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user(users) * self.item(items)).sum(-1) + self.item_bias(items).squeeze(-1)

    def all_scores(self) -> torch.Tensor:
        """Scores of every (user, item), shape (n_users, n_items)."""
        return self.user.weight @ self.item.weight.T + self.item_bias.weight.T


def fit_mf(pairs: list[tuple[int, int]], n_users: int, n_items: int, *, dim: int = 16,
           epochs: int = 60, lr: float = 0.05, weight_decay: float = 1e-4, seed: int = 0,
           on_epoch: Callable[[int], None] | None = None) -> MatrixFactorization:
    """Train with BPR: each observed pair against one random unobserved item per epoch."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MatrixFactorization(n_users, n_items, dim)
    if not pairs:
        return model.eval()
    data = torch.tensor(pairs)
    seen = torch.zeros(n_users, n_items, dtype=torch.bool)
    seen[data[:, 0], data[:, 1]] = True
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    for epoch in range(epochs):
        neg = torch.randint(0, n_items, (len(data),), generator=gen)
        keep = ~seen[data[:, 0], neg]
        users, pos, neg = data[keep, 0], data[keep, 1], neg[keep]
        loss = -nn.functional.logsigmoid(model(users, pos) - model(users, neg)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if on_epoch is not None:
            on_epoch(epoch)
    return model.eval()


def popularity_scores(pairs: list[tuple[int, int]], n_users: int, n_items: int) -> torch.Tensor:
    """The baseline: every user gets each item's count of distinct users."""
    counts = torch.zeros(n_items)
    for _, i in pairs:
        counts[i] += 1
    return counts.expand(n_users, n_items).clone()


def hit_rate_and_auc(scores: torch.Tensor, train: list[tuple[int, int]],
                     test: list[tuple[int, int]], k: int = 10) -> tuple[float, float]:
    """Leave-last-out hit-rate@k and AUC; a user's training items are excluded from ranking.

    Ties count half (AUC) and against the held-out item (hit-rate), so a constant scorer gets
    AUC 0.5, not a lucky score.
    """
    scores = scores.clone().float()
    if train:
        t = torch.tensor(train)
        scores[t[:, 0], t[:, 1]] = float("-inf")
    hits, aucs = 0, []
    for u, i in test:
        row, target = scores[u], scores[u, i]
        candidates = row[torch.isfinite(row)]
        above = int((candidates > target).sum())
        ties = int((candidates == target).sum()) - 1
        hits += above + ties < k
        others = len(candidates) - 1
        aucs.append((others - above - 0.5 * ties) / max(1, others))
    return hits / max(1, len(test)), sum(aucs) / max(1, len(aucs))
