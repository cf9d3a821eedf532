"""Train the digit CNN on scikit-learn's handwritten digits: ``python -m training.digits_cnn``.

A fixed 75 % / 25 % split (``vision_data.digits_split``); the vision source only ever serves
the held-out 25 %.
"""

from __future__ import annotations

import torch

from engine.agents.nets import CNN_CONFIGS, SmallCnn
from engine.agents.vision_data import digits_images, digits_split
from training.fit import accuracy, parameter_count, save_model, train_classifier, write_card

NAME = "digits_cnn"


def main() -> None:
    torch.manual_seed(0)
    config = CNN_CONFIGS[NAME]
    train_idx, test_idx = digits_split()
    x_train, y_train = digits_images(train_idx, config.size)
    x_test, y_test = digits_images(test_idx, config.size)
    model = SmallCnn(config.in_channels, len(config.classes))
    seconds = train_classifier(model, x_train, y_train, epochs=15, batch_size=32)
    acc = accuracy(model, x_test, y_test)
    path = save_model(NAME, model)
    write_card(NAME, f"""
# digits_cnn — handwritten digit classifier (real data shipped with scikit-learn)

**Data.** scikit-learn's `load_digits` (1,797 real 8x8 grey digits, UCI optical recognition set),
upscaled bilinearly to 32x32. Fixed split: {len(train_idx)} training / {len(test_idx)} held-out
images (`engine.agents.vision_data.digits_split`, seed 0).

**Model.** The same small CNN as lesion_cnn (two conv layers, 32-wide embedding, linear head),
{parameter_count(model):,} parameters, {path.stat().st_size / 1024:.0f} KB.

**Training.** Adam lr 3e-3, 15 epochs, batch 32, seed 0; {seconds:.0f} s of CPU time.
`python -m training.digits_cnn`.

**Held-out accuracy: {acc * 100:.1f} %** on the {len(test_idx)} held-out digits (chance 10 %).
The test `tests/agents/test_vision.py` recomputes it from the committed weights.

**Limits.** Tiny, low-resolution, centred digits from a few writers; photos of handwriting,
other sizes or off-centre digits will do much worse.
""")
    print(f"{NAME}: held-out accuracy {acc:.4f}, {seconds:.1f} s")


if __name__ == "__main__":
    main()
