"""The patch classifier's (multiple-instance) options, refitted from cached patches: no backbone run.

    python benchmarks/guided_variants.py run --generators synthetic strokes --surfaces brick grass gravel \
        --seeds 0 --only spread mil --tta --cache /tmp/mil-cache            # the cache (about 1.4 GB a cell)
    python benchmarks/mil_grid.py /tmp/mil-cache --variants base l2=1e-2 tau=0.5

Each variant is `name` or `key=value,key=value` over fit_mil's options (tau,
l2, steps, lr) and two of the data's: `views` (the labelled views fitted,
of 8) and `distance=0` (patches without their distance to the good bank).
Reports, per labels per class, the mean test accuracy of the patch
classifier from the served view, from all 8 views averaged (tta), and
averaged with the guided head's probabilities (ens, ens-tta).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.guided_variants import K, descriptors_from_rows, fit_mil  # noqa: E402

FIT_OPTIONS = {"tau": float, "l2": float, "steps": int, "lr": float}
#: `--head` variants: the guided head's own options, refitted on descriptors made from the cached patches.
HEAD_OPTIONS = {"k": int, "l2": float, "epochs": int, "lr": float}


def parse_variant(text: str) -> dict:
    if text == "base":
        return {}
    options = {}
    for part in text.split(","):
        key, value = part.split("=")
        options[key] = {**FIT_OPTIONS, **HEAD_OPTIONS}.get(key, int)(value)
    return options


def score(cell: Path, options: dict) -> dict[str, float]:
    z = np.load(cell)
    x, y, test, y_test, spread = z["x"], z["y"], z["test"], z["y_test"], z["spread"]
    views = options.get("views", 8)
    keep = np.arange(len(x)) % 8 < views  # rows are image-major, 8 views each
    x, y = x[keep].astype(np.float32), y[keep]
    if not options.get("distance", 1):
        x, test = x[..., :-1], test[..., :-1]
    predict = fit_mil(x, y, int(y.max()) + 1, **{k: v for k, v in options.items() if k in FIT_OPTIONS})
    p = predict(test.reshape(-1, *test.shape[2:]).astype(np.float32)).reshape(len(test), test.shape[1], -1)

    def accuracy(q):
        return float((q.argmax(1) == y_test).mean())

    return {
        "mil": accuracy(p[:, 0]), "tta": accuracy(p.mean(1)),
        "ens": accuracy(p[:, 0] + spread[:, 0]), "ens-tta": accuracy(p.mean(1) + spread.mean(1)),
        "head": accuracy(spread[:, 0]), "head-tta": accuracy(spread.mean(1)),
    }


def score_head(cell: Path, options: dict) -> dict[str, float]:
    """The guided head (the served descriptor, `train_head`) with other options, from the same cached patches and distances."""
    from edgetl.adapt.trainer_head import train_head

    z = np.load(cell)
    x, y, test, y_test = z["x"], z["y"], z["test"], z["y_test"]
    k = options.get("k", K)
    head_options = {"weight_decay": options.get("l2"), "epochs": options.get("epochs"), "learning_rate": options.get("lr")}
    head = train_head(descriptors_from_rows(x, k), y, int(y.max()) + 1, {name: v for name, v in head_options.items() if v is not None})
    logits = ((descriptors_from_rows(test, k) - head["mean"]) / head["std"]) @ head["weight"].T + head["bias"]  # [N, V, C]
    q = np.exp(logits - logits.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    return {"head": float((q[:, 0].argmax(1) == y_test).mean()), "head-tta": float((q.mean(1).argmax(1) == y_test).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path)
    parser.add_argument("--variants", nargs="+", default=["base"])
    parser.add_argument("--head", action="store_true", help="variants of the guided head's options (k, l2, epochs, lr) instead of the patch classifier's")
    parser.add_argument("--cells", default="*", help="a glob over the cache's files (surface-generator-seed-labels.npz)")
    args = parser.parse_args()
    cells = sorted(args.cache.glob(args.cells + ".npz"))
    for variant in args.variants:
        options = parse_variant(variant)
        by_labels = defaultdict(list)
        started = time.monotonic()
        for cell in cells:
            result = (score_head if args.head else score)(cell, options)
            by_labels[int(cell.stem.rsplit("-", 1)[1])].append(result)
            print(f"  {variant} {cell.stem}: " + " ".join(f"{k} {v:.3f}" for k, v in result.items()), flush=True)
        for n, results in sorted(by_labels.items()):
            print(f"{variant:24} {n:2}/class ({len(results)} cells): " + "  ".join(f"{k} {statistics.mean(r[k] for r in results):.3f}" for k in results[0]), flush=True)
        print(f"{variant}: {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
