"""The CNN's inference path (``SmallCnn.infer``), what the vision agents call: the same outputs
as ``forward``, whichever way it runs (oneDNN or dense), and never stale after a weight change."""

from __future__ import annotations

import copy

import pytest
import torch

from engine.agents.nets import CNN_CONFIGS, SmallCnn, cnn_for


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(CNN_CONFIGS))
@pytest.mark.parametrize("n", [1, 7, 32])
def test_infer_gives_forwards_outputs(name: str, n: int):
    model, config = cnn_for(name)
    x = _images(n, config.size, seed=n)
    with torch.no_grad():
        assert torch.allclose(model.infer(x), model(x), atol=1e-5)
        assert torch.allclose(model.infer_embedding(x), model.embedding(x), atol=1e-5)
        assert torch.equal(model.infer(x).argmax(1), model(x).argmax(1))


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")
def test_cpu_with_onednn_runs_the_onednn_path():
    model, _ = cnn_for("lesion_cnn")
    assert model._inference_how.startswith("oneDNN")
    assert model._packed is not None


def test_dense_path_when_onednn_is_missing(monkeypatch):
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    model = SmallCnn(1, 2).eval()
    assert model.prepare_inference().startswith("dense")
    x = _images(5, 40)
    with torch.no_grad():
        assert torch.allclose(model.infer(x), model(x), atol=1e-5)


def test_a_failing_onednn_path_falls_back_to_dense(monkeypatch):
    def broken(*args: object) -> None:
        raise RuntimeError("no oneDNN kernel for this CPU")

    monkeypatch.setattr(torch, "mkldnn_convolution", broken)
    model = SmallCnn(1, 2).eval()
    how = model.prepare_inference()
    assert how.startswith("dense") and "no oneDNN kernel" in how
    x = _images(3, 32)
    with torch.no_grad():
        assert torch.allclose(model.infer(x), model(x), atol=1e-5)


def test_new_weights_are_used_at_once():
    trained, _ = cnn_for("lesion_cnn")
    model = SmallCnn(1, 2).eval()
    x = _images(8, 64)
    with torch.no_grad():
        before = model.infer(x)  # prepares with the random initial weights
        model.load_state_dict(trained.state_dict())
        after = model.infer(x)
        assert torch.allclose(after, trained(x), atol=1e-5)
        assert not torch.allclose(before, after, atol=1e-3)
        model.features[0].weight.mul_(2)  # an in-place change counts too
        assert torch.allclose(model.infer(x), model(x), atol=1e-5)


def test_with_autograd_on_infer_is_forward():
    model, _ = cnn_for("lesion_cnn")
    x = _images(2, 64).requires_grad_()
    out = model.infer(x)
    assert out.requires_grad
    out[:, 1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_copies_leave_the_converted_weights_out_and_still_infer():
    model, config = cnn_for("digits_cnn")
    clone = copy.deepcopy(model)
    assert "_packed" not in clone.__dict__
    x = _images(4, config.size)
    with torch.no_grad():
        assert torch.allclose(clone.infer(x), model(x), atol=1e-5)


@pytest.mark.parametrize("size", [20, 36, 64])
def test_infer_at_sizes_whose_last_pool_does_or_does_not_divide(size: int):
    """After two 2x pools, 64 -> 16 (the last pool a plain 4x4 max-pool), 36 -> 9 and 20 -> 5
    (the adaptive pool on a dense tensor)."""
    model, _ = cnn_for("lesion_cnn")
    x = _images(6, size, seed=size)
    with torch.no_grad():
        assert torch.allclose(model.infer(x), model(x), atol=1e-5)


def test_standardise_is_torchs_mean_and_bessel_corrected_std():
    x = torch.rand(5, 3, 17, 23, generator=torch.Generator().manual_seed(3)) * 4 - 1
    expected = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / (x.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
    got = SmallCnn.standardise(x)
    assert got.shape == x.shape
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(got.flatten(1).mean(1), torch.zeros(5), atol=1e-5)
