"""Anomaly tasks in a real server: created by kind, trained from good parts only, answered with a
score, a threshold, a verdict and (on request) a map; and every wrong way of asking gets a clear error
while the server goes on serving. The backbone is the tests' tiny one (random weights, 64 px: it tells little apart), so
the defect here is a gross one: a large painted square."""

from __future__ import annotations

import cv2
import grpc
import numpy as np
import pytest

from edgetl.api.v1 import (
    adapt_pb2,
    adapt_pb2_grpc,
    image_pb2,
    inference_pb2,
    inference_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
)
from edgetl.synthetic import make_images
from tests.adapt_helpers import classify, png, train
from tests.conftest import TINY


def _create(server, name="surface", **kw):
    stub = model_pb2_grpc.ModelServiceStub(server.channel)
    return stub.CreateTask(model_pb2.CreateTaskRequest(name=name, kind="anomaly", backbone=TINY, **kw), timeout=300)


def _label_good(server, n, task="surface", seed=0, texture="brick"):
    labels = adapt_pb2_grpc.LabelServiceStub(server.channel)
    for _, img in make_images(texture, ("ok",), n, 96, seed):
        labels.AddLabel(adapt_pb2.AddLabelRequest(task=task, image=image_pb2.Image(encoded=png(img)), class_name="good"), timeout=30)


def _ask(server, img, task="surface", with_map=False):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    return stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=png(img)), anomaly_map=with_map), timeout=30)


@pytest.fixture
def enrolled(server):
    task = _create(server)
    assert (task.kind, list(task.class_names)) == ("anomaly", ["good", "anomaly"])
    _label_good(server, 16)
    events, job = train(server, task="surface", method="auto")  # auto means anomaly on an anomaly task
    assert job.state == "succeeded" and job.activated, job.gate
    return server, events, job


def _painted(img, rng):
    """A part with a 36 px square of paint somewhere on it."""
    img = img.copy()
    y, x = rng.integers(0, 96 - 36, 2)
    img[y : y + 36, x : x + 36] = (40, 40, 230)
    return img


def test_an_anomaly_task_learns_good_parts_and_tells_a_defect_apart(enrolled):
    server, events, job = enrolled
    assert job.method == "anomaly" or "anomaly" in job.gate
    assert "false-alarm rate" in job.gate and "distribution-free bound" in job.gate
    assert any(e.phase == "features" for e in events)

    good = [_ask(server, img) for _, img in make_images("brick", ("ok",), 8, 96, seed=11)]
    rng = np.random.default_rng(0)
    other = [_ask(server, _painted(img, rng)) for _, img in make_images("brick", ("ok",), 8, 96, seed=12)]
    for r in good + other:
        a = r.anomaly
        assert r.HasField("anomaly") and a.threshold > 0 and a.score > 0
        assert r.label == ("anomaly" if a.anomalous else "good")
        assert a.anomalous == (a.score > a.threshold)
        assert r.scores[0] + r.scores[1] == pytest.approx(1.0, abs=1e-5)
        assert (r.scores[1] > 0.5) == a.anomalous
        assert not a.map and not a.map_png  # the map only on request
    assert len({r.anomaly.threshold for r in good + other}) == 1
    good_scores, other_scores = [r.anomaly.score for r in good], [r.anomaly.score for r in other]
    assert min(other_scores) > max(good_scores), (good_scores, other_scores)
    assert sum(r.anomaly.anomalous for r in other) >= 7
    assert sum(r.anomaly.anomalous for r in good) <= 1


def test_the_anomaly_map_comes_on_request_as_numbers_and_a_heatmap(enrolled):
    server, _, _ = enrolled
    img = next(make_images("brick", ("ok",), 1, 96, seed=3))[1].copy()
    img[30:60, 30:60] = (20, 200, 20)  # a green square in the middle of a brick part
    r = _ask(server, img, with_map=True)
    a = r.anomaly
    grid = np.array(a.map, np.float32).reshape(a.map_height, a.map_width)
    assert grid.size == a.map_height * a.map_width > 1
    heat = cv2.imdecode(np.frombuffer(a.map_png, np.uint8), cv2.IMREAD_COLOR)
    assert heat.shape == (64, 64, 3)  # the tiny backbone's input size
    h, w = grid.shape
    centre = grid[h // 4 : 3 * h // 4 + 1, w // 4 : 3 * w // 4 + 1].max()
    border = np.concatenate([grid[0], grid[-1], grid[:, 0], grid[:, -1]]).mean()
    assert centre > border  # the map points at the square


def test_anomaly_tasks_refuse_what_does_not_fit_them_and_the_server_goes_on(server):
    models = model_pb2_grpc.ModelServiceStub(server.channel)
    training = adapt_pb2_grpc.TrainingServiceStub(server.channel)
    with pytest.raises(grpc.RpcError) as err:
        models.CreateTask(model_pb2.CreateTaskRequest(name="x", kind="banana"), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "classify, anomaly" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        models.CreateTask(model_pb2.CreateTaskRequest(name="x", kind="anomaly", class_names=["ok", "bad"]), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "good, anomaly" in err.value.details()

    _create(server)
    with pytest.raises(grpc.RpcError) as err:
        models.AddClass(model_pb2.AddClassRequest(task="surface", class_name="scratch"), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "fixed" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        training.StartTraining(adapt_pb2.StartTrainingRequest(task="surface", method="head"), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--method anomaly" in err.value.details()
    models.CreateTask(model_pb2.CreateTaskRequest(name="parts", class_names=["ok", "dent"]), timeout=30)
    with pytest.raises(grpc.RpcError) as err:
        training.StartTraining(adapt_pb2.StartTrainingRequest(task="parts", method="anomaly"), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--kind anomaly" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        training.StartTraining(adapt_pb2.StartTrainingRequest(task="surface", method="anomaly", options=adapt_pb2.TrainingOptions(serve_views=2)), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "scores the image as sent" in err.value.details()

    # Too few good images: the job fails and says how many it needs; nothing is activated.
    _label_good(server, 2)
    _, job = train(server, task="surface", method="anomaly")
    assert job.state == "failed" and "good images" in job.error, job.error
    with pytest.raises(grpc.RpcError) as err:
        _ask(server, next(make_images("brick", ("ok",), 1, 96))[1])
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    # The server goes on serving.
    assert classify(server, next(make_images("brick", ("ok",), 1, 96))[1], task="imagenet").label


def test_a_bank_that_does_not_match_its_manifest_is_refused_and_the_old_version_keeps_serving(enrolled, data_dir):
    server, _, v1 = enrolled
    _label_good(server, 6, seed=4)
    _, v2 = train(server, task="surface", method="anomaly", force=True)
    assert v2.activated and v2.version != v1.version
    stub = adapt_pb2_grpc.AdapterServiceStub(server.channel)
    stub.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="surface", version=v1.version), timeout=60)
    bank = data_dir / "adapters" / "surface" / v2.version / "bank.npz"
    bank.write_bytes(bank.read_bytes()[:-100])
    with pytest.raises(grpc.RpcError) as err:
        stub.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="surface", version=v2.version), timeout=60)
    assert err.value.code() == grpc.StatusCode.DATA_LOSS and "bank.npz is damaged" in err.value.details()
    img = next(make_images("brick", ("ok",), 1, 96, seed=9))[1]
    assert _ask(server, img).adapter_version == v1.version


def test_a_restart_restores_the_anomaly_adapter_with_identical_answers(server_factory):
    first = server_factory()
    _create(first)
    _label_good(first, 16)
    _, job = train(first, task="surface", method="anomaly")
    parts = [img for _, img in make_images("brick", ("ok",), 4, 96, seed=21)]
    before = [_ask(first, img, with_map=True) for img in parts]
    first.stop()
    second = server_factory()
    after = [_ask(second, img, with_map=True) for img in parts]
    for a, b in zip(before, after):
        assert b.adapter_version == a.adapter_version == job.version
        assert b.anomaly.score == pytest.approx(a.anomaly.score, rel=1e-6) and b.anomaly.threshold == a.anomaly.threshold
        np.testing.assert_allclose(b.anomaly.map, a.anomaly.map, rtol=1e-6)


def test_the_triton_export_says_plainly_that_it_does_not_cover_anomaly_tasks(enrolled, data_dir, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "r"
    done = subprocess.run([sys.executable, "-m", "edgetl", "export", "triton", "--task", "surface", "--data-dir", str(data_dir), str(out)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "is an anomaly task" in done.stderr and len(done.stderr.splitlines()) == 1
    assert not out.exists() or list(out.iterdir()) == []


def test_an_operator_enrolls_a_good_part_online_as_a_new_version_and_can_roll_it_back(enrolled, data_dir):
    server, _, v1 = enrolled
    stub = adapt_pb2_grpc.AdapterServiceStub(server.channel)
    # A good part the bank has not seen: a brick part in another light, which the operator confirms.
    part = np.clip(next(make_images("brick", ("ok",), 1, 96, seed=31))[1].astype(np.int16) + 40, 0, 255).astype(np.uint8)
    before = _ask(server, part)
    r = stub.EnrollGood(adapt_pb2.EnrollGoodRequest(task="surface", image=image_pb2.Image(encoded=png(part)), operator_id="ana"), timeout=60)
    assert r.parent_version == v1.version and r.version != v1.version
    assert r.score == pytest.approx(before.anomaly.score, rel=1e-4)  # scored against the bank it was not in
    assert r.patches_added > 0 and r.bank_patches > 0 and r.elapsed_ms > 0
    after = _ask(server, part)
    assert after.adapter_version == r.version and after.anomaly.threshold == pytest.approx(r.threshold)
    assert after.anomaly.score < before.anomaly.score  # its patches are in the bank now

    # A new version like any other: hashed, labelled, listed, and rolled back in one call.
    version_dir = data_dir / "adapters" / "surface" / r.version
    manifest = __import__("json").loads((version_dir / "manifest.json").read_text())
    assert manifest["enrolled"]["parent"] == v1.version and manifest["enrolled"]["operator"] == "ana" and "bank.npz" in manifest["files"]
    counts = adapt_pb2_grpc.LabelServiceStub(server.channel).GetLabelCounts(adapt_pb2.GetLabelCountsRequest(task="surface"), timeout=10)
    assert counts.per_class["good"] == 17
    stub.Rollback(adapt_pb2.RollbackRequest(task="surface"), timeout=60)
    assert _ask(server, part).adapter_version == v1.version


def test_enrolment_refuses_what_it_cannot_do_and_the_server_goes_on(server):
    stub = adapt_pb2_grpc.AdapterServiceStub(server.channel)
    good = png(next(make_images("brick", ("ok",), 1, 96))[1])
    with pytest.raises(grpc.RpcError) as err:  # a classify task
        stub.EnrollGood(adapt_pb2.EnrollGoodRequest(task="imagenet", image=image_pb2.Image(encoded=good)), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _create(server)
    with pytest.raises(grpc.RpcError) as err:  # nothing trained yet
        stub.EnrollGood(adapt_pb2.EnrollGoodRequest(task="surface", image=image_pb2.Image(encoded=good)), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "edgetl train" in err.value.details()
    _label_good(server, 12)
    _, job = train(server, task="surface", method="anomaly")
    assert job.activated
    with pytest.raises(grpc.RpcError) as err:  # an unreadable image
        stub.EnrollGood(adapt_pb2.EnrollGoodRequest(task="surface", image=image_pb2.Image(encoded=b"\x89PNG\r\n\x1a\n broken")), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:  # raw pixels: labels are kept as files
        stub.EnrollGood(adapt_pb2.EnrollGoodRequest(task="surface", image=image_pb2.Image(raw=image_pb2.RawImage(data=b"\0" * 12, shape=[2, 2, 3]))), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    versions = stub.ListAdapters(adapt_pb2.ListAdaptersRequest(task="surface"), timeout=10)
    assert [a.version for a in versions.adapters] == [job.version]  # no version from a refused enrolment
    assert _ask(server, next(make_images("brick", ("ok",), 1, 96, seed=2))[1]).adapter_version == job.version


def test_kserve_v2_carries_the_anomaly_outputs(enrolled):
    """The Triton client gets score, threshold and verdict by default, the map when it names it, the
    same numbers as edgetl.v1; a classifier refuses the anomaly outputs by name."""
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    server, _, _ = enrolled
    rng = np.random.default_rng(1)
    parts = [img for _, img in make_images("brick", ("ok",), 2, 96, seed=21)]
    parts[1] = _painted(parts[1], rng)
    files = triton.InferInput("images", [2], "BYTES")
    files.set_data_from_numpy(np.array([png(p) for p in parts], dtype=np.object_))
    client = triton.InferenceServerClient(url=server.address)
    try:
        meta = client.get_model_metadata("surface", as_json=True)
        outputs = {t["name"]: (t["datatype"], t["shape"]) for t in meta["outputs"]}
        assert outputs["anomalous"] == ("BOOL", ["-1"]) and outputs["anomaly_map"][0] == "FP32"
        result = client.infer("surface", [files])
        v1 = [_ask(server, p, with_map=True).anomaly for p in parts]
        np.testing.assert_allclose(result.as_numpy("anomaly_score"), [a.score for a in v1], rtol=1e-5)
        np.testing.assert_allclose(result.as_numpy("anomaly_threshold"), [v1[0].threshold] * 2, rtol=1e-6)
        assert result.as_numpy("anomalous").tolist() == [a.anomalous for a in v1] == [False, True]
        assert result.as_numpy("anomaly_map") is None  # only when asked for
        assert result.as_numpy("labels").tolist() == [b"good", b"anomaly"]

        asked = client.infer("surface", [files], outputs=[triton.InferRequestedOutput("anomaly_map"), triton.InferRequestedOutput("anomalous")])
        maps = asked.as_numpy("anomaly_map")
        assert maps.shape == (2, v1[0].map_height, v1[0].map_width) and asked.as_numpy("anomaly_score") is None
        assert list(outputs["anomaly_map"][1]) == ["-1", str(v1[0].map_height), str(v1[0].map_width)]
        np.testing.assert_allclose(maps[1].ravel(), v1[1].map, rtol=1e-5)

        with pytest.raises(InferenceServerException) as err:
            client.infer("imagenet", [files], outputs=[triton.InferRequestedOutput("anomaly_score")])
        assert "for anomaly tasks" in err.value.message()
        assert client.infer("surface", [files]).as_numpy("anomalous").tolist() == [False, True]  # still serving
    finally:
        client.close()


def test_a_review_item_of_an_anomaly_task_comes_with_its_map_without_counting_as_a_prediction(enrolled):
    """The terminal's heatmap: GetReviewItem scores the stored image again with the active adapter. It is
    the same answer a camera would get, it counts in no metric and keeps nothing for review; a classify
    task's item or an unknown item get a clear error and the server goes on serving."""
    from edgetl import metrics
    from edgetl.api.v1 import review_pb2, review_pb2_grpc

    server, _, _ = enrolled
    review = review_pb2_grpc.ReviewServiceStub(server.channel)
    review.SetCapturePolicy(review_pb2.SetCapturePolicyRequest(task="surface", random_rate=1.0), timeout=10)
    part = _painted(next(make_images("brick", ("ok",), 1, 96, seed=31))[1], np.random.default_rng(2))
    live = _ask(server, part, with_map=True)
    assert server.server.capture.flush()
    (item,) = review.ListReviewItems(review_pb2.ListReviewItemsRequest(task="surface"), timeout=10).items

    images = metrics.IMAGES.labels("surface", live.adapter_version)
    before = images._value.get()
    got = review.GetReviewItem(review_pb2.GetReviewItemRequest(id=item.id, include_anomaly_map=True), timeout=30)
    assert got.anomaly_adapter_version == live.adapter_version and not got.image  # the image only when asked
    assert got.anomaly.score == pytest.approx(live.anomaly.score, rel=1e-5) and got.anomaly.anomalous == live.anomaly.anomalous
    np.testing.assert_allclose(got.anomaly.map, live.anomaly.map, rtol=1e-5)
    assert got.anomaly.map_png and (got.anomaly.map_height, got.anomaly.map_width) == (live.anomaly.map_height, live.anomaly.map_width)
    assert images._value.get() == before  # not a prediction on the line
    assert server.server.capture.flush()
    assert review.ListReviewItems(review_pb2.ListReviewItemsRequest(task="surface"), timeout=10).total == 1  # nothing kept

    plain = review.GetReviewItem(review_pb2.GetReviewItemRequest(id=item.id), timeout=10)
    assert not plain.HasField("anomaly") and not plain.anomaly_adapter_version

    # A classify task's item (stored as capture stores one; this task has no adapter to capture with).
    from edgetl.review.store import Capture

    model_pb2_grpc.ModelServiceStub(server.channel).CreateTask(model_pb2.CreateTaskRequest(name="parts", class_names=["ok", "pit"], backbone=TINY), timeout=300)
    other, _ = server.server.reviews.add(Capture("parts", png(part), "png", 96, 96, "1", "ok", 0.9, 0.8, [0.9, 0.1], ["flagged"]), 10**9)
    with pytest.raises(grpc.RpcError) as err:
        review.GetReviewItem(review_pb2.GetReviewItemRequest(id=other, include_anomaly_map=True), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "only anomaly tasks have an anomaly map" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        review.GetReviewItem(review_pb2.GetReviewItemRequest(id=987654, include_anomaly_map=True), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert _ask(server, part).anomaly.anomalous == live.anomaly.anomalous  # still serving


def test_an_operator_sets_the_sensitivity_as_a_new_version_and_bad_values_leave_the_old_one_serving(enrolled):
    server, _, _ = enrolled
    adapters = adapt_pb2_grpc.AdapterServiceStub(server.channel)
    part = _painted(next(make_images("brick", ("ok",), 1, 96, seed=41))[1], np.random.default_rng(4))
    before = _ask(server, part)
    v1 = before.anomaly.threshold

    # A looser rate: a lower threshold, from the same leave-one-out scores, as version 2.
    loose = adapters.SetAnomalyThreshold(adapt_pb2.SetAnomalyThresholdRequest(task="surface", false_alarm_rate=0.3, operator_id="ana"), timeout=30)
    assert (loose.version, loose.parent_version) == ("2", "1") and loose.previous_threshold == pytest.approx(v1)
    assert loose.threshold < v1 and loose.false_alarm_rate == pytest.approx(0.3)
    assert loose.good_images >= 2 and loose.guaranteed_false_alarm_rate == pytest.approx((loose.good_images_above + 1) / (loose.good_images + 1))
    now = _ask(server, part)
    assert now.adapter_version == "2" and now.anomaly.threshold == pytest.approx(loose.threshold)
    assert now.anomaly.score == pytest.approx(before.anomaly.score, rel=1e-6)  # the bank is the same; only the line moved

    # A threshold given outright, just above this part's score: it passes as good.
    exact = adapters.SetAnomalyThreshold(adapt_pb2.SetAnomalyThresholdRequest(task="surface", threshold=before.anomaly.score * 1.01), timeout=30)
    assert exact.version == "3" and exact.threshold == pytest.approx(before.anomaly.score * 1.01)
    assert 0.0 < exact.false_alarm_rate < 1.0 and exact.good_images_above <= exact.good_images
    after = _ask(server, part)
    assert (after.adapter_version, after.anomaly.anomalous, after.label) == ("3", False, "good")

    # Out of range, or not asked at all: INVALID_ARGUMENT, and version 3 keeps serving.
    for request, words in [
        (adapt_pb2.SetAnomalyThresholdRequest(task="surface", false_alarm_rate=0.7), "false_alarm_rate must be in (0, 0.5)"),
        (adapt_pb2.SetAnomalyThresholdRequest(task="surface", threshold=-1.0), "must be a positive number"),
        (adapt_pb2.SetAnomalyThresholdRequest(task="surface", threshold=float("nan")), "must be a positive number"),
        (adapt_pb2.SetAnomalyThresholdRequest(task="surface"), "set false_alarm_rate"),
        (adapt_pb2.SetAnomalyThresholdRequest(task="imagenet", false_alarm_rate=0.01), "a threshold is set on anomaly tasks"),
    ]:
        with pytest.raises(grpc.RpcError) as err:
            adapters.SetAnomalyThreshold(request, timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details(), err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        adapters.SetAnomalyThreshold(adapt_pb2.SetAnomalyThresholdRequest(task="nope", false_alarm_rate=0.01), timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert _ask(server, part).adapter_version == "3"

    # Rolled back like any version; the written version loads from disk again, hashes checked, threshold intact.
    assert adapters.Rollback(adapt_pb2.RollbackRequest(task="surface"), timeout=60).version == "2"
    assert _ask(server, part).anomaly.threshold == pytest.approx(loose.threshold)
    adapters.ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="surface", version="3"), timeout=60)
    assert _ask(server, part).anomaly.threshold == pytest.approx(exact.threshold)

    # The same from the command line.
    import json
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "edgetl", "threshold", "--server", server.address, "--task", "surface", *args], capture_output=True, text=True, timeout=120)

    done = cli("--false-alarm-rate", "0.05", "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["version"] == "4" and printed["false_alarm_rate"] == pytest.approx(0.05) and _ask(server, part).adapter_version == "4"
    refused = cli("--false-alarm-rate", "0.9")
    assert refused.returncode != 0 and "false_alarm_rate must be in (0, 0.5)" in refused.stderr and "keeps serving" in refused.stderr
    assert _ask(server, part).adapter_version == "4"
