"""Train the customer-service intent classifier on synthetic requests.

Run ``python -m training.intent``; writes engine/agents/weights/intent.safetensors and
engine/agents/cards/intent.md. Deterministic (seed 0), a few seconds on one CPU core.
"""

from __future__ import annotations

import torch

from engine.agents.text_corpus import CHALLENGE_REQUESTS, INTENTS, generate_requests
from training.text_training import Stopwatch, accuracy, fit_classifier, save_model

SEED = 0
N_TRAIN = 4000
N_TEST = 1200
TEST_SEED = 2002


def held_out() -> tuple[list[str], list[int]]:
    """The held-out requests (a different seed from training) and their intent ids."""
    reqs = generate_requests(N_TEST, seed=TEST_SEED)
    return [r.text for r in reqs], [INTENTS.index(r.intent) for r in reqs]


def challenge() -> tuple[list[str], list[int]]:
    """The hand-written challenge sentences (no template produces them) and their label ids."""
    return [t for t, _ in CHALLENGE_REQUESTS], [INTENTS.index(s) for _, s in CHALLENGE_REQUESTS]


def main() -> None:
    torch.set_num_threads(1)
    clock = Stopwatch()
    reqs = generate_requests(N_TRAIN, seed=SEED)
    model = fit_classifier([r.text for r in reqs], [INTENTS.index(r.intent) for r in reqs],
                           len(INTENTS), seed=SEED)
    acc = accuracy(model, *held_out())
    hand = accuracy(model, *challenge())
    card = f"""# Intent classifier (synthetic customer-service requests)

- **Task**: classify a customer-service request as one of {", ".join(INTENTS)}.
- **Data**: {N_TRAIN} **synthetic** requests generated from templates
  (`engine.agents.text_corpus.generate_requests`, seed {SEED}), balanced over the {len(INTENTS)}
  intents, with random greetings, sign-offs, order numbers, dates, amounts, e-mails and products.
- **Model**: the same hashed-feature classifier as the sentiment model (8,192 buckets, 32-d
  mean-pooled embedding, 32 hidden units, {len(INTENTS)} logits).
- **Training**: Adam, lr 0.02, 12 epochs, batch 64, seed {SEED}; {clock.seconds():.1f} s on one CPU thread.
- **Held-out accuracy**: {acc * 100:.1f} % on {N_TEST} requests generated with seed {TEST_SEED}
  (same templates, different slot values; chance is {100 / len(INTENTS):.1f} %).
- **Hand-written check**: {hand * 100:.1f} % on the {len(CHALLENGE_REQUESTS)} sentences of
  `text_corpus.CHALLENGE_REQUESTS`, written by hand in words no template uses verbatim.
- **Limits**: synthetic, template-shaped English requests; a request with several intents gets
  one; wording far from the templates (slang, other languages) will often be misrouted.
"""
    save_model("intent", model, card)
    print(f"intent: held-out accuracy {acc:.4f} in {clock.seconds():.1f}s")


if __name__ == "__main__":
    main()
