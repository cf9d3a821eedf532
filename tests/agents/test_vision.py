"""Vision agents: the committed CNN weights reproduce their cards, the classifier and explainer
mean something on SYNTHETIC lesions with known ground truth, uploads are checked, batches and
CPU fallback behave."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.agents import runtime, vision_data
from engine.agents.nets import CNN_CONFIGS, cnn_for
from engine.errors import ModelFileError, RunCancelledError
from engine.registry import Registry
from engine.spec import Lifecycle, RunContext


def card_percent(name: str, label: str) -> float:
    card = runtime.read_card(name)
    assert card is not None, f"card {name}.md is missing"
    match = re.search(rf"\*\*{label}: ([0-9.]+) %\*\*", card)
    assert match, f"card {name}.md has no '{label}' figure"
    return float(match.group(1))


REGISTRY = Registry()
REGISTRY.register_module("engine.agents.vision")


def make(name: str, **params: Any) -> Any:
    spec = REGISTRY.get(name)
    agent = spec.build(spec.parse_params(params))
    agent.load("cpu")
    return agent


def ctx_for(batch_size: int | None = None, threads: int = 1, **kw: Any) -> RunContext:
    lifecycle = Lifecycle().merged({"execution": {"batch_size": batch_size}}) if batch_size else None
    return RunContext(lifecycle=lifecycle, threads=threads, **kw)


@pytest.fixture(scope="module")
def scans() -> dict[str, Any]:
    return make("vision.source", n_items=96, seed=11).run({}, ctx_for())["images"]


def test_lesion_cnn_held_out_accuracy_matches_card_and_beats_chance():
    model, config = cnn_for("lesion_cnn")
    test = vision_data.synthetic_lesions(1000, 1, config.size)
    with torch.no_grad():
        acc = float((model(test["images"]).argmax(1) == test["labels"]).float().mean())
    assert acc >= 0.8  # chance is 0.5
    assert abs(acc * 100 - card_percent("lesion_cnn", "Held-out accuracy")) <= 1.5
    assert "SYNTHETIC" in (runtime.read_card("lesion_cnn") or "")


def test_digits_cnn_held_out_accuracy_matches_card_and_beats_chance():
    model, config = cnn_for("digits_cnn")
    _, held_out = vision_data.digits_split()
    images, labels = vision_data.digits_images(held_out, config.size)
    with torch.no_grad():
        acc = float((model(images).argmax(1) == labels).float().mean())
    assert acc >= 0.9  # chance is 0.1
    assert abs(acc * 100 - card_percent("digits_cnn", "Held-out accuracy")) <= 1.5


def test_digits_source_serves_only_held_out_digits():
    train, held_out = vision_data.digits_split()
    assert not set(train) & set(held_out)
    batch = make("vision.source", dataset="digits", n_items=20).run({}, ctx_for())["images"]
    served = {int(i.split("-")[1]) for i in batch["ids"]}
    assert served <= set(held_out.tolist()) and len(served) == 20


def test_synthetic_lesions_are_seeded_and_visible(scans: dict[str, Any]):
    again = make("vision.source", n_items=96, seed=11).run({}, ctx_for())["images"]
    other = make("vision.source", n_items=96, seed=12).run({}, ctx_for())["images"]
    assert torch.equal(scans["images"], again["images"])
    assert not torch.equal(scans["images"], other["images"])
    labels = scans["labels"]
    assert 0.25 < labels.float().mean() < 0.75
    # the pixel at a lesion's centre is brighter than the same pixel in scans without one
    centre_values = [float(scans["images"][i, 0, c[0], c[1]])
                     for i, c in enumerate(scans["lesion_centers"]) if c is not None]
    assert sum(centre_values) / len(centre_values) > float(scans["images"][labels == 0].mean()) + 0.1


def test_source_emits_rgb_at_the_requested_size():
    batch = make("vision.source", n_items=4, size=32, channels=3).run({}, ctx_for())["images"]
    assert batch["images"].shape == (4, 3, 32, 32)
    assert batch["images"].min() >= 0 and batch["images"].max() <= 1


def test_classifier_beats_chance_on_fresh_scans_and_labels_agree(scans: dict[str, Any]):
    pre = make("vision.preprocess").run({"images": scans}, ctx_for())["images"]
    out = make("vision.classify").run({"images": pre}, ctx_for(batch_size=32))
    probs = out["scores"]["scores"]
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)), atol=1e-5)
    acc = float((probs.argmax(1) == scans["labels"]).float().mean())
    assert acc >= 0.8
    predicted = [out["scores"]["classes"][i] for i in probs.argmax(1).tolist()]
    assert out["labels"]["labels"] == predicted and out["labels"]["ids"] == scans["ids"]


def test_batches_and_concurrency_do_not_change_results(scans: dict[str, Any]):
    seen: list[int] = []
    one = make("vision.classify").run(
        {"images": scans}, ctx_for(batch_size=40, on_progress=lambda d, t: seen.append(d)))
    two = make("vision.classify").run({"images": scans}, ctx_for(batch_size=16, threads=2))
    assert seen == [40, 80, 96]
    assert torch.allclose(one["scores"]["scores"], two["scores"]["scores"], atol=1e-5)


def test_max_items_limits_the_batch(scans: dict[str, Any]):
    ctx = RunContext(lifecycle=Lifecycle().merged({"exit": {"max_items": 10}}))
    out = make("vision.classify").run({"images": scans}, ctx)
    assert len(out["labels"]["labels"]) == 10


def test_explainer_points_at_the_lesion(scans: dict[str, Any]):
    out = make("vision.explain").run({"images": scans}, ctx_for(batch_size=32))
    heat = out["heatmaps"]
    assert heat["images"].shape == (96, 3, 64, 64) and heat["maps"].shape == (96, 1, 64, 64)
    assert float(heat["maps"].min()) >= 0 and float(heat["maps"].max()) <= 1
    regions = out["regions"]["columns"]
    hits = [math.dist(c, (r, col)) <= 10
            for c, r, col, p in zip(scans["lesion_centers"], regions["center_row"],
                                    regions["center_col"], regions["predicted"], strict=True)
            if c is not None and p == "lesion"]
    assert len(hits) >= 20 and sum(hits) / len(hits) >= 0.75


def test_occlusion_explainer_also_finds_lesions(scans: dict[str, Any]):
    some = {**scans, "images": scans["images"][:16], "ids": scans["ids"][:16]}
    out = make("vision.explain", method="occlusion", patch=12, overlay=False).run(
        {"images": some}, ctx_for())
    cols = out["regions"]["columns"]
    hits = [math.dist(c, (r, col)) <= 12
            for c, r, col, p in zip(scans["lesion_centers"][:16], cols["center_row"],
                                    cols["center_col"], cols["predicted"], strict=True)
            if c is not None and p == "lesion"]
    assert hits and sum(hits) / len(hits) >= 0.6


def test_embeddings_separate_the_classes(scans: dict[str, Any]):
    train = make("vision.source", n_items=200, seed=21).run({}, ctx_for())["images"]
    embed = make("vision.embed")
    vectors = embed.run({"images": train}, ctx_for())["embedding"]["vectors"]
    assert vectors.shape == (200, 32)
    centroids = torch.stack([vectors[train["labels"] == k].mean(0) for k in (0, 1)])
    test = embed.run({"images": scans}, ctx_for())["embedding"]["vectors"]
    nearest = torch.cdist(test, centroids).argmin(1)
    assert float((nearest == scans["labels"]).float().mean()) >= 0.75


def test_preprocess_resizes_normalises_and_denoises(scans: dict[str, Any]):
    out = make("vision.preprocess", size=32, denoise="gaussian", strength=1.5,
               normalise="unit").run({"images": scans}, ctx_for(batch_size=50))["images"]
    x = out["images"]
    assert x.shape == (96, 1, 32, 32)
    assert torch.allclose(x.amin(dim=(1, 2, 3)), torch.zeros(96), atol=1e-6)
    assert torch.allclose(x.amax(dim=(1, 2, 3)), torch.ones(96), atol=1e-6)
    assert out["lesion_centers"][0] is None or max(out["lesion_centers"][0]) < 32
    # a gaussian blur removes pixel-to-pixel noise
    raw = make("vision.preprocess", denoise="none", normalise="none").run(
        {"images": scans}, ctx_for())["images"]["images"]
    smooth = make("vision.preprocess", denoise="gaussian", normalise="none").run(
        {"images": scans}, ctx_for())["images"]["images"]
    assert smooth.diff(dim=-1).abs().mean() < 0.5 * raw.diff(dim=-1).abs().mean()


def test_median_filter_removes_salt_noise():
    x = torch.full((1, 1, 16, 16), 0.5)
    x[0, 0, 5, 7] = 1.0
    out = make("vision.preprocess", size=None, denoise="median", strength=1,
               normalise="none").run({"images": {"images": x, "ids": ["a"]}}, ctx_for())
    assert torch.allclose(out["images"]["images"], torch.full((1, 1, 16, 16), 0.5))


def test_augment_flips_are_seeded_and_real():
    x = torch.rand(8, 1, 16, 16)
    batch = {"images": x, "ids": [str(i) for i in range(8)]}
    agent = make("vision.preprocess", size=None, denoise="none", normalise="none", flip=True, seed=3)
    a = agent.run({"images": batch}, ctx_for())["images"]["images"]
    b = agent.run({"images": batch}, ctx_for())["images"]["images"]
    assert torch.equal(a, b)
    flipped = [torch.equal(a[i], x[i].flip(-1)) for i in range(8)]
    kept = [torch.equal(a[i], x[i]) for i in range(8)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True)) and any(flipped)


def _png(size: tuple[int, int] = (20, 10)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (255, 0, 0)).save(buf, format="PNG")
    return buf.getvalue()


def test_uploads_decode_png_files(tmp_path: Path):
    path = tmp_path / "red.png"
    path.write_bytes(_png())
    batch = make("vision.source", dataset="uploads", paths=[str(path)], size=16,
                 channels=3).run({}, ctx_for())["images"]
    assert batch["images"].shape == (1, 3, 16, 16) and batch["ids"] == ["red.png"]
    assert float(batch["images"][0, 0].mean()) > 0.99 and float(batch["images"][0, 1].mean()) < 0.01


def _encoded(img: Any, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_uploads_read_16_bit_grey_scans_by_their_depth():
    """A 16-bit grey PNG (what scanners and medical imaging write): a left-to-right ramp reads as
    that ramp in 0..1, not clipped to white by an 8-bit conversion."""
    from PIL import Image

    ramp = np.tile(np.linspace(0, 65535, 64), (64, 1)).astype(np.uint16)
    data = _encoded(Image.fromarray(ramp), "PNG")
    for channels in (1, 3):
        image = vision_data.decode_image(data, "scan.png", 16, channels)
        assert image.shape == (channels, 16, 16)
        row = image[0, 8]
        assert float(row[0]) < 0.05 and float(row[-1]) > 0.95
        assert float(image.mean()) == pytest.approx(0.5, abs=0.02)
        assert bool((row[1:] >= row[:-1]).all())


def test_uploads_follow_exif_orientation_and_show_transparency_as_white():
    from PIL import Image

    # stored 20 wide x 10 high, left half black; orientation 6 = shown turned 90 degrees clockwise,
    # so a viewer shows it 10 wide x 20 high with the black half on top
    stored = Image.new("L", (20, 10), 255)
    stored.paste(0, (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    shown = vision_data.decode_image(_encoded(stored, "JPEG", exif=exif, quality=95), "phone.jpg", 20, 1)[0]
    assert float(shown[:8].mean()) < 0.1 and float(shown[12:].mean()) > 0.9
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    clear.paste((0, 0, 255, 255), (0, 0, 4, 8))
    pixels = vision_data.decode_image(_encoded(clear, "PNG"), "icon.png", 8, 3)
    assert pixels[:, :, :3].mean(dim=(1, 2)).tolist() == pytest.approx([0.0, 0.0, 1.0], abs=0.05)
    assert pixels[:, :, 5:].mean(dim=(1, 2)).tolist() == pytest.approx([1.0, 1.0, 1.0], abs=0.05)


def test_uploads_refuse_bad_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"hello, not an image")
    with pytest.raises(ModelFileError, match="not a PNG or JPEG"):
        make("vision.source", dataset="uploads", paths=[str(fake)]).run({}, ctx_for())
    with pytest.raises(ModelFileError, match="does not exist"):
        make("vision.source", dataset="uploads", paths=[str(tmp_path / "nope.png")]).run({}, ctx_for())
    with pytest.raises(ModelFileError, match="needs at least one image path"):
        make("vision.source", dataset="uploads").run({}, ctx_for())
    broken = tmp_path / "broken.png"
    broken.write_bytes(_png()[:30])
    with pytest.raises(ModelFileError, match="could not be decoded"):
        make("vision.source", dataset="uploads", paths=[str(broken)]).run({}, ctx_for())
    monkeypatch.setattr(vision_data, "MAX_UPLOAD_PIXELS", 100)
    with pytest.raises(ModelFileError, match="megapixels"):
        vision_data.decode_image(_png(), "big.png", 16, 1)
    monkeypatch.setattr(vision_data, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(ModelFileError, match="limit is"):
        vision_data.decode_image(_png(), "big.png", 16, 1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CUDA-absent fallback")
def test_cuda_request_falls_back_to_cpu_and_says_so(scans: dict[str, Any]):
    ctx = ctx_for(device="cuda:0")
    out = make("vision.classify").run({"images": scans}, ctx)
    assert len(out["labels"]["labels"]) == 96
    assert any("running on the CPU instead" in line for line in ctx.logs)


def test_cancel_stops_between_batches(scans: dict[str, Any]):
    ctx = ctx_for(batch_size=8)
    ctx.cancel_event.set()
    with pytest.raises(RunCancelledError):
        make("vision.classify").run({"images": scans}, ctx)


def test_specs_declare_ports_resources_and_cards():
    registry = REGISTRY
    for name in ("vision.classify", "vision.explain", "vision.embed"):
        spec = registry.get(name)
        assert spec.resources.device == "any" and spec.resources.memory_mb > 0
        assert spec.card and "SYNTHETIC" in spec.card
    assert set(CNN_CONFIGS) == set(registry.get("vision.classify").params.model_json_schema()
                                   ["properties"]["model"]["enum"])


def test_cpu_allotment_is_split_between_batches_and_torch_threads():
    from engine.agents.splits import candidates

    assert candidates(2, 16, "cpu") == [(2, 1), (1, 2)]  # every split that uses the whole allotment
    assert candidates(1, 16, "cpu") == [(1, 1)]
    assert candidates(8, 2, "cpu") == [(2, 4), (1, 8)]  # no more batches at once than batches
    assert candidates(4, 16, "cpu") == [(4, 1), (2, 2), (1, 4)]
    assert candidates(4, 1, "cpu") == [(1, 4)]
    assert candidates(4, 16, "cuda:0") == [(1, 4)]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_classifier_runs_on_cuda_with_the_same_answers(scans: dict[str, Any]):
    cpu = make("vision.classify").run({"images": scans}, ctx_for(batch_size=32))
    ctx = ctx_for(batch_size=32, device="cuda:0")
    gpu = make("vision.classify").run({"images": scans}, ctx)
    assert not any("CPU instead" in line for line in ctx.logs)
    a, b = cpu["scores"]["scores"], gpu["scores"]["scores"]
    assert torch.allclose(a, b, atol=2e-3)  # cuDNN's TF32 convolutions (the default on Ampere and later): ~1e-3
    assert float((a.argmax(1) == b.argmax(1)).float().mean()) >= 0.99


def test_listing_the_agents_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, engine.agents.vision, engine.agents.tabular; "
            "print('torch' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(("shape", "sigma"), [((32, 3, 64, 64), 1.0), ((5, 1, 28, 28), 2.0),
                                              ((4, 3, 17, 33), 0.5), ((2, 1, 64, 64), 4.0)])
def test_blur_equals_the_separable_gaussian_convolution(shape: tuple[int, ...], sigma: float) -> None:
    """Short kernels run as shifted sums (faster), long ones as convolutions: both must be the
    grouped convolution with reflect padding that defines the blur."""
    import torch.nn.functional as F

    from engine.agents.vision_data import _gaussian_kernel, blur

    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    k = _gaussian_kernel(sigma)
    c, r = shape[1], (len(k) - 1) // 2
    ref = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    ref = F.conv2d(F.pad(ref, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    assert torch.allclose(blur(x, sigma), ref, atol=1e-6)


def test_the_image_source_declares_time_by_items_pixels_and_data_set() -> None:
    """The planner's first guess for vision.source (bench/agents_bench.py measures it): per item,
    more for bigger and colour images and for decoded uploads; the static declaration is the
    default parameters' figure."""
    from engine.registry import default_registry

    spec = default_registry().get("vision.source")

    def declared(**raw: object) -> float:
        return spec.expected_duration(spec.parse_params(raw))

    assert declared() == pytest.approx(spec.expected_duration_s, rel=0.05)
    assert declared(n_items=128) - 0.02 == pytest.approx(2 * (declared(n_items=64) - 0.02))
    assert declared(size=128) > declared(size=64) and declared(channels=3) > declared(channels=1)
    assert declared(dataset="digits") < declared()  # scikit-learn's digits: no generation
    assert declared(dataset="uploads", paths=["a.png"] * 4) > declared(dataset="uploads", paths=["a.png"])


@pytest.mark.parametrize(("side", "window"), [(8, 2), (17, 3), (64, 8), (64, 64), (100, 12), (33, 1)])
def test_top_regions_find_the_square_with_the_largest_sum(side: int, window: int) -> None:
    """The summed-area table gives the same square as summing every window x window square
    (the first one on ties, as a row-major scan finds it)."""
    from engine.agents.vision_ops import top_regions

    maps = torch.rand(6, 1, side, side, generator=torch.Generator().manual_seed(side)) ** 4
    maps[0] = 0.0  # all ties: the top-left square
    found = top_regions(maps, window)
    for m, region in zip(maps, found, strict=True):
        sums = torch.tensor([[float(m[0, r:r + window, c:c + window].double().sum())
                              for c in range(side - window + 1)] for r in range(side - window + 1)])
        top, left = divmod(int(sums.flatten().argmax()), side - window + 1)
        assert (region["top"], region["left"], region["size"]) == (top, left, window)
        assert (region["center_row"], region["center_col"]) == (top + window // 2, left + window // 2)
    assert (found[0]["top"], found[0]["left"]) == (0, 0)


def test_preprocess_declares_time_by_image_size_and_filter() -> None:
    """What vision.preprocess declares per image follows what costs time (bench/agents_bench.py
    --only pixels measures it): the values it emits, a gaussian's kernel length (shifted sums up
    to vision_data.SHIFTED_TAPS taps, convolutions beyond), a median's square, augmenting."""
    from engine.agents import vision
    from engine.registry import default_registry
    from engine.spec import ImageSizes

    assert vision.SHIFTED_TAPS == vision_data.SHIFTED_TAPS
    spec = default_registry().get("vision.preprocess")

    def per_item(side: int = 64, channels: int = 3, **raw: object) -> float:
        params = spec.parse_params({"size": None, **raw})
        shape = (channels, side, side)
        return spec.expected_duration(params, 1, images=ImageSizes(shape, shape)) - spec.expected_duration(params, 0)

    assert per_item() == pytest.approx(spec.per_item_s)  # the reference image
    assert per_item(side=128) > 4 * per_item() and per_item(side=512) > 16 * per_item(side=128)
    assert per_item(channels=1, side=256) < per_item(channels=3, side=256)
    assert per_item(strength=5.0) > 4 * per_item()  # 31 taps: a convolution
    assert per_item(denoise="median", strength=3.0) > 10 * per_item(denoise="median")  # 49 values a square
    assert per_item(rotate_degrees=30.0) > per_item()


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (3, 3, 17, 33), (32, 3, 64, 64), (1, 1, 700, 300)])
@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_median_filter_equals_the_median_of_every_square(shape: tuple[int, ...], kernel: int,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The 3 x 3 network and the banded sort give each square's median, as sorting every
    unfolded square does (bands made small here so that every shape is cut into several)."""
    import torch.nn.functional as F

    from engine.agents import vision_ops

    monkeypatch.setattr(vision_ops, "MEDIAN_BAND_BYTES", 64 * 1024)
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(kernel))
    n, c, h, w = shape
    r = kernel // 2
    squares = F.unfold(F.pad(x, (r, r, r, r), mode="reflect"), kernel).view(n, c, kernel * kernel, h * w)
    assert torch.equal(vision_ops.median_filter(x, kernel), squares.median(dim=2).values.view(n, c, h, w))


@pytest.mark.parametrize("mode", ["gaussian", "median"])
def test_a_filter_wider_than_the_image_is_cut_to_fit(mode: str) -> None:
    """8 px images with the strongest filter (sigma 10: radius 30; median radius 10) ran into
    reflect padding's limit and failed the node with a raw torch error."""
    from engine.agents.vision_ops import denoise

    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = denoise(x, mode, 10.0)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert float(out.std()) < float(x.std())  # still smooths
    assert denoise(torch.rand(1, 1, 1, 1), mode, 3.0).shape == (1, 1, 1, 1)
    agent = make("vision.preprocess", size=8, denoise=mode, strength=10.0)
    images = {"images": x, "ids": ["a", "b"], "labels": None, "classes": []}
    assert agent.run({"images": images}, ctx_for())["images"]["images"].shape == (2, 3, 8, 8)


def test_the_digits_are_read_as_scikit_learn_loads_them_without_importing_it(monkeypatch) -> None:
    """The image source reads the digits file scikit-learn ships (``runtime.sklearn_data_file``):
    the same pixels and digits as ``load_digits``, and that loader where the file is not there."""
    import numpy as np
    from sklearn.datasets import load_digits

    from engine.agents import vision_data

    vision_data._digits.cache_clear()
    data = load_digits()
    try:
        pixels, digits = vision_data._digits()
        assert np.array_equal(pixels, data.images) and np.array_equal(digits, data.target)
        assert not pixels.flags.writeable
        monkeypatch.setattr(vision_data, "DIGITS_CSV", "no_such_file.csv.gz")
        vision_data._digits.cache_clear()
        assert np.array_equal(vision_data._digits()[0], data.images)
    finally:
        vision_data._digits.cache_clear()
