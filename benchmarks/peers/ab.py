"""Is server B faster than server A? Two running servers, measured in alternating slices, B over A with an interval.

    taskset -c 0 edgetl serve --port 50051 ...      # A: main, say
    taskset -c 0 edgetl serve --port 50052 ...      # B: the change (another checkout, or a config)
    python benchmarks/peers/ab.py 127.0.0.1:50051 127.0.0.1:50052 --api classify --input jpeg --concurrency 1
    python benchmarks/peers/ab.py A B --api kserve --input pixels --concurrency 1 4 --rounds 4 --seconds 10

For the question every change to the serving path asks. On this project's
VMs a server's requests/s moves by 10-20 % over minutes and by 2-5 % from one
run to the next, so timing A, then B, cannot see a 2 % change; this takes
the pair `run.py` takes between edgetl and a peer: per round, new clients
for both, then 0.5 s slices of A and B in a shuffled order, pass after
pass, so each of B's slices has an A slice seconds away. Reported per cell:
both servers' requests/s (median of the rounds), and B over A: the median of
every pass's ratio with a 95 % interval that resamples rounds, then passes
(`run.clustered_median_interval`: a round's passes move together), and in
how many passes B was ahead. An interval that straddles 1 is "no difference
this VM can see". (`benchmarks/server_cpu.py` A/Bs two checkouts with the
model taken out, to see the fraction of a millisecond around it; this keeps
the model in, for whether a change shows in what a camera gets.)

The servers are yours to start (pin them where `run.py` pins its servers:
every CPU but the last); this process, the client, pins itself to the last
CPU. The clients are `run.py`'s: edgetl.v1 `Classify` or `ClassifyStream`
with edgetl's stubs, or KServe v2 `ModelInfer` with tritonclient, each answer
checked to be the test image's label. Either server can be a peer behind
KServe v2 (`--api kserve`).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as peers  # noqa: E402  (benchmarks/peers/run.py: the clients, the slices)

CLIENTS = {"classify": peers.edgetl_call, "stream": peers.edgetl_stream_call, "kserve": peers.kserve_call}


def measure(args) -> dict:
    """Rounds of blocks (one per input and concurrency), A and B in alternating slices in each; every slice kept."""
    _, client_cpus, _, _ = peers.split_cpus(args.pin)
    pinned = f"client on CPU {client_cpus}, the servers where they were started" if client_cpus else "client on every CPU"
    _, _, jpeg, pixels = peers.prepare_model(args.data_dir, Path(tempfile.mkdtemp(prefix="edgetl-ab-")))
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    rows = [("A", args.a, CLIENTS[args.api]), ("B", args.b, CLIENTS[args.api])]
    peers.check_rows(rows, args.input, jpeg, pixels)
    results = {
        "machine": peers.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "pin": pinned,
        "a": args.a,
        "b": args.b,
        "api": args.api,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "cells": [],
    }
    rng = random.Random(args.seed)
    slices = max(1, round(args.seconds / args.slice))
    blocks = [(kind, c) for kind in args.input for c in args.concurrency]
    for r in range(args.rounds):
        rng.shuffle(blocks)
        for kind, c in blocks:
            got = peers.interleaved(rows, kind, c, jpeg, pixels, slices, args.seconds / slices, rng)
            for row, summary in got.items():
                results["cells"].append({"row": row, "input": kind, "concurrency": c, "round": r, **summary})
            print(f"round {r + 1}/{args.rounds} {kind} c={c}: A {got['A']['per_s']:.1f}/s, B {got['B']['per_s']:.1f}/s", flush=True)
    return results


def b_over_a(cells: list[dict]) -> dict[tuple, list[list[float]]]:
    """(input, concurrency) -> per round, B's slice over A's slice of the same pass."""
    rounds: dict[tuple, dict[str, list[float]]] = {}
    for cell in cells:
        rounds.setdefault((cell["input"], cell["concurrency"], cell["round"]), {})[cell["row"]] = cell["slices"]
    out: dict[tuple, list[list[float]]] = {}
    for (kind, c, _), rows in sorted(rounds.items(), key=lambda kv: kv[0][2]):
        if "A" in rows and "B" in rows:
            out.setdefault((kind, c), []).append([b / a for a, b in zip(rows["A"], rows["B"]) if a])
    return out


def report(results: dict) -> str:
    """The Markdown table: per input and concurrency, A's and B's requests/s (median of the rounds) and B over A."""
    cells = results["cells"]
    lines = [
        f"A {results['a']}, B {results['b']}; {results['api']}; {results['rounds']} rounds of {results['seconds']} s a cell; "
        f"{results['pin']}; {results['machine']} ({results['date']}).",
        "",
        *peers.table_head("input, callers", ["A requests/s", "B requests/s", "B over A [95 % interval]", "passes B ahead"]),
    ]
    for (kind, c), rounds in sorted(b_over_a(cells).items()):
        per_s = {
            row: statistics.median(cell["per_s"] for cell in cells if (cell["row"], cell["input"], cell["concurrency"]) == (row, kind, c))
            for row in ("A", "B")
        }
        median, low, high = peers.clustered_median_interval(rounds)
        ratios = [r for got in rounds for r in got]
        lines.append(
            f"| {kind}, c={c} | {per_s['A']:.1f} | {per_s['B']:.1f} | {median:.3f} [{low:.3f}–{high:.3f}] | {sum(r > 1 for r in ratios)}/{len(ratios)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", nargs="?", help="server A's address (host:port)")
    parser.add_argument("b", nargs="?", help="server B's address (host:port)")
    parser.add_argument("--api", choices=list(CLIENTS), default="classify")
    parser.add_argument("--input", nargs="+", choices=["jpeg", "pixels"], default=["jpeg"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1])
    parser.add_argument("--seconds", type=float, default=10, help="per server, per cell, per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--slice", type=float, default=0.5)
    parser.add_argument("--pin", choices=["auto", "split", "none"], default="auto")
    parser.add_argument("--data-dir", type=Path, default=peers.ROOT / "edgetl-data", help="where the test image's export is made if missing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report", type=Path, help="print the table of an earlier --out file and exit")
    args = parser.parse_args()
    if not args.report and not (args.a and args.b):
        parser.error("give the two servers' addresses, A and B (or --report FILE)")
    peers.report_or_run(args, measure, report)


if __name__ == "__main__":
    main()
