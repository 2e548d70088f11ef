"""edgetl against the servers a plant could pick instead, side by side, in one run.

    python benchmarks/peers/run.py                       # set up the peers (once), then measure
    python benchmarks/peers/run.py --seconds 5 --rounds 3 --concurrency 1 4 16 --out benchmarks/results/peers.json
    python benchmarks/peers/run.py --report benchmarks/results/peers.json

The peers are KServe's Python ModelServer, Seldon MLServer and NVIDIA PyTriton
(the Triton binary with a Python backend). Each gets a throwaway virtual
environment under --venvs (made on first use from PyPI; they run offline
after that) and serves the same EfficientNet-Lite0 export as edgetl's
built-in task with the same preprocessing (`peer_model.py`), over KServe v2
gRPC with edgetl's tensor names.

One client drives every server: tritonclient's gRPC client for KServe v2 (a
client per thread), edgetl's own stubs for edgetl.v1 `Classify` and
`ClassifyStream` (a stream per thread, one frame in flight). Each cell is C
threads sending one image per request for --seconds. A round measures one
block per input and concurrency (blocks in a shuffled order). In a block every
row's C clients are opened once, then each row is measured in short slices
(--slice, 0.5 s) taken in turn, the rows in a new shuffled order each time,
until each has had its --seconds: the rows a ratio compares ran within a few
seconds of each other all through the block, and no row gets the VM's fast
or slow minute alone. The raw limit is one more row of the slices: a
process of its own that waits between them.
Reported per cell: the median of the rounds' requests/s with their range,
and the median p50 latency; then, per edgetl row, its requests/s over the
fastest peer's and over the raw limit's *in the same block*, median and
range over the rounds. The VM's speed drifts by 10-20 % over a run, more
than the servers differ, so only the paired ratio can say who is ahead: a
cell is edgetl's when the ratio is above 1 in every round by more than the
ratios' range over the rounds. Last, the same ratio slice by slice (each
edgetl slice over the fastest peer's slice of the same pass), with a 95 %
bootstrap interval for its median that resamples the rounds, then their
slices (a round's slices move together): a finer view of the same run. The report
ends with the run against issue 12's targets: in how many cells edgetl's rows
lead by that rule, and how many of its c >= 4 cells are within 10 % of the
raw limit.

The limit is raw ONNX Runtime in-process: the same `peer_model.PeerModel`
decoding and running the image from C threads, with no server, on the
server's CPUs.

CPUs: with --pin split (the default when the machine has 2 or more), every
server and the raw limit run under `taskset` on all CPUs but the last, and
this process (the client) on the last, so the client never takes the
server's cores. Each server's ONNX Runtime uses as many intra-op threads as it
has CPUs. --pin none shares every CPU, as a camera PC running its own client
would.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

# Versions measured; the table was taken with these.
PEERS = {
    "kserve": ["kserve==0.21.0"],
    "mlserver": [
        "mlserver==1.7.1",
        "uvloop<0.22",
    ],  # uvloop 0.22+ breaks its worker processes (no current event loop)
    "pytriton": ["nvidia-pytriton==0.7.0"],
}
PEER_COMMON = ["onnxruntime", "opencv-python-headless", "numpy"]
MODEL = "imagenet"
EXPECTED_LABEL = b"Egyptian cat"
#: The table row of the limit: the same model and preprocessing in-process, no server.
RAW_ROW = "raw ONNX Runtime in-process"


# ----------------------------------------------------------------- set-up


def ensure_venv(venvs: Path, name: str) -> Path:
    """The peer's virtual environment, made (and its packages installed) on first use."""
    venv = venvs / name
    python = venv / "bin" / "python"
    marker = venv / ".edgetl-peer-ready"
    if not marker.exists():
        print(f"setting up {name} in {venv} (once; needs PyPI) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *PEERS[name], *PEER_COMMON],
            check=True,
        )
        marker.write_text(" ".join(PEERS[name]))
    return python


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(
    port: int, proc: subprocess.Popen, log: Path, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited with {proc.returncode}: {log.read_text()[-3000:]}"
            )
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(
        f"nothing listened on {port} within {timeout:.0f} s: {log.read_text()[-3000:]}"
    )


class Servers:
    """Every server under test, started once and stopped together."""

    def __init__(self, workdir: Path, server_cpus: list[int] | None):
        self.workdir = workdir
        self.server_cpus = server_cpus
        self.procs: list[subprocess.Popen] = []
        self.addresses: dict[str, str] = {}

    def _taskset(self) -> list[str]:
        return (
            ["taskset", "-c", ",".join(map(str, self.server_cpus))]
            if self.server_cpus
            else []
        )

    def popen(
        self,
        name: str,
        argv: list[str],
        env: dict | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen:
        """`argv` started on the servers' CPUs, its output in the workdir's NAME.log; `stop` stops it with the rest."""
        log = self.workdir / f"{name}.log"
        proc = subprocess.Popen(
            [*self._taskset(), *argv],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
        self.procs.append(proc)
        return proc

    def peer_env(self, python: Path, onnx: Path, spec: Path, threads: int) -> dict:
        env = dict(os.environ)
        env.update(
            EDGETL_PEER_MODEL=str(onnx),
            EDGETL_PEER_SPEC=str(spec),
            EDGETL_PEER_THREADS=str(threads),
            PYTHONPATH=str(HERE),
        )
        # PyTriton's stub process links against libpython: it must find this venv's base libdir.
        libdir = subprocess.run(
            [
                str(python),
                "-c",
                "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        env["LD_LIBRARY_PATH"] = ":".join(
            filter(None, [libdir, env.get("LD_LIBRARY_PATH", "")])
        )
        return env

    def start_edgetl(
        self, data_dir: Path, threads: int, name: str = "edgetl", runtime: str = ""
    ) -> None:
        """`runtime`: more `[runtime]` settings (TOML lines), for a variant to compare."""
        config = self.workdir / f"{name}.toml"
        # The terminal on a free port: 8080 may be taken on a shared machine.
        config.write_text(
            f"[runtime]\nintra_op_threads = {threads}\n{runtime}\n\n[terminal]\nterminal_port = 0\n"
        )
        port = free_port()
        proc = self.popen(
            name,
            [
                sys.executable,
                "-m",
                "edgetl",
                "serve",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
                "--metrics-port",
                "0",
                "--providers",
                "cpu",
                "--config",
                str(config),
                "--log-level",
                "WARNING",
            ],
            cwd=ROOT,
        )
        wait_for_port(port, proc, self.workdir / f"{name}.log")
        self.addresses[name] = f"127.0.0.1:{port}"

    def start_kserve(self, python: Path, env: dict) -> None:
        grpc_port, http_port = free_port(), free_port()
        proc = self.popen(
            "kserve",
            [
                str(python),
                str(HERE / "kserve_server.py"),
                str(grpc_port),
                str(http_port),
            ],
            env=env,
        )
        wait_for_port(grpc_port, proc, self.workdir / "kserve.log")
        self.addresses["kserve"] = f"127.0.0.1:{grpc_port}"

    def start_mlserver(self, python: Path, env: dict) -> None:
        grpc_port = free_port()
        folder = self.workdir / "mlserver"
        folder.mkdir(exist_ok=True)
        (folder / "settings.json").write_text(
            json.dumps(
                {
                    "grpc_port": grpc_port,
                    "http_port": free_port(),
                    "metrics_port": free_port(),
                }
            )
        )
        (folder / "model-settings.json").write_text(
            json.dumps(
                {"name": MODEL, "implementation": "mlserver_model.ImageClassifier"}
            )
        )
        proc = self.popen(
            "mlserver", [str(python.parent / "mlserver"), "start", str(folder)], env=env
        )
        wait_for_port(grpc_port, proc, self.workdir / "mlserver.log")
        self.addresses["mlserver"] = f"127.0.0.1:{grpc_port}"

    def start_pytriton(self, python: Path, env: dict) -> None:
        grpc_port = free_port()
        proc = self.popen(
            "pytriton",
            [
                str(python),
                str(HERE / "pytriton_server.py"),
                str(grpc_port),
                str(free_port()),
                str(free_port()),
            ],
            env=env,
        )
        wait_for_port(grpc_port, proc, self.workdir / "pytriton.log", timeout=240)
        self.addresses["pytriton"] = f"127.0.0.1:{grpc_port}"

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


# ------------------------------------------------------------------ clients


def kserve_call(address: str, jpeg: bytes, pixels: np.ndarray, kind: str):
    """A callable sending one KServe v2 ModelInfer with tritonclient (one client per thread)."""
    import tritonclient.grpc as tc

    client = tc.InferenceServerClient(address)
    if kind == "jpeg":
        tensor = tc.InferInput("images", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[jpeg]], dtype=np.object_))
    else:
        tensor = tc.InferInput("pixels", [1, *pixels.shape], "UINT8")
        tensor.set_data_from_numpy(pixels[None])
    outputs = [tc.InferRequestedOutput("labels"), tc.InferRequestedOutput("scores")]

    def call():
        result = client.infer(MODEL, [tensor], outputs=outputs, client_timeout=30)
        return result.as_numpy("labels").reshape(-1)[0]

    call.close = client.close  # a cell's channels end with it; hundreds left open slow the client

    return call


def edgetl_client(address: str, jpeg: bytes, pixels: np.ndarray, kind: str):
    """(channel, edgetl.v1 stub, the ClassifyRequest every call sends)."""
    import grpc

    from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc

    channel = grpc.insecure_channel(address)
    image = edgetl_image(image_pb2, jpeg, pixels, kind)
    return channel, inference_pb2_grpc.InferenceServiceStub(channel), inference_pb2.ClassifyRequest(task=MODEL, image=image)


def edgetl_call(address: str, jpeg: bytes, pixels: np.ndarray, kind: str):
    """A callable sending one edgetl.v1 Classify (the answer carries all 1000 scores)."""
    channel, stub, request = edgetl_client(address, jpeg, pixels, kind)

    def call():
        return stub.Classify(request, timeout=30).label.encode()

    call.close = channel.close
    return call


def edgetl_stream_call(address: str, jpeg: bytes, pixels: np.ndarray, kind: str):
    """A callable sending one frame down this thread's ClassifyStream and waiting for its answer."""
    import queue

    channel, stub, request = edgetl_client(address, jpeg, pixels, kind)
    frames: queue.Queue = queue.Queue()
    answers = stub.ClassifyStream(iter(frames.get, None))

    def call():
        frames.put(request)
        return next(answers).label.encode()

    def close():
        frames.put(None)  # ends the stream
        for _ in answers:  # until the server has closed it too
            pass
        channel.close()

    call.close = close
    return call


def edgetl_image(image_pb2, jpeg: bytes, pixels: np.ndarray, kind: str):
    if kind == "jpeg":
        return image_pb2.Image(encoded=jpeg)
    return image_pb2.Image(
        raw=image_pb2.RawImage(
            data=pixels.tobytes(),
            shape=list(pixels.shape),
            dtype="uint8",
            color_order=image_pb2.COLOR_ORDER_RGB,
        )
    )


def load(seconds: float, calls: list, close: bool = True) -> dict:
    """Each callable in its own thread for `seconds`; every answer checked.

    Returns the count, the elapsed time, requests/s and the latencies (ms);
    `close=False` leaves the callables' channels open for the next slice.
    """
    latencies: list[list[float]] = [[] for _ in calls]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(calls) + 1)
    stop = [0.0]

    def worker(i):
        call = calls[i]
        barrier.wait()
        try:
            while time.perf_counter() < stop[0]:
                t0 = time.perf_counter()
                label = call()
                latencies[i].append(time.perf_counter() - t0)
                if label != EXPECTED_LABEL:
                    raise RuntimeError(f"wrong answer {label!r}")
        except BaseException as exc:  # noqa: BLE001 - reported below, not hidden
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(i,), daemon=True)
        for i in range(len(calls))
    ]
    for t in threads:
        t.start()
    stop[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if close:
        close_all(calls)
    if errors:
        raise RuntimeError(
            f"{len(errors)} of {len(calls)} clients failed: {errors[0]!r}"
        )
    flat = [x * 1000 for per in latencies for x in per]
    return {"n": len(flat), "elapsed": elapsed, "per_s": len(flat) / elapsed, "latencies_ms": flat}


def close_all(calls: list) -> None:
    for call in calls:
        getattr(call, "close", lambda: None)()


def summary(n: int, elapsed: float, latencies_ms: list[float], slices: list[float] | None = None) -> dict:
    flat = np.asarray(latencies_ms)
    out = {
        "n": n,
        "per_s": n / elapsed,
        "p50_ms": float(np.percentile(flat, 50)),
        "p99_ms": float(np.percentile(flat, 99)),
    }
    if slices is not None:
        out["slices"] = slices
    return out


def interleaved(
    rows: list, kind: str, c: int, jpeg: bytes, pixels: np.ndarray, slices: int, seconds: float, rng: random.Random,
    raw: RawLimit | None = None,
) -> dict:
    """Every row's C clients opened once, then `slices` short slices per row, the rows in a new shuffled
    order each time, so the rows a ratio compares ran within seconds of each other all through the block.
    `raw`: the raw limit, measured as one more row (RAW_ROW) in the same passes.

    Returns {row: summary}, each with `slices` (the requests/s of each slice, in slice order).
    """
    clients = {row: [factory(address, jpeg, pixels, kind) for _ in range(c)] for row, address, factory in rows}
    measure = {row: (lambda calls=calls: load(seconds, calls, close=False)) for row, calls in clients.items()}
    if raw is not None:
        measure[RAW_ROW] = lambda: raw.measure(kind, c, seconds)
    try:
        for calls in clients.values():  # a new channel's first calls connect; not measured
            load(min(0.3, seconds), calls, close=False)
        per_row = {row: {"n": 0, "elapsed": 0.0, "latencies_ms": [], "slices": []} for row in measure}
        for _ in range(slices):
            order = list(measure)
            rng.shuffle(order)
            for row in order:
                got = measure[row]()
                acc = per_row[row]
                acc["n"] += got["n"]
                acc["elapsed"] += got["elapsed"]
                acc["latencies_ms"] += got["latencies_ms"]
                acc["slices"].append(got["per_s"])
    finally:
        for calls in clients.values():
            close_all(calls)
    return {row: summary(**acc) for row, acc in per_row.items()}


RAW_LIMIT = r"""
import json, sys, threading, time
import numpy as np
from peer_model import PeerModel
jpeg = open(sys.argv[1], "rb").read()
pixels = np.load(sys.argv[2])
model = PeerModel()
calls = {"jpeg": lambda: model.predict_encoded([jpeg]), "pixels": lambda: model.predict_pixels(pixels[None])}
for call in calls.values():
    for _ in range(20):
        call()
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:  # one slice per line: KIND CONCURRENCY SECONDS
    kind, concurrency, seconds = line.split()
    call, concurrency = calls[kind], int(concurrency)
    lat = [[] for _ in range(concurrency)]
    stop = [0.0]
    barrier = threading.Barrier(concurrency + 1)
    def worker(i):
        barrier.wait()
        while time.perf_counter() < stop[0]:
            t0 = time.perf_counter(); call(); lat[i].append(time.perf_counter() - t0)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    [t.start() for t in threads]
    stop[0] = time.perf_counter() + float(seconds)
    t0 = time.perf_counter()
    barrier.wait()
    [t.join() for t in threads]
    elapsed = time.perf_counter() - t0
    flat = [x * 1000 for l in lat for x in l]
    print(json.dumps({"n": len(flat), "elapsed": elapsed, "per_s": len(flat) / elapsed, "latencies_ms": flat}), flush=True)
"""


class RawLimit:
    """The raw limit: `peer_model.PeerModel` in a process of its own on the servers' CPUs, no server between.

    The process starts once and waits; `measure` has it run the model from C
    threads for one slice, so the limit is a row of the block's slices like
    any server. A ratio to it then pairs slices seconds apart, not a whole
    measurement taken before or after the servers' (the VM's speed drifts
    within a block, and that drift fell on the ratio).
    """

    def __init__(self, workdir: Path, onnx: Path, server_cpus):
        taskset = ["taskset", "-c", ",".join(map(str, server_cpus))] if server_cpus else []
        env = dict(
            os.environ,
            PYTHONPATH=str(HERE),
            EDGETL_PEER_MODEL=str(onnx),
            EDGETL_PEER_SPEC=str(workdir / "spec.json"),
            EDGETL_PEER_THREADS=str(len(server_cpus or os.sched_getaffinity(0))),
        )
        # Its stderr to a file: a pipe nobody reads would stop the process once full.
        self._log = workdir / "raw-limit.log"
        with open(self._log, "w") as log:
            self._proc = subprocess.Popen(
                [*taskset, sys.executable, "-c", RAW_LIMIT, str(workdir / "image.jpg"), str(workdir / "pixels.npy")],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        self._answer()  # loaded and warmed up

    def _answer(self) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"raw limit failed: {self._log.read_text()[-2000:]}")
        return json.loads(line)

    def measure(self, kind: str, concurrency: int, seconds: float) -> dict:
        """One slice: C threads calling the model for `seconds`; what `load` returns for a server's slice."""
        self._proc.stdin.write(f"{kind} {concurrency} {seconds}\n")
        self._proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()


# --------------------------------------------------------------------- main


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = re.search(
            r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()
        ).group(1)
    except (OSError, AttributeError):
        pass
    import onnxruntime

    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}"


def prepare_model(data_dir: Path, workdir: Path):
    """edgetl's built-in export (made if missing) and the spec the peers read; the test image."""
    import cv2
    from skimage import data as skdata

    from edgetl.backbones import imagenet_class_names
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.runtime.store import ModelStore
    from edgetl.settings import Settings

    settings = Settings.load(data_dir=data_dir, providers=("cpu",))
    record = ModelStore(data_dir / "store").ensure(
        BackboneRegistry.from_settings(settings).get(settings.default_backbone),
        settings.to_dict(),
    )
    spec = record.manifest["spec"]
    spec_file = workdir / "spec.json"
    spec_file.write_text(
        json.dumps(
            {k: spec[k] for k in ("input_size", "color_order", "mean", "std")}
            | {"class_names": list(imagenet_class_names())}
        )
    )
    rgb = cv2.resize(skdata.chelsea(), (224, 224), interpolation=cv2.INTER_AREA)
    jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[
        1
    ].tobytes()
    return record.onnx_path, spec_file, jpeg, np.ascontiguousarray(rgb)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MLServer and Triton run workers)."""
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            total += (
                int(
                    re.search(
                        r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text()
                    ).group(1)
                )
                / 1024
            )
            pids += [
                int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()
            ]
        except (OSError, AttributeError):
            pass
    return total


def split_cpus(pin: str) -> tuple[list[int] | None, list[int] | None, int, str]:
    """--pin's CPUs: (the servers', the client's, ONNX Runtime threads per server, how the results say it).

    `split` (or `auto` on 2 or more CPUs): the servers on every CPU but the
    last, the client on the last; `none`: everything shares every CPU (None, None).
    """
    cpus = sorted(os.sched_getaffinity(0))
    if pin == "split" or (pin == "auto" and len(cpus) >= 2):
        server_cpus, client_cpus = cpus[:-1], cpus[-1:]
        return server_cpus, client_cpus, len(server_cpus), f"servers on CPUs {server_cpus}, client on {client_cpus}"
    return None, None, len(cpus), "none: servers and client share every CPU"


def check_rows(rows: list, inputs: list[str], jpeg: bytes, pixels: np.ndarray, calls: int = 30) -> None:
    """Warms every row up on every input; a row that answers anything but the cat stops the run."""
    for (row, address, factory), kind in [(r, k) for r in rows for k in inputs]:
        call = factory(address, jpeg, pixels, kind)
        try:
            for _ in range(calls):
                if (label := call()) != EXPECTED_LABEL:
                    raise RuntimeError(f"{row} ({kind}) answered {label!r}, not {EXPECTED_LABEL!r}")
        finally:
            call.close()


def report_or_run(args, run, report) -> None:
    """The end of a benchmark's main: with --report FILE, `report` that earlier run; else `run(args)`, saved to --out, reported."""
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return
    results = run(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
    print()
    print(report(results))


def run(args) -> dict:
    server_cpus, client_cpus, threads, pinned = split_cpus(args.pin)
    workdir = Path(tempfile.mkdtemp(prefix="edgetl-peers-"))
    onnx, spec_file, jpeg, pixels = prepare_model(args.data_dir, workdir)
    (workdir / "image.jpg").write_bytes(jpeg)
    np.save(workdir / "pixels.npy", pixels)

    pythons = {
        name: ensure_venv(args.venvs, name) for name in args.servers if name != "edgetl"
    }
    servers = Servers(workdir, server_cpus)
    results = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "pin": pinned,
        "ort_threads": threads,
        "image": f"224x224 JPEG ({len(jpeg)} bytes) or raw RGB pixels (150,528 bytes)",
        "seconds": args.seconds,
        "rounds": args.rounds,
        "slice": args.seconds / max(1, round(args.seconds / args.slice)),
        "versions": {name: PEERS[name][0] for name in pythons},
        "raw_limit": "a row of the slices",
        "cells": [],
    }
    raw = None
    try:
        if "edgetl" in args.servers:
            servers.start_edgetl(args.data_dir, threads)
        for variant, runtime in args.edgetl_variant or []:
            servers.start_edgetl(
                args.data_dir, threads, f"edgetl[{variant}]", runtime.replace(";", "\n")
            )
        for name, python in pythons.items():
            getattr(servers, f"start_{name}")(
                python, servers.peer_env(python, onnx, spec_file, threads)
            )
        for name, address in servers.addresses.items():
            wait_model_ready(name, address)
        if client_cpus:
            os.sched_setaffinity(0, client_cpus)
        print(f"servers up: {servers.addresses}; workdir {workdir}", flush=True)

        # (row, server address, client factory) for every row of the table.
        rows = []
        for name, address in servers.addresses.items():
            if name == "edgetl":
                rows += [
                    ("edgetl · edgetl.v1 Classify", address, edgetl_call),
                    ("edgetl · edgetl.v1 ClassifyStream", address, edgetl_stream_call),
                    ("edgetl · KServe v2", address, kserve_call),
                ]
            elif name.startswith("edgetl["):
                rows += [
                    (f"{name} · edgetl.v1 Classify", address, edgetl_call),
                    (f"{name} · KServe v2", address, kserve_call),
                ]
            else:
                rows.append((f"{name} · KServe v2", address, kserve_call))
        check_rows(rows, args.inputs, jpeg, pixels)
        # Rounds of blocks: a block is one input and concurrency, every row
        # (the raw limit too) measured in slices taken in turn, so the rows
        # a ratio compares ran seconds apart, not minutes. This VM's
        # speed drifts by 10-20 % over a run; a ratio within a block cancels
        # the drift that the rounds' ranges of requests/s carry.
        raw = RawLimit(workdir, onnx, server_cpus)
        rng = random.Random(args.seed)
        blocks = [(kind, c) for kind in args.inputs for c in args.concurrency]
        slices = max(1, round(args.seconds / args.slice))
        for r in range(args.rounds):
            rng.shuffle(blocks)
            for block, (kind, c) in enumerate(blocks):
                measured = interleaved(rows, kind, c, jpeg, pixels, slices, args.seconds / slices, rng, raw)
                for row, got in measured.items():
                    results["cells"].append(
                        {"row": row, "input": kind, "concurrency": c, "round": r, "block": block, **got}
                    )
                    print(
                        f"round {r + 1}/{args.rounds} {row} {kind} c={c}: {got['per_s']:.1f}/s p50 {got['p50_ms']:.2f} ms",
                        flush=True,
                    )
        results["rss_mb"] = {
            name: rss_mb(proc.pid)
            for name, proc in zip(servers.addresses, servers.procs)
        }
    finally:
        if raw is not None:
            raw.close()
        servers.stop()
    return results


def wait_model_ready(name: str, address: str, timeout: float = 120) -> None:
    """A listening port is not a loaded model (MLServer loads it after binding)."""
    import tritonclient.grpc as tc

    client = tc.InferenceServerClient(address)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.is_model_ready(MODEL):
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.3)
    raise RuntimeError(
        f"{name} at {address}: model {MODEL!r} not ready within {timeout:.0f} s"
    )


ORDER = [
    RAW_ROW,
    "edgetl · edgetl.v1 Classify",
    "edgetl · edgetl.v1 ClassifyStream",
    "edgetl · KServe v2",
    "kserve · KServe v2",
    "mlserver · KServe v2",
    "pytriton · KServe v2",
]


PEER_ROWS = ("kserve · KServe v2", "mlserver · KServe v2", "pytriton · KServe v2")


def row_order(row: str) -> tuple:
    """Sort key for a table's rows: ORDER's order, variants (`--edgetl-variant`) after edgetl's own rows."""
    return (ORDER.index(row) if row in ORDER else 3.5, row)


def table_head(first: str, columns: list[str]) -> list[str]:
    """A Markdown table's header and rule."""
    return [f"| {first} | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]


def paired_ratios(cells: list[dict]) -> dict[tuple, dict[str, list[float]]]:
    """Per (input, concurrency, edgetl row): its requests/s over the fastest peer's ("peer") and over the raw
    limit's ("raw"), one ratio per round, each taken in that round's block of the cell (rounds in order).
    Empty when the run measured no peer."""
    by_block: dict[tuple, dict[str, float]] = {}
    for cell in cells:
        by_block.setdefault((cell["input"], cell["concurrency"], cell["round"]), {})[cell["row"]] = cell["per_s"]
    if not any(any(p in rates for p in PEER_ROWS) for rates in by_block.values()):
        return {}
    out: dict[tuple, dict[str, list[float]]] = {}
    for (kind, c, _), rates in sorted(by_block.items(), key=lambda kv: kv[0][2]):
        peer = max((rates[p] for p in PEER_ROWS if p in rates), default=None)
        for row in (r for r in rates if r.startswith("edgetl")):
            got = out.setdefault((kind, c, row), {"peer": [], "raw": []})
            if peer:
                got["peer"].append(rates[row] / peer)
            if rates.get(RAW_ROW):
                got["raw"].append(rates[row] / rates[RAW_ROW])
    return out


def leads(ratios: list[float]) -> bool:
    """Ahead in every round by more than the rounds' range: the smallest ratio is above 1 by more than max - min."""
    return bool(ratios) and min(ratios) - 1 > max(ratios) - min(ratios)


def paired(cells: list[dict], inputs: list[str], concurrencies: list[int]) -> list[str]:
    """Each edgetl row against the fastest peer, and against the raw limit, measured in the same block.

    Per round: edgetl's requests/s divided by the fastest peer's in that
    round's block of the cell (and by the raw limit's). Reported: the median
    of those ratios [min–max]. edgetl *leads* a cell (bold) when its smallest
    ratio is above 1 by more than the ratios' range: ahead of every peer in
    every round, by a margin larger than the spread between rounds (1.00
    [1.00–1.01] is level, 1.03 [1.03–1.03] is ahead). Files from before blocks
    existed pair by round.
    """
    ratios = paired_ratios(cells)
    if not ratios:
        return []
    edgetl_rows = sorted({row for _, _, row in ratios}, key=row_order)
    lines = []
    for kind in inputs:
        lines += [
            f"**{kind}, paired** — edgetl's requests/s over the fastest peer's (and over the raw limit's) in the same round's block: median [min–max]; **bold**: ahead in every round by more than the rounds' range",
            "",
            *table_head("edgetl · API", [f"c={c} vs fastest peer" for c in concurrencies] + [f"c={c} vs raw" for c in concurrencies]),
        ]
        for row in edgetl_rows:
            out = []
            for against in ("peer", "raw"):
                for c in concurrencies:
                    got = ratios.get((kind, c, row), {}).get(against)
                    if not got:
                        out.append("–")
                        continue
                    text = f"{statistics.median(got):.2f} [{min(got):.2f}–{max(got):.2f}]"
                    out.append(f"**{text}**" if against == "peer" and leads(got) else text)
            lines.append(f"| {row} | " + " | ".join(out) + " |")
        lines.append("")
    return lines


def verdict(cells: list[dict]) -> list[str]:
    """The run against issue 12's two targets, counted over edgetl's own rows (variants left out):
    ahead of every peer by more than the rounds' range in every cell, and within 10 % of the raw
    limit (median ratio at least 0.90) at every concurrency of 4 or more."""
    ratios = {key: got for key, got in paired_ratios(cells).items() if key[2] in ORDER}
    if not ratios:
        return []
    concurrencies = sorted({c for _, c, _ in ratios})
    by_c = []
    for c in concurrencies:
        here = [got["peer"] for (_, cc, _), got in ratios.items() if cc == c and got["peer"]]
        by_c.append(f"c={c}: {sum(map(leads, here))} of {len(here)}")
    led = [leads(got["peer"]) for got in ratios.values() if got["peer"]]
    lines = [
        "**Against the targets** — edgetl's rows ahead of every peer by more than the rounds' range (bold above): "
        f"{sum(led)} of {len(led)} cells ({'; '.join(by_c)})."
    ]
    loaded = {key: statistics.median(got["raw"]) for key, got in ratios.items() if key[1] >= 4 and got["raw"]}
    if loaded:
        near = sum(r >= 0.90 for r in loaded.values())
        (kind, c, row), lowest = min(loaded.items(), key=lambda kv: kv[1])
        lines[0] += (
            f" Within 10 % of the raw limit at c ≥ 4 (median ratio ≥ 0.90): {near} of {len(loaded)} cells; "
            f"the lowest {lowest:.2f} ({row}, {kind}, c={c})."
        )
    return lines + [""]


def clustered_median_interval(groups: list[list[float]], resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The median of every group's values pooled, and a 95 % interval for it that resamples the groups first.

    The groups are rounds, the values their slices. Slices of one round are
    not independent: a peer's speed against the raw limit moves from round to
    round (KServe's from 0.80 to 0.90 of it in one run), and every slice of the
    round moves with it. Resampling slices alone would count 24 correlated
    ratios as 24 independent ones and draw the interval too narrow; resampling
    the rounds, then the slices within each, keeps that round-to-round
    movement in the interval (seeded: a report reads the same twice).
    """
    groups = [g for g in groups if g]
    rng = random.Random(seed)
    medians = sorted(
        statistics.median([v for g in rng.choices(groups, k=len(groups)) for v in rng.choices(g, k=len(g))]) for _ in range(resamples)
    )
    return statistics.median([v for g in groups for v in g]), medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def slice_paired(cells: list[dict], inputs: list[str], concurrencies: list[int]) -> list[str]:
    """Each edgetl row against the fastest peer (and the raw limit), slice by slice.

    In a block, slice i of every row was taken in the same shuffled pass, within
    a few seconds of the others, so edgetl's i-th slice over the fastest peer's
    i-th slice is a ratio with the VM's drift taken out at the finest grain the
    run has. Reported: the median of those ratios over every round, a 95 %
    bootstrap interval for it that resamples rounds before slices
    (`clustered_median_interval`), and in how many slices edgetl was ahead. This is
    a second view of the same run, beside the rounds' rule above (which decides
    the bold): a lead whose interval sits above 1 is there whatever the
    rounds' scatter. Runs whose raw limit was a row of the slices get the same
    ratio against it. Files from before slices were kept give no table.
    """
    by_block: dict[tuple, dict[str, dict]] = {}
    for cell in cells:
        if cell.get("slices"):
            by_block.setdefault((cell["input"], cell["concurrency"], cell["round"]), {})[cell["row"]] = cell
    if not any(any(p in rows for p in PEER_ROWS) for rows in by_block.values()):
        return []
    edgetl_rows = sorted({r for rows in by_block.values() for r in rows if r.startswith("edgetl")}, key=row_order)
    sliced_raw = any(RAW_ROW in rows for rows in by_block.values())
    against = ["peer", "raw"] if sliced_raw else ["peer"]

    def ratios_of(kind: str, c: int, row: str, versus: str) -> list[list[float]]:
        """Per round, the slices' ratios."""
        ratios = []
        for (k, cc, _), rows in by_block.items():
            if k != kind or cc != c or row not in rows:
                continue
            if versus == "raw":
                other = rows.get(RAW_ROW)
            else:
                peers = [rows[p] for p in PEER_ROWS if p in rows]
                other = max(peers, key=lambda cell: cell["per_s"]) if peers else None
            if other is not None:
                ratios.append([mine / theirs for mine, theirs in zip(rows[row]["slices"], other["slices"]) if theirs])
        return ratios

    lines = []
    for kind in inputs:
        lines += [
            f"**{kind}, slice by slice** — edgetl's requests/s over the fastest peer's"
            + (" (and over the raw limit's)" if sliced_raw else "")
            + " in the same pass of slices: median of every round's slices [95 % interval of the median, rounds resampled, then slices]; slices ahead",
            "",
            *table_head(
                "edgetl · API",
                [f"c={c}" + (" vs fastest peer" if sliced_raw else "") for c in concurrencies]
                + ([f"c={c} vs raw" for c in concurrencies] if sliced_raw else []),
            ),
        ]
        for row in edgetl_rows:
            out = []
            for versus in against:
                for c in concurrencies:
                    rounds = ratios_of(kind, c, row, versus)
                    ratios = [r for got in rounds for r in got]
                    if not ratios:
                        out.append("–")
                        continue
                    median, low, high = clustered_median_interval(rounds)
                    out.append(f"{median:.3f} [{low:.3f}–{high:.3f}]; {sum(r > 1 for r in ratios)}/{len(ratios)}")
            lines.append(f"| {row} | " + " | ".join(out) + " |")
        lines.append("")
    return lines


def report(results: dict) -> str:
    """The Markdown table: median requests/s over rounds [min–max], then median p50 ms."""
    cells: dict[tuple, list] = {}
    for cell in results["cells"]:
        cells.setdefault((cell["row"], cell["input"], cell["concurrency"]), []).append(
            cell
        )
    concurrencies = sorted({c for _, _, c in cells})
    inputs = [k for k in ("jpeg", "pixels") if any(i == k for _, i, _ in cells)]
    lines = [
        f"Machine: {results['machine']}; {results['date']}. CPUs: {results['pin']}; ONNX Runtime intra-op threads {results['ort_threads']} in every server.",
        f"Image: {results['image']}. {results['rounds']} rounds of {results['seconds']:g} s per cell; "
        + (
            f"in each round, one block per input and concurrency; in a block, every row measured in slices of {results['slice']:g} s taken in turn (a new shuffled order each time), "
            + ("the raw limit among them." if "raw_limit" in results else "the raw limit whole beside them.")
            if "slice" in results
            else "in each round, one block per input and concurrency, its rows back to back in a shuffled order."
            if any("block" in c for c in results["cells"])
            else "cells shuffled within a round."
        ),
        "",
    ]
    for kind in inputs:
        lines += [
            f"**{kind}** — requests/s, median of rounds [min–max]; p50 ms",
            "",
            *table_head("server · API", [f"c={c}" for c in concurrencies]),
        ]
        for row in sorted({r for r, i, _ in cells if i == kind}, key=row_order):
            out = []
            for c in concurrencies:
                got = cells.get((row, kind, c))
                if not got:
                    out.append("–")
                    continue
                rates = [g["per_s"] for g in got]
                p50 = statistics.median(g["p50_ms"] for g in got)
                out.append(
                    f"{statistics.median(rates):.0f} [{min(rates):.0f}–{max(rates):.0f}]; {p50:.1f} ms"
                )
            lines.append(f"| {row} | " + " | ".join(out) + " |")
        lines.append("")
    lines += paired(results["cells"], inputs, concurrencies)
    lines += slice_paired(results["cells"], inputs, concurrencies)
    if "rss_mb" in results:
        lines += [
            "Resident memory after the run (with worker processes): "
            + ", ".join(f"{k} {v:.0f} MB" for k, v in results["rss_mb"].items()),
            "",
        ]
    lines += verdict(results["cells"])
    return "\n".join(lines).rstrip("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--slice",
        type=float,
        default=0.5,
        help="seconds per slice: each cell's --seconds is measured in slices of this length, the rows of a block alternating",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--inputs", nargs="+", choices=["jpeg", "pixels"], default=["jpeg", "pixels"]
    )
    parser.add_argument(
        "--servers", nargs="+", choices=["edgetl", *PEERS], default=["edgetl", *PEERS]
    )
    parser.add_argument("--pin", choices=["auto", "split", "none"], default="auto")
    parser.add_argument(
        "--venvs", type=Path, default=Path.home() / ".cache" / "edgetl-peers"
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / "edgetl-data")
    parser.add_argument(
        "--edgetl-variant",
        nargs=2,
        action="append",
        metavar=("NAME", "RUNTIME"),
        help="also serve edgetl with more [runtime] settings, e.g. nospin 'ort_spinning = false' (';' separates lines)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--report", type=Path, help="print the table of an earlier --out file and exit"
    )
    report_or_run(parser.parse_args(), run, report)


if __name__ == "__main__":
    main()
