"""Memory per extra ONNX Runtime session (a LoRA or INT8 task's own backbone), each with its own arena or one shared arena.

    python benchmarks/session_memory.py [--sessions 1 2 4 8] [--threads 2] [--out benchmarks/results/session-memory.json]

A server holds one session for the shared backbone and one more per LoRA or
INT8 task. Each session's CPU arena grows to the largest run it has seen
(the warm-up runs batch 1 and `max_batch`) and keeps that memory for the
process's life. edgetl registers one arena for the process
(edgetl.runtime.session.shared_cpu_arena) so the sessions, which run one
batch after another on a small box, reuse the same blocks.

Memory: for each arena mode and session count, a fresh process opens that
many sessions of the built-in backbone's export, runs each at batch 1 and 4
with every output fetched (as the warm-up does), and reports its resident
memory over what it held before. Time: both modes in one process,
interleaved rounds, ms per image at batch 1 and 4.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STORE = ROOT / "edgetl-data" / "store"


def _record():
    from edgetl.backbones.registry import BackboneRegistry
    from edgetl.runtime.store import ModelStore
    from edgetl.settings import Settings

    settings = Settings(data_dir=ROOT / "edgetl-data", providers=("cpu",))
    return ModelStore(STORE).ensure(BackboneRegistry.from_settings(settings).get(settings.default_backbone), settings.to_dict())


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def _session(record, threads: int, shared: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if shared:
        options.add_session_config_entry("session.use_env_allocators", "1")
    return ort.InferenceSession(str(record.onnx_path), options, providers=["CPUExecutionProvider"])


def _register_arena() -> None:
    from edgetl.runtime.session import shared_cpu_arena

    assert shared_cpu_arena(), "this ONNX Runtime refused a shared arena"


def measure_memory(mode: str, sessions: int, threads: int) -> float:
    """In this (fresh) process: MiB held by `sessions` warmed-up sessions."""
    record = _record()
    import edgetl.runtime.session  # noqa: F401 - imported in both modes, so neither pays for the import inside the measurement

    before = _rss_mib()
    if mode == "shared":
        _register_arena()
    held, outputs = [], list(record.output_shapes)
    for _ in range(sessions):
        session = _session(record, threads, mode == "shared")
        for batch in (1, 4):
            session.run(outputs, {"image": np.zeros((batch, 3, 224, 224), np.float32)})
        held.append(session)
    return _rss_mib() - before


def measure_time(threads: int, rounds: int = 5, calls: int = 40) -> dict:
    record = _record()
    _register_arena()
    sessions = {"own": _session(record, threads, False), "shared": _session(record, threads, True)}
    outputs = list(record.output_shapes)
    times = {(mode, batch): [] for mode in sessions for batch in (1, 4)}
    for r in range(rounds):
        for mode in (("own", "shared") if r % 2 else ("shared", "own")):
            for batch in (1, 4):
                x = np.random.default_rng(batch).uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)
                for _ in range(5):
                    sessions[mode].run(outputs, {"image": x})
                started = time.perf_counter()
                for _ in range(calls // batch):
                    sessions[mode].run(outputs, {"image": x})
                times[(mode, batch)].append((time.perf_counter() - started) / (calls // batch) / batch * 1000)
    return {f"{mode} batch {batch}": {"median_ms_per_image": statistics.median(v), "min": min(v), "max": max(v)} for (mode, batch), v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_memory(args.child[0], int(args.child[1]), args.threads)))
        return
    _record()  # export once, before the measuring processes
    from benchmarks.serve_overhead import machine

    memory = {}
    for mode in ("own", "shared"):
        for n in args.sessions:
            out = subprocess.run([sys.executable, __file__, "--child", mode, str(n), "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            memory[f"{mode} {n}"] = json.loads(out.stdout.strip().splitlines()[-1])
    timing = measure_time(args.threads)
    print(f"Machine: {machine()}; {args.threads} ORT threads\n")
    print("| sessions | own arena each, MiB | one shared arena, MiB |")
    print("|---|---|---|")
    for n in args.sessions:
        print(f"| {n} | {memory[f'own {n}']:.1f} | {memory[f'shared {n}']:.1f} |")
    print("\n| ms per image (median of rounds [min–max]) | own arena | shared arena |")
    print("|---|---|---|")
    for batch in (1, 4):
        own, shared = timing[f"own batch {batch}"], timing[f"shared batch {batch}"]
        print(f"| batch {batch} | {own['median_ms_per_image']:.2f} [{own['min']:.2f}–{own['max']:.2f}] | {shared['median_ms_per_image']:.2f} [{shared['min']:.2f}–{shared['max']:.2f}] |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine(), "threads": args.threads, "memory_mib": memory, "time": timing}, indent=1))


if __name__ == "__main__":
    main()
