"""`edgetl review`, `tasks add-class` and the terminal from a real `edgetl serve` process, and kill -9 during capture."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import grpc

from edgetl.review.store import ReviewStore
from tests.test_cli import run, serve  # noqa: F401 - `serve` is a fixture


def _review_items(address: str, expected: int, *extra: str) -> list[dict]:
    """Capture is written off the hot path: poll until the items are there."""
    deadline = time.monotonic() + 30
    while True:
        listed = run("review", "list", "--task", "line4", "--json", "--order", "time", "--server", address, *extra)
        items = [json.loads(line) for line in listed.stdout.splitlines()]
        if len(items) >= expected or time.monotonic() > deadline:
            return items
        time.sleep(0.2)


def test_review_from_the_command_line(serve, tmp_path, data_dir):  # noqa: F811
    from edgetl.synthetic import write_dataset

    server = serve()
    s = ["--server", server.address]
    assert "; terminal on http://127.0.0.1:" in server.ready_line
    terminal_url = server.ready_line.rsplit("terminal on ", 1)[1].strip()
    assert b"edgetl terminal" in urllib.request.urlopen(terminal_url, timeout=10).read()

    train_dir = write_dataset(tmp_path / "train", "brick", classes=("ok", "pit", "burn"), per_class=10, size=96, seed=0)
    assert run("label", "import", "--task", "line4", str(train_dir), *s).returncode == 0
    assert run("train", "--task", "line4", "--method", "head", "--wait", *s).returncode == 0
    policy = json.loads(run("review", "policy", "--task", "line4", "--random-rate", "1", "--json", *s).stdout)
    assert policy["random_rate"] == 1.0 and policy["customized"] is True and policy["updated_by"] == "local"

    images = sorted(write_dataset(tmp_path / "line", "brick", classes=("ok", "pit", "burn"), per_class=2, size=96, seed=5).rglob("*.png"))
    predicted = run("predict", "--task", "line4", "--flag", *map(str, images), *s)
    assert predicted.returncode == 0, predicted.stderr
    items = _review_items(server.address, len(images))
    assert len(items) == 6 and all({"flagged", "random"} <= set(i["reasons"]) for i in items)

    saved = tmp_path / "seen.png"
    shown = run("review", "show", str(items[0]["id"]), "--save", str(saved), *s)
    assert shown.returncode == 0 and "flagged" in shown.stdout and saved.read_bytes() == images[0].read_bytes()

    ids = [str(i["id"]) for i in items]
    t = ["--task", "line4"]
    assert run("review", "accept", ids[0], "--operator", "anna", *t, *s).stdout.startswith(f"item {ids[0]}: accepted (label ")
    wrong = next(c for c in ("ok", "pit", "burn") if c != items[1]["predicted"])
    assert "relabelled" in run("review", "relabel", ids[1], "--class", wrong, *t, *s).stdout
    assert "rejected" in run("review", "reject", ids[2], *t, *s).stdout
    assert "skipped" in run("review", "skip", ids[3], *t, *s).stdout
    other = run("review", "accept", ids[4], "--task", "imagenet", *s)
    assert other.returncode == 1 and "belongs to task 'line4', not 'imagenet'" in other.stderr
    summary = json.loads(run("review", "summary", "--task", "line4", "--json", *s).stdout)
    assert (summary["pending"], summary["skipped"], summary["resolved"]) == (2, 1, 3)
    accuracy = json.loads(run("review", "accuracy", "--task", "line4", "--json", *s).stdout)
    assert (accuracy["adapter_version"], accuracy["reviewed"], accuracy["correct"], accuracy["active"]) == ("1", 2, 1, True)
    assert 0 < accuracy["interval"][0] < 0.5 < accuracy["interval"][1] < 1

    missing = run("review", "accept", "999999", *s)
    assert missing.returncode == 1 and "unknown review item 999999" in missing.stderr
    no_class = run("review", "relabel", ids[4], *s)
    assert no_class.returncode == 2 and "--class" in no_class.stderr
    bad = run("review", "policy", "--task", "line4", "--random-rate", "7", *s)
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "random_rate" in bad.stderr

    added = json.loads(run("tasks", "add-class", "line4", "--class", "crack", "--json", *s).stdout)
    assert added["class_names"] == ["burn", "ok", "pit", "crack"]
    audit = [json.loads(line) for line in run("audit", "--data-dir", str(data_dir), "--task", "line4").stdout.splitlines()]
    resolutions = [e for e in audit if e["action"] == "ResolveReviewItems"]
    # `who` is the authenticated caller; without security a claimed operator is recorded beside it.
    assert [(e["who"], e.get("operator_id"), e["verdict"]) for e in resolutions] == [
        ("local", "anna", "accept"), ("local", None, "relabel"), ("local", None, "reject"), ("local", None, "skip"),
    ]
    assert any(e["action"] == "AddClass" and e["class_name"] == "crack" for e in audit)


def test_kill_9_during_capture_leaves_no_half_written_item(serve, tmp_path, data_dir):  # noqa: F811
    """The server dies while cameras flag images: every stored item has its whole image, nothing is left half written."""
    from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc
    from edgetl.synthetic import make_images, write_dataset
    from tests.adapt_helpers import png

    server = serve()
    s = ["--server", server.address]
    assert run("label", "import", "--task", "line4", str(write_dataset(tmp_path / "d", "brick", ("ok", "pit"), 8, 64, 0)), *s).returncode == 0
    assert run("train", "--task", "line4", "--method", "head", "--wait", *s).returncode == 0
    run("review", "policy", "--task", "line4", "--per-minute", "100000", "--per-hour", "100000", "--per-day", "100000", *s)
    frames = [png(img) for _, img in make_images("brick", ("ok", "pit"), 100, 160, 3)]
    answered = []

    def camera():
        channel = grpc.insecure_channel(server.address)
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        for i, frame in enumerate(frames):
            try:
                stub.Classify(inference_pb2.ClassifyRequest(task="line4", image=image_pb2.Image(encoded=frame), flag_for_review=True, request_id=str(i)), timeout=10)
            except grpc.RpcError:
                break
            answered.append(i)
        channel.close()

    thread = threading.Thread(target=camera)
    thread.start()
    while len(answered) < 40:
        time.sleep(0.02)
    server.proc.kill()
    server.proc.wait(10)
    thread.join(30)

    restarted = serve()  # the start-up sweep runs here
    store = ReviewStore(data_dir, data_dir / "edgetl.db", lambda sha, fmt: data_dir / "images" / sha[:2] / f"{sha}.png")
    try:
        from edgetl.review.store import Query

        items, total, _ = store.list(Query("line4", page_size=500))
        assert 0 < total <= len(answered) + 4  # written off the hot path: the last few may not have made it
        for item in items:
            assert store.image(item) == frames[int(item.request_id)]  # whole, and the right one
        leftovers = [p for p in (data_dir / "review").rglob("*") if p.is_file() and p.name.startswith(".")]
        assert not leftovers, leftovers
        on_disk = {p.name.split(".")[0] for p in (data_dir / "review").rglob("*") if p.is_file()}
        assert on_disk == {i.image_sha256 for i in items}  # no file without its row
    finally:
        store.close()
    listed = run("review", "summary", "--task", "line4", "--json", "--server", restarted.address)
    assert json.loads(listed.stdout)["pending"] == total


def test_the_terminal_runs_on_its_own_against_a_server(serve):  # noqa: F811
    """`edgetl terminal --server HOST:PORT`: the page on another machine, a gRPC client like any other."""
    import signal
    import subprocess
    import sys

    server = serve("--no-terminal")
    assert "terminal on" not in server.ready_line
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgetl", "terminal", "--server", server.address, "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("edgetl terminal ready on http://127.0.0.1:"), line + proc.stderr.read()[-2000:]
        url = line.split(" ready on ", 1)[1].split(" ", 1)[0]
        session = json.loads(urllib.request.urlopen(url + "api/session", timeout=10).read())
        assert session["signed_in"] and session["server"] == server.address
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    refused = run("terminal", "--server", server.address, "--host", "0.0.0.0", "--port", "0")
    assert refused.returncode == 1 and "plain HTTP" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
