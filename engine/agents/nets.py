"""The small torch networks behind the vision and tabular agents, their fixed configurations,
and a process-wide cache so that classify, explain and embed share one loaded copy per device.
Training scripts (``training/*``) build the same networks and save their weights.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.agents.runtime import load_weights, torch_threads
from engine.agents.table_columns import CNN_CLASSES, EMBEDDING_WIDTH


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
    "lesion_cnn": CnnConfig(1, 64, CNN_CLASSES["lesion_cnn"], "SYNTHETIC lesion scans"),
    "digits_cnn": CnnConfig(1, 32, CNN_CLASSES["digits_cnn"], "scikit-learn digits"),
}


class SmallCnn(nn.Module):
    """Two conv layers, a 32-wide embedding layer, a linear head. Works at any input size.

    Each image is standardised inside ``forward`` (zero mean, unit std), so an upstream 0..1
    scaling or mean/std normalisation does not change its predictions.
    """

    def __init__(self, in_channels: int, n_classes: int, embed_dim: int = EMBEDDING_WIDTH) -> None:
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
        """Each image to zero mean and unit std over C, H, W (the std Bessel-corrected, as
        ``torch.std``). Written out in two passes: ``x.std(dim=(1, 2, 3))`` took 0.72 ms per
        32 x 1 x 64 x 64 batch on one CPU thread, 14x this, and was 16 % of the whole
        preprocess -> classify pipeline's time (torch's multi-dimension std reduction)."""
        flat = x.flatten(1)
        centred = flat - flat.mean(1, keepdim=True)
        var = centred.square().sum(1, keepdim=True) / max(1, flat.shape[1] - 1)
        return (centred / (var.sqrt() + 1e-5)).view(x.shape)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.features(self.standardise(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(x))

    # -- the inference path: what the agents call ------------------------------------------
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` for inference: the same logits (to float rounding, ~1e-7), 13-15 % faster
        on a CPU. Each max-pool runs before its ReLU (they commute: ReLU is monotonic, so the
        result is exact and ReLU touches a quarter of the values, in place), and on a CPU with
        oneDNN the convolutions and pools run on oneDNN tensors with weights converted once
        (``prepare_inference``), not converted on every call; the last, adaptive pool is a
        plain max-pool when the size divides (the same bins). With autograd on (``explain``'s
        gradients), ``forward`` itself."""
        return self.head(self.infer_embedding(x))

    def infer_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """``embedding`` for inference (see ``infer``)."""
        if torch.is_grad_enabled():
            return self.embedding(x)
        conv1, conv2 = self.features[0], self.features[3]
        packed = self._packed_for(x)
        x = self.standardise(x)
        if packed is not None:
            x = x.to_mkldnn()
            x = F.max_pool2d(torch.mkldnn_convolution(x, *packed[0]), 2).relu_()
            x = F.max_pool2d(torch.mkldnn_convolution(x, *packed[1]), 2).relu_()
            h, w = x.shape[-2:]
            if h % 4 == 0 and w % 4 == 0:  # the adaptive pool's bins are then exactly these
                return self.embed(F.max_pool2d(x, (h // 4, w // 4)).to_dense().flatten(1))
            x = x.to_dense()  # NCHW: its adaptive pool is 7x slower than channels-last's
            x = x.contiguous(memory_format=torch.channels_last)
        else:
            x = F.max_pool2d(conv1(x), 2).relu_()
            x = F.max_pool2d(conv2(x), 2).relu_()
        return self.embed(F.adaptive_max_pool2d(x, 4).flatten(1))

    def prepare_inference(self) -> str:
        """Convert the convolution weights for ``infer`` (on a CPU with oneDNN) and check the
        path against ``forward`` on a probe batch; on any failure ``infer`` runs the dense path.
        Returns how ``infer`` runs, for logs. Called by ``cnn_for``; ``infer`` redoes it by
        itself when the weights changed since (``load_state_dict``, training)."""
        self._packed = None
        self._packed_versions = self._weight_versions()
        if self.features[0].weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
            self._inference_how = "dense convolutions (max-pool before ReLU)"
            return self._inference_how
        try:
            # one thread: a probe at the caller's default count would leave an OpenMP team
            # behind in its thread (runtime.release_openmp_team)
            with torch.no_grad(), torch_threads(1):
                self._packed = tuple(_mkldnn_conv(self.features[i]) for i in (0, 3))
                probe = torch.rand(2, self.features[0].in_channels, 16, 16, generator=torch.Generator().manual_seed(0))
                if not torch.allclose(self.infer(probe), self.forward(probe), atol=1e-4, rtol=1e-4):
                    raise RuntimeError("oneDNN path disagrees with forward on the probe batch")
            self._inference_how = "oneDNN convolutions, weights converted once"
        except (RuntimeError, AttributeError, TypeError) as exc:  # an unusual torch build
            self._packed = None
            self._inference_how = f"dense convolutions (oneDNN path unavailable: {exc})"
        return self._inference_how

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the oneDNN weights out (converted again on first ``infer``)."""
        state = dict(self.__dict__)
        state.pop("_packed", None)
        state.pop("_packed_versions", None)
        return state

    def _weight_versions(self) -> tuple[int, ...]:
        return tuple(p._version for i in (0, 3) for p in (self.features[i].weight, self.features[i].bias))

    def _packed_for(self, x: torch.Tensor) -> tuple[tuple[Any, ...], ...] | None:
        """The converted conv weights when ``x`` can use them, else None (dense path)."""
        if x.device.type != "cpu" or x.dtype != torch.float32:
            return None
        if getattr(self, "_packed_versions", None) != self._weight_versions():
            with _pack_lock:  # weights changed (or never prepared): convert them again
                if getattr(self, "_packed_versions", None) != self._weight_versions():
                    self.prepare_inference()
        return self._packed


def _mkldnn_conv(conv: nn.Conv2d) -> tuple[Any, ...]:
    """The arguments after the input of ``torch.mkldnn_convolution`` for ``conv``: its weight
    and bias as oneDNN tensors, padding, stride, dilation, groups."""
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    return (conv.weight.detach().contiguous().to_mkldnn(), bias.detach().to_mkldnn(),
            conv.padding, conv.stride, conv.dilation, conv.groups)


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
_pack_lock = threading.Lock()


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
            model = model.to(device, memory_format=torch.channels_last).eval()
            model.prepare_inference()
            _cache[(name, device)] = model
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
