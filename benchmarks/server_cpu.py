"""What edgetl's serving path costs around the model, with the model taken out.

    python benchmarks/server_cpu.py                                  # this checkout vs a bare grpc.aio server
    python benchmarks/server_cpu.py --roots . /tmp/old-checkout      # A/B two checkouts (git worktree add /tmp/old-checkout REV)
    python benchmarks/server_cpu.py --api kserve --input pixels      # the KServe v2 endpoint (tritonclient), raw RGB frames

Every server a plant could pick spends the same ~6.5 ms per image in ONNX
Runtime on this machine's core; what tells them apart is the fraction of a
millisecond around it (gRPC, the request, the answer, the thread hop). With
the model in, that fraction drowns in the VM's drift; here it is the whole
measurement. Each edgetl server is a real `edgetl serve` process on loopback
(its settings, interceptor, metrics, capture and stats all in place) whose
backbone answers at once: decoding, preprocessing and the ONNX Runtime run are
replaced by constant outputs of the export's shapes. The baseline in the same
run is a bare grpc.aio server answering a canned ClassifyResponse of the same
size from the event loop: the floor of any Python gRPC server.

Servers on CPU 0, the client (this process) on CPU 1. Each concurrency is a
block: every server's C clients opened once, then slices of --slice seconds
taken in turn in a new shuffled order, so the servers compared ran within
seconds of each other. Reported: requests/s (median of rounds [min-max]) and,
at concurrency >= 4 where the server's core is saturated, the server's time
per request (1e6 / requests/s, in microseconds) and what it adds over the
bare server.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "peers"))
from run import edgetl_call, free_port, interleaved, kserve_call  # noqa: E402 - the peer benchmark's clients and slices

PAYLOAD = b"\xff" * 14363  # the size of the peer benchmark's 224 px JPEG; never decoded here
PIXELS = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)  # a 224 px RGB frame; never decoded either
#: The edgetl servers' client per --api (the bare server answers edgetl.v1 Classify only).
CLIENTS = {"classify": edgetl_call, "kserve": kserve_call}


# ------------------------------------------------------------- the servers


def serve_instant(root: Path, data_dir: Path, port: int) -> None:
    """`edgetl serve` from `root`, its backbone and decoding replaced by constant answers."""
    import asyncio

    import numpy as np

    sys.path.insert(0, str(root))
    import edgetl
    from edgetl.logs import configure_logging
    from edgetl.runtime import engine, preprocess, session
    from edgetl.server.app import serve_forever
    from edgetl.settings import Settings

    logits = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    logits[285] = 10.0  # "Egyptian cat", as the client checks

    def run(self, batch, outputs):
        n = batch.shape[0]
        return {o: np.zeros((n, *self.record.output_shapes[o]), np.float32) + (logits if o == "logits" else 0) for o in outputs}

    session.BackboneSession.run = run
    engine.decode = lambda image, max_pixels: None
    preprocess.Preprocessor.__call__ = lambda self, image: np.zeros((3, self.height, self.width), np.float32)
    settings = Settings.load(None, data_dir, port=port, providers=("cpu",), metrics_port=0, terminal_port=0)
    configure_logging("WARNING", settings.log_format)
    print(f"serving the edgetl package at {Path(edgetl.__file__).parent}", flush=True)
    main = serve_forever(settings, announce=lambda line: print(line, flush=True))
    try:
        from edgetl.server import eventloop  # on the event loop `edgetl serve` picks, where the checkout has the choice
    except ImportError:
        asyncio.run(main)
    else:
        eventloop.run(main, settings.event_loop)


def serve_bare(port: int) -> None:
    """A grpc.aio server answering every Classify from the event loop with one canned, full-size answer."""
    import grpc
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from edgetl.api.v1 import inference_pb2, inference_pb2_grpc

    answer = inference_pb2.ClassifyResponse(task="imagenet", label="Egyptian cat", score=0.78, adapter_version="builtin")
    answer.scores.extend(np.random.default_rng(0).dirichlet(np.ones(1000)).astype(np.float32).tolist())

    class Bare(inference_pb2_grpc.InferenceServiceServicer):
        async def Classify(self, request, context):
            return answer

    async def main():
        server = grpc.aio.server()
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(Bare(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print(f"bare ready on {port}", flush=True)
        await server.wait_for_termination()

    from edgetl.server import eventloop

    eventloop.run(main())  # the loop `edgetl serve` runs on by default (uvloop where installed)


# ---------------------------------------------------------------- measuring


def start(name: str, argv: list[str], workdir: Path) -> subprocess.Popen:
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, *argv], stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "ready on" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", type=Path, nargs="+", default=[ROOT], help="edgetl checkouts to serve, one server each")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "edgetl-data", help="a data directory with the built-in export")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=3.0, help="per server, concurrency and round")
    parser.add_argument("--slice", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api", choices=sorted(CLIENTS), default="classify", help="how the edgetl servers are called: edgetl.v1 Classify or KServe v2 ModelInfer (tritonclient)")
    parser.add_argument("--input", choices=["jpeg", "pixels"], default="jpeg", help="a JPEG-sized file or a 224 px RGB frame (neither is decoded)")
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "ROOT"), help=argparse.SUPPRESS)  # a server process
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        kind, port, root = args.serve
        serve_bare(int(port)) if kind == "bare" else serve_instant(Path(root).resolve(), args.data, int(port))
        return

    sys.path.insert(0, str(ROOT))
    if not (args.data_dir / "store").exists():
        sys.exit(f"{args.data_dir} has no export yet: run `edgetl serve --data-dir {args.data_dir}` once (it exports the built-in backbone)")
    workdir = Path(tempfile.mkdtemp(prefix="edgetl-server-cpu-"))
    procs, ports = [], {}
    try:
        port = free_port()
        procs.append(start("bare", [__file__, "--serve", "bare", str(port), "."], workdir))
        ports["bare grpc.aio (canned answer)"] = port
        for i, root in enumerate(args.roots):
            data = workdir / f"data{i}"  # a data directory each: a server holds its own
            shutil.copytree(args.data_dir, data, ignore=shutil.ignore_patterns("*.sock"))
            port = free_port()
            procs.append(start(f"edgetl{i}", [__file__, "--serve", "edgetl", str(port), str(root), "--data", str(data)], workdir))
            ports[f"edgetl at {root.resolve()}"] = port
        os.sched_setaffinity(0, [1])
        rng = random.Random(args.seed)
        slices = max(1, round(args.seconds / args.slice))
        rows = [(name, f"127.0.0.1:{port}", edgetl_call if name.startswith("bare") else CLIENTS[args.api]) for name, port in ports.items()]
        rates: dict[tuple[str, int], list[float]] = {}
        for r in range(args.rounds):
            for c in args.concurrency:
                for name, got in interleaved(rows, args.input, c, PAYLOAD, PIXELS, slices, args.seconds / slices, rng).items():
                    rates.setdefault((name, c), []).append(got["per_s"])
                    print(f"round {r + 1}/{args.rounds} c={c} {name}: {got['per_s']:.0f}/s", flush=True)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)

    print(f"\nServers on CPU 0, client on CPU 1; {args.rounds} rounds of {args.seconds:g} s per cell in {args.slice:g} s slices; "
          f"edgetl called by {'edgetl.v1 Classify' if args.api == 'classify' else 'KServe v2 ModelInfer'} with {args.input}, the bare server by Classify.\n")
    print("| server | " + " | ".join(f"c={c} requests/s" for c in args.concurrency) + " | server time per request at c≥4 (µs) | added over bare (µs) |")
    print("|---|" + "---|" * (len(args.concurrency) + 2))
    saturated = [c for c in args.concurrency if c >= 4]
    bare = "bare grpc.aio (canned answer)"
    for name in ports:
        cells = []
        for c in args.concurrency:
            v = rates[(name, c)]
            cells.append(f"{statistics.median(v):.0f} [{min(v):.0f}–{max(v):.0f}]")
        if saturated:
            c = saturated[-1]
            us = 1e6 / statistics.median(rates[(name, c)])
            added = us - 1e6 / statistics.median(rates[(bare, c)])
            cells += [f"{us:.0f}", "–" if name == bare else f"{added:.0f}"]
        else:
            cells += ["–", "–"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
