"""Accuracy on defects nobody here tuned on: held-out generators, more surfaces, several seeds.

    python benchmarks/heldout.py run [--generators relief blend] [--surfaces ...] [--labels 10 20 50]
                                     [--seeds 0 1 2] [--methods head lora] [--results FILE] [--option k=v ...]
    python benchmarks/heldout.py report [--results FILE] [--generators ...]
    python benchmarks/heldout.py samples [--surfaces ...] [--generators ...] [--out FILE]

A cell is (surface, generator, labels per class, seed, method, variant). Its
training set has that many labels per class of the generator's six classes
drawn on the surface (seed), its test set 30 per class (another seed, never
seen in training or by any decision). Training is the training process's
own `run()` (edgetl.adapt.worker, what a server's job runs, here in-process
with `train_threads` threads), and the test set is classified by the adapter
loaded as the server loads it (ONNX Runtime, the same preprocessing and
heads). Each cell is appended to the results file as a JSON line as soon as
it ends, so a long run can stop and resume; `report` prints the tables.

Generators and surfaces are in benchmarks/defects/. The defaults are tuned on
benchmarks.defects.TUNING generators and TUNING_SURFACES only; report the
HELD_OUT generators.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.defects import CLASSES, HELD_OUT, TUNING, make_set
from benchmarks.defects.surfaces import SURFACES

TEST_PER_CLASS = 30
TEST_SEED_OFFSET = 1000


def _png(img) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


class Bench:
    """One data directory with the backbone export; a task per cell, trained and tested in-process."""

    def __init__(self, store: Path, threads: int):
        from edgetl.backbones.registry import BackboneRegistry
        from edgetl.runtime.batcher import MicroBatcher
        from edgetl.runtime.session import BackboneSession
        from edgetl.runtime.store import ModelStore
        from edgetl.settings import Settings

        self.root = Path(tempfile.mkdtemp(prefix="edgetl-heldout-"))
        (self.root / "store").symlink_to(store.resolve(), target_is_directory=True)
        self.settings = Settings(data_dir=self.root, providers=("cpu",), train_threads=threads, metrics=False)
        backbone = BackboneRegistry.from_settings(self.settings).get(self.settings.default_backbone)
        self.store = ModelStore(self.root / "store")
        self.record = self.store.ensure(backbone, self.settings.to_dict())
        session = BackboneSession(self.record, self.settings, self.store.trt_cache)
        self.base = {backbone.name: MicroBatcher(session, self.settings.max_batch)}
        self.session = session
        os.environ["EDGETL_TRAIN_THREADS"] = str(threads)

    def cell(self, surface: str, generator: str, n: int, seed: int, method: str, options: dict, scratch: bool = False, also_views: tuple[int, ...] = ()) -> dict:
        from edgetl.adapt.labels import LabelStore
        from edgetl.adapt.worker import run
        from edgetl.db import DB_FILE
        from edgetl.runtime.adapters import open_adapter, predict
        from edgetl.runtime.preprocess import EncodedImage, decode
        from edgetl.runtime.threads import limit_blas

        task = f"t{int(time.time() * 1e6)}"
        labels = LabelStore(self.root, self.root / DB_FILE)
        try:
            for kind, img in make_set(surface, generator, n, 224, seed):
                labels.add(task, CLASSES, _png(img), kind, "bench")
        finally:
            labels.close()
        tmp = self.root / "adapters" / task / ".tmp"
        request = {
            "settings": self.settings.to_dict(), "task": task, "method": method, "class_names": list(CLASSES),
            "backbone": self.settings.default_backbone, "tmp_dir": str(tmp), "options": options, "compare_scratch": scratch,
            "active_path": None, "parent_pid": os.getpid(),
        }
        started = time.monotonic()
        result = run(request, lambda event: None)
        train_s = time.monotonic() - started
        limit_blas(1)  # the test set is classified as a server would (edgetl.runtime.threads); run() gave BLAS the job's threads
        adapter = open_adapter(tmp, self.base, self.settings, self.store.trt_cache)
        test = list(make_set(surface, generator, TEST_PER_CLASS, 224, seed + TEST_SEED_OFFSET))
        tensors = np.stack([self.session.preprocess(decode(EncodedImage(_png(img)), 10**8)) for _, img in test])
        probabilities = predict(adapter, tensors)
        predicted = probabilities.argmax(1)
        truth = np.array([CLASSES.index(kind) for kind, _ in test])
        confusion = np.zeros((len(CLASSES), len(CLASSES)), int)
        for t, p in zip(truth, predicted):
            confusion[t, p] += 1
        # The same adapter answering from V views (serve_views = V changes nothing else it holds: every
        # head is fitted on 8 views of each label), so test-time augmentation is paired with the served answer.
        extra = {}
        for views in also_views:
            p = predict(dataclasses.replace(adapter, views=views), tensors)
            extra[str(views)] = {"test_accuracy": float((p.argmax(1) == truth).mean()), "probabilities": np.round(p, 4).tolist()}
        shutil.rmtree(self.root / "adapters" / task, ignore_errors=True)
        return {
            "test_accuracy": float((predicted == truth).mean()), "val_accuracy": result["metrics"]["accuracy"], "val_n": result["metrics"]["n"],
            "train_s": round(train_s, 2), "confusion": confusion.tolist(), "options": result.get("options", {}),
            # Each test part's class probabilities and true class: an ensemble of methods is replayed from these (`report`).
            "probabilities": np.round(probabilities, 4).tolist(), "truth": truth.tolist(),
            **({"scratch_val_accuracy": result["scratch_metrics"]["accuracy"]} if scratch and result.get("scratch_metrics") else {}),
            **({"int8_paired": result["int8_paired"]} if "int8_paired" in result else {}),
            **({"also_views": extra} if extra else {}),
        }

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _key(row: dict) -> tuple:
    return (row["surface"], row["generator"], row["labels"], row["seed"], row["method"], row["variant"])


def run_cells(args) -> None:
    done = set()
    if args.results.is_file():
        done = {_key(json.loads(line)) for line in args.results.read_text().splitlines() if line.strip()}
    options = dict(_option(o) for o in args.option)
    bench = Bench(args.store, args.threads)
    try:
        for n in args.labels:
            for seed in args.seeds:
                for generator in args.generators:
                    for surface in args.surfaces:
                        for method in args.methods:
                            row = {"surface": surface, "generator": generator, "labels": n, "seed": seed, "method": method, "variant": args.variant}
                            if _key(row) in done:
                                continue
                            row.update(bench.cell(surface, generator, n, seed, method, options, args.scratch, tuple(args.also_views)))
                            row["requested_options"] = options
                            with open(args.results, "a") as f:
                                f.write(json.dumps(row) + "\n")
                            also = "".join(f"  {v} views {r['test_accuracy']:.3f}" for v, r in row.get("also_views", {}).items())
                            print(f"{surface:7} {generator:9} {n:3}/class seed {seed} {method:5} {args.variant:12} test {row['test_accuracy']:.3f}{also}  val {row['val_accuracy']:.3f}  {row['train_s']:.1f} s", flush=True)
    finally:
        bench.close()


def _option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def with_auto(rows: list[dict]) -> list[dict]:
    """Add method "auto" cells: auto's rule (edgetl.adapt.auto) replayed where a head and a LoRA cell
    of the same variant were both trained. They are the models auto itself would train (same data,
    seed and options); its choice reads their validation accuracies, and LoRA's real training time
    stands in for auto's estimate against the default budget."""
    from edgetl.adapt.auto import DEFAULT_BUDGET_S, MIN_VAL, SATISFIED, choose

    by_key = {(r["surface"], r["generator"], r["labels"], r["seed"], r["variant"], r["method"]): r for r in rows}
    out = []
    for key, head in by_key.items():
        if key[-1] != "head" or (*key[:-1], "lora") not in by_key:
            continue
        lora = by_key[(*key[:-1], "lora")]
        tried = head["val_accuracy"] < SATISFIED and head["val_n"] >= MIN_VAL and lora["train_s"] <= DEFAULT_BUDGET_S
        guided = lora.get("options", {}).get("pooling") == "guided"  # LoRA answering through a guided head on its tuned maps
        chosen = choose(head["val_accuracy"], lora["val_accuracy"], head["val_n"], lora_guided=guided)[0] if tried else "head"
        pick = lora if chosen == "lora" else head
        out.append({**pick, "method": "auto", "chose": chosen, "train_s": head["train_s"] + (lora["train_s"] if tried else 0)})
    return rows + out


def ensemble(rows: list[dict]) -> None:
    """Head and LoRA of the same cell (variant included), their test probabilities averaged: what serving both would answer."""
    by_key = {(r["surface"], r["generator"], r["labels"], r["seed"], r["variant"], r["method"]): r for r in rows if "probabilities" in r}
    groups = defaultdict(list)
    for key, head in by_key.items():
        lora = by_key.get((*key[:-1], "lora"))
        if key[-1] != "head" or lora is None:
            continue
        truth = np.array(head["truth"])
        both = (np.array(head["probabilities"]) + np.array(lora["probabilities"])) / 2
        groups[(key[4], key[2])].append((head["test_accuracy"], lora["test_accuracy"], float((both.argmax(1) == truth).mean()), key[0]))
    if not groups:
        return
    print("\nensemble (a cell's head and LoRA, test probabilities averaged; the same test parts):\n")
    print("| variant | labels/class | head | LoRA | head + LoRA | cells | ensemble above both |")
    print("|---|---|---|---|---|---|---|")
    for (variant, n), cells in sorted(groups.items()):
        head, lora, both = (statistics.mean(c[i] for c in cells) for i in range(3))
        above = sum(c[2] > max(c[0], c[1]) for c in cells)
        print(f"| {variant} | {n} | {head:.3f} | {lora:.3f} | {both:.3f} | {len(cells)} | {above} of {len(cells)} |")


def more_views(groups: dict) -> None:
    """Cells answered also from V views by the same adapter (`run --also-views`): served answer against V views, paired.

    An auto cell's V-view figure is the adapter auto chose from one view's validation accuracies;
    a job with serve_views = V validates from V views too, so its choice could differ.
    """
    lines = []
    for (method, variant, n), cells in sorted(groups.items()):
        views = sorted({v for c in cells for v in c.get("also_views", {})}, key=int)
        for v in views:
            paired = [(c["test_accuracy"], c["also_views"][v]["test_accuracy"]) for c in cells if v in c.get("also_views", {})]
            served, more = (statistics.mean(p[i] for p in paired) for i in range(2))
            up, down = sum(b > a for a, b in paired), sum(b < a for a, b in paired)
            lines.append(f"| {method} | {variant} | {n} | {served:.3f} | {v} | {more:.3f} | {more - served:+.3f} | {up} up, {len(paired) - up - down} level, {down} down |")
    if lines:
        print("\ntest-time augmentation (the same adapters answering from V views; `run --also-views`):\n")
        print("| method | variant | labels/class | as served | V | from V views | change | cells |")
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(lines))


def report(args) -> None:
    rows = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["generator"] in args.generators and r["surface"] in args.surfaces and r["seed"] in args.seeds]
    for pair in args.pair:  # LoRA cells of one variant replayed by auto against head cells of another (the head's code unchanged between)
        lora_variant, head_variant = pair.split("=")
        rows += [{**r, "variant": lora_variant, "head_from": head_variant} for r in rows if r["method"] == "head" and r["variant"] == head_variant]
    rows = with_auto(rows)
    groups = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["variant"], r["labels"])].append(r)
    print(f"generators: {', '.join(args.generators)}; surfaces: {', '.join(args.surfaces)}\n")
    print("| method | variant | labels/class | mean test accuracy | spread over seeds (min–max of the seeds' means) | worst surface | cells | train s (median) | auto chose LoRA |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (method, variant, n), cells in sorted(groups.items()):
        by_seed = defaultdict(list)
        by_surface = defaultdict(list)
        for c in cells:
            by_seed[c["seed"]].append(c["test_accuracy"])
            by_surface[c["surface"]].append(c["test_accuracy"])
        seed_means = [statistics.mean(v) for v in by_seed.values()]
        worst = min(by_surface.items(), key=lambda kv: statistics.mean(kv[1]))
        print(
            f"| {method} | {variant} | {n} | {statistics.mean(c['test_accuracy'] for c in cells):.3f} | "
            f"{min(seed_means):.3f}–{max(seed_means):.3f} ({len(seed_means)} seeds) | {worst[0]} {statistics.mean(worst[1]):.3f} | {len(cells)} | "
            f"{statistics.median(c['train_s'] for c in cells):.1f} | "
            + (f"{sum(c.get('chose') == 'lora' for c in cells)} of {len(cells)} |" if method == "auto" else "|")
        )
    scratch = [r for r in rows if "scratch_val_accuracy" in r]
    if scratch:
        print("\ntransfer vs scratch (the same cells' validation split; scratch for a head = the same head on a random-weight backbone's features,"
              " for LoRA = the same network from random weights with every parameter trained):\n")
        print("| surface | generator | labels/class | variant | transfer (this method) val | scratch val |")
        print("|---|---|---|---|---|---|")
        for r in scratch:
            print(f"| {r['surface']} | {r['generator']} | {r['labels']} | {r['variant']} ({r['method']}) | {r['val_accuracy']:.3f} | {r['scratch_val_accuracy']:.3f} |")
    ensemble(rows)
    more_views(groups)
    print("\nper surface (mean over generators and seeds):\n")
    surfaces = [s for s in args.surfaces if any(r["surface"] == s for r in rows)]
    print("| method | variant | labels/class | " + " | ".join(surfaces) + " |")
    print("|---|---|---|" + "---|" * len(surfaces))
    for (method, variant, n), cells in sorted(groups.items()):
        means = []
        for s in surfaces:
            values = [c["test_accuracy"] for c in cells if c["surface"] == s]
            means.append(f"{statistics.mean(values):.3f}" if values else "–")
        print(f"| {method} | {variant} | {n} | " + " | ".join(means) + " |")


def samples(args) -> None:
    """A sheet of test images, one row per (surface, generator), two per class at full size: what the figures are about."""
    rows = []
    for surface in args.surfaces:
        for generator in args.generators:
            images = list(make_set(surface, generator, 2, seed=TEST_SEED_OFFSET))
            row = np.hstack([img for _, img in images])
            for i, (kind, _) in enumerate(images[::2]):
                cv2.putText(row, f"{surface} {generator}: {kind}", (i * 448 + 6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 2)
            rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 75])
    print(args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["run", "report", "samples"])
    parser.add_argument("--generators", nargs="+", default=list(HELD_OUT), help=f"tuning: {TUNING}; held out: {HELD_OUT}")
    parser.add_argument("--surfaces", nargs="+", default=list(SURFACES))
    parser.add_argument("--labels", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["head"])
    parser.add_argument("--variant", default="default", help="a name for the recipe being measured (options, code state)")
    parser.add_argument("--option", action="append", default=[], help="a training option, e.g. epochs=10")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--also-views", type=int, nargs="+", default=[], metavar="V",
        help="run: also answer each test part from its first V views with the same adapter (serve_views = V; test-time augmentation), recorded beside the served answer",
    )
    parser.add_argument("--scratch", action="store_true", help="also train the LoRA network from random weights (the job's compare_scratch) and record its validation accuracy")
    parser.add_argument(
        "--pair", action="append", default=[], metavar="LORA_VARIANT=HEAD_VARIANT",
        help="report: also count HEAD_VARIANT's head cells as LORA_VARIANT's, so auto is replayed on LoRA cells of a new variant (only where the head's code did not change)",
    )
    parser.add_argument("--store", type=Path, default=ROOT / "edgetl-data" / "store")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "heldout.jsonl")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "heldout-samples.jpg", help="samples: where the sheet goes")
    args = parser.parse_args()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    {"run": run_cells, "report": report, "samples": samples}[args.action](args)


if __name__ == "__main__":
    main()
