"""edgetl.synthetic's own defects, as a generator of this suite (the one the defaults were first tuned on)."""

from __future__ import annotations

from edgetl.synthetic import draw_defect


def draw(img, kind, rng):
    return draw_defect(img, kind, rng)
