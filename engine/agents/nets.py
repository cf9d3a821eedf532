"""The small torch networks behind the vision and tabular agents, their fixed configurations,
and a process-wide cache so that classify, explain and embed share one loaded copy per device.
Training scripts (``training/*``) build the same networks and save their weights.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import nn

from engine.agents.runtime import load_weights


@dataclass(frozen=True)
class CnnConfig:
    """What a trained CNN expects: channels, input size, class names, and what it was trained on."""

    in_channels: int
    size: int
    classes: tuple[str, ...]
    data: str


@dataclass(frozen=True)
class MlpConfig:
    """What a trained MLP expects: feature columns (in order), class names, hidden width."""

    features: tuple[str, ...]
    classes: tuple[str, ...]
    hidden: int
    data: str


CNN_CONFIGS: dict[str, CnnConfig] = {
    "lesion_cnn": CnnConfig(1, 64, ("no_lesion", "lesion"), "SYNTHETIC lesion scans"),
    "digits_cnn": CnnConfig(1, 32, tuple(str(d) for d in range(10)), "scikit-learn digits"),
}


class SmallCnn(nn.Module):
    """Two conv layers, a 32-wide embedding layer, a linear head. Works at any input size.

    Each image is standardised inside ``forward`` (zero mean, unit std), so an upstream 0..1
    scaling or mean/std normalisation does not change its predictions.
    """

    def __init__(self, in_channels: int, n_classes: int, embed_dim: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveMaxPool2d(4), nn.Flatten(),
        )
        self.embed = nn.Sequential(nn.Linear(16 * 16, embed_dim), nn.ReLU())
        self.head = nn.Linear(embed_dim, n_classes)

    @staticmethod
    def standardise(x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / (std + 1e-5)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.features(self.standardise(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(x))


class Mlp(nn.Module):
    """Standardise features with stored statistics, then two hidden layers and a linear head."""

    def __init__(self, n_features: int, n_classes: int, hidden: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.body = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std)


_cache: dict[tuple[str, str], nn.Module] = {}
_cache_lock = threading.Lock()


def cnn_for(name: str, device: str = "cpu") -> tuple[SmallCnn, CnnConfig]:
    """The trained CNN ``name`` on ``device`` in eval mode (loaded once, then shared)."""
    config = CNN_CONFIGS[name]
    with _cache_lock:
        model = _cache.get((name, device))
        if model is None:
            model = SmallCnn(config.in_channels, len(config.classes))
            model.load_state_dict(load_weights(name, device))
            # channels-last weights let oneDNN run the convolutions directly (2.2x faster on a
            # CPU for this net, same outputs; bench/stage_split_bench.py); inputs stay NCHW
            model = _cache[(name, device)] = model.to(device, memory_format=torch.channels_last).eval()
    assert isinstance(model, SmallCnn)
    return model, config


def mlp_for(name: str, config: MlpConfig, device: str = "cpu") -> Mlp:
    """The trained MLP ``name`` on ``device`` in eval mode (loaded once, then shared)."""
    with _cache_lock:
        model = _cache.get((name, device))
        if model is None:
            model = Mlp(len(config.features), len(config.classes), config.hidden)
            model.load_state_dict(load_weights(name, device))
            model = _cache[(name, device)] = model.to(device).eval()
    assert isinstance(model, Mlp)
    return model
