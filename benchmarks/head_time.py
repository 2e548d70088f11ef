"""A head job's time on 300 images (50 per class, brick, relief), the first time and again with every feature cached; guided and plain.

    python benchmarks/head_time.py

Each job is the training process's own `run()` in-process on 2 threads (as
benchmarks/heldout.py runs it); the second job of each pair finds the first
one's per-image, per-view cache (pooled features, or a guided head's maps).
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.heldout import Bench  # noqa: E402

bench = Bench(ROOT / "edgetl-data" / "store", 2)
out = {}
try:
    for pooling in ("global", "guided"):
        for attempt in ("first", "cached"):
            row = bench.cell("brick", "relief", 50, 7, "head", {"pooling": pooling})
            out[f"{pooling} {attempt}"] = {"train_s": row["train_s"], "test": row["test_accuracy"]}
            print(pooling, attempt, row["train_s"], row["test_accuracy"], flush=True)
finally:
    bench.close()
print(json.dumps(out))
