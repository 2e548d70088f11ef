"""The adaptation loop through a real server on loopback: label -> train -> gate -> hot swap.

Real training processes, real ONNX exports, real SQLite; small images so it
takes seconds. Heads train on the built-in EfficientNet-Lite0; LoRA trains
on the tiny timm backbone (random weights) to keep CI in minutes; the LoRA
benchmark on Lite0 is in benchmarks/adapt.py.
"""

from __future__ import annotations

import json
import threading
import time

import grpc
import numpy as np
import pytest

from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc
from edgetl.runtime.guided import GuidedHead
from edgetl.runtime.heads import LogitsHead
from tests.adapt_helpers import adapters, classify, create_and_label, png, train
from tests.conftest import TINY


def test_full_loop_with_a_head(server):
    images = create_and_label(server)
    counts = adapt_pb2_grpc.LabelServiceStub(server.channel).GetLabelCounts(adapt_pb2.GetLabelCountsRequest(task="parts"), timeout=10)
    assert dict(counts.per_class) == {"ok": 10, "pit": 10, "burn": 10} and counts.train + counts.val == 30 and counts.val > 0

    events, job = train(server)
    phases = [e.phase for e in events]
    assert phases[0] == "queued" and "running" in phases and "features" in phases and "train" in phases and phases[-1] == "done"
    assert any(e.epochs and e.loss > 0 for e in events if e.phase == "train")
    assert job.state == "succeeded" and job.version == "1" and job.activated and "first adapter" in job.gate
    assert job.metrics.n == counts.val and job.metrics.accuracy >= 0.5
    assert len(job.metrics.confusion) == 9

    answers = [classify(server, img) for _, img in images]
    assert {a.adapter_version for a in answers} == {"1"}
    accuracy = np.mean([a.label == kind for a, (kind, _) in zip(answers, images)])
    assert accuracy >= 0.8  # on its own labels: the head learned the defects
    listed = adapters(server).ListAdapters(adapt_pb2.ListAdaptersRequest(task="parts"), timeout=10)
    assert listed.active_version == "1" and listed.adapters[0].state == "active" and listed.adapters[0].label_count == 30


def test_the_gate_judges_a_model_trained_without_the_validation_split_and_the_served_one_learns_from_all(server, data_dir):
    import json

    from edgetl.adapt.metrics import metrics
    from edgetl.runtime.adapters import open_adapter, predict
    from edgetl.runtime.preprocess import EncodedImage, decode

    create_and_label(server)
    _, job = train(server)
    version_dir = data_dir / "adapters" / "parts" / job.version
    manifest = json.loads((version_dir / "manifest.json").read_text())
    counts = adapt_pb2_grpc.LabelServiceStub(server.channel).GetLabelCounts(adapt_pb2.GetLabelCountsRequest(task="parts"), timeout=10)
    assert manifest["holdout"]["trained_on"] == counts.train and "holdout/head.npz" in manifest["files"]
    with np.load(version_dir / "head.npz") as served, np.load(version_dir / "holdout" / "head.npz") as holdout:
        assert not np.allclose(served["weight"], holdout["weight"])  # the served head saw the validation images too

    # The job's validation figure is the holdout model's, on images it never saw.
    from edgetl.adapt.labels import LabelStore
    from edgetl.db import DB_FILE

    engine = server.server.engine
    settings, trt = server.server.settings, server.server.store.trt_cache
    val = [l for l in LabelStore(data_dir, data_dir / DB_FILE, readonly=True).current("parts") if l.split == "val"]
    session = engine.batchers["efficientnet_lite0"].session
    x = np.stack([session.preprocess(decode(EncodedImage(l.path.read_bytes()), 10**8)) for l in val])
    y = [["ok", "pit", "burn"].index(l.class_name) for l in val]
    holdout = open_adapter(version_dir, engine.batchers, settings, trt, holdout=True)
    assert metrics(y, predict(holdout, x).argmax(1), ["ok", "pit", "burn"])["accuracy"] == pytest.approx(job.metrics.accuracy)
    # An adapter from before holdout models (no section) is its own holdout model.
    legacy = dict(manifest)
    legacy.pop("holdout")
    (version_dir / "manifest.json").write_text(json.dumps(legacy))
    assert open_adapter(version_dir, engine.batchers, settings, trt, holdout=True).version == job.version


def test_lora_adapter_runs_its_own_backbone(server, data_dir):
    create_and_label(server, task="tinytask", backbone=TINY, size=64, per_class=8)
    events, job = train(server, task="tinytask", method="lora", epochs=2, batch_size=8)
    assert job.state == "succeeded", job.error
    assert [e for e in events if e.phase == "export"]
    version_dir = data_dir / "adapters" / "tinytask" / job.version
    assert {"model.onnx", "manifest.json", "probe.npz", "drift.npz", "peft/adapter_config.json", "peft/adapter_model.safetensors", "holdout/model.onnx"} <= {
        p.relative_to(version_dir).as_posix() for p in version_dir.rglob("*") if p.is_file()
    }
    engine = server.server.engine
    assert engine.adapters["tinytask"].batcher is not engine.batchers[TINY]  # its own session
    # The served model exports its embedding beside the logits, and drift monitoring reads it.
    assert "embedding" in json.loads((version_dir / "manifest.json").read_text())["onnx"]["outputs"]
    assert engine.adapters["tinytask"].drift is not None and "embedding" in engine.adapters["tinytask"].fetch
    r = classify(server, np.zeros((64, 64, 3), np.uint8), task="tinytask")
    assert r.adapter_version == job.version and len(r.scores) == 3
    assert server.server.monitor.status("tinytask", job.version).images == 1

    # The task has a good class ("ok"): both models answer through a guided head on their own tuned maps.
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["options"]["pooling"] == "guided" and manifest["options"]["good_class"] == "ok"
    assert {"head.npz", "holdout/head.npz"} <= set(manifest["files"])
    assert set(manifest["onnx"]["outputs"]) >= {"logits", "embedding", *engine.adapters["tinytask"].head.inputs}
    assert isinstance(engine.adapters["tinytask"].head, GuidedHead)
    # The maps' extraction reports progress, view by view (holdout and served: 8 views each).
    views = [e for e in events if e.phase == "features" and e.message.startswith("tuned feature maps")]
    assert len(views) == 16 and views[-1].epoch == views[-1].epochs == 8
    assert manifest["options"]["refit_epochs"] == 2 and manifest["files"]["model.onnx"] != manifest["files"]["holdout/model.onnx"]
    # Its drift reference (fitted from batches) is what serving hands the monitor image by image:
    # the guided head's standardised descriptor of each labelled image.
    from edgetl.adapt.labels import LabelStore
    from edgetl.db import DB_FILE
    from edgetl.monitor.reference import fit_reference
    from edgetl.runtime.heads import probabilities_and_embedding
    from edgetl.runtime.preprocess import EncodedImage, decode
    from edgetl.runtime.views import stack_views

    adapter = engine.adapters["tinytask"]
    labelled = LabelStore(data_dir, data_dir / DB_FILE, readonly=True).current("tinytask")
    served = []
    for label in labelled:
        x = adapter.batcher.session.preprocess(decode(EncodedImage(label.path.read_bytes()), 10**8))
        served.append(probabilities_and_embedding(adapter.head, stack_views(adapter.batcher.run_many([x], adapter.fetch), 1))[1][0])
    expected = fit_reference(np.stack(served), np.array([["ok", "pit", "burn"].index(l.class_name) for l in labelled]), 3)
    with np.load(version_dir / "drift.npz") as stored:
        for name in ("center", "scores"):
            np.testing.assert_allclose(stored[name], expected[name], rtol=1e-3, atol=1e-4)

    # Without a refit the holdout model serves, and its guided head is fitted again on every
    # label (as the head job's is), on maps computed once.
    events, held = train(server, task="tinytask", method="lora", epochs=1, batch_size=8, refit_epochs=0, force=True)
    assert held.state == "succeeded", held.error
    held_manifest = json.loads((data_dir / "adapters" / "tinytask" / held.version / "manifest.json").read_text())
    assert held_manifest["options"]["refit_epochs"] == 0 and held_manifest["files"]["model.onnx"] == held_manifest["files"]["holdout/model.onnx"]
    assert held_manifest["files"]["head.npz"] != held_manifest["files"]["holdout/head.npz"]
    assert len([e for e in events if e.phase == "features" and e.message.startswith("tuned feature maps")]) == 8

    # Asked for global pooling, LoRA answers from its own classifier, as before.
    _, plain = train(server, task="tinytask", method="lora", epochs=1, batch_size=8, pooling="global", force=True)
    assert plain.state == "succeeded", plain.error
    plain_dir = data_dir / "adapters" / "tinytask" / plain.version
    assert not (plain_dir / "head.npz").exists() and not (plain_dir / "holdout" / "head.npz").exists()
    plain_manifest = json.loads((plain_dir / "manifest.json").read_text())
    # Its own classifier learns every label by refitting the backbone: two models.
    assert plain_manifest["options"]["refit_epochs"] == 2 and plain_manifest["files"]["model.onnx"] != plain_manifest["files"]["holdout/model.onnx"]
    assert isinstance(engine.adapters["tinytask"].head, LogitsHead)
    assert classify(server, np.zeros((64, 64, 3), np.uint8), task="tinytask").adapter_version == plain.version


def test_gate_keeps_a_worse_adapter_as_candidate_and_force_activates(server):
    create_and_label(server)
    _, first = train(server)
    # Far too few steps: worse on the same split, so it stays a candidate.
    _, weak = train(server, epochs=1, learning_rate=1e-6)
    assert weak.state == "succeeded" and not weak.activated and "kept as candidate" in weak.gate
    assert weak.active_metrics.accuracy == pytest.approx(first.metrics.accuracy)
    assert classify(server, np.zeros((96, 96, 3), np.uint8)).adapter_version == first.version
    _, forced = train(server, epochs=1, learning_rate=1e-6, force=True)
    assert forced.activated and "--force" in forced.gate


def test_hot_swap_under_load_drops_nothing(server):
    images = create_and_label(server)
    _, v1 = train(server)
    _, v2 = train(server, force=True, seed=1)
    stub = adapters(server)
    timeline: list[tuple[float, float, str]] = []  # (started, done, version) of each activation
    timeline_lock = threading.Lock()
    results, failures = [], []
    stop = threading.Event()

    def client(i):
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                r = classify(server, images[i % len(images)][1])
                results.append((t0, time.monotonic(), r.adapter_version))
            except grpc.RpcError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for n in range(8):
        version = v1.version if n % 2 == 0 else v2.version
        t0 = time.monotonic()
        stub.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="parts", version=version), timeout=60)
        with timeline_lock:
            timeline.append((t0, time.monotonic(), version))
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert len(results) > 40
    for start, end, version in results:
        # Active during the request: the last activation done before it started (v2 at first),
        # or any activation that overlapped it.
        before = [v for s, d, v in timeline if d <= start]
        allowed = {before[-1] if before else v2.version} | {v for s, d, v in timeline if s <= end and d >= start}
        assert version in allowed, (start, end, version, timeline)


@pytest.mark.parametrize("name", ["head.npz", "drift.npz"])
def test_a_damaged_adapter_does_not_replace_the_active_one(server, data_dir, name):
    images = create_and_label(server)
    _, v1 = train(server)
    _, v2 = train(server, force=True, seed=1)
    stub = adapters(server)
    stub.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="parts", version=v1.version), timeout=60)
    damaged = data_dir / "adapters" / "parts" / v2.version / name
    damaged.write_bytes(damaged.read_bytes()[:-100])  # truncated on disk
    with pytest.raises(grpc.RpcError) as info:
        stub.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="parts", version=v2.version), timeout=60)
    assert info.value.code() == grpc.StatusCode.DATA_LOSS and f"{name} is damaged" in info.value.details()
    assert classify(server, images[0][1]).adapter_version == v1.version
    assert stub.ListAdapters(adapt_pb2.ListAdaptersRequest(task="parts"), timeout=10).active_version == v1.version


def test_restart_restores_adapters_with_identical_predictions(server_factory):
    first = server_factory()
    images = create_and_label(first)
    _, job = train(first)
    before = [classify(first, img) for _, img in images[:6]]
    first.stop()
    second = server_factory()
    after = [classify(second, img) for _, img in images[:6]]
    for a, b in zip(before, after):
        assert b.adapter_version == a.adapter_version == job.version
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-6)


def test_rollback_is_one_call(server):
    create_and_label(server)
    _, v1 = train(server)
    _, v2 = train(server, force=True, seed=1)
    back = adapters(server).Rollback(adapt_pb2.RollbackRequest(task="parts"), timeout=60)
    assert back.version == v1.version and back.state == "active"
    with pytest.raises(grpc.RpcError) as info:
        adapters(server).Rollback(adapt_pb2.RollbackRequest(task="parts"), timeout=60)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_cancel_leaves_no_version(server, data_dir):
    create_and_label(server, task="tinytask", backbone=TINY, size=64, per_class=8)
    stub = adapt_pb2_grpc.TrainingServiceStub(server.channel)
    job = stub.StartTraining(adapt_pb2.StartTrainingRequest(task="tinytask", method="lora", options=adapt_pb2.TrainingOptions(epochs=500)), timeout=30)
    for event in stub.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=300):
        if event.phase == "train":
            stub.CancelJob(adapt_pb2.CancelJobRequest(job_id=job.id), timeout=30)
        if event.HasField("job"):
            final = event.job
    assert final.state == "cancelled" and not final.version
    assert not [p for p in (data_dir / "adapters" / "tinytask").glob("*")]


@pytest.mark.parametrize(
    "request_kwargs, code, phrase",
    [
        ({"task": "parts", "method": "svm"}, grpc.StatusCode.INVALID_ARGUMENT, "unknown method 'svm'"),
        ({"task": "imagenet", "method": "head"}, grpc.StatusCode.INVALID_ARGUMENT, "built in"),
        ({"task": "nope", "method": "head"}, grpc.StatusCode.NOT_FOUND, "unknown task"),
    ],
)
def test_bad_training_requests(server, request_kwargs, code, phrase):
    create_and_label(server, per_class=2)
    with pytest.raises(grpc.RpcError) as info:
        adapt_pb2_grpc.TrainingServiceStub(server.channel).StartTraining(adapt_pb2.StartTrainingRequest(**request_kwargs), timeout=30)
    assert info.value.code() == code and phrase in info.value.details()


def test_too_few_labels_fail_the_job_with_a_reason(server):
    create_and_label(server, per_class=1)
    _, job = train(server)
    assert job.state == "failed" and "at least 2 labels" in job.error and not job.version


def test_one_job_per_task(server):
    create_and_label(server, task="tinytask", backbone=TINY, size=64, per_class=8)
    stub = adapt_pb2_grpc.TrainingServiceStub(server.channel)
    job = stub.StartTraining(adapt_pb2.StartTrainingRequest(task="tinytask", method="lora", options=adapt_pb2.TrainingOptions(epochs=500)), timeout=30)
    with pytest.raises(grpc.RpcError) as info:
        stub.StartTraining(adapt_pb2.StartTrainingRequest(task="tinytask", method="head"), timeout=30)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and job.id in info.value.details()
    stub.CancelJob(adapt_pb2.CancelJobRequest(job_id=job.id), timeout=30)


@pytest.mark.parametrize(
    "image, class_name, code, phrase",
    [
        (b"", "ok", grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        (b"\x89PNG\r\n\x1a\nbroken", "ok", grpc.StatusCode.INVALID_ARGUMENT, "corrupt PNG"),
        (None, "scratch", grpc.StatusCode.INVALID_ARGUMENT, "has no class 'scratch'"),
    ],
)
def test_bad_labels_are_refused_and_nothing_is_written(server, data_dir, image, class_name, code, phrase):
    from edgetl.api.v1 import image_pb2
    from tests.adapt_helpers import png

    create_and_label(server, per_class=2)
    labels = adapt_pb2_grpc.LabelServiceStub(server.channel)
    before = labels.GetLabelCounts(adapt_pb2.GetLabelCountsRequest(task="parts"), timeout=10)
    files = sorted((data_dir / "images").rglob("*"))
    data = image if image is not None else png(np.full((32, 32, 3), 7, np.uint8))
    with pytest.raises(grpc.RpcError) as info:
        labels.AddLabel(adapt_pb2.AddLabelRequest(task="parts", image=image_pb2.Image(encoded=data), class_name=class_name), timeout=10)
    assert info.value.code() == code and phrase in info.value.details()
    assert labels.GetLabelCounts(adapt_pb2.GetLabelCountsRequest(task="parts"), timeout=10) == before
    assert sorted((data_dir / "images").rglob("*")) == files


def test_compare_scratch_records_the_transfer_gain(server):
    create_and_label(server)
    _, job = train(server, compare_scratch=True)
    assert job.state == "succeeded" and job.scratch_metrics.n == job.metrics.n
    assert job.metrics.accuracy >= job.scratch_metrics.accuracy


def test_a_killed_training_process_fails_the_job_cleanly(server, data_dir):
    """The worker dies mid-training (OOM killer, a crash): failed job with the reason, no version, server fine."""
    import os
    import signal
    import subprocess

    create_and_label(server, task="tinytask", backbone=TINY, size=64, per_class=8)
    stub = adapt_pb2_grpc.TrainingServiceStub(server.channel)
    job = stub.StartTraining(adapt_pb2.StartTrainingRequest(task="tinytask", method="lora", options=adapt_pb2.TrainingOptions(epochs=500)), timeout=30)
    final = None
    for event in stub.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), timeout=300):
        if event.phase == "train" and event.epoch == 1:
            pids = subprocess.run(["pgrep", "-f", "edgetl.adapt.worker"], capture_output=True, text=True).stdout.split()
            assert pids
            for pid in pids:
                os.kill(int(pid), signal.SIGKILL)
        if event.HasField("job"):
            final = event.job
    assert final.state == "failed" and "killed (signal 9)" in final.error and not final.version
    assert not list((data_dir / "adapters").rglob(".tmp-*")) and not list((data_dir / "adapters" / "tinytask").glob("[0-9]*"))
    r = classify(server, np.zeros((96, 96, 3), np.uint8), task="imagenet")
    assert r.label  # still serving


def test_labels_need_encoded_images(server):
    from edgetl.api.v1 import image_pb2

    create_and_label(server, per_class=2)
    raw = image_pb2.Image(raw=image_pb2.RawImage(data=b"\0" * 12, shape=[2, 2, 3]))
    with pytest.raises(grpc.RpcError) as info:
        adapt_pb2_grpc.LabelServiceStub(server.channel).AddLabel(adapt_pb2.AddLabelRequest(task="parts", image=raw, class_name="ok"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "encoded file bytes" in info.value.details()


@pytest.mark.parametrize("version, phrase", [("7", "no adapter version 7"), ("abc", "is not a number")])
def test_activating_an_unknown_version_is_not_found(server, version, phrase):
    create_and_label(server, per_class=2)
    with pytest.raises(grpc.RpcError) as info:
        adapters(server).ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="parts", version=version), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and phrase in info.value.details()
    assert classify(server, np.zeros((96, 96, 3), np.uint8), task="imagenet").label  # still serving


def test_auto_tries_lora_when_the_head_leaves_room_and_says_why(server, data_dir):
    """On the tiny random backbone the head is poor, so auto times LoRA, trains it and keeps the better one."""
    import json

    create_and_label(server, task="tinyauto", backbone=TINY, size=64, per_class=10)
    events, job = train(server, task="tinyauto", method="auto", epochs=2, batch_size=8)
    assert job.state == "succeeded", job.error
    messages = [e.message for e in events if e.phase == "auto"]
    assert messages[0] == "auto: training a head first" and any(m.startswith("auto chose") for m in messages)
    assert job.gate.startswith("auto chose ") and job.method == "auto"
    manifest = json.loads((data_dir / "adapters" / "tinyauto" / job.version / "manifest.json").read_text())
    summary = manifest["options"]["auto"]
    assert manifest["method"] == summary["chosen"] in ("head", "lora")
    if summary["tried_lora"]:
        assert summary["lora_estimate_s"] > 0 and "lora_val_accuracy" in summary
    listed = adapters(server).ListAdapters(adapt_pb2.ListAdaptersRequest(task="tinyauto"), timeout=10)
    assert listed.adapters[-1].method == summary["chosen"]
    assert not list((data_dir / "adapters" / "tinyauto").glob(f"{job.version}/.auto-*"))

    # With a budget no LoRA job can meet, the head serves, and the summary says so.
    _, quick = train(server, task="tinyauto", method="auto", force=True, time_budget_s=1)
    manifest = json.loads((data_dir / "adapters" / "tinyauto" / quick.version / "manifest.json").read_text())
    assert manifest["method"] == "head" and ("over the time budget of 1 s" in quick.gate or "leaves nothing to gain" in quick.gate or "too few" in quick.gate)


def test_the_head_learns_from_every_flip_and_turn_of_each_image(server, data_dir):
    create_and_label(server, per_class=6)
    _, job = train(server)  # a class named "ok": guided pooling, on the two coarsest maps
    options = adapter_options(server, job.version)
    assert job.state == "succeeded" and options["views"] == 8 and options["pooling"] == "guided" and options["good_class"] == "ok"
    cached = {p.name.split(".", 1)[1] for p in (data_dir / "features").rglob("maps/*.npz")}
    assert cached == {"npz", *(f"v{i}.npz" for i in range(1, 8))}  # each view's maps cached once, for the next job
    _, pooled = train(server, force=True, pooling="global")
    assert pooled.state == "succeeded" and adapter_options(server, pooled.version)["pooling"] == "global"
    cached = {p.name.split(".", 1)[1] for p in (data_dir / "features").rglob("*.npy")}
    assert cached == {"npy", *(f"v{i}.npy" for i in range(1, 8))}
    _, plain = train(server, force=True, views=1)
    assert plain.state == "succeeded" and adapter_options(server, plain.version)["views"] == 1
    _, bad = train(server, views=9)
    assert bad.state == "failed" and "views must be 1-8" in bad.error


def adapter_options(server, version: str) -> dict:
    """The options a version was trained with, defaults filled in."""
    import json

    listed = adapters(server).ListAdapters(adapt_pb2.ListAdaptersRequest(task="parts"), timeout=10).adapters
    return json.loads(next(a for a in listed if a.version == version).options_json)


def test_pooling_follows_the_good_class_and_bad_options_are_refused(server, data_dir):
    create_and_label(server, task="defects", classes=("scratch", "pit", "burn"), per_class=6)
    _, plain = train(server, task="defects")  # no class is named like a good part
    options = json.loads((data_dir / "adapters" / "defects" / plain.version / "manifest.json").read_text())["options"]
    assert plain.state == "succeeded" and options["pooling"] == "global" and "good_class" in options["pooling_reason"]

    _, named = train(server, task="defects", good_class="scratch", force=True)
    options = json.loads((data_dir / "adapters" / "defects" / named.version / "manifest.json").read_text())["options"]
    assert named.state == "succeeded" and options["pooling"] == "guided" and options["good_class"] == "scratch"

    for bad, message in (({"good_class": "fine"}, "good_class 'fine' is not a class of this task; classes: scratch, pit, burn"), ({"pooling": "max"}, "pooling must be 'auto', 'guided' or 'global'")):
        with pytest.raises(grpc.RpcError) as refused:
            train(server, task="defects", **bad)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in refused.value.details()
    _, failed = train(server, task="defects", pooling="guided")
    assert failed.state == "failed" and "guided pooling needs a good class" in failed.error
    assert classify(server, np.zeros((96, 96, 3), np.uint8), task="defects").adapter_version == named.version  # still serving


def test_serve_views_answer_from_the_averaged_flips_and_the_gate_sees_the_same(server, data_dir):
    """Test-time augmentation: trained with serve_views = 4, the adapter answers each image from its
    first four views (itself and its flips), probabilities averaged; its probe and gate evidence too."""
    from edgetl.runtime.adapters import open_adapter
    from edgetl.runtime.guided import load_head
    from edgetl.runtime.views import VIEWS

    images = create_and_label(server, per_class=6)
    _, job = train(server, serve_views=4)
    assert job.state == "succeeded", job.error
    version_dir = data_dir / "adapters" / "parts" / job.version
    manifest = json.loads((version_dir / "manifest.json").read_text())
    assert manifest["serve_views"] == 4 and adapter_options(server, job.version)["serve_views"] == 4
    engine = server.server.engine
    assert engine.adapters["parts"].views == 4
    assert open_adapter(version_dir, engine.batchers, server.server.settings, server.server.store.trt_cache, holdout=True).views == 4

    # The same answer by hand: the backbone on each view, the served head on each, the mean.
    session = engine.batchers["efficientnet_lite0"].session
    head = load_head(version_dir / "head.npz")
    kind, img = next((k, i) for k, i in images if k == "pit")
    x = session.preprocess(img)  # the test's images are BGR, as the server decodes them
    per_view = np.stack([head(session.run(np.ascontiguousarray(VIEWS[v](x))[None], list(head.inputs)))[0] for v in range(4)])
    answer = classify(server, img)
    assert answer.adapter_version == job.version
    # Relative: a confident head's probabilities sit at 1 and 1e-30, where the views still differ.
    assert np.allclose(answer.scores, per_view.mean(axis=0), rtol=1e-3, atol=0)
    assert not np.allclose(answer.scores, per_view[0], rtol=1e-3, atol=0)  # not just the image as sent

    # One request for two tasks on one backbone, answered from different numbers of views: each as alone.
    create_and_label(server, task="single", per_class=6)
    _, single = train(server, task="single")
    assert engine.adapters["single"].views == 1
    both = inference_pb2_grpc.InferenceServiceStub(server.channel).ClassifyTasks(
        inference_pb2.ClassifyTasksRequest(tasks=["parts", "single"], image=image_pb2.Image(encoded=png(img))), timeout=30
    )
    assert both.backbone_runs == 4  # one image in four views, shared by the two tasks
    assert np.allclose(both.answers[0].scores, answer.scores, rtol=1e-3, atol=0)
    assert np.allclose(both.answers[1].scores, classify(server, img, task="single").scores, rtol=1e-3, atol=0)


@pytest.mark.parametrize("views", [3, 16])
def test_serve_views_out_of_range_are_refused_and_the_old_version_serves(server, views):
    create_and_label(server, per_class=4)
    _, first = train(server)
    with pytest.raises(grpc.RpcError) as refused:
        train(server, serve_views=views)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"serve_views must be one of 1, 2, 4, 8, got {views}" in refused.value.details()
    assert classify(server, np.zeros((96, 96, 3), np.uint8)).adapter_version == first.version


@pytest.mark.parametrize("stride", [3, 64])
def test_a_lora_min_stride_that_is_not_offered_is_refused_before_any_training_and_the_old_version_serves(server, stride):
    create_and_label(server, per_class=4)
    _, first = train(server)
    with pytest.raises(grpc.RpcError) as refused:
        train(server, method="lora", lora_min_stride=stride)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"lora_min_stride must be one of 1, 2, 4, 8, 16, 32, got {stride}" in refused.value.details()
    assert classify(server, np.zeros((96, 96, 3), np.uint8)).adapter_version == first.version


def test_a_manifest_with_impossible_serve_views_is_damaged_and_the_active_version_serves(server, data_dir):
    images = create_and_label(server, per_class=4)
    _, first = train(server)
    _, second = train(server, force=True, seed=1)
    stub = adapters(server)
    stub.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="parts", version=first.version), timeout=60)
    path = data_dir / "adapters" / "parts" / second.version / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "serve_views": 3}))
    with pytest.raises(grpc.RpcError) as info:
        stub.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="parts", version=second.version), timeout=60)
    assert info.value.code() == grpc.StatusCode.DATA_LOSS and "its manifest says serve_views must be one of 1, 2, 4, 8, got 3" in info.value.details()
    assert classify(server, images[0][1]).adapter_version == first.version
