"""A guided head on LoRA's maps: does a backbone tuned to the task's defects make the good bank see more?

    python benchmarks/lora_guided.py run --generators synthetic strokes --surfaces brick grass gravel --labels 20 50 --seeds 0
    python benchmarks/lora_guided.py report --generators synthetic strokes --surfaces brick grass gravel
    python benchmarks/lora_guided.py run ... --option lora_min_stride=1 --quick --results FILE   # LoRA options; the cheap variants only
    python benchmarks/lora_guided.py report ... --results FILE --against OTHER                     # each cell's change against OTHER

The guided head (edgetl.runtime.guided) reads the frozen ImageNet backbone's
stride-16 and stride-32 maps; LoRA tunes the backbone but pools the whole
image. This fits the guided head, by the head job's own code (`fit_guided`),
on the maps of the LoRA-tuned backbone instead, so one model has both: maps
tuned to the defects and pooling where the part is unlike a good one.

Each cell (surface, generator, seed, labels per class) trains LoRA as the
job does (edgetl.adapt.trainer_lora with its defaults: 80 % of the labels
with the best of 8 epochs on the other 20 %, then 2 epochs on every label),
merges it, runs the merged backbone in PyTorch on the head job's 8 views of
every labelled part, and fits the guided head on those maps. Variants, on
30 test parts per class drawn with another seed:
- `spread`: today's guided head on the exported ImageNet backbone (what the head job serves);
- `lora`: the LoRA model's own classifier (what the LoRA job serves);
- `lora-guided`: the guided head on the LoRA-tuned maps;
- `ens`, `lora-guided-ens`: `spread` + `lora`, and `lora-guided` + `lora`, probabilities averaged;
- `lora-guided-v4`: `lora-guided` fitted on the first 4 views only (half the maps and searches);
- `norefit`, `norefit-v4`: the guided head fitted on every label's maps from the model as it was
  before its 2 epochs on every label (the holdout model), in 8 and 4 views: the refit's ~30 s,
  its second export and half the map passes saved, if the head's refit on every label is enough.
Rows go to benchmarks/results/lora-guided.jsonl, with each cell's seconds and
the LoRA options given (`--option k=v`, over trainer_lora.DEFAULTS). `--quick`
leaves out the `-v4` and `norefit` variants (a second model's maps).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.anomaly import Maps
from benchmarks.defects import CLASSES, make_set
from benchmarks.guided_heads import append_cell, cell_parser, pending_cells, read_cells
from benchmarks.heldout import _option  # k=v as heldout.py reads it: ints, floats, booleans, strings

BANK_MAPS = ("stride16", "stride32")
VIEWS = 8
TEST_PER_CLASS = 30
VARIANTS = ("spread", "lora", "lora-guided", "ens", "lora-guided-ens", "lora-guided-v4", "norefit", "norefit-v4")
#: The share of each class's labels LoRA validates its epochs on (the job's split is 20 %).
VALIDATION = 0.2


def _guided(maps_per_view: list[list[dict]], y: np.ndarray, test_maps: list[dict], seed: int):
    """The head job's guided head fitted on maps_per_view[v][i], and its probabilities on test_maps (one view each)."""
    from edgetl.adapt.trainer_guided import fit_guided
    from edgetl.runtime.guided import head_from_arrays

    head = head_from_arrays(fit_guided(maps_per_view, y, np.ones(len(y), bool), CLASSES.index("ok"), len(CLASSES), {"seed": seed}))
    return np.concatenate([head({name: m[name][None] for name in BANK_MAPS}) for m in test_maps])


def _torch_maps(net, x: np.ndarray, batch: int = 32) -> list[dict]:
    """The tuned backbone's bank maps of each image in x [N, 3, H, W] ([C, h, w] each), and its classifier's probabilities."""
    import torch

    from edgetl.adapt.trainer_lora import torch_pool

    maps, probabilities = [], []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[start : start + batch]))
            features = net.backbone(xb)  # one backbone run: the maps and, as TaskNet.forward, the logits
            logits = net.classifier(net.norm(torch_pool(features, net.feature_names)))
            probabilities.append(torch.softmax(logits, 1).numpy())
            for i in range(len(xb)):
                maps.append({name: features[name][i].numpy().astype(np.float32) for name in BANK_MAPS})
    return maps, np.concatenate(probabilities)


def _train_lora(backbone, x: np.ndarray, y: np.ndarray, seed: int, given: dict, holdout_too: bool = True):
    """LoRA trained as the job trains it: the best of its epochs on a 20 % split, then 2 epochs on every label.

    Returns the merged model before the 2 epochs (the holdout model) and after (the served one).
    """
    from edgetl.adapt.trainer_lora import DEFAULTS, build_tasknet, continue_tasknet, merged_for_export, train_tasknet

    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(y), bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        is_val[rng.choice(members, max(1, round(VALIDATION * len(members))), replace=False)] = True
    options = {**DEFAULTS, **given, "seed": seed}
    net, _ = build_tasknet(backbone, len(CLASSES), options)
    train_tasknet(net, x[~is_val], y[~is_val], x[is_val], y[is_val], len(CLASSES), options, False, lambda e: None)
    holdout = merged_for_export(net) if holdout_too else None
    continue_tasknet(net, x, y, len(CLASSES), options, int(options["refit_epochs"]), lambda e: None)
    return holdout, merged_for_export(net)


def run_cells(args) -> None:
    import torch

    from edgetl.adapt.features import VIEWS as VIEW_OPS
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.settings import Settings

    given = dict(_option(o) for o in args.option)
    torch.set_num_threads(args.threads)
    maps = Maps(args.store, args.threads, ",".join(BANK_MAPS))
    backbone = BackboneRegistry.from_settings(Settings(data_dir=ROOT / "edgetl-data", providers=("cpu",))).get("efficientnet_lite0")
    for seed, surface, generator, todo in pending_cells(args):
        test = list(make_set(surface, generator, TEST_PER_CLASS, seed=seed + 1000))
        y_test = np.array([CLASSES.index(k) for k, _ in test])
        test_x = np.stack([maps.session.preprocess(img) for _, img in test])
        test_base = [maps.of(img, 1)[0] for _, img in test]
        drawn = list(make_set(surface, generator, max(todo), seed=seed))
        for n in todo:
            started = time.perf_counter()
            picked = [drawn[c * max(todo) + j] for c in range(len(CLASSES)) for j in range(n)]
            y = np.array([CLASSES.index(k) for k, _ in picked])
            x = np.stack([maps.session.preprocess(img) for _, img in picked])
            base_views = [maps.of(img, VIEWS) for _, img in picked]
            p_spread = _guided([[views[v] for views in base_views] for v in range(VIEWS)], y, test_base, seed)
            trained = time.perf_counter()
            holdout, net = _train_lora(backbone, x, y, seed, given, holdout_too=not args.quick)
            lora_s = time.perf_counter() - trained
            tuned_views = [_torch_maps(net, np.stack([VIEW_OPS[v](xi) for xi in x]))[0] for v in range(VIEWS)]
            tuned_test, p_lora = _torch_maps(net, test_x)
            p_tuned = _guided(tuned_views, y, tuned_test, seed)
            probabilities = {"spread": p_spread, "lora": p_lora, "lora-guided": p_tuned, "ens": p_spread + p_lora, "lora-guided-ens": p_tuned + p_lora}
            if not args.quick:
                held_views = [_torch_maps(holdout, np.stack([VIEW_OPS[v](xi) for xi in x]))[0] for v in range(VIEWS)]
                held_test, _ = _torch_maps(holdout, test_x)
                probabilities.update({
                    "lora-guided-v4": _guided(tuned_views[:4], y, tuned_test, seed),
                    "norefit": _guided(held_views, y, held_test, seed), "norefit-v4": _guided(held_views[:4], y, held_test, seed),
                })
            append_cell(args.results, {
                "surface": surface, "generator": generator, "seed": seed, "labels": n,
                "accuracy": {v: float((p.argmax(1) == y_test).mean()) for v, p in probabilities.items()},
                "lora_s": round(lora_s, 1), "cell_s": round(time.perf_counter() - started, 1), "lora_options": given,
            })


def report(args) -> None:
    rows, by = read_cells(args)
    print("| labels per class | cells | " + " | ".join(VARIANTS) + " | LoRA s (median) |")
    print("|---|---|" + "---|" * (len(VARIANTS) + 1))
    for n, cells in sorted(by.items()):
        print(f"| {n} | {len(cells)} | " + " | ".join(f"{statistics.mean(c['accuracy'].get(v, float('nan')) for c in cells):.3f}" for v in VARIANTS)
              + f" | {statistics.median(c['lora_s'] for c in cells):.0f} |")
    print("\nper cell:\n")
    for r in rows:
        print(f"{r['surface']:7} {r['generator']:9} seed {r['seed']} {r['labels']:2}/class  " + "  ".join(f"{v} {r['accuracy'][v]:.3f}" for v in VARIANTS if v in r['accuracy']))
    if args.against:
        _against(rows, args)


def _against(rows: list[dict], args) -> None:
    """Each cell's lora and lora-guided accuracy and LoRA seconds against the same cell in another results file."""
    key = lambda r: (r["surface"], r["generator"], r["seed"], r["labels"])  # noqa: E731
    other = {key(r): r for r in read_cells(argparse.Namespace(**{**vars(args), "results": args.against}))[0]}
    print(f"\nagainst {args.against}:\n")
    deltas: dict[str, list[float]] = {"lora": [], "lora-guided": []}
    for r in rows:
        o = other.get(key(r))
        if o is None:
            continue
        for v in deltas:
            deltas[v].append(r["accuracy"][v] - o["accuracy"][v])
        print(f"{r['surface']:7} {r['generator']:9} {r['labels']:2}/class  lora {r['accuracy']['lora']:.3f} ({r['accuracy']['lora'] - o['accuracy']['lora']:+.3f})"
              f"  lora-guided {r['accuracy']['lora-guided']:.3f} ({r['accuracy']['lora-guided'] - o['accuracy']['lora-guided']:+.3f})  LoRA {r['lora_s']:.0f} s against {o['lora_s']:.0f}")
    for v, d in deltas.items():
        if d:
            print(f"{v}: mean change {statistics.mean(d):+.4f} over {len(d)} cells; up {sum(x > 0 for x in d)}, level {sum(x == 0 for x in d)}, down {sum(x < 0 for x in d)}")


def main() -> None:
    parser = cell_parser(__doc__, "lora-guided.jsonl")
    parser.add_argument("--option", action="append", default=[], help="a LoRA option over trainer_lora.DEFAULTS, e.g. lora_min_stride=1")
    parser.add_argument("--quick", action="store_true", help="the spread, lora, lora-guided and ensemble variants only")
    parser.add_argument("--against", type=Path, help="report: another results file to compare each cell with")
    args = parser.parse_args()
    run_cells(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
