"""Fit a guided head (edgetl.runtime.guided): a bank of the good class's patches, then a linear classifier on what it sees.

Numpy only, like the plain head. The bank is built as an anomaly task's
(`edgetl.anomaly.bank`: the two coarsest maps, each scaled by its norm over
the good images, a greedy coreset), from every view of the good images it
may use. A good image that trains the classifier is described without its
own patches (leave one out, every view), as a new good part will be seen
by the bank; otherwise every good training image would look perfectly
normal, and the classifier would learn a distance no new part has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edgetl.adapt.trainer_head import train_head
from edgetl.anomaly.bank import SPREAD_K, SPREAD_POWER, greedy_coreset, local_spread, map_scales, patch_features
from edgetl.errors import InvalidInput
from edgetl.runtime.guided import GoodBank

#: Class names taken for the good class when the `good_class` option is not given (case-insensitive).
GOOD_NAMES = ("ok", "good", "pass", "passed", "normal", "okay", "nominal", "no_defect", "good_part")
#: The most patches the good bank keeps (the anomaly bank's default; a few ms per image to search).
MAX_PATCHES = 4096
#: Leave one out needs another good image's patches; below this many good training images the plain head serves.
MIN_GOOD = 2


#: The head's `pooling` option: auto (guided when the task has a good class), guided, or global.
POOLINGS = ("auto", "guided", "global")


def check_pooling(value: str) -> str:
    if value not in POOLINGS:
        raise InvalidInput(f"head option pooling must be 'auto', 'guided' or 'global', got {value!r}")
    return value


def good_class(class_names: Sequence[str], options: dict) -> int | None:
    """The index of the task's good class: the `good_class` option, else a class named like one (GOOD_NAMES), else None."""
    chosen = options.get("good_class")
    if chosen:
        if chosen not in class_names:
            raise InvalidInput(f"good_class {chosen!r} is not a class of this task; classes: {', '.join(class_names)}")
        return list(class_names).index(chosen)
    for i, name in enumerate(class_names):
        if name.strip().lower() in GOOD_NAMES:
            return i
    return None


def fit_guided(
    maps: Sequence[Sequence[dict[str, np.ndarray]]],
    y: np.ndarray,
    rows: np.ndarray,
    good: int,
    num_classes: int,
    options: dict,
    progress: Callable[[dict], None] = lambda e: None,
) -> dict[str, np.ndarray]:
    """A guided head's arrays (bank, scales, mean, std, weight, bias) from the images `rows` (bool [N]).

    `maps[v][i]` are image i's feature maps in view v (view 0: as served).
    """
    names = tuple(maps[0][0])
    views = len(maps)
    good_rows = np.flatnonzero(rows & (y == good))
    if len(good_rows) < MIN_GOOD:
        raise InvalidInput(f"a guided head needs at least {MIN_GOOD} good images to train on, got {len(good_rows)}")
    scales = map_scales([maps[0][i] for i in good_rows], names)
    patches, origin = [], []
    for i in good_rows:
        for v in range(views):
            p, _ = patch_features(maps[v][i], names, scales)
            patches.append(p)
            origin.append(np.full(len(p), i))
    # Rounded as it will be stored (float16), so training sees the distances serving will.
    all_patches = np.concatenate(patches).astype(np.float16).astype(np.float32)
    all_origin = np.concatenate(origin)
    progress({"phase": "train", "message": f"good bank from {len(good_rows)} good images ({len(all_patches)} patches)"})
    chosen, _ = greedy_coreset(all_patches, int(options.get("max_patches") or MAX_PATCHES), int(options.get("seed") or 0))
    bank_origin = all_origin[chosen]
    # Distances to the good bank in units of its local spread, with the anomaly bank's defaults.
    spread = local_spread(all_patches[chosen], bank_origin, all_patches, all_origin, SPREAD_K, int(options.get("seed") or 0))
    bank = GoodBank(names, scales, all_patches[chosen], spread=spread, spread_power=SPREAD_POWER if spread is not None else 0.0)
    picked = np.flatnonzero(rows)
    x = np.empty((views, len(picked), bank.descriptor_size), np.float32)
    for j, i in enumerate(picked):
        x[:, j] = bank.describe_views([maps[v][i] for v in range(views)], bank_origin == i if y[i] == good else None)
        if (j + 1) % 50 == 0 or j + 1 == len(picked):
            progress({"phase": "train", "epoch": j + 1, "epochs": len(picked), "message": f"guided descriptors {j + 1}/{len(picked)}"})
    head = train_head(x.reshape(-1, x.shape[2]), np.tile(y[picked], views), num_classes, options, progress)
    return {**bank.arrays(), **head}
