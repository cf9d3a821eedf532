"""Train the credit scorer on GENERATED applicants: ``python -m training.credit_mlp``.

Training: 8,000 applicants (seed 0); held-out: 5,000 (seed 1). About 12 % default.
"""

from __future__ import annotations

import torch

from engine.agents.nets import Mlp
from engine.agents.tabular_data import CREDIT, credit_table
from training.fit import accuracy, auc, fit_mlp, parameter_count, save_model, table_matrix, write_card

NAME = "credit_mlp"


def main() -> None:
    train, test = credit_table(8_000, 0), credit_table(5_000, 1)
    x, y = table_matrix(train, CREDIT.features), torch.tensor(train["columns"]["defaulted"])
    xt, yt = table_matrix(test, CREDIT.features), torch.tensor(test["columns"]["defaulted"])
    model = Mlp(len(CREDIT.features), len(CREDIT.classes), CREDIT.hidden)
    seconds = fit_mlp(model, x, y, epochs=8)
    with torch.no_grad():
        p_default = model(xt).softmax(1)[:, 1]
    held_auc, acc = auc(p_default, yt), accuracy(model, xt, yt)
    base = 1 - float(yt.float().mean())
    path = save_model(NAME, model)
    write_card(NAME, f"""
# credit_mlp — credit default scorer (GENERATED data)

**Data: GENERATED.** `engine.agents.tabular_data.credit_table`: applicants with
{", ".join(CREDIT.features)}; `defaulted` is drawn from a known logistic rule of debt ratio,
late payments, history, loan-to-income and employment, so even a perfect model errs.
Not real credit data; do not use it to judge people.

**Model.** An MLP (standardisation with stored training statistics, 2 x {CREDIT.hidden} ReLU,
linear head; classes {CREDIT.classes}); {parameter_count(model):,} parameters,
{path.stat().st_size / 1024:.0f} KB.

**Training.** 8,000 applicants (seed 0), Adam lr 3e-3, 8 epochs, batch 128;
{seconds:.1f} s of CPU time. `python -m training.credit_mlp`.

**Held-out AUC: {held_auc * 100:.1f} %**, accuracy {acc * 100:.1f} % (always "repay" would score
{base * 100:.1f} %) on 5,000 applicants from seed 1. `tests/agents/test_tabular.py` recomputes
the AUC from the committed weights.

**Limits.** The rule is invented; a score is a probability under that rule only.
""")
    print(f"{NAME}: held-out AUC {held_auc:.4f}, accuracy {acc:.4f}, {seconds:.1f} s")


if __name__ == "__main__":
    main()
