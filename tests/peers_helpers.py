"""Helpers for the tests of benchmarks/peers/: load a script as a module, the peers' environment, a minimal server."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

PEERS = Path(__file__).resolve().parents[1] / "benchmarks" / "peers"


def load_script(name: str):
    """benchmarks/peers/NAME.py as a module (its own imports of run.py found beside it)."""
    if str(PEERS) not in sys.path:
        sys.path.insert(0, str(PEERS))
    spec = importlib.util.spec_from_file_location(f"peers_{name}", PEERS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peer_env(record, workdir: Path) -> dict:
    """The environment `front_server.py` and the peers read: the export `record`, its spec written to `workdir`."""
    from edgetl.backbones import imagenet_class_names

    spec = record.manifest["spec"]
    spec_file = workdir / "spec.json"
    spec_file.write_text(
        json.dumps({k: spec[k] for k in ("input_size", "color_order", "mean", "std")} | {"class_names": list(imagenet_class_names())})
    )
    return dict(
        os.environ,
        EDGETL_PEER_MODEL=str(record.onnx_path),
        EDGETL_PEER_SPEC=str(spec_file),
        EDGETL_PEER_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(PEERS), str(PEERS.parents[1])]),
    )


@contextlib.contextmanager
def front_server(shape: str, env: dict, workdir: Path):
    """`front_server.py SHAPE` on a free port; yields its address once it listens, stops it after."""
    run = load_script("run")
    port = run.free_port()
    log = workdir / f"front-{shape}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, str(PEERS / "front_server.py"), shape, str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        run.wait_for_port(port, proc, log)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
