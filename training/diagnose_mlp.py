"""Train the breast-cancer diagnosis MLP on scikit-learn's REAL Wisconsin table:
``python -m training.diagnose_mlp``. Fixed split: 427 training / 142 held-out rows.
"""

from __future__ import annotations

import torch

from engine.agents.nets import Mlp
from engine.agents.tabular_data import cancer_config, cancer_table
from training.fit import accuracy, fit_mlp, parameter_count, save_model, table_matrix, write_card

NAME = "diagnose_mlp"


def _xy(table: dict, features: tuple[str, ...], classes: tuple[str, ...]) -> tuple:
    y = torch.tensor([classes.index(v) for v in table["columns"]["diagnosis"]])
    return table_matrix(table, features), y


def main() -> None:
    config = cancer_config()
    x, y = _xy(cancer_table("train"), config.features, config.classes)
    xt, yt = _xy(cancer_table("held_out"), config.features, config.classes)
    model = Mlp(len(config.features), len(config.classes), config.hidden)
    seconds = fit_mlp(model, x, y, epochs=60)
    acc = accuracy(model, xt, yt)
    path = save_model(NAME, model)
    write_card(NAME, f"""
# diagnose_mlp — breast-cancer diagnosis from cell measurements (REAL data)

**Data: real.** scikit-learn's `load_breast_cancer` (Wisconsin Diagnostic Breast Cancer, UCI):
569 patients, 30 measurements of cell nuclei from fine-needle aspirate images; classes
{config.classes}. Fixed split (`engine.agents.tabular_data.cancer_split`, seed 0): {len(y)}
training / {len(yt)} held-out rows.

**Model.** An MLP (standardisation with stored training statistics, 2 x {config.hidden} ReLU,
linear head); {parameter_count(model):,} parameters, {path.stat().st_size / 1024:.0f} KB.

**Training.** Adam lr 3e-3, 60 epochs, batch 128, seed 0; {seconds:.1f} s of CPU time.
`python -m training.diagnose_mlp`.

**Held-out accuracy: {acc * 100:.1f} %** on {len(yt)} patients (always "benign" would score
{float(yt.float().mean()) * 100:.1f} %). `tests/agents/test_tabular.py` recomputes it.

**Limits.** A teaching example on one small 1990s data set from one hospital; not a medical
device and not for diagnosing anyone.
""")
    print(f"{NAME}: held-out accuracy {acc:.4f}, {seconds:.1f} s")


if __name__ == "__main__":
    main()
