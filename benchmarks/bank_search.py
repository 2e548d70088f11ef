"""The nearest-patch search of a guided head's answer and an anomaly score: `BankSearch` against the
plain `nearest_distances` it replaced, on one image's patches (and an image's 8 views), banks of
4,096, 2,048 and 1,024 rows.

    .venv/bin/python benchmarks/bank_search.py [--threads 1 2] [--rounds 7]

Patches are real: the built-in backbone's stride-16 and stride-32 maps of drawn parts (brick,
`synthetic`), scaled as a bank scales them, the bank a coreset of good parts' patches with its
spread, as `fit_guided` builds it. Rounds interleave the two searches so the machine's drift
hits both; the figure is the median of each round's median, and the ratio is per round.
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

NAMES = ("stride16", "stride32")


def _patches(store: Path, threads: int, parts: int) -> np.ndarray:
    """Patches [parts * 196, 432] of drawn good parts, as a bank describes them."""
    from benchmarks.anomaly import Maps
    from benchmarks.defects import make_set
    from edgetl.anomaly.bank import map_scales, patch_features

    maps = Maps(store, threads, ",".join(NAMES))
    drawn = [maps.of(img, 1)[0] for kind, img in make_set("brick", "synthetic", parts, seed=0) if kind == "ok"]
    scales = map_scales(drawn, NAMES)
    return np.concatenate([patch_features(m, NAMES, scales)[0] for m in drawn]).astype(np.float32)


def _time(search, queries: np.ndarray, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        search(queries)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="BLAS threads (a server holds BLAS to one)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--store", type=Path, default=ROOT / "edgetl-data" / "store")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    from edgetl.anomaly.bank import SPREAD_K, SPREAD_POWER, BankSearch, greedy_coreset, local_spread, nearest_distances, spread_weights

    patches = _patches(args.store, 2, 60)  # 60 good parts: 11,760 patches
    origin = np.repeat(np.arange(len(patches) // 196), 196)
    held = patches[-8 * 196 :]  # the last 8 parts are the queries, not in the bank
    pool, pool_origin = patches[: -8 * 196], origin[: -8 * 196]
    from benchmarks.serve_overhead import machine

    print(f"machine: {machine()}; {len(pool)} good patches of {pool.shape[1]} numbers\n")
    print("| bank rows | BLAS threads | patches searched | nearest_distances ms | BankSearch ms | ratio (median [min–max] of rounds) |")
    print("|---|---|---|---|---|---|")
    for rows in (4096, 2048, 1024):
        chosen, _ = greedy_coreset(pool, rows, 0)
        bank = pool[chosen]
        spread = local_spread(bank, pool_origin[chosen], pool, pool_origin, SPREAD_K, 0)
        weights = spread_weights(spread, SPREAD_POWER, len(bank))[2]
        bank_sq = np.einsum("md,md->m", bank, bank)
        search = BankSearch(bank, weights)
        assert np.allclose(search(held), nearest_distances(held, bank, bank_sq, None, weights), rtol=1e-4, atol=1e-3)
        for threads in args.threads:
            with threadpool_limits(threads):
                for queries in (held[:196], held):
                    old, new = [], []
                    for _ in range(args.rounds):
                        old.append(_time(lambda q: nearest_distances(q, bank, bank_sq, None, weights), queries, args.repeats))
                        new.append(_time(search, queries, args.repeats))
                    ratios = [a / b for a, b in zip(old, new)]
                    print(
                        f"| {rows} | {threads} | {len(queries)} | {statistics.median(old):.2f} | {statistics.median(new):.2f} | "
                        f"{statistics.median(ratios):.2f} [{min(ratios):.2f}–{max(ratios):.2f}] |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
