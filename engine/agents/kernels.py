"""The sizes of the vision filters' kernels, without torch: the filters themselves
(``vision_data.blur``, ``vision_ops.median_filter``) and the time ``vision.preprocess`` declares
for them (``engine.agents.vision``) read the same rules here.
"""

from __future__ import annotations

SHIFTED_TAPS = 15  # gaussian kernels up to this long: weighted sums of shifted views; longer: convolutions


def gaussian_radius(sigma: float) -> int:
    """The radius of the gaussian kernel of ``sigma`` (out to 3 sigma, at least 1)."""
    return max(1, int(3 * sigma))


def median_side(strength: float) -> int:
    """The side of the median filter's square for a denoise ``strength`` (its radius, rounded)."""
    return 2 * max(1, round(strength)) + 1
