"""How visible each held-out defect is against its surface, and whether the faint ones are the ones we miss.

    python benchmarks/visibility.py [--generators relief blend] [--surfaces ...] [--results FILE] [--method lora --variant lora-stride8 --labels 50]
    python benchmarks/visibility.py --sheet FILE --surfaces grass --generators blend   # what faint looks like

For every defect part of the test sets `heldout.py` draws (the same seeds, 30
per class), this redraws the clean part the defect was drawn on and compares
the two before the camera's defocus, noise and JPEG
(`benchmarks.defects.make_set_with_parts`), in CIE Lab colour, so a stain
that changes hue and not brightness counts:

- **area**: the pixels the defect changed by more than MASK_CHANGE;
- **change**: the mean colour difference (ΔE, Lab units) inside that area;
- **texture**: how much the clean surface itself varies there: the root of the
  summed variances of L, a and b in a 7 x 7 window around each pixel,
  averaged over the area;
- **contrast** = change / texture: below about 1 the defect changes the part
  by less than the surface varies from pixel to pixel;
- **signal** = contrast x sqrt(area): what a matched filter would collect, so
  a faint defect that covers a large area still counts (a stain), and a
  sharp one of a few pixels does not count for much.

With `--results` (heldout.py's results file) each test part's answer from the
chosen method, variant and label count is joined to its measures (the rows
keep every test part's probabilities in draw order), and the report gives the
defect parts' accuracy per fifth of signal, over every cell and seed found.
Nothing here trains or runs a network.

`--sheet` draws, for the first surface and generator, test parts at the
5th, 15th, 25th, 35th, 50th and 80th percentile of signal: the clean part,
the part as the camera took it (what the model sees), and the change the
defect made, three times amplified (where to look).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.defects import CLASSES, HELD_OUT, MASK_CHANGE, defect_mask, make_set_with_parts
from benchmarks.defects.surfaces import SURFACES
from benchmarks.heldout import TEST_PER_CLASS, TEST_SEED_OFFSET

WINDOW = 7


def local_spread(lab: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """Each pixel's colour spread: the root of L's, a's and b's summed variances over a window x window neighbourhood."""
    mean = cv2.blur(lab, (window, window))
    square = cv2.blur(lab * lab, (window, window))
    return np.sqrt(np.maximum(square - mean * mean, 0).sum(axis=2))


def _lab(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr.astype(np.float32) / 255, cv2.COLOR_BGR2LAB)


def measure(clean: np.ndarray, drawn: np.ndarray) -> dict[str, float] | None:
    """The defect's area, colour change, the surface's colour spread under it, contrast and signal (None: no defect pixels)."""
    mask = defect_mask(clean, drawn)
    area = int(mask.sum())
    if area == 0:
        return None
    lab_clean, lab_drawn = _lab(clean), _lab(drawn)
    change = float(np.linalg.norm(lab_drawn - lab_clean, axis=2)[mask].mean())
    texture = float(local_spread(lab_clean)[mask].mean())
    contrast = change / max(texture, 1.0)
    return {"area": area, "change": change, "texture": texture, "contrast": contrast, "signal": contrast * area**0.5}


def heldout_test_measures(surface: str, generator: str, seed: int, per_class: int = TEST_PER_CLASS) -> list[tuple[str, dict | None]]:
    """(class, measures) for each part of heldout.py's test set of the cell, in its draw order (None for `ok` parts)."""
    return [
        (kind, None if kind == "ok" else measure(clean, drawn))
        for kind, clean, drawn, _taken in heldout_test_parts(surface, generator, seed, per_class)
    ]


def heldout_test_parts(surface: str, generator: str, seed: int, per_class: int = TEST_PER_CLASS):
    """(class, clean part, part with its defect before the camera, the part as the camera took it) of heldout.py's test set, in draw order."""
    return make_set_with_parts(surface, generator, per_class, 224, seed + TEST_SEED_OFFSET)


def sheet(surface: str, generator: str, seed: int, path: Path) -> None:
    """A picture of defects from faint to plain: per row, the clean part, as the camera took it, the change x3."""
    items = []
    for kind, clean, drawn, taken in heldout_test_parts(surface, generator, seed):
        m = None if kind == "ok" else measure(clean, drawn)
        if m is not None:
            items.append((m["signal"], kind, clean, drawn, taken))
    items.sort(key=lambda item: item[0])
    tiles = []
    for q in (0.05, 0.15, 0.25, 0.35, 0.5, 0.8):
        signal, kind, clean, drawn, taken = items[int(q * (len(items) - 1))]
        change = np.clip(np.abs(drawn.astype(np.int16) - clean.astype(np.int16)) * 3, 0, 255).astype(np.uint8)
        row = np.hstack([clean, taken, change])
        cv2.putText(row, f"{surface} {generator} {kind}, signal {signal:.0f} ({q:.0%} of parts fainter)", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1, cv2.LINE_AA)
        tiles.append(row)
    picture = np.vstack([np.hstack(tiles[i : i + 2]) for i in range(0, len(tiles), 2)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_JPEG_QUALITY, 92])
    print(f"wrote {path} ({picture.shape[1]} x {picture.shape[0]}): per part, clean | as the camera took it | the change x3")


def results_rows(path: Path, method: str, variant: str, labels: int) -> dict[tuple[str, str, int], dict]:
    """(surface, generator, seed) -> heldout.py's row for the method, variant and label count."""
    rows = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row["method"] == method and row["variant"] == variant and row["labels"] == labels and row.get("probabilities"):
            rows[(row["surface"], row["generator"], row["seed"])] = row
    return rows


def _fifths(values: np.ndarray) -> np.ndarray:
    return np.quantile(values, [0.2, 0.4, 0.6, 0.8])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generators", nargs="+", default=list(HELD_OUT))
    parser.add_argument("--surfaces", nargs="+", default=list(SURFACES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="the cells' seeds (without --results: whose test sets to measure)")
    parser.add_argument("--results", type=Path, help="heldout.py's results, to join each test part's answer to its measures")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--variant", default="lora-stride8")
    parser.add_argument("--labels", type=int, default=50)
    parser.add_argument("--sheet", type=Path, help="draw faint-to-plain defects of the first surface and generator to this picture, and stop")
    args = parser.parse_args()
    if args.sheet:
        sheet(args.surfaces[0], args.generators[0], args.seeds[0], args.sheet)
        return
    rows = results_rows(args.results, args.method, args.variant, args.labels) if args.results else {}
    defects = [k for k in CLASSES if k != "ok"]

    parts = []  # (surface, generator, kind, measures, correct or None)
    for generator in args.generators:
        for surface in args.surfaces:
            for seed in args.seeds:
                row = rows.get((surface, generator, seed))
                if args.results and row is None:
                    continue
                for i, (kind, m) in enumerate(heldout_test_measures(surface, generator, seed)):
                    correct = None
                    if row is not None:
                        assert row["truth"][i] == CLASSES.index(kind), "the test set is not the one heldout.py drew"
                        correct = int(np.argmax(row["probabilities"][i])) == row["truth"][i]
                    parts.append((surface, generator, kind, m, correct))

    scored = f"; accuracy: {args.method} `{args.variant}` at {args.labels} labels/class, seeds {args.seeds}" if rows else ""
    print(f"Median contrast of the test parts' defects (colour change over the surface's local colour spread, {WINDOW} x {WINDOW} px) "
          f"[median area, px]{scored}")
    print()
    print("| surface | generator | " + " | ".join(defects) + " | signal (median) |" + (" defects right | good parts right |" if rows else ""))
    print("|---|---|" + "---|" * (len(defects) + 1) + ("---|---|" if rows else ""))
    for generator in args.generators:
        for surface in args.surfaces:
            mine = [p for p in parts if p[0] == surface and p[1] == generator]
            if not mine:
                continue
            cells = []
            for kind in defects:
                ms = [p[3] for p in mine if p[2] == kind and p[3] is not None]
                cells.append(f"{statistics.median(m['contrast'] for m in ms):.2f} [{statistics.median(m['area'] for m in ms):.0f}]" if ms else "–")
            signal = statistics.median(p[3]["signal"] if p[3] is not None else 0.0 for p in mine if p[2] != "ok")
            line = f"| {surface} | {generator} | " + " | ".join(cells) + f" | {signal:.0f} |"
            if rows:
                bad = [p[4] for p in mine if p[2] != "ok"]
                good = [p[4] for p in mine if p[2] == "ok"]
                line += f" {np.mean(bad):.3f} | {np.mean(good):.3f} |"
            print(line)
    if not rows:
        return
    # A defect that changed no pixel by more than MASK_CHANGE has signal 0: the faintest of all.
    scored_parts = [p for p in parts if p[2] != "ok"]
    signal = np.array([p[3]["signal"] if p[3] is not None else 0.0 for p in scored_parts])
    right = np.array([p[4] for p in scored_parts], float)
    edges = _fifths(signal)
    which = np.searchsorted(edges, signal, side="right")
    print()
    unmeasured = sum(p[3] is None for p in scored_parts)
    print(f"Defect parts by fifth of signal ({len(scored_parts)} parts, {unmeasured} of them changing no pixel by more than "
          f"{MASK_CHANGE} (signal 0); every surface, generator and seed above):")
    print()
    print("| fifth | signal | parts right | of which: thin (scratch, crack, pit) | blend's share of the fifth |")
    print("|---|---|---|---|---|")
    bounds = [signal.min(), *edges, signal.max()]
    for f in range(5):
        sel = which == f
        thin = sel & np.array([p[2] in ("scratch", "crack", "pit") for p in scored_parts])
        blend = np.mean([scored_parts[i][1] == "blend" for i in np.flatnonzero(sel)])
        print(f"| {f + 1} | {bounds[f]:.0f}–{bounds[f + 1]:.0f} | {right[sel].mean():.3f} ({int(sel.sum())}) | "
              f"{right[thin].mean():.3f} ({int(thin.sum())}) | {blend:.2f} |")

    # Where the errors are: on good parts, on the faintest fifth of defects, on the rest.
    every = [p for p in parts if p[4] is not None]
    ok_wrong = sum(1 for p in every if p[2] == "ok" and not p[4])
    faint = {id(p) for p, f in zip(scored_parts, which) if f == 0}
    faint_wrong = sum(1 for p in scored_parts if id(p) in faint and not p[4])
    other_wrong = sum(1 for p in every if p[2] != "ok" and not p[4]) - faint_wrong
    n = len(every)
    print()
    print(f"Errors among all {n} test parts: {(ok_wrong + faint_wrong + other_wrong) / n:.3f} of them; "
          f"good parts called defective {ok_wrong / n:.3f}, defects of the faintest fifth {faint_wrong / n:.3f}, "
          f"every other defect {other_wrong / n:.3f}.")


if __name__ == "__main__":
    main()
