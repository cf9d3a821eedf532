"""Vision agents: image source, preprocess, CNN classify, saliency explain, embed.

Payloads follow ``engine.agents.runtime`` (image_batch, scores, labels, embedding). Torch and
the data modules are imported inside ``load``/``run`` so listing agents stays cheap.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.agents.batching import map_batches, run_itemwise
from engine.agents.kernels import SHIFTED_TAPS, gaussian_radius, median_side
from engine.agents.runtime import GPU_WORKSPACE_MB, read_card, resolve_device
from engine.agents.table_columns import CNN_CLASSES, EMBEDDING_WIDTH, REGION_KEYS, vector_columns
from engine.agents.tables import LABELS_COLUMNS, scores_columns
from engine.errors import ModelFileError
from engine.kinds import DataKind
from engine.registry import agent
from engine.resources import ResourceDemand
from engine.spec import Agent, ImageShape, ImageSizes, Lifecycle, PortSpec, RunContext, values_of

_CFG = ConfigDict(extra="forbid", allow_inf_nan=False)
_COLOR = "#0ea5e9"
ModelName = Literal["lesion_cnn", "digits_cnn"]
_IMAGES_IN = PortSpec("images", DataKind.IMAGE_BATCH, "images N x C x H x W in 0..1")
_CARDS = "\n\n".join(c for c in (read_card("lesion_cnn"), read_card("digits_cnn")) if c)


class SourceParams(BaseModel):
    model_config = _CFG
    dataset: Literal["synthetic_lesions", "digits", "uploads"] = Field(
        "synthetic_lesions",
        description="synthetic_lesions: SYNTHETIC scans with known lesions; digits: held-out "
        "scikit-learn digits; uploads: your PNG/JPEG files (paths)")
    n_items: int = Field(64, ge=1, le=10_000, description="how many images (not for uploads)")
    seed: int = Field(7, ge=0, le=2**31 - 1, description="random seed of the generated set")
    size: int = Field(64, ge=8, le=512, description="side in pixels of the emitted images")
    channels: Literal[1, 3] = Field(1, description="1 grey or 3 RGB channels")
    paths: list[str] = Field(default_factory=list, max_length=1000,
                             description="image files for dataset=uploads (PNG/JPEG, 10 MB each); relative "
                             "paths start in the data folder, where browser uploads are kept")


# seconds per image by data set, and per pixel and channel emitted: quiet 2-core CPU figures
# (0.35-0.6 ms per synthetic scan, 0.08-0.15 ms per digit up to 128 px, more at 256 px) with
# 2-3x headroom for a loaded classroom machine; bench/agents_bench.py reports them side by side
_SOURCE_ITEM_S = {"synthetic_lesions": 8e-4, "digits": 2e-4, "uploads": 5e-3}
_SOURCE_PIXEL_S = 4e-9


DIGITS_HELD_OUT = 449  # held-out scikit-learn digits (a test checks it against the split)


def _source_items(p: SourceParams, _: int | None = None) -> int:
    """How many images ``vision.source`` emits for these parameters."""
    if p.dataset == "uploads":
        return min(len(p.paths), p.n_items)
    return min(p.n_items, DIGITS_HELD_OUT) if p.dataset == "digits" else p.n_items


# CNN agents work in batches of 32 unless the node says otherwise: one batch of the whole input
# was 3.8x slower at 512 images (and its activations grow with the input), see docs
_BATCHED = Lifecycle.model_validate({"execution": {"batch_size": 32}})


_MB = 2**20


def _source_memory(p: SourceParams, _: int = 0) -> float:
    """MB that ``vision.source`` needs on top of its declared 32 for these parameters: ~0.3 MB
    per image while generating (measured 300 MB for 1,024 scans), plus three float copies of each
    emitted image (resize, channels, the payload)."""
    return _source_items(p) * (0.3 + 12 * p.size * p.size * p.channels / _MB)


# What the size of each image adds, measured per agent at 32-512 px, 1 and 3 channels, on one
# thread (docs/agents-vision-tabular.md, "Image sizes"); the per-item times above are at the
# reference image, 3 x 64 x 64 (12,288 values)
_REFERENCE: ImageShape = (3, 64, 64)
_PREPROCESS_ITEM_S = 6e-5  # at the reference image, gaussian sigma 1
_PREPROCESS_GROWTH = 1.45  # time per image ~ values^1.45: 3.3 ns per value at 64 px, 15 at 512 (cache misses)
_BLUR_TAPS = 7  # the reference's kernel (sigma 1: radius 3); shifted sums up to SHIFTED_TAPS, in proportion
_CONV_TAP_S = 6e-9  # longer kernels run as convolutions: per value and tap (measured 0.8-3.5 ns)
_MEDIAN_3_VALUE_S = 2.5e-8  # a 3 x 3 median (a compare-exchange network) per value, all steps (8-13 ns)
_MEDIAN_VALUE_S = 2e-8  # larger medians (sorting each square) per value and value in the square (11-17 ns)
_AUGMENT_VALUE_S = 5e-8  # flips and rotations (a resampling grid) per value (7-33 ns)
_PREPROCESS_BYTES = 4  # per value emitted: the kept float32 image
_PREPROCESS_BATCH_BYTES = 16  # per value of a batch in flight: resized, padded and filtered copies (measured 12-14)
_EXPLAIN_PIXEL_S = 1.2e-7  # per pixel above 64 x 64: resizing, blending and scanning the heat maps
_EXPLAIN_BYTES = 40  # per pixel: overlay (3 values), heat map, scaled map, and their temporaries
_CNN_VALUE_S = 1.5e-9  # classify / embed: resizing a larger image down to the model's input
_CNN_BATCH_BYTES = 6  # per value of a batch of received images: its resized copies (measured 5.2 at 1024 px)


def _values(shape: ImageShape | None) -> int:
    return values_of(shape or _REFERENCE)


def _pixels(shape: ImageShape | None) -> int:
    _, height, width = shape or _REFERENCE
    return height * width


def _preprocess_shape(p: PreprocessParams, received: ImageShape | None) -> ImageShape | None:
    if not p.size:
        return received
    return ((received or _REFERENCE)[0], p.size, p.size)


def _preprocess_cost(p: PreprocessParams, images: ImageSizes) -> tuple[float, float, float]:
    """Seconds and MB per image on top of the reference (a gaussian of sigma 1 on 3 x 64 x 64),
    and MB once: a gaussian's time grows a little faster than the values (cache misses) and with
    its kernel's length; a median's with the values and its square; augmenting adds a resampling
    pass. Memory: the images it keeps, and the copies of one batch in flight (the median works in
    bands: engine.agents.vision_ops)."""
    emitted = images.emitted or _preprocess_shape(p, images.received) or _REFERENCE
    values = _values(emitted)
    if p.denoise == "median" and p.strength > 0:
        side = median_side(p.strength)
        seconds = values * (_MEDIAN_3_VALUE_S if side == 3 else _MEDIAN_VALUE_S * side * side)
    else:
        ratio = max(1.0, values / _values(_REFERENCE))
        taps = 2 * gaussian_radius(p.strength) + 1 if p.denoise == "gaussian" and p.strength > 0 else _BLUR_TAPS
        seconds = _PREPROCESS_ITEM_S * ratio ** _PREPROCESS_GROWTH * max(1.0, taps / _BLUR_TAPS)
        if taps > SHIFTED_TAPS:
            seconds += _CONV_TAP_S * taps * values
    if p.flip or p.rotate_degrees:
        seconds += _AUGMENT_VALUE_S * values
    batch = _BATCHED.execution.batch_size or 32
    return seconds - _PREPROCESS_ITEM_S, values * _PREPROCESS_BYTES / _MB, batch * values * _PREPROCESS_BATCH_BYTES / _MB


def _explain_shape(p: ExplainParams, received: ImageShape | None) -> ImageShape | None:
    return None if received is None else (3 if p.overlay else 1, received[1], received[2])


def _explain_cost(p: ExplainParams, images: ImageSizes) -> tuple[float, float]:
    pixels = _pixels(images.received)
    return _EXPLAIN_PIXEL_S * max(0, pixels - _pixels(_REFERENCE)), pixels * _EXPLAIN_BYTES / _MB


# GPU memory per image of a batch (bench/gpu/memory.py on an H200): preprocessing holds four
# float copies of each image at the larger of its sizes in and out (6.1 MB for 32 x 3 x 64 x 64,
# 24 MB at 128 px); the CNN's activations at its 64 px input take 0.25 MB an image, whatever
# the size received (resized first), the saliency's backward pass 0.52 MB
_PREPROCESS_GPU_COPIES = 4
_CNN_GPU_ITEM_MB, _EXPLAIN_GPU_ITEM_MB = 0.25, 0.52
# once: the workspaces, and 2 MB for the weights (0.04 MB) and what a fresh process adds around a
# batch (a lone classify node: 40.04 MB against 32 + 8)
_VISION_GPU_ONCE_MB = GPU_WORKSPACE_MB + 2.0


def _preprocess_gpu(p: PreprocessParams | None, images: ImageSizes) -> tuple[float, float]:
    emitted = (images.emitted or (_preprocess_shape(p, images.received) if p is not None else None)
               or _REFERENCE)
    values = max(_values(images.received or _REFERENCE), _values(emitted))
    return _VISION_GPU_ONCE_MB, _PREPROCESS_GPU_COPIES * 4 * values / _MB


def _cnn_gpu(per_item_mb: float) -> Any:
    """A CNN agent's GPU memory: its activations, or two float copies of a received image when
    larger (one being resized)."""
    return lambda _p, images: (_VISION_GPU_ONCE_MB, max(per_item_mb, 2 * 4 * _values(images.received) / _MB))


def _cnn_cost(_: Any, images: ImageSizes) -> tuple[float, float, float]:
    """Time per image to resize it down; memory once, for a batch (of the agents' default 32)
    of the images it receives while they are resized."""
    values = _values(images.received)
    batch = _BATCHED.execution.batch_size or 32
    return (_CNN_VALUE_S * max(0, values - _values(_REFERENCE)), 0.0,
            batch * max(0, values - _values(_REFERENCE)) * _CNN_BATCH_BYTES / _MB)


def _source_duration(p: SourceParams) -> float:
    """What ``vision.source`` declares for these parameters (the planner's first guess)."""
    n = _source_items(p)
    return 0.02 + n * (_SOURCE_ITEM_S[p.dataset] + _SOURCE_PIXEL_S * p.size * p.size * p.channels)


def _image_files_problem(p: SourceParams) -> str | None:
    """A named image that is not a PNG/JPEG by its first bytes, or too large (a full decode is
    left to the run: validation reads 8 bytes a file)."""
    if p.dataset != "uploads":
        return None
    from engine.uploads import image_file_problem

    return next((problem for path in p.paths if (problem := image_file_problem(path))), None)


@agent("vision.source", category="vision", label="Image source", color=_COLOR,
       description="Emits images: SYNTHETIC lesion scans with known ground truth, held-out "
       "scikit-learn digits, or your own PNG/JPEG files.",
       outputs=[PortSpec("images", DataKind.IMAGE_BATCH, "images with ground-truth labels")],
       params=SourceParams, resources=ResourceDemand(cpu=1, memory_mb=32),
       expected_duration_s=0.07, duration_fn=_source_duration, items_fn=_source_items,
       memory_fn=_source_memory, shape_fn=lambda p, _: (p.channels, p.size, p.size),
       files_fn=lambda p: ("paths", list(p.paths)) if p.dataset == "uploads" else None,
       file_check_fn=lambda p: _image_files_problem(p))
class ImageSource(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from engine.agents import vision_data as data
        from engine.agents.vision_ops import resize, to_channels

        p = self.params
        n = min(p.n_items, ctx.max_items or p.n_items)
        if p.dataset == "uploads":
            if not p.paths:
                raise ModelFileError("dataset 'uploads' needs at least one image path in 'paths'")
            batch = data.uploads_batch([data.read_upload(x) for x in p.paths[:n]], p.size, p.channels)
        elif p.dataset == "digits":
            batch = data.digits_batch(n, p.seed, p.size)
        else:
            batch = data.synthetic_lesions(n, p.seed, 64)
        batch["images"] = to_channels(resize(batch["images"], p.size), p.channels)
        if p.dataset == "synthetic_lesions" and p.size != 64:
            scale = p.size / 64
            batch["lesion_centers"] = [None if c is None else (round(c[0] * scale), round(c[1] * scale))
                                       for c in batch["lesion_centers"]]
        ctx.progress(len(batch["ids"]), len(batch["ids"]))
        ctx.log(f"{len(batch['ids'])} images from {p.dataset}")
        return {"images": batch}


class PreprocessParams(BaseModel):
    model_config = _CFG
    size: int | None = Field(64, ge=8, le=1024, description="resize to size x size (empty: keep)")
    normalise: Literal["unit", "standardize", "none"] = Field(
        "unit", description="unit: stretch each image to 0..1; standardize: (x - mean) / std")
    mean: float = Field(0.5, ge=-10, le=10, description="mean for standardize")
    std: float = Field(0.25, gt=0, le=10, description="std for standardize")
    denoise: Literal["none", "gaussian", "median"] = Field("gaussian", description="denoising filter")
    strength: float = Field(1.0, ge=0, le=10, description="gaussian sigma or median radius, px")
    flip: bool = Field(False, description="augment: flip half the images left-right")
    rotate_degrees: float = Field(0.0, ge=0, le=180, description="augment: random rotation range")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="augmentation seed")


@agent("vision.preprocess", category="vision", label="Preprocess images", color=_COLOR,
       description="Resize, denoise (gaussian / median), augment (flip / rotate) and normalise "
       "a batch of images with torch.",
       inputs=[_IMAGES_IN], outputs=[PortSpec("images", DataKind.IMAGE_BATCH, "processed images")],
       params=PreprocessParams, resources=ResourceDemand(cpu=1, memory_mb=64, device="any"),
       expected_duration_s=0.02, per_item_s=_PREPROCESS_ITEM_S, lifecycle=_BATCHED, itemwise=True,
       shape_fn=lambda p, received: _preprocess_shape(p, received),
       per_image_fn=lambda p, images: _preprocess_cost(p, images), gpu_memory_fn=_preprocess_gpu)
class Preprocess(Agent):
    def load(self, device: str) -> None:
        self.device = resolve_device(device)

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return run_itemwise(self, inputs, ctx, resolve_device(ctx.device, ctx))

    def run_batch(self, inputs: dict[str, Any], ctx: RunContext, start: int) -> dict[str, Any]:
        import torch

        from engine.agents import vision_ops as ops

        p, batch = self.params, inputs["images"]
        images = batch["images"]
        with torch.no_grad():
            x = images.to(resolve_device(ctx.device, ctx))
            x = ops.resize(x, p.size) if p.size else x
            x = ops.denoise(x, p.denoise, p.strength)
            if p.flip or p.rotate_degrees:  # one seed per batch of the node's batch size
                x = ops.augment(x, p.flip, p.rotate_degrees, p.seed + start // (ctx.batch_size or len(x) or 1))
            slot = ctx.output_slot("images", "images", slice(start, start + len(x)), x)  # write it joined
            x = ops.normalise(x, p.normalise, p.mean, p.std, out=slot).cpu()
        result = {**batch, "images": x}
        scale = (p.size or images.shape[-1]) / images.shape[-1]
        if batch.get("lesion_centers") is not None:
            result["lesion_centers"] = [None if c is None else (round(c[0] * scale), round(c[1] * scale))
                                        for c in batch["lesion_centers"]]
        if batch.get("lesion_radii") is not None:
            result["lesion_radii"] = [None if r is None else r * scale for r in batch["lesion_radii"]]
        return {"images": result}


class ModelParams(BaseModel):
    model_config = _CFG
    model: ModelName = Field("lesion_cnn", description="lesion_cnn (SYNTHETIC scans) or digits_cnn")


def _limit(images: Any, ctx: RunContext) -> Any:
    return images[: ctx.max_items] if ctx.max_items else images


def _prepared(x: Any, size: int, channels: int) -> Any:
    from engine.agents.vision_ops import resize, to_channels

    return resize(to_channels(x, channels), size)


class _CnnAgent(Agent):
    """Shared load/forward plumbing for the agents that use a trained CNN."""

    def load(self, device: str) -> None:
        from engine.agents.nets import cnn_for

        self.device = resolve_device(device)
        self.model, self.config = cnn_for(self.params.model, self.device)

    def _ensure(self, ctx: RunContext) -> None:
        device = resolve_device(ctx.device, ctx)
        if not hasattr(self, "model") or device != self.device:
            self.load(device)

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """The itemwise agents' run (classify, embed): ``run_batch`` over the batches."""
        self._ensure(ctx)
        return run_itemwise(self, inputs, ctx, self.device)

    def _batch_input(self, batch: dict[str, Any], ctx: RunContext) -> Any:
        """A batch's images as the CNN takes them: its channels and size, on its device."""
        self._ensure(ctx)
        return _prepared(batch["images"], self.config.size, self.config.in_channels).to(self.device)


@agent("vision.classify", category="vision", label="Classify images (CNN)", color=_COLOR,
       description="A small two-layer CNN: lesion / no-lesion on SYNTHETIC scans, or digits. "
       "Outputs class probabilities and labels.",
       inputs=[_IMAGES_IN],
       outputs=[PortSpec("scores", DataKind.SCORES, "class probabilities per image"),
                PortSpec("labels", DataKind.LABELS, "predicted class and confidence")],
       params=ModelParams, resources=ResourceDemand(cpu=1, memory_mb=32, device="any"),
       expected_duration_s=0.075, per_item_s=4e-4, lifecycle=_BATCHED, card=_CARDS, itemwise=True,
       per_image_fn=_cnn_cost, gpu_memory_fn=_cnn_gpu(_CNN_GPU_ITEM_MB),
       columns_fn=lambda p, _: {"scores": scores_columns(CNN_CLASSES[p.model]), "labels": LABELS_COLUMNS})
class Classify(_CnnAgent):
    def run_batch(self, inputs: dict[str, Any], ctx: RunContext, start: int) -> dict[str, Any]:
        import torch

        batch = inputs["images"]
        x = self._batch_input(batch, ctx)
        with torch.no_grad():
            scores = self.model.infer(x).softmax(1).cpu()
        classes = list(self.config.classes)
        conf, best = scores.max(1)
        return {
            "scores": {"scores": scores, "classes": classes, "ids": batch["ids"], "labels": batch.get("labels")},
            "labels": {"labels": [classes[i] for i in best.tolist()], "ids": batch["ids"],
                       "confidence": conf.tolist()},
        }

    def finish(self, inputs: dict[str, Any], outputs: dict[str, Any], ctx: RunContext) -> None:
        scores = outputs["scores"]
        truth = scores["labels"]
        if truth is not None and len(truth) and inputs["images"].get("classes") == scores["classes"]:
            accuracy = (scores["scores"].argmax(1) == truth).float().mean()
            ctx.log(f"accuracy against ground truth: {accuracy:.3f}")


class ExplainParams(ModelParams):
    method: Literal["gradient", "occlusion"] = Field(
        "gradient", description="input-gradient saliency, or occlusion (slower, coarser)")
    patch: int = Field(8, ge=2, le=64, description="occlusion patch side, px")
    overlay: bool = Field(True, description="emit the heat map over the image in red (RGB)")


@agent("vision.explain", category="vision", label="Explain (saliency)", color=_COLOR,
       description="Heat maps of where the CNN looked (gradient saliency or occlusion) for its "
       "predicted class, and the most salient region of each image.",
       inputs=[_IMAGES_IN],
       outputs=[PortSpec("heatmaps", DataKind.IMAGE_BATCH, "heat maps (or overlays) in 0..1"),
                PortSpec("regions", DataKind.TABLE, "predicted class and top region per image")],
       params=ExplainParams, resources=ResourceDemand(cpu=1, memory_mb=96, device="any"),
       expected_duration_s=0.34, per_item_s=2.5e-3, lifecycle=_BATCHED, card=_CARDS,
       shape_fn=lambda p, received: _explain_shape(p, received),
       per_image_fn=lambda p, images: _explain_cost(p, images), gpu_memory_fn=_cnn_gpu(_EXPLAIN_GPU_ITEM_MB),
       columns_fn=lambda _p, _received: {"regions": ("predicted", "confidence", *REGION_KEYS)})
class Explain(_CnnAgent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        from engine.agents import vision_ops as ops

        self._ensure(ctx)
        p, batch = self.params, inputs["images"]
        images = _limit(batch["images"], ctx)

        def step(part: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            x = _prepared(images[part], self.config.size, self.config.in_channels).to(self.device)
            with torch.no_grad():
                prob = self.model.infer(x).softmax(1)
            target = prob.argmax(1)
            sal = (ops.gradient_saliency(self.model, x, target) if p.method == "gradient"
                   else ops.occlusion_saliency(self.model, x, target, p.patch))
            heat = ops.resize(ops.scale_maps(sal), images.shape[-1]).cpu()
            return heat, target.cpu(), prob.max(1).values.cpu()

        results = map_batches(step, len(images), ctx, self.device)
        maps, preds, probs = ([r[i] for r in results] for i in range(3))
        heat = torch.cat(maps).clamp(0, 1)
        pred = torch.cat(preds)
        window = max(2, images.shape[-1] // 8)
        regions = ops.top_regions(heat, window)
        view = ops.overlay(images, heat) if p.overlay else heat
        ids, classes = batch["ids"][: len(images)], list(self.config.classes)
        columns = {"predicted": [classes[i] for i in pred.tolist()],
                   "confidence": torch.cat(probs).tolist(),
                   **{k: [r[k] for r in regions] for k in regions[0]}} if regions else {}
        return {
            "heatmaps": {"images": view, "ids": ids, "labels": None, "classes": [],
                         "maps": heat, "regions": regions},
            "regions": {"columns": columns, "ids": ids},
        }


@agent("vision.embed", category="vision", label="Image embeddings", color=_COLOR,
       description="The CNN's 32-wide penultimate layer as an embedding per image.",
       inputs=[_IMAGES_IN], outputs=[PortSpec("embedding", DataKind.EMBEDDING, "N x 32 vectors")],
       params=ModelParams, resources=ResourceDemand(cpu=1, memory_mb=32, device="any"),
       expected_duration_s=0.055, per_item_s=4e-4, lifecycle=_BATCHED, card=_CARDS, itemwise=True,
       per_image_fn=_cnn_cost, gpu_memory_fn=_cnn_gpu(_CNN_GPU_ITEM_MB),
       columns_fn=lambda _p, _received: vector_columns(EMBEDDING_WIDTH))
class Embed(_CnnAgent):
    def run_batch(self, inputs: dict[str, Any], ctx: RunContext, start: int) -> dict[str, Any]:
        import torch

        batch = inputs["images"]
        x = self._batch_input(batch, ctx)
        with torch.no_grad():
            vectors = self.model.infer_embedding(x).cpu()
        return {"embedding": {"vectors": vectors, "ids": batch["ids"], "labels": batch.get("labels")}}
