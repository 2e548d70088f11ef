"""The `edgetl` command as users and scripts run it: a real `edgetl serve` process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import encode

EDGETL = [sys.executable, "-m", "edgetl"]


class ServeProcess:
    def __init__(self, data_dir: Path, *args: str):
        self.proc = subprocess.Popen(
            [*EDGETL, "serve", "--data-dir", str(data_dir), "--port", "0", "--metrics-port", "0", "--terminal-port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 120
        self.ready_line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"edgetl serve exited: {self.proc.wait()} {self.proc.stderr.read()[-2000:]}")
            if "ready" in line:
                self.ready_line = line.strip()
                break
        self.address = re.search(r"ready on (\S+)", self.ready_line).group(1)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def serve(data_dir):
    started = []

    def start(*args):
        p = ServeProcess(data_dir, *args)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def run(*args, env=None):
    return subprocess.run([*EDGETL, *args], capture_output=True, text=True, timeout=120, env=env)


def test_serve_predict_prints_a_cat(serve, tmp_path, chelsea_rgb):
    server = serve()
    assert server.ready_line.startswith("edgetl ready on 127.0.0.1:") and "imagenet" in server.ready_line
    image = tmp_path / "chelsea.png"
    image.write_bytes(encode(chelsea_rgb))
    result = run("predict", "--server", server.address, "--task", "imagenet", "--json", str(image))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["file"] == str(image) and out["label"] == "Egyptian cat" and out["adapter_version"] == "builtin"
    assert out["score"] == pytest.approx(0.78, abs=0.05) and out["scores"]["Egyptian cat"] == out["score"]
    human = run("predict", "--server", server.address, "--task", "imagenet", str(image))
    assert "Egyptian cat" in human.stdout


def test_server_address_from_the_environment(serve):
    server = serve()
    result = run("backbones", env={**os.environ, "EDGETL_SERVER": server.address})
    assert result.returncode == 0 and "efficientnet_lite0" in result.stdout and "loaded on CPUExecutionProvider" in result.stdout


def test_tasks_create_and_list(serve):
    server = serve()
    created = run("tasks", "create", "weld", "--classes", "ok,crack", "--server", server.address, "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["class_names"] == ["ok", "crack"]
    listed = [json.loads(line)["name"] for line in run("tasks", "--server", server.address, "--json").stdout.splitlines()]
    assert listed == ["imagenet", "weld"]


def test_errors_are_one_line_with_a_nonzero_exit(serve, tmp_path, chelsea_rgb):
    server = serve()
    image = tmp_path / "x.png"
    image.write_bytes(encode(chelsea_rgb))
    cases = {
        "unknown task": (["predict", "--server", server.address, "--task", "nope", str(image)], 1, "NOT_FOUND"),
        "missing file": (["predict", "--server", server.address, "--task", "imagenet", str(tmp_path / "gone.png")], 1, "cannot read"),
        "not an image": (["predict", "--server", server.address, "--task", "imagenet", __file__], 1, "INVALID_ARGUMENT"),
        "no server": (["predict", "--server", "127.0.0.1:1", "--task", "imagenet", str(image)], 3, "cannot reach the edgetl server"),
        "bad usage": (["predict", "--task"], 2, "expected one argument"),
    }
    for case, (args, code, phrase) in cases.items():
        result = run(*args)
        assert result.returncode == code, (case, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert lines and all(line.startswith("edgetl: error:") for line in lines), (case, result.stderr)
        assert phrase in result.stderr and "Traceback" not in result.stderr, case


def test_serve_with_a_bad_settings_file_fails_in_one_line(tmp_path):
    config = tmp_path / "edgetl.toml"
    config.write_text("[server]\nprot = 1\n")
    result = run("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "unknown setting [server] prot" in result.stderr and "Traceback" not in result.stderr


def test_sigterm_stops_gracefully(serve):
    server = serve()
    assert server.stop() == 0
    log = server.proc.stderr.read()
    assert "shutting down: health NOT_SERVING" in log
    assert "(event loop: uvloop)" in log  # the default, uvloop being a dependency here (edgetl.server.eventloop)


def test_serve_on_the_standard_event_loop(serve, data_dir, tmp_path, chelsea_rgb):
    (data_dir / "edgetl.toml").write_text('[runtime]\nevent_loop = "asyncio"\n')
    server = serve()
    image = tmp_path / "chelsea.png"
    image.write_bytes(encode(chelsea_rgb))
    result = run("predict", "--server", server.address, "--task", "imagenet", "--json", str(image))
    assert result.returncode == 0 and json.loads(result.stdout)["label"] == "Egyptian cat", result.stderr
    assert server.stop() == 0
    assert "(event loop: asyncio)" in server.proc.stderr.read()


def test_port_in_use_is_a_clear_error(serve, data_dir):
    server = serve()
    port = server.address.rsplit(":", 1)[1]
    result = run("serve", "--data-dir", str(data_dir), "--port", port)
    assert result.returncode == 1 and "cannot listen on 127.0.0.1:" + port in result.stderr


def test_cli_adaptation_loop(serve, tmp_path):
    """label import -> train --wait --json -> eval --json -> adapters list/rollback, as an operator runs them."""
    from edgetl.synthetic import write_dataset

    server = serve()
    train_dir = write_dataset(tmp_path / "train", "brick", classes=("ok", "pit", "burn"), per_class=10, size=96, seed=0)
    test_dir = write_dataset(tmp_path / "test", "brick", classes=("ok", "pit", "burn"), per_class=4, size=96, seed=1)
    s = ["--server", server.address]

    imported = run("label", "import", "--task", "line4", str(train_dir), *s)
    assert imported.returncode == 0, imported.stderr
    assert "created task line4" in imported.stderr and "labelling [" in imported.stderr and "30 labels" in imported.stdout

    trained = run("train", "--task", "line4", "--method", "head", "--wait", "--json", *s)
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["version"] == "1" and summary["activated"] is True and summary["val_accuracy"] >= 0.5
    assert "train" in trained.stderr and "done" in trained.stderr  # live progress went to stderr

    evaluated = json.loads(run("eval", "--task", "line4", str(test_dir), "--json", *s).stdout)
    assert evaluated["n"] == 12 and evaluated["accuracy"] >= 0.6 and set(evaluated["per_class"]) == {"ok", "pit", "burn"}
    assert evaluated["adapter_versions"] == ["1"]

    again = run("train", "--task", "line4", "--method", "head", "--seed", "3", "--force", "--wait", "--json", *s)
    assert json.loads(again.stdout)["version"] == "2"
    listed = [json.loads(l) for l in run("adapters", "list", "--task", "line4", "--json", *s).stdout.splitlines()]
    assert [(a["version"], a["state"]) for a in listed] == [("1", "retired"), ("2", "active")]
    back = run("adapters", "rollback", "--task", "line4", *s)
    assert back.returncode == 0 and "v1" in back.stdout and "active" in back.stdout
    counts = run("label", "counts", "--task", "line4", "--json", *s)
    assert json.loads(counts.stdout)["total"] == 30


def test_kill_9_during_a_job_loses_no_label(serve, data_dir, tmp_path):
    """The server dies mid-training: labels stay, the job is failed, no half adapter, the worker exits."""
    from edgetl.synthetic import write_dataset

    server = serve()
    s = ["--server", server.address]
    dataset = write_dataset(tmp_path / "ds", "gravel", classes=("ok", "crack"), per_class=8, size=64, seed=0)
    assert run("label", "import", "--task", "t", str(dataset), *s).returncode == 0
    started = json.loads(run("train", "--task", "t", "--method", "lora", "--epochs", "500", "--json", *s).stdout)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the worker is in its training loop
        listed = json.loads(run("jobs", "list", "--json", *s).stdout.splitlines()[0])
        if listed["state"] == "running" and list((data_dir / "adapters" / "t").glob(".tmp-*")):
            break
        time.sleep(0.5)
    time.sleep(3)
    server.proc.kill()  # SIGKILL: no goodbye
    server.proc.wait(10)
    # The orphaned worker notices its parent is gone and exits.
    for _ in range(20):
        alive = subprocess.run(["pgrep", "-f", "edgetl.adapt.worker"], capture_output=True, text=True).stdout.split()
        if not alive:
            break
        time.sleep(0.5)
    assert not alive, "the training process outlived the server"

    restarted = serve()
    s = ["--server", restarted.address]
    assert json.loads(run("label", "counts", "--task", "t", "--json", *s).stdout)["total"] == 16
    job = json.loads(run("jobs", "list", "--json", *s).stdout.splitlines()[0])
    assert job["job_id"] == started["job_id"] and job["state"] == "failed" and "server stopped" in job["error"]
    assert not list((data_dir / "adapters").rglob(".tmp-*"))
    assert run("adapters", "list", "--task", "t", *s).stdout == ""
    # And the store still trains.
    assert run("train", "--task", "t", "--method", "head", "--wait", *s).returncode == 0


def test_kill_9_during_a_label_import_keeps_every_acknowledged_label(serve, data_dir):
    """Labels acknowledged before the kill are all there after the restart, and the store is consistent."""
    import threading

    import grpc

    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, model_pb2, model_pb2_grpc
    from edgetl.synthetic import make_images
    from tests.adapt_helpers import png

    server = serve()
    channel = grpc.insecure_channel(server.address)
    model_pb2_grpc.ModelServiceStub(channel).CreateTask(model_pb2.CreateTaskRequest(name="t", class_names=["ok", "pit"]), timeout=30)
    labels = adapt_pb2_grpc.LabelServiceStub(channel)
    acked: list[str] = []

    def importer():
        for kind, img in make_images("brick", ("ok", "pit"), per_class=200, size=64, seed=4):
            try:
                r = labels.AddLabel(adapt_pb2.AddLabelRequest(task="t", image=image_pb2.Image(encoded=png(img)), class_name=kind), timeout=10)
            except grpc.RpcError:
                return
            acked.append(r.image_sha256)

    thread = threading.Thread(target=importer)
    thread.start()
    while len(acked) < 40:
        time.sleep(0.05)
    server.proc.kill()
    server.proc.wait(10)
    thread.join(30)
    channel.close()

    restarted = serve()
    from edgetl.adapt.labels import LabelStore

    store = LabelStore(data_dir, data_dir / "edgetl.db", readonly=True)
    stored = {l.image_sha256 for l in store.current("t")}
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged labels lost"
    assert all(l.path.is_file() for l in store.current("t"))  # no row without its image
    counts = json.loads(run("label", "counts", "--task", "t", "--json", "--server", restarted.address).stdout)
    assert counts["total"] == len(stored) >= len(acked)


def test_kill_9_during_activations_leaves_a_fully_written_adapter_active(serve, data_dir, tmp_path):
    """Kill the server while it swaps adapters back and forth (a head and a LoRA adapter with its own
    backbone session, so a swap takes a while): after each restart exactly one version is active, it
    is one the server had fully written, and it answers exactly as it did before the kill."""
    import threading

    import grpc

    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc
    from edgetl.synthetic import write_dataset
    from tests.conftest import TINY, tiny_plugin_config

    (data_dir / "edgetl.toml").write_text(
        "[plugins.timm]\nbackbones = [" + _toml_inline(tiny_plugin_config()["backbones"][0]) + "]\n"
    )
    server = serve()
    s = ["--server", server.address]
    dataset = write_dataset(tmp_path / "ds", "gravel", classes=("ok", "crack"), per_class=6, size=64, seed=0)
    assert run("tasks", "create", "t", "--classes", "ok,crack", "--backbone", TINY, *s).returncode == 0
    assert run("label", "import", "--task", "t", str(dataset), *s).returncode == 0
    assert run("train", "--task", "t", "--method", "head", "--wait", *s).returncode == 0
    # LoRA's own classifier (global pooling): two guided heads on this tiny random backbone can both answer 0 / 1.
    lora = run("train", "--task", "t", "--method", "lora", "--epochs", "1", "--pooling", "global", "--lora-min-stride", "16", "--force", "--wait", *s)
    assert lora.returncode == 0, lora.stderr
    with grpc.insecure_channel(server.address) as channel:
        listed = adapt_pb2_grpc.AdapterServiceStub(channel).ListAdapters(adapt_pb2.ListAdaptersRequest(task="t"), timeout=30)
    assert json.loads(listed.adapters[-1].options_json)["lora_min_stride"] == 16  # the flag reached the job

    probe = inference_pb2.ClassifyRequest(task="t", image=image_pb2.Image(encoded=next(dataset.rglob("*.png")).read_bytes()))

    def answers(address) -> dict[str, tuple]:
        """Each version's answer to the probe image, activating each in turn."""
        channel = grpc.insecure_channel(address)
        adapters, infer = adapt_pb2_grpc.AdapterServiceStub(channel), inference_pb2_grpc.InferenceServiceStub(channel)
        out = {}
        for version in ("1", "2"):
            adapters.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="t", version=version), timeout=60)
            r = infer.Classify(probe, timeout=30)
            out[version] = (r.label, tuple(round(x, 5) for x in r.scores))
        channel.close()
        return out

    expected = answers(server.address)
    assert expected["1"] != expected["2"]  # the two adapters are told apart by their answers

    for round_no, kill_after in enumerate((0.15, 0.4, 0.9)):
        channel = grpc.insecure_channel(server.address)
        adapters = adapt_pb2_grpc.AdapterServiceStub(channel)
        acknowledged: list[str] = []
        stop = threading.Event()

        def swapper():
            version = "1"
            while not stop.is_set():
                try:
                    adapters.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="t", version=version), timeout=30)
                except grpc.RpcError:
                    return
                acknowledged.append(version)
                version = "2" if version == "1" else "1"

        thread = threading.Thread(target=swapper)
        thread.start()
        time.sleep(kill_after)
        server.proc.kill()
        server.proc.wait(10)
        stop.set()
        thread.join(30)
        channel.close()

        server = serve()
        listed = [json.loads(l) for l in run("adapters", "list", "--task", "t", "--json", "--server", server.address).stdout.splitlines()]
        active = [a["version"] for a in listed if a["state"] == "active"]
        assert len(active) == 1, listed
        # The active one is the last acknowledged swap, or the one in flight when the server died.
        last = acknowledged[-1] if acknowledged else "1"
        in_flight = "2" if last == "1" else "1"
        assert active[0] in (last, in_flight), (round_no, acknowledged[-3:], active)
        print(f"kill after {kill_after} s: {len(acknowledged)} swaps acknowledged, v{active[0]} active after restart")
        r = inference_pb2_grpc.InferenceServiceStub(grpc.insecure_channel(server.address)).Classify(probe, timeout=30)
        assert r.adapter_version == active[0]
        assert (r.label, tuple(round(x, 5) for x in r.scores)) == expected[active[0]]
    assert not list((data_dir / "adapters").rglob(".tmp-*"))


def _toml_inline(table: dict) -> str:
    """A TOML inline table for a flat dict of strings, lists and dicts of ints."""
    def value(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return str(v)

    return value(table)


def test_json_logs_and_metrics_from_a_real_serve_process(serve, chelsea_rgb, tmp_path):
    """`--log-format json`: every stderr line is a JSON object; the ready line names the /metrics URL."""
    import urllib.request

    server = serve("--log-format", "json")
    url = re.search(r"metrics on (\S+)", server.ready_line).group(1)
    photo = tmp_path / "cat.jpg"
    photo.write_bytes(encode(chelsea_rgb, ".jpg"))
    assert run("predict", "--task", "imagenet", str(photo), "--server", server.address).returncode == 0
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    assert 'edgetl_images_total{adapter_version="builtin",task="imagenet"} 1.0' in text
    assert server.stop() == 0
    lines = [json.loads(line) for line in server.proc.stderr.read().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    assert any("shutting down" in entry["message"] for entry in lines)


def test_health_command_for_probes(serve):
    server = serve()
    ok = run("health", "--server", server.address)
    assert ok.returncode == 0 and ok.stdout.strip() == "SERVING"
    assert run("health", "--server", server.address, "--service", "inference.GRPCInferenceService").returncode == 0
    unknown = run("health", "--server", server.address, "--service", "no.such.Service")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    server.stop()
    gone = run("health", "--server", server.address, "--timeout", "2")
    assert gone.returncode == 3
