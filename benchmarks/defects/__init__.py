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


def make_set_with_parts(surface: str, generator: str, per_class: int, size: int = 224, seed: int = 0):
    """(class, clean part, the part with its defect before the camera, the image) quadruples: `make_set`'s images, the same random draws.

    A generator's `camera` (defocus, noise and JPEG, which change every pixel
    a little and are not the defect) comes after the defect; without one, the
    defect and the image are the same picture.
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
                yield kind, clean, drawn, module.camera(drawn, rng)
            else:
                drawn = module.draw(clean, kind, rng)
                yield kind, clean, drawn, drawn


def defect_mask(clean, drawn):
    """Where drawing the defect changed the clean part by more than MASK_CHANGE ([h, w] bool)."""
    import numpy as np

    return np.abs(drawn.astype(np.int16) - clean.astype(np.int16)).sum(axis=2) > MASK_CHANGE


def make_set_with_masks(surface: str, generator: str, per_class: int, size: int = 224, seed: int = 0):
    """(class, BGR image, defect mask [h, w] bool) triples: the images of `make_set`, the same random draws.

    The mask is `defect_mask`, measured before a generator's `camera`; `ok`
    parts have an empty mask.
    """
    for kind, clean, drawn, image in make_set_with_parts(surface, generator, per_class, size, seed):
        yield kind, image, defect_mask(clean, drawn)
