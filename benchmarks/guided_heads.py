"""Anomaly-guided pooling for defect classifiers, measured outside the server (the server's default head since 2026-11-29: edgetl/runtime/guided.py).

    python benchmarks/guided_heads.py run --generators synthetic strokes --surfaces brick grass gravel --seeds 0 1
    python benchmarks/guided_heads.py run --generators relief blend --seeds 0 1 2        # the held-out check
    python benchmarks/guided_heads.py report [--generators relief blend]

The served head pools every feature map over the whole image (mean and
max), so a thin scratch is a few positions among 196 of texture. The
anomaly bank (edgetl.anomaly) already knows which positions are unlike the
good parts. This pools *there*: a bank of the labelled `ok` images'
patches (stride-16 and stride-32 maps, as anomaly tasks use), each image's
patch distances to it, and as features the mean of its K most anomalous
patches, a softmax-weighted mean of all patches, and its K largest
distances. A training image of class `ok` is scored without its own
patches (leave one out, every view), as a new good part would be.

Fitted exactly as the head job fits the served head: every label, 8 views
(flips and quarter turns), `edgetl.adapt.trainer_head.train_head`, on the
exported Lite0 through ONNX Runtime. Variants: `base` (the served head's
features), `guided`, `base+guided`. Test set: 30 images per class from
another seed. One row per (surface, generator, seed, labels per class) in
benchmarks/results/guided-heads.jsonl.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.anomaly import Maps
from benchmarks.defects import CLASSES, TUNING, make_set
from benchmarks.defects.surfaces import SURFACES

HEAD_MAPS = ("pooled", "stride8", "stride16", "stride32")
BANK_MAPS = ("stride16", "stride32")
#: The most anomalous patches averaged into the defect descriptor.
K = 4
VIEWS = 8
TEST_PER_CLASS = 30
VARIANTS = ("base", "guided", "base+guided")


def guided_features(maps, scales, bank, bank_sq, excluded=None) -> np.ndarray:
    """One image: its K most anomalous patches' mean, a softmax-weighted mean of all its patches, its K largest distances, their mean and spread."""
    import edgetl.anomaly.bank as B

    from edgetl.runtime.guided import guided_features as describe

    patches, _ = B.patch_features(maps, BANK_MAPS, scales)
    return describe(patches, B.nearest_distances(patches, bank, bank_sq, excluded), K)


def run_cells(args) -> None:
    import edgetl.anomaly.bank as B
    from edgetl.adapt.trainer_head import train_head
    from edgetl.runtime.heads import pool_features

    maps = Maps(args.store, args.threads, ",".join(HEAD_MAPS))
    base = lambda m: pool_features({k: v[None] for k, v in m.items()}, HEAD_MAPS)[0]  # noqa: E731
    for seed, surface, generator, todo in pending_cells(args):
        test = [(CLASSES.index(k), maps.of(img)[0]) for k, img in make_set(surface, generator, TEST_PER_CLASS, seed=seed + 1000)]
        y_test = np.array([c for c, _ in test])
        for n in todo:
            labelled = [(CLASSES.index(k), maps.of(img, VIEWS)) for k, img in make_set(surface, generator, n, seed=seed)]
            train = [(c, i, m) for i, (c, views) in enumerate(labelled) for m in views]
            y = np.array([c for c, _, _ in train])
            ok = [(i, m) for c, i, m in train if c == 0]
            scales = B.map_scales([m for _, m in ok], BANK_MAPS)
            rows = [B.patch_features(m, BANK_MAPS, scales)[0] for _, m in ok]
            bank = np.concatenate(rows).astype(np.float32)
            origin = np.concatenate([np.full(len(r), i) for (i, _), r in zip(ok, rows)])
            chosen, _ = B.greedy_coreset(bank, 4096, 0)
            bank, origin = np.ascontiguousarray(bank[chosen]), origin[chosen]
            bank_sq = np.einsum("md,md->m", bank, bank)
            g_train = np.stack([guided_features(m, scales, bank, bank_sq, origin == i) for _, i, m in train])
            g_test = np.stack([guided_features(m, scales, bank, bank_sq) for _, m in test])
            b_train, b_test = np.stack([base(m) for _, _, m in train]), np.stack([base(m) for _, m in test])
            features = {"base": (b_train, b_test), "guided": (g_train, g_test), "base+guided": (np.hstack([b_train, g_train]), np.hstack([b_test, g_test]))}
            row = {"surface": surface, "generator": generator, "seed": seed, "labels": n, "accuracy": {}}
            for variant, (x, x_test) in features.items():
                head = train_head(x.astype(np.float32), y, len(CLASSES), {})
                logits = ((x_test - head["mean"]) / head["std"]) @ head["weight"].T + head["bias"]
                row["accuracy"][variant] = float((logits.argmax(1) == y_test).mean())
            append_cell(args.results, row)


def report(args) -> None:
    rows, by = read_cells(args)
    print("| labels per class | cells | " + " | ".join(VARIANTS) + " | guided − base (min to max over cells) |")
    print("|---|---|" + "---|" * len(VARIANTS) + "---|")
    for n, cells in sorted(by.items()):
        mean = {v: statistics.mean(c["accuracy"][v] for c in cells) for v in VARIANTS}
        gain = [c["accuracy"]["guided"] - c["accuracy"]["base"] for c in cells]
        print(f"| {n} | {len(cells)} | " + " | ".join(f"{mean[v]:.3f}" for v in VARIANTS) + f" | {100 * statistics.mean(gain):+.1f} ({100 * min(gain):+.1f} to {100 * max(gain):+.1f}) |")
    surfaces = sorted({r["surface"] for r in rows}, key=list(SURFACES).index)
    print("\nper surface, guided / base, mean over generators, seeds and label counts:\n")
    print("| " + " | ".join(surfaces) + " |\n" + "|---" * len(surfaces) + "|")
    print("| " + " | ".join(
        f"{statistics.mean(r['accuracy']['guided'] for r in rows if r['surface'] == s):.3f} / {statistics.mean(r['accuracy']['base'] for r in rows if r['surface'] == s):.3f}" for s in surfaces
    ) + " |")


def pending_cells(args):
    """(seed, surface, generator, labels per class still to run) for every cell the results file lacks."""
    done = set()
    if args.results.is_file():
        done = {_key(json.loads(line)) for line in args.results.read_text().splitlines() if line.strip()}
    for seed in args.seeds:
        for surface in args.surfaces:
            for generator in args.generators:
                todo = [n for n in args.labels if _key({"surface": surface, "generator": generator, "seed": seed, "labels": n}) not in done]
                if todo:
                    yield seed, surface, generator, todo


def append_cell(results: Path, row: dict) -> None:
    """One cell's row, appended as it ends (a long run resumes where it stopped), and a line on the console."""
    results.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no results folder (it is not tracked)
    with open(results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{row['surface']:7} {row['generator']:9} seed {row['seed']} {row['labels']:2}/class  " + "  ".join(f"{v} {a:.3f}" for v, a in row["accuracy"].items()), flush=True)


def read_cells(args) -> tuple[list[dict], dict[int, list[dict]]]:
    """The results' rows of the asked generators and surfaces, and the same grouped by labels per class; the report's heading printed."""
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["generator"] in args.generators and r["surface"] in args.surfaces]
    by = defaultdict(list)
    for r in rows:
        by[r["labels"]].append(r)
    print(f"generators {', '.join(args.generators)}; surfaces {', '.join(sorted({r['surface'] for r in rows}))}; seeds {sorted({r['seed'] for r in rows})}\n")
    return rows, by


def _key(row: dict) -> tuple:
    return (row["surface"], row["generator"], row["seed"], row["labels"])


def cell_parser(doc: str, results: str) -> argparse.ArgumentParser:
    """The command line of a script whose cells are (surface, generator, seed, labels per class): run and report."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("command", choices=["run", "report"])
    parser.add_argument("--generators", nargs="+", default=list(TUNING))
    parser.add_argument("--surfaces", nargs="+", default=list(SURFACES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--labels", nargs="+", type=int, default=[10, 20, 50])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--store", type=Path, default=ROOT / "edgetl-data" / "store")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / results)
    return parser


def main() -> None:
    args = cell_parser(__doc__, "guided-heads.jsonl").parse_args()
    run_cells(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
