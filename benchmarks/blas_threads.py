"""A backbone run and a bank search back to back, with numpy's BLAS on its default threads and on one.

    python benchmarks/blas_threads.py [--rounds 5] [--store edgetl-data/store]

Why the server holds BLAS to one thread (edgetl/runtime/threads.py): an
anomaly task or a guided head searches its bank (one numpy matrix product)
right after each ONNX Runtime run, and both pools keep their threads
spinning after their work. Times the backbone alone, a 4,096-patch search
of 196 patches alone, and the pair, each as the median of interleaved rounds,
with ONNX Runtime's threads spinning (edgetl's default) and not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", type=Path, default=ROOT / "edgetl-data" / "store")
    args = parser.parse_args()

    from threadpoolctl import threadpool_info, threadpool_limits

    from benchmarks.serve_overhead import machine
    from edgetl.anomaly.bank import nearest_distances
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.runtime.batcher import MicroBatcher
    from edgetl.runtime.session import BackboneSession
    from edgetl.runtime.store import ModelStore
    from edgetl.settings import Settings

    rng = np.random.default_rng(0)
    bank = rng.standard_normal((4096, 432)).astype(np.float32)
    bank_sq = np.einsum("md,md->m", bank, bank)
    patches = rng.standard_normal((196, 432)).astype(np.float32)
    image = rng.standard_normal((3, 224, 224)).astype(np.float32)
    default_blas = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
    results = {"machine": machine(), "command": " ".join(sys.argv), "default_blas_threads": default_blas, "ms": {}}
    for spinning in (True, False):
        settings = Settings(data_dir=args.store.parent, providers=("cpu",), metrics=False, ort_spinning=spinning)
        backbone = BackboneRegistry.from_settings(settings).get(settings.default_backbone)
        store = ModelStore(args.store)
        record = store.ensure(backbone, settings.to_dict())
        batcher = MicroBatcher(BackboneSession(record, settings, store.trt_cache), 1)
        names = tuple(record.manifest["spec"]["feature_maps"][-2:])
        steps = {
            "backbone": lambda: batcher.run(image, names),
            "search": lambda: nearest_distances(patches, bank, bank_sq),
            "pair": lambda: (batcher.run(image, names), nearest_distances(patches, bank, bank_sq)),
        }
        times: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for blas in (default_blas, 1):
                with threadpool_limits(blas, user_api="blas"):
                    for step, run in steps.items():
                        for _ in range(3):
                            run()  # warm
                        started = time.perf_counter()
                        for _ in range(20):
                            run()
                        times.setdefault(f"{step}, BLAS {blas}", []).append((time.perf_counter() - started) / 20 * 1000)
        label = "spinning" if spinning else "not spinning"
        results["ms"][label] = {k: round(statistics.median(v), 2) for k, v in times.items()}
        print(label, json.dumps(results["ms"][label]), flush=True)
    out = ROOT / "benchmarks" / "results" / "blas-threads.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
