"""Train the matrix-factorisation recommender on the synthetic shop's interaction log.

Run ``python -m training.mf``; writes engine/agents/weights/mf.safetensors and
engine/agents/cards/mf.md. Deterministic (seed 0), a few seconds on one CPU core. The weights
cover the whole log (the agent's default world); the card's figures come from a second model
trained without each user's last item (leave-last-out), against a popularity baseline.
"""

from __future__ import annotations

import torch

from engine.agents.recsys_data import fingerprint, generate_log, leave_last_out, log_index
from engine.agents.recsys_model import fit_mf, hit_rate_and_auc, popularity_scores
from training.text_training import Stopwatch, save_model

SEED = 0
WORLD = {"n_users": 300, "n_items": 200, "events_per_user": 30, "seed": 0}
HYPER = {"dim": 16, "epochs": 60, "lr": 0.05, "weight_decay": 1e-4}


def evaluate() -> dict[str, float]:
    """Leave-last-out hit-rate@10 and AUC of MF and of the popularity baseline."""
    users, items, pairs = log_index(generate_log(**WORLD)["columns"])
    train, test = leave_last_out(pairs)
    model = fit_mf(train, len(users), len(items), seed=SEED, **HYPER)
    with torch.no_grad():
        hr, auc = hit_rate_and_auc(model.all_scores(), train, test)
    pop_hr, pop_auc = hit_rate_and_auc(popularity_scores(train, len(users), len(items)), train, test)
    return {"hr": hr, "auc": auc, "pop_hr": pop_hr, "pop_auc": pop_auc, "users": len(test),
            "pairs": len(pairs), "items": len(items), "n_users": len(users)}


def main() -> None:
    torch.set_num_threads(1)
    clock = Stopwatch()
    m = evaluate()
    users, items, pairs = log_index(generate_log(**WORLD)["columns"])
    model = fit_mf(pairs, len(users), len(items), seed=SEED, **HYPER)
    model.register_buffer("fingerprint", torch.tensor([fingerprint(users, items, pairs)]))
    card = f"""# Matrix-factorisation recommender (synthetic shop)

- **Task**: score every (user, item) pair from implicit feedback (views, clicks, purchases).
- **Data**: the **synthetic** interaction log of `engine.agents.recsys_data.generate_log`
  ({WORLD["n_users"]} users, {WORLD["n_items"]} items in 8 categories, about
  {WORLD["events_per_user"]} events per user, seed {WORLD["seed"]}): users like one or two
  categories; choices also follow a hidden 4-d affinity and Zipf-like popularity.
  {m["pairs"]} distinct (user, item) pairs.
- **Model**: user and item embeddings (dim {HYPER["dim"]}) plus an item bias; BPR loss with one
  random unobserved item per pair and epoch; Adam lr {HYPER["lr"]}, weight decay
  {HYPER["weight_decay"]}, {HYPER["epochs"]} full-batch epochs, seed {SEED}.
  {clock.seconds():.1f} s on one CPU thread (both models).
- **Held-out evaluation** (leave-last-out: each user's last new item, {m["users"]} users,
  training items excluded from the ranking):

  | scorer | hit-rate@10 | AUC |
  |---|---|---|
  | matrix factorisation | {m["hr"] * 100:.1f} % | {m["auc"]:.3f} |
  | popularity baseline | {m["pop_hr"] * 100:.1f} % | {m["pop_auc"]:.3f} |

- **Weights**: trained on all pairs; `recommend.mf` uses them only when its input log has the same
  fingerprint (this generator, same settings), and otherwise trains a fresh model on the input
  log with the same settings (a few seconds for logs of this size).
- **Limits**: synthetic behaviour; cold-start users and items get only the item bias; no time
  decay, no session context.
"""
    save_model("mf", model, card)
    print(f"mf: HR@10 {m['hr']:.3f} (pop {m['pop_hr']:.3f}) AUC {m['auc']:.3f} "
          f"(pop {m['pop_auc']:.3f}) in {clock.seconds():.1f}s")


if __name__ == "__main__":
    main()
