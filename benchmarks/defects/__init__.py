"""Defect sets for honest evaluation: surfaces, and defect generators written independently of edgetl.synthetic.

Each generator draws the same six classes as edgetl.synthetic (ok, scratch,
crack, stain, pit, burn) by other means. The recipe's defaults are tuned on
`TUNING` generators only; accuracy is reported on `HELD_OUT` ones, which no
tuning decision looked at (see benchmarks/heldout.py and BENCHMARKS.md).
"""

from __future__ import annotations

from benchmarks.defects import relief, strokes, blend, synthetic_s

CLASSES = ("ok", "scratch", "crack", "stain", "pit", "burn")

#: name -> module with draw(img, kind, rng) -> img
GENERATORS = {"synthetic": synthetic_s, "strokes": strokes, "relief": relief, "blend": blend}
TUNING = ("synthetic", "strokes")
HELD_OUT = ("relief", "blend")


def make_set(surface: str, generator: str, per_class: int, size: int = 224, seed: int = 0):
    """(class, BGR image) pairs: `per_class` of each class, deterministic for the seed."""
    import numpy as np

    from benchmarks.defects.surfaces import part

    draw = GENERATORS[generator].draw
    rng = np.random.default_rng([seed, sum(map(ord, surface)), sum(map(ord, generator))])
    for kind in CLASSES:
        for _ in range(per_class):
            yield kind, draw(part(surface, size, rng), kind, rng)
