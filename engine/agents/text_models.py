"""Our own small text models: hashed n-gram features with negation scope, a bag-of-features
classifier (sentiment, intent; its pooled layer is the text embedding), and a convolutional token
tagger for entities. Feature hashing uses CRC32, so ids are stable across processes.
"""

from __future__ import annotations

import itertools
import re
import zlib
from typing import TYPE_CHECKING

import torch
from torch import nn

from engine.agents.table_columns import EMBEDDING_WIDTH

if TYPE_CHECKING:
    from collections.abc import Sequence

TEXT_BUCKETS = 8192
TOKEN_BUCKETS = 4096
TAGS = ("O", "B-AMOUNT", "I-AMOUNT", "B-DATE", "I-DATE", "B-EMAIL", "I-EMAIL",
        "B-ORDER", "I-ORDER", "B-PRODUCT", "I-PRODUCT")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[.,!?;]")
_NEGATORS = {"not", "no", "never", "nothing", "hardly", "without", "nor", "neither"}
_SCOPE_END = {".", ",", "!", "?", ";", "but", "however", "although"}
_TOKEN = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"          # e-mail
    r"|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}"  # ISO and slashed dates
    r"|[$€£]?\d+(?:[.,]\d+)*"               # numbers and amounts
    r"|#?[A-Za-z]+-?\d[\w-]*|#\d+"          # order-like ids
    r"|\w+(?:[-']\w+)*|[^\w\s]"
)


def _bucket(feature: str, buckets: int) -> int:
    return zlib.crc32(feature.encode("utf-8")) % buckets


def words_with_negation(text: str) -> list[str]:
    """Lower-case words; those inside a negation's scope get a ``NOT_`` prefix."""
    out, negated = [], False
    for word in _WORD.findall(text.lower().replace("n't", " not")):
        if word in _SCOPE_END:
            negated = False
            continue
        if word in _NEGATORS:
            negated = True
            out.append(word)
            continue
        out.append(f"NOT_{word}" if negated else word)
    return out


def text_features(text: str, buckets: int = TEXT_BUCKETS) -> list[int]:
    """Hashed unigrams, bigrams and character trigrams (negation-aware) of one text."""
    words = words_with_negation(text)
    feats = [f"w:{w}" for w in words]
    feats += [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
    for w in words:
        neg, bare = ("n", w[4:]) if w.startswith("NOT_") else ("", w)
        padded = f"<{bare}>"
        feats += [f"c{neg}:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
    return [_bucket(f, buckets) for f in feats] or [0]


def bag_batch(feature_lists: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat feature ids, offsets) for ``nn.EmbeddingBag``."""
    offsets, flat, pos = [], [], 0
    for feats in feature_lists:
        offsets.append(pos)
        flat.extend(feats)
        pos += len(feats)
    return torch.tensor(flat, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


class TextClassifier(nn.Module):
    """Mean-pooled hashed-feature embeddings → hidden layer → class logits."""

    def __init__(self, n_classes: int, dim: int = EMBEDDING_WIDTH, hidden: int = 32,
                 buckets: int = TEXT_BUCKETS) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(buckets, dim, mode="mean")
        self.hidden = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, n_classes)

    def embed(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """The pooled text vector (L2-normalised): what ``text.embed`` returns."""
        return nn.functional.normalize(self.bag(ids, offsets), dim=1)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(self.bag(ids, offsets))))


def tokenize(text: str) -> list[tuple[int, int]]:
    """Character spans of the tagger's tokens (e-mails, dates, amounts and ids stay whole)."""
    return [(m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _shape(token: str) -> str:
    shape = re.sub(r"[A-Z]", "X", token)
    shape = re.sub(r"[a-z]", "x", shape)
    shape = re.sub(r"\d", "d", shape)
    return re.sub(r"(.)\1{2,}", r"\1\1", shape)


def token_features(token: str, buckets: int = TOKEN_BUCKETS) -> list[int]:
    low = token.lower()
    feats = [f"w:{low}", f"s:{_shape(token)}", f"p:{low[:3]}", f"x:{low[-3:]}"]
    if "@" in token:
        feats.append("f:at")
    if any(c in token for c in "$€£"):
        feats.append("f:currency")
    return [_bucket(f, buckets) for f in feats]


def sentence_batch(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, list[list[tuple[int, int]]]]:
    """(flat ids, offsets, spans) for a padded batch: B*T bags, padding bags empty."""
    spans = [tokenize(t) for t in texts]
    width = max((len(s) for s in spans), default=0) or 1
    lists: list[list[int]] = []
    for text, sp in zip(texts, spans, strict=True):
        lists += [token_features(text[a:b]) for a, b in sp]
        lists += [[] for _ in range(width - len(sp))]
    ids, offsets = bag_batch(lists)
    return ids, offsets, spans


class TokenTagger(nn.Module):
    """Per-token hashed features → two 1-D convolutions (±2 tokens of context) → BIO tags."""

    def __init__(self, dim: int = 48, hidden: int = 64, buckets: int = TOKEN_BUCKETS) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(buckets, dim, mode="sum")
        self.conv1 = nn.Conv1d(dim, hidden, 3, padding=1)
        self.conv2 = nn.Conv1d(hidden, hidden, 3, padding=1)
        self.out = nn.Conv1d(hidden, len(TAGS), 1)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor, batch: int) -> torch.Tensor:
        """Tag logits, shape (batch, n_tags, tokens)."""
        x = self.bag(ids, offsets).view(batch, -1, self.bag.embedding_dim).transpose(1, 2)
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x)) + x
        return self.out(x)


def decode_entities(text: str, spans: list[tuple[int, int]], tags: Sequence[int]
                    ) -> list[tuple[int, int, str]]:
    """Group BIO tags into (start, end, type) character spans; a stray I- starts an entity."""
    out: list[tuple[int, int, str]] = []
    current: list[int | str] | None = None
    for (start, end), tag_id in zip(spans, tags, strict=False):
        tag = TAGS[tag_id]
        kind = tag[2:]
        if tag.startswith("I-") and current is not None and current[2] == kind:
            current[1] = end
            continue
        if current is not None:
            out.append((int(current[0]), int(current[1]), str(current[2])))
            current = None
        if tag != "O":
            current = [start, end, kind]
    if current is not None:
        out.append((int(current[0]), int(current[1]), str(current[2])))
    return out


def span_tags(spans: list[tuple[int, int]], entities: list[tuple[int, int, str]]) -> list[int]:
    """Gold BIO tag ids for token spans, from entity character spans."""
    tags = [0] * len(spans)
    for start, end, kind in entities:
        inside = [i for i, (a, b) in enumerate(spans) if a >= start and b <= end]
        for j, i in enumerate(inside):
            tags[i] = TAGS.index(("B-" if j == 0 else "I-") + kind)
    return tags
