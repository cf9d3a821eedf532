"""Text agents: the committed weights reproduce their cards, obvious sentences are right,
entities are found with their spans, sources read files safely, CUDA requests fall back to CPU."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.agents import runtime
from engine.agents.text import (
    Embed,
    EmbedParams,
    Entities,
    Intent,
    NoModelParams,
    Sentiment,
    TextSource,
    TextSourceParams,
)
from engine.agents.text_corpus import CHALLENGE_REQUESTS, CHALLENGE_REVIEWS, INTENTS, SENTIMENTS
from engine.agents.text_io import TextFileError
from engine.errors import RunCancelledError
from engine.spec import ExecutionStrategy, Lifecycle, RunContext


def card_percent(name: str, label: str) -> float:
    card = runtime.read_card(name)
    assert card is not None, f"card {name}.md is missing"
    match = re.search(rf"\*\*{label}[^*]*\*\*: ([0-9.]+) %", card)
    assert match, f"no '{label}' figure in {name}.md"
    return float(match.group(1))


def run_texts(agent_cls, texts: list[str], ctx: RunContext | None = None, params=None):
    agent = agent_cls(params or NoModelParams())
    return agent.run({"texts": {"texts": texts, "ids": [f"t{i}" for i in range(len(texts))]}},
                     ctx or RunContext())


@pytest.mark.parametrize(("name", "agent_cls", "module", "classes"), [
    ("sentiment", Sentiment, "training.sentiment", SENTIMENTS),
    ("intent", Intent, "training.intent", INTENTS),
])
def test_held_out_accuracy_matches_card_and_beats_chance(name, agent_cls, module, classes):
    import importlib

    texts, labels = importlib.import_module(module).held_out()
    out = run_texts(agent_cls, texts)["scores"]
    acc = sum(classes.index(p) == y for p, y in zip(out["predicted"], labels, strict=True)) / len(texts)
    assert acc > 1 / len(classes) + 0.4
    assert abs(acc * 100 - card_percent(name, "Held-out accuracy")) <= 1.5


@pytest.mark.parametrize(("name", "agent_cls", "sentences"), [
    ("sentiment", Sentiment, CHALLENGE_REVIEWS), ("intent", Intent, CHALLENGE_REQUESTS)])
def test_hand_written_check_matches_card(name, agent_cls, sentences):
    out = run_texts(agent_cls, [t for t, _ in sentences])["scores"]
    acc = sum(p == y for p, (_, y) in zip(out["predicted"], sentences, strict=True)) / len(sentences)
    assert abs(acc * 100 - card_percent(name, "Hand-written check")) <= 1.5
    assert acc >= 0.8


@pytest.mark.parametrize(("text", "expected"), [
    ("I love this phone, it is excellent!", "positive"),
    ("Absolutely fantastic quality, I would recommend it.", "positive"),
    ("This is terrible, I hate it.", "negative"),
    ("The screen is not good.", "negative"),
    ("I would never recommend this laptop.", "negative"),
    ("The battery is not bad at all.", "positive"),
    ("The package arrived on Tuesday.", "neutral"),
    ("It is a grey tablet.", "neutral"),
])
def test_obvious_sentences_get_the_right_sentiment(text, expected):
    assert run_texts(Sentiment, [text])["scores"]["predicted"] == [expected]


def test_negation_flips_the_sentiment_of_the_same_words():
    out = run_texts(Sentiment, ["The sound is good.", "The sound is not good."])["scores"]
    assert out["predicted"] == ["positive", "negative"]


def test_entities_finds_each_kind_with_its_span():
    text = ("Hi, I was charged $249.99 twice for order ORD-55821 on March 3, 2025; "
            "my email is nina7@mail.net and it was for the coffee maker.")
    table = run_texts(Entities, [text])["entities"]["columns"]
    found = {(k, v) for k, v in zip(table["type"], table["value"], strict=True)}
    assert {("AMOUNT", "$249.99"), ("ORDER", "ORD-55821"), ("EMAIL", "nina7@mail.net"),
            ("PRODUCT", "coffee maker")} <= found
    assert any(k == "DATE" and v.startswith("March 3") for k, v in found)
    for start, end, value in zip(table["start"], table["end"], table["value"], strict=True):
        assert text[start:end] == value


def test_entity_f1_matches_card():
    from training.entities import entity_f1, held_out

    agent = Entities(NoModelParams())
    agent.load("cpu")
    f1 = entity_f1(agent.model, held_out())
    assert f1 > 0.8
    assert abs(f1 * 100 - card_percent("entities", "Held-out entity F1")) <= 1.5


def test_text_without_entities_gives_no_rows():
    table = run_texts(Entities, ["The courier left my parcel at the wrong address."])["entities"]
    assert table["ids"] == []


def test_embeddings_group_texts_by_meaning():
    texts = ["I love it, excellent quality.", "Great and amazing, I love it.",
             "Terrible, I hate it.", "Awful and broken, I hate it."]
    vec = run_texts(Embed, texts, params=EmbedParams(space="sentiment"))["vectors"]["vectors"]
    sim = vec @ vec.T
    assert vec.shape == (4, 32)
    assert sim[0, 1] > sim[0, 2] and sim[2, 3] > sim[2, 1]


def test_cuda_request_falls_back_to_cpu_and_says_so(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    agent = Sentiment(NoModelParams())
    agent.load("cuda:0")
    ctx = RunContext(device="cuda:0")
    out = agent.run({"texts": {"texts": ["I love it."], "ids": ["a"]}}, ctx)["scores"]
    assert agent.device == "cpu" and out["predicted"] == ["positive"]
    assert any("running on the CPU instead" in line for line in ctx.logs)


def test_batches_report_progress_and_honour_cancel():
    seen: list[tuple[int, int | None]] = []
    ctx = RunContext(lifecycle=Lifecycle(execution=ExecutionStrategy(batch_size=4)),
                     on_progress=lambda d, t: seen.append((d, t)))
    run_texts(Intent, [f"Please cancel order #1234{i}." for i in range(10)], ctx)
    assert seen == [(4, 10), (8, 10), (10, 10)]
    ctx.cancel_event.set()
    with pytest.raises(RunCancelledError):
        run_texts(Intent, ["Where is my parcel?"], ctx)


def test_source_generates_labelled_synthetic_sets():
    out = TextSource(TextSourceParams(mode="requests", n=12, seed=3)).run({}, RunContext())["texts"]
    assert len(out["texts"]) == 12 and out["synthetic"] is True
    assert set(out["labels"]) <= set(INTENTS)
    again = TextSource(TextSourceParams(mode="requests", n=12, seed=3)).run({}, RunContext())["texts"]
    assert again["texts"] == out["texts"]


def test_source_reads_txt_and_csv(data_dir: Path):
    (data_dir / "data").mkdir(exist_ok=True)
    (data_dir / "data" / "a.txt").write_text("first\n\n second \n", encoding="utf-8")
    (data_dir / "data" / "b.csv").write_text("id,review\n1,good\n2,\"bad, really\"\n", encoding="utf-8")
    txt = TextSource(TextSourceParams(mode="file", path="a.txt")).run({}, RunContext())["texts"]
    csv = TextSource(TextSourceParams(mode="file", path="b.csv", column="review")).run(
        {}, RunContext())["texts"]
    assert txt["texts"] == ["first", "second"] and txt["labels"] is None
    assert csv["texts"] == ["good", "bad, really"]


@pytest.mark.parametrize(("name", "content", "params", "message"), [
    ("missing.txt", None, {}, "does not exist"),
    ("latin.txt", "café".encode("latin-1"), {}, "not UTF-8"),
    ("c.csv", b"a,b\n1,2\n", {"column": "text"}, "has no column 'text'"),
    ("x.json", b"{}", {}, r"a text file must be a \.txt or \.csv file"),
])
def test_source_file_errors_say_what_to_fix(tmp_path: Path, name, content, params, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TextFileError, match=message):
        TextSource(TextSourceParams(mode="file", path=str(path), **params)).run({}, RunContext())


def test_source_refuses_oversized_files(tmp_path: Path, monkeypatch):
    import engine.agents.text_io as text_io

    monkeypatch.setattr(text_io, "MAX_TEXT_FILE_BYTES", 10)
    (tmp_path / "big.txt").write_text("x" * 11, encoding="utf-8")
    with pytest.raises(TextFileError, match="the limit is"):
        text_io.read_text_file(str(tmp_path / "big.txt"))


@pytest.mark.gpu
def test_classifiers_run_on_cuda_and_agree_with_cpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    texts = [t for t, _ in CHALLENGE_REVIEWS]
    gpu = Sentiment(NoModelParams())
    gpu.load("cuda:0")
    assert gpu.device == "cuda:0"
    a = gpu.run({"texts": texts}, RunContext(device="cuda:0"))["scores"]
    b = run_texts(Sentiment, texts)["scores"]
    assert a["predicted"] == b["predicted"]
    assert torch.allclose(a["scores"], b["scores"], atol=1e-4)


@pytest.mark.parametrize("name", ["sentiment", "intent", "entities", "mf"])
def test_weights_are_small_and_cards_say_synthetic(name):
    path = runtime.WEIGHTS_DIR / f"{name}.safetensors"
    assert path.stat().st_size < 2 * 2**20
    card = runtime.read_card(name)
    assert card is not None and "synthetic" in card and "Limits" in card
