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


#: A pixel belongs to the defect when drawing it changed the pixel by more than this (|ΔB| + |ΔG| + |ΔR|, of 765).
MASK_CHANGE = 30


def make_set_with_masks(surface: str, generator: str, per_class: int, size: int = 224, seed: int = 0):
    """(class, BGR image, defect mask [h, w] bool) triples: the images of `make_set`, the same random draws.

    The mask is where the defect changed the clean part by more than
    MASK_CHANGE, measured before a generator's `camera` (defocus, noise and
    JPEG change every pixel a little, and are not the defect); `ok` parts
    have an empty mask.
    """
    import numpy as np

    from benchmarks.defects.surfaces import part

    module = GENERATORS[generator]
    rng = np.random.default_rng([seed, sum(map(ord, surface)), sum(map(ord, generator))])
    for kind in CLASSES:
        for _ in range(per_class):
            clean = part(surface, size, rng)
            if hasattr(module, "camera"):  # the same draws as module.draw: the defect, then the camera
                drawn = module.defect(clean, kind, rng)
                image = module.camera(drawn, rng)
            else:
                image = drawn = module.draw(clean, kind, rng)
            change = np.abs(drawn.astype(np.int16) - clean.astype(np.int16)).sum(axis=2)
            yield kind, image, change > MASK_CHANGE
