"""Would a different gRPC front make edgetl faster? edgetl against minimal servers of three shapes, side by side.

    python benchmarks/peers/fronts.py                          # 3 rounds, 4 s a cell, c = 1 and 4, JPEG and pixels
    python benchmarks/peers/fronts.py --out benchmarks/results/fronts.json
    python benchmarks/peers/fronts.py --report benchmarks/results/fronts.json

Every row answers edgetl.v1 `Classify` with the same model and the same work
per image (`peer_model.PeerModel`), driven by the same client as
`run.py`'s edgetl rows. The minimal servers (`front_server.py`) have none
of edgetl's server (no interceptor, tasks, metrics, limits, capture); they
differ from each other only in where the model runs: in a synchronous
server's pool thread, on a grpc.aio event loop, or in one worker thread the
loop hands the request to (edgetl's shape, with edgetl's `WorkerThreads`). So the table says two things:
what the shape of the front is worth (the minimal rows against each
other), and what edgetl's own serving costs on top of its shape (edgetl
against ``aio-worker``).

Measured as `run.py` measures: servers on every CPU but the last
(`taskset`), the client on the last; one ONNX Runtime intra-op thread per
server CPU; rounds of blocks, each block one input and concurrency, its rows
in 0.5 s slices taken in turn. Reported: requests/s per row (median of the
rounds [min-max]), and each row over ``aio-worker`` in the same block
(median [min-max] over the rounds).
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
import run as peers  # noqa: E402  (benchmarks/peers/run.py: the client, the slices, the servers' start-up)

SHAPES = ("sync", "aio-inline", "aio-worker")
EDGETL_ROW = "edgetl · edgetl.v1 Classify"
#: The row every other is divided by: edgetl's shape without edgetl.
BASELINE = "front · aio-worker"


def start_front(servers: peers.Servers, shape: str, env: dict) -> str:
    """Starts `front_server.py SHAPE PORT` under the servers' CPUs; its address once it listens."""
    port = peers.free_port()
    proc = servers.popen(f"front-{shape}", [sys.executable, str(HERE / "front_server.py"), shape, str(port)], env=env)
    peers.wait_for_port(port, proc, servers.workdir / f"front-{shape}.log")
    address = f"127.0.0.1:{port}"
    servers.addresses[f"front · {shape}"] = address
    return address


def ratios_to_baseline(cells: list[dict]) -> dict[tuple, list[float]]:
    """(input, concurrency, row) -> the row's requests/s over BASELINE's in the same block, one per round."""
    blocks: dict[tuple, dict[str, float]] = {}
    for cell in cells:
        blocks.setdefault((cell["input"], cell["concurrency"], cell["round"]), {})[cell["row"]] = cell["per_s"]
    out: dict[tuple, list[float]] = {}
    for (kind, c, _), rates in sorted(blocks.items(), key=lambda kv: kv[0][2]):
        if BASELINE in rates:
            for row, per_s in rates.items():
                out.setdefault((kind, c, row), []).append(per_s / rates[BASELINE])
    return out


def report(results: dict) -> str:
    cells = results["cells"]
    inputs = list(dict.fromkeys(cell["input"] for cell in cells))
    concurrencies = sorted({cell["concurrency"] for cell in cells})
    rows = list(dict.fromkeys(cell["row"] for cell in cells))
    ratios = ratios_to_baseline(cells)
    lines = [
        f"Machine: {results['machine']}; {results['pin']}; {results['rounds']} rounds of {results['seconds']} s a cell "
        f"in {results['slice']} s slices ({results['date']}).",
        "",
    ]
    for kind in inputs:
        columns = [f"c={c} requests/s" for c in concurrencies] + [f"c={c} over aio-worker" for c in concurrencies]
        lines += [f"**{kind}** — median of the rounds [min–max]", "", *peers.table_head("row", columns)]
        for row in rows:
            out = []
            for c in concurrencies:
                got = [cell["per_s"] for cell in cells if (cell["input"], cell["concurrency"], cell["row"]) == (kind, c, row)]
                out.append(f"{statistics.median(got):.0f} [{min(got):.0f}–{max(got):.0f}]" if got else "–")
            for c in concurrencies:
                got = ratios.get((kind, c, row))
                out.append(f"{statistics.median(got):.3f} [{min(got):.3f}–{max(got):.3f}]" if got else "–")
            lines.append(f"| {row} | " + " | ".join(out) + " |")
        lines.append("")
    return "\n".join(lines)


def run(args) -> dict:
    server_cpus, client_cpus, threads, pinned = peers.split_cpus(args.pin)
    workdir = Path(tempfile.mkdtemp(prefix="edgetl-fronts-"))
    onnx, spec_file, jpeg, pixels = peers.prepare_model(args.data_dir, workdir)
    env = dict(
        os.environ,
        EDGETL_PEER_MODEL=str(onnx),
        EDGETL_PEER_SPEC=str(spec_file),
        EDGETL_PEER_THREADS=str(threads),
        PYTHONPATH=os.pathsep.join([str(HERE), str(peers.ROOT)]),
    )
    servers = peers.Servers(workdir, server_cpus)
    results = {
        "machine": peers.machine(),
        "date": time.strftime("%Y-%m-%d"),
        "pin": pinned,
        "seconds": args.seconds,
        "rounds": args.rounds,
        "slice": args.seconds / max(1, round(args.seconds / args.slice)),
        "cells": [],
    }
    try:
        if not args.no_edgetl:
            servers.start_edgetl(args.data_dir, threads)
        for shape in args.shapes:
            start_front(servers, shape, env)
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        rows = [
            (EDGETL_ROW if name == "edgetl" else name, address, peers.edgetl_call)
            for name, address in servers.addresses.items()
        ]
        peers.check_rows(rows, args.inputs, jpeg, pixels)
        rng = random.Random(args.seed)
        blocks = [(kind, c) for kind in args.inputs for c in args.concurrency]
        slices = max(1, round(args.seconds / args.slice))
        for r in range(args.rounds):
            rng.shuffle(blocks)
            for kind, c in blocks:
                for row, got in peers.interleaved(rows, kind, c, jpeg, pixels, slices, args.seconds / slices, rng).items():
                    results["cells"].append({"row": row, "input": kind, "concurrency": c, "round": r, **got})
                    print(f"round {r + 1}/{args.rounds} {row} {kind} c={c}: {got['per_s']:.1f}/s", flush=True)
    finally:
        servers.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slice", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--inputs", nargs="+", choices=["jpeg", "pixels"], default=["jpeg", "pixels"])
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--no-edgetl", action="store_true", help="the minimal servers only")
    parser.add_argument("--pin", choices=["auto", "split", "none"], default="auto")
    parser.add_argument("--data-dir", type=Path, default=peers.ROOT / "edgetl-data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--report", type=Path, help="print the tables of an earlier --out file and exit")
    peers.report_or_run(parser.parse_args(), run, report)


if __name__ == "__main__":
    main()
