"""Text agents: a text source (typed list, file, synthetic sets), embeddings, sentiment, intent
and entity extraction, all backed by our own small torch models (training/sentiment.py,
training/intent.py, training/entities.py). Payloads follow engine.agents.runtime's conventions.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.agents import runtime
from engine.agents.table_columns import EMBEDDING_WIDTH, vector_columns
from engine.agents.tables import scores_columns
from engine.agents.text_corpus import ENTITY_TYPES, INTENTS, SENTIMENTS
from engine.agents.text_io import read_text_file
from engine.agents.torch_agent import TorchAgent
from engine.kinds import DataKind
from engine.registry import agent
from engine.resources import ResourceDemand
from engine.spec import Agent, PortSpec, RunContext

_CFG = ConfigDict(extra="forbid", allow_inf_nan=False)
_COLOR = "#0ea5e9"
_MODEL_DEMAND = ResourceDemand(cpu=1, memory_mb=64, device="any")
# on a GPU (bench/gpu/memory.py, texts of the synthetic sets): ~1 MB of weights, and a lone text
# node in a fresh process peaked 3 MB above the 32 MB of workspaces (35.1 MB through the CLI);
# activations of 0.028 MB a text for the entity tagger (a tag per token), 0.0008-0.0014 MB for
# the classifiers
_TEXT_GPU = runtime.fixed_gpu_memory(per_item_mb=0.002, weights_mb=4.0)
_TAGGER_GPU = runtime.fixed_gpu_memory(per_item_mb=0.05, weights_mb=4.0)
_TEXTS_IN = PortSpec("texts", DataKind.TEXT_BATCH, "texts to process")


class TextSourceParams(BaseModel):
    model_config = _CFG
    mode: Literal["list", "file", "reviews", "requests"] = Field(
        "reviews", description="list: the texts below; file: a .txt (one per line) or .csv file; "
        "reviews / requests: a synthetic set with known sentiment / intent")
    texts: list[str] = Field(default_factory=list, max_length=10_000,
                             description="texts to emit (mode list)")
    path: str = Field("", max_length=1000, description="file path (mode file); relative paths "
                      "are taken from the data folder")
    column: str = Field("text", max_length=200, description="CSV column holding the text")
    n: int = Field(60, ge=1, le=100_000, description="how many texts to generate")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="generator seed")


def _text_source_items(p: TextSourceParams) -> int | None:
    """How many texts ``text.source`` emits: a file's are counted (once per version of the file;
    None when it cannot be read)."""
    if p.mode == "file":
        from engine.agents.text_io import count_texts

        return count_texts(p.path, p.column)
    return len(p.texts) if p.mode == "list" else p.n


def _text_file_problem(p: TextSourceParams) -> str | None:
    from engine.agents.text_io import text_file_problem

    return text_file_problem(p.path, p.column) if p.mode == "file" else None


@agent("text.source", category="text", label="Text source", color=_COLOR,
       description="Emits texts: a typed list, a UTF-8 .txt/.csv file, or a synthetic set of "
       "product reviews (known sentiment) or customer-service requests (known intent).",
       outputs=[PortSpec("texts", DataKind.TEXT_BATCH, "texts with ids (and labels when known)")],
       params=TextSourceParams, resources=ResourceDemand(cpu=0.5, memory_mb=16),
       expected_duration_s=0.005, per_item_s=1e-5, items_fn=lambda p, _: _text_source_items(p),
       per_item_fn=lambda p: 1e-6 if p.mode == "file" else 1e-5,  # reading a line: 0.22 us measured
       memory_per_item_mb=2e-4,  # 300,000 lines of a file: 42 MB measured
       files_fn=lambda p: ("path", [p.path]) if p.mode == "file" else None,
       file_check_fn=lambda p: _text_file_problem(p),
       columns_fn=lambda p, _: ("text", "label") if p.mode in ("reviews", "requests") else ("text",))
class TextSource(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        p: TextSourceParams = self.params  # type: ignore[assignment]
        labels: list[str] | None = None
        synthetic = p.mode in ("reviews", "requests")
        if p.mode == "list":
            texts = list(p.texts)
        elif p.mode == "file":
            texts = read_text_file(p.path, p.column)
        elif p.mode == "reviews":
            from engine.agents.text_corpus import generate_reviews

            pairs = generate_reviews(p.n, p.seed)
            texts, labels = [t for t, _ in pairs], [s for _, s in pairs]
        else:
            from engine.agents.text_corpus import generate_requests

            reqs = generate_requests(p.n, p.seed)
            texts, labels = [r.text for r in reqs], [r.intent for r in reqs]
        if ctx.max_items is not None:
            texts = texts[:ctx.max_items]
            labels = labels[:ctx.max_items] if labels else labels
        ctx.progress(len(texts), len(texts))
        if synthetic:
            ctx.log(f"generated {len(texts)} synthetic {p.mode} (seed {p.seed})")
        return {"texts": {"texts": texts, "ids": runtime.ids_for(len(texts), "text"),
                          "labels": labels, "synthetic": synthetic}}


def _texts_of(payload: Any, ctx: RunContext) -> tuple[list[str], list[str], list[str] | None]:
    """(texts, ids, labels) of a text_batch payload (a bare list of strings is accepted)."""
    if isinstance(payload, list):
        payload = {"texts": payload}
    if not isinstance(payload, dict) or not isinstance(payload.get("texts"), list):
        raise TypeError("the texts input must be a text_batch ({'texts': [...], 'ids': [...]})")
    texts = [str(t) for t in payload["texts"]]
    ids = list(payload.get("ids") or runtime.ids_for(len(texts), "text"))
    labels = payload.get("labels")
    if ctx.max_items is not None:
        texts, ids = texts[:ctx.max_items], ids[:ctx.max_items]
        labels = labels[:ctx.max_items] if labels else labels
    return texts, ids, labels


class _ClassifierAgent(TorchAgent):
    """Shared body of the hashed-feature classifiers: load weights once, run in batches."""

    weights: ClassVar[str]
    classes: ClassVar[tuple[str, ...]]

    def build(self, device: str) -> None:
        from engine.agents.text_models import TextClassifier

        self.model = TextClassifier(len(self.classes))
        self.model.load_state_dict(runtime.load_weights(self.weights))
        self.model.to(device).eval()

    def _forward(self, texts: list[str], ctx: RunContext, embed: bool = False) -> Any:
        import torch

        from engine.agents.text_models import bag_batch, text_features

        self.ready(ctx)
        outs = []
        with runtime.torch_threads(ctx.threads), torch.no_grad():
            for part in runtime.batches(len(texts), ctx.batch_size):
                ctx.check_cancelled()
                ids, offsets = bag_batch([text_features(t) for t in texts[part]])
                ids, offsets = ids.to(self.device), offsets.to(self.device)
                out = self.model.embed(ids, offsets) if embed else self.model(ids, offsets).softmax(1)
                outs.append(out.cpu())
                ctx.progress(part.stop, len(texts))
        if not outs:
            return torch.zeros(0, self.model.bag.embedding_dim if embed else len(self.classes))
        return torch.cat(outs)

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        texts, ids, labels = _texts_of(inputs["texts"], ctx)
        probs = self._forward(texts, ctx)
        conf, best = probs.max(1) if len(texts) else (probs.new_zeros(0), probs.new_zeros(0))
        return {"scores": {
            "scores": probs, "classes": list(self.classes), "ids": ids, "texts": texts,
            "labels": labels, "predicted": [self.classes[int(i)] for i in best],
            "confidence": [round(float(c), 4) for c in conf]}}


_SCORES_OUT = PortSpec("scores", DataKind.SCORES,
                       "class probabilities per text, with the predicted class and confidence")


def _text_scores(classes: tuple[str, ...]) -> Any:
    """``columns_fn`` of a text classifier: the text, its prediction and the ground truth where
    the texts may carry it (a generated set, or texts whose columns are unknown)."""
    def columns(_: Any, received: list[tuple[str, ...] | None]) -> tuple[str, ...]:
        truth = not received or received[0] is None or "label" in received[0]
        return scores_columns(classes, texts=True, truth=truth)
    return columns


class NoModelParams(BaseModel):
    model_config = _CFG


@agent("text.sentiment", category="text", label="Sentiment", color=_COLOR,
       description="Classifies each text as negative, neutral or positive (our hashed n-gram "
       "model with negation handling, trained on synthetic reviews).",
       inputs=[_TEXTS_IN], outputs=[_SCORES_OUT], params=NoModelParams,
       resources=_MODEL_DEMAND, gpu_memory_fn=_TEXT_GPU, expected_duration_s=0.014, per_item_s=1e-4, memory_per_item_mb=2e-3,
       card=runtime.read_card("sentiment"), columns_fn=_text_scores(SENTIMENTS))
class Sentiment(_ClassifierAgent):
    weights = "sentiment"
    classes = SENTIMENTS


@agent("text.intent", category="text", label="Intent", color=_COLOR,
       description="Classifies customer-service requests into account, billing, cancel, refund, "
       "shipping or technical (trained on synthetic requests).",
       inputs=[_TEXTS_IN], outputs=[_SCORES_OUT], params=NoModelParams,
       resources=_MODEL_DEMAND, gpu_memory_fn=_TEXT_GPU, expected_duration_s=0.01, per_item_s=1.5e-4, memory_per_item_mb=2e-3,
       card=runtime.read_card("intent"), columns_fn=_text_scores(INTENTS))
class Intent(_ClassifierAgent):
    weights = "intent"
    classes = INTENTS


class EmbedParams(BaseModel):
    model_config = _CFG
    space: Literal["sentiment", "intent"] = Field(
        "sentiment", description="whose learned feature space to embed into: the sentiment "
        "model's (opinions) or the intent model's (request topics)")


@agent("text.embed", category="text", label="Text embedding", color=_COLOR,
       description="Embeds texts as L2-normalised 32-d vectors: the pooled hashed n-gram layer "
       "of our sentiment or intent model.",
       inputs=[_TEXTS_IN], outputs=[PortSpec("vectors", DataKind.EMBEDDING, "one vector per text")],
       params=EmbedParams, resources=_MODEL_DEMAND, gpu_memory_fn=_TEXT_GPU, expected_duration_s=0.005, per_item_s=8e-5,
       memory_per_item_mb=2e-3, columns_fn=lambda _p, _received: vector_columns(EMBEDDING_WIDTH),
       card="\n\n".join(c for c in (runtime.read_card("sentiment"), runtime.read_card("intent")) if c)
       or None)
class Embed(_ClassifierAgent):
    def build(self, device: str) -> None:
        space = self.params.space  # type: ignore[attr-defined]
        self.weights = space  # type: ignore[misc]
        self.classes = Sentiment.classes if space == "sentiment" else Intent.classes  # type: ignore[misc]
        super().build(device)

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        texts, ids, _ = _texts_of(inputs["texts"], ctx)
        return {"vectors": {"vectors": self._forward(texts, ctx, embed=True), "ids": ids}}


ENTITY_COLUMNS = ("text_id", "type", "value", "start", "end")  # one row per entity found


@agent("text.entities", category="text", label="Entities", color=_COLOR,
       description="Finds order numbers, dates, amounts, e-mail addresses and product names in "
       "each text (a convolutional token tagger trained on synthetic requests); one row per entity.",
       inputs=[_TEXTS_IN],
       outputs=[PortSpec("entities", DataKind.TABLE,
                         "columns text_id, type, value, start, end; one row per entity")],
       params=NoModelParams, resources=_MODEL_DEMAND, gpu_memory_fn=_TAGGER_GPU, expected_duration_s=0.014,
       per_item_s=2.5e-4, memory_per_item_mb=0.015, columns_fn=lambda _p, _received: ENTITY_COLUMNS,
       values_fn=lambda _p, _received: {"entities": {"type": ENTITY_TYPES}},
       card=runtime.read_card("entities"))
class Entities(TorchAgent):
    def build(self, device: str) -> None:
        from engine.agents.text_models import TokenTagger

        self.model = TokenTagger()
        self.model.load_state_dict(runtime.load_weights("entities"))
        self.model.to(device).eval()

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        from engine.agents.text_models import decode_entities, sentence_batch

        texts, ids, _ = _texts_of(inputs["texts"], ctx)
        self.ready(ctx)
        cols: dict[str, list[Any]] = {c: [] for c in ENTITY_COLUMNS}
        with runtime.torch_threads(ctx.threads), torch.no_grad():
            for part in runtime.batches(len(texts), ctx.batch_size):
                ctx.check_cancelled()
                chunk = texts[part]
                flat, offsets, spans = sentence_batch(chunk)
                tags = self.model(flat.to(self.device), offsets.to(self.device), len(chunk))
                for text, text_id, sp, row in zip(chunk, ids[part], spans,
                                                  tags.argmax(1).tolist(), strict=True):
                    for start, end, kind in decode_entities(text, sp, row[:len(sp)]):
                        for key, value in zip(cols, (text_id, kind, text[start:end], start, end),
                                              strict=True):
                            cols[key].append(value)
                ctx.progress(part.stop, len(texts))
        row_ids = [f"{t}/{k}" for k, t in enumerate(cols["text_id"])]
        return {"entities": {"columns": cols, "ids": row_ids}}
