"""The review queue through a real server: capture, resolutions into labels, live accuracy, policies, new classes.

Real ONNX Runtime, real SQLite, real files, a real head trained on
synthetic defects on the built-in backbone.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request

import cv2
import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton

from edgetl.adapt.labels import LabelStore
from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc, model_pb2, model_pb2_grpc, review_pb2, review_pb2_grpc
from edgetl.db import DB_FILE
from edgetl.review.capture import Capturer
from edgetl.review.policy import CapturePolicies, CapturePolicy
from edgetl.review.store import ReviewStore
from edgetl.server.security import hash_token
from edgetl.synthetic import make_images
from tests.adapt_helpers import create_and_label, png, train
from tests.conftest import ServerThread, make_settings


def _review(server):
    return review_pb2_grpc.ReviewServiceStub(server.channel)


def _classify(server, img, task="parts", flag=False, request_id="", metadata=()):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    request = inference_pb2.ClassifyRequest(task=task, image=image_pb2.Image(encoded=png(img)), flag_for_review=flag, request_id=request_id)
    return stub.Classify(request, timeout=30, metadata=metadata)


def _items(server, task="parts", metadata=(), **kw):
    return list(_review(server).ListReviewItems(review_pb2.ListReviewItemsRequest(task=task, page_size=500, **kw), timeout=10, metadata=metadata).items)


def _policy(server, metadata=(), **fields):
    return _review(server).SetCapturePolicy(review_pb2.SetCapturePolicyRequest(task="parts", **fields), timeout=10, metadata=metadata)


def _resolve(server, ids, action, class_name="", metadata=(), operator_id=""):
    request = review_pb2.ResolveReviewItemsRequest(item_ids=ids, action=action, class_name=class_name, operator_id=operator_id)
    return _review(server).ResolveReviewItems(request, timeout=30, metadata=metadata)


def _flush(server):
    assert server.server.capture.flush(10)


@pytest.fixture
def trained(server):
    """A server with task `parts` (ok, pit, burn) and an active head adapter; returns (server, labelled images)."""
    images = create_and_label(server)
    _, job = train(server)
    assert job.activated
    return server, images


def test_traffic_fills_the_queue_from_both_apis_with_reasons_and_the_image_as_received(trained, data_dir):
    server, images = trained
    _policy(server, random_rate=1.0)  # every image is also a random sample
    sent = {}
    for i, (_, img) in enumerate(images[:4]):
        r = _classify(server, img, flag=(i == 0), request_id=f"frame-{i}")
        sent[f"frame-{i}"] = (png(img), r)
    # A camera sending raw pixels: kept losslessly, as PNG.
    raw = np.ascontiguousarray(images[5][1][:, :, ::-1])  # RGB
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    stub.Classify(
        inference_pb2.ClassifyRequest(
            task="parts", request_id="raw", image=image_pb2.Image(raw=image_pb2.RawImage(data=raw.tobytes(), shape=list(raw.shape)))
        ),
        timeout=30,
    )
    # KServe v2 with the flag parameter.
    client = triton.InferenceServerClient(server.address)
    tensor = triton.InferInput("images", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([png(images[6][1])], dtype=np.object_))
    client.infer("parts", [tensor], request_id="kserve-1", parameters={"flag_for_review": True})
    client.close()
    _flush(server)

    items = {i.request_id: i for i in _items(server, order="time")}
    assert set(items) == {*sent, "raw", "kserve-1"}
    first = items["frame-0"]
    assert first.reasons[0] == "flagged" and "random" in first.reasons and first.caller == "local"
    assert "flagged" in items["kserve-1"].reasons
    for request_id, (data, response) in sent.items():
        item = items[request_id]
        assert (item.predicted, item.adapter_version) == (response.label, response.adapter_version)
        assert item.score == pytest.approx(response.score, abs=1e-6) and list(item.scores) == pytest.approx(list(response.scores), abs=1e-5)
        full = _review(server).GetReviewItem(review_pb2.GetReviewItemRequest(id=item.id, include_image=True), timeout=10)
        assert full.image == data and full.image_format == "png"  # byte for byte as the camera sent it
    raw_item = _review(server).GetReviewItem(review_pb2.GetReviewItemRequest(id=items["raw"].id, include_image=True), timeout=10)
    decoded = cv2.imdecode(np.frombuffer(raw_item.image, np.uint8), cv2.IMREAD_COLOR)
    assert raw_item.image_format == "png" and np.array_equal(decoded[:, :, ::-1], raw)  # lossless
    summary = _review(server).GetReviewSummary(review_pb2.GetReviewSummaryRequest(), timeout=10)
    assert [(t.task, t.pending) for t in summary.tasks] == [("parts", 6)] and summary.tasks[0].pending_by_reason["flagged"] == 2


def test_sure_answers_are_not_kept_and_the_builtin_task_never(trained, chelsea_rgb):
    server, images = trained
    _policy(server, random_rate=0.0, uncertain_score=0.0, uncertain_margin=0.0)
    for _, img in images[:5]:
        _classify(server, img)
    _classify(server, chelsea_rgb[:, :, ::-1], task="imagenet", flag=True)
    _flush(server)
    assert _items(server, state="all") == []
    with pytest.raises(grpc.RpcError) as info:
        _review(server).GetCapturePolicy(review_pb2.GetCapturePolicyRequest(task="imagenet"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "built in" in info.value.details()


def test_resolutions_become_labels_with_the_prediction_they_correct(trained, data_dir):
    server, images = trained
    _policy(server, random_rate=1.0)
    fresh = list(make_images("brick", ("ok", "pit", "burn"), 3, 96, 42))  # images not labelled yet
    for i, (_, img) in enumerate(fresh):
        _classify(server, img, request_id=str(i))
    _flush(server)
    items = _items(server, order="time")
    assert len(items) == 9
    accept, relabel, reject, skip = items[0], items[1], items[2], items[3]
    wrong = next(c for c in ("ok", "pit", "burn") if c != relabel.predicted)

    r = _resolve(server, [accept.id], review_pb2.ACCEPT, operator_id="anna")
    assert r.resolved == 1 and r.results[0].state == "accepted" and r.results[0].label_id
    r = _resolve(server, [relabel.id], review_pb2.RELABEL, wrong, operator_id="anna")
    assert r.results[0].state == "relabelled"
    assert _resolve(server, [reject.id], review_pb2.REJECT).results[0].state == "rejected"
    assert _resolve(server, [skip.id], review_pb2.SKIP).results[0].state == "skipped"

    labels = LabelStore(data_dir, data_dir / DB_FILE, readonly=True)
    try:
        by_id = {l.id: l for l in labels.current("parts")}
        accepted = _review(server).GetReviewItem(review_pb2.GetReviewItemRequest(id=accept.id), timeout=10)
        assert by_id[accepted.label_id].class_name == accept.predicted and accepted.resolved_by == "anna"
        relabelled = _review(server).GetReviewItem(review_pb2.GetReviewItemRequest(id=relabel.id, include_image=True), timeout=10)
        assert by_id[relabelled.label_id].class_name == wrong
        # The label records who made it and which prediction it corrects; the image now lives in the label store.
        sent = png(fresh[int(relabel.request_id)][1])
        assert relabelled.image == sent
        assert labels.history("parts", hashlib.sha256(sent).hexdigest())[-1][:2] == (wrong, "anna")
        row = labels._db.execute("SELECT corrects FROM labels WHERE id = ?", (relabelled.label_id,)).fetchone()
        assert row[0] == relabel.predicted
    finally:
        labels.close()
    gone = _review(server).GetReviewItem(review_pb2.GetReviewItemRequest(id=reject.id), timeout=10)
    assert gone.state == "rejected"
    with pytest.raises(grpc.RpcError) as info:
        _review(server).GetReviewItem(review_pb2.GetReviewItemRequest(id=reject.id, include_image=True), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and "rejected" in info.value.details()

    # Many at once (the terminal's grid): per-item outcomes, one bad item does not fail the rest.
    rest = [i.id for i in items[4:]]
    r = _resolve(server, [*rest, reject.id, 99999], review_pb2.RELABEL, "burn")
    assert r.resolved == len(rest)
    errors = {x.item_id: x.error for x in r.results if not x.ok}
    assert "was rejected" in errors[reject.id] and "unknown review item" in errors[99999]
    assert [i.id for i in _items(server, state="skipped")] == [skip.id]
    assert {i.id for i in _items(server, state="resolved")} == {accept.id, relabel.id, reject.id, *rest}
    # A skipped item can still be labelled; relabelling to the predicted class is accepting.
    assert _resolve(server, [skip.id], review_pb2.RELABEL, skip.predicted).results[0].state == "accepted"


@pytest.mark.parametrize(
    "request_kwargs,message",
    [
        ({"item_ids": [], "action": review_pb2.ACCEPT}, "no review items"),
        ({"item_ids": [1], "action": review_pb2.RELABEL}, "relabel needs class_name"),
        ({"item_ids": [1]}, "set action"),
        ({"item_ids": [1], "action": review_pb2.ACCEPT, "class_name": "ok"}, "only for relabel"),
        ({"item_ids": list(range(501)), "action": review_pb2.SKIP}, "limit is 500"),
    ],
)
def test_bad_resolutions_are_refused_whole_and_the_server_goes_on(server, chelsea_rgb, request_kwargs, message):
    with pytest.raises(grpc.RpcError) as info:
        _review(server).ResolveReviewItems(review_pb2.ResolveReviewItemsRequest(**request_kwargs), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details()
    assert _classify(server, chelsea_rgb[:, :, ::-1], task="imagenet").label == "Egyptian cat"


def test_bad_queries_get_clear_errors(trained):
    server, _ = trained
    stub = _review(server)
    cases = [
        (lambda: stub.ListReviewItems(review_pb2.ListReviewItemsRequest(task="nope"), timeout=10), grpc.StatusCode.NOT_FOUND, "unknown task 'nope'"),
        (lambda: stub.ListReviewItems(review_pb2.ListReviewItemsRequest(task="parts", page_token="xx"), timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "page_token"),
        (lambda: stub.ListReviewItems(review_pb2.ListReviewItemsRequest(task="parts", page_size=10_000), timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "page_size"),
        (lambda: stub.ListReviewItems(review_pb2.ListReviewItemsRequest(task="parts", state="done"), timeout=10), grpc.StatusCode.INVALID_ARGUMENT, "state"),
        (lambda: stub.GetReviewItem(review_pb2.GetReviewItemRequest(id=404), timeout=10), grpc.StatusCode.NOT_FOUND, "unknown review item 404"),
        (lambda: _policy(server, random_rate=3.0), grpc.StatusCode.INVALID_ARGUMENT, "random_rate"),
        (lambda: stub.GetLiveAccuracy(review_pb2.GetLiveAccuracyRequest(task=""), timeout=10), grpc.StatusCode.NOT_FOUND, "unknown task"),
    ]
    for call, code, message in cases:
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == code and message in info.value.details(), info.value.details()
    client = triton.InferenceServerClient(server.address)
    tensor = triton.InferInput("images", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([png(np.zeros((96, 96, 3), np.uint8))], dtype=np.object_))
    with pytest.raises(triton.InferenceServerException, match="flag_for_review"):
        client.infer("parts", [tensor], parameters={"flag_for_review": 2.5})
    assert client.infer("parts", [tensor]).as_numpy("labels").shape == (1,)
    client.close()


def test_live_accuracy_is_estimated_from_random_samples_only(trained):
    server, images = trained
    _policy(server, random_rate=1.0, uncertain_score=1.0)  # every image: random, and uncertain too
    for _, img in images[:12]:
        _classify(server, img)
    _flush(server)
    items = _items(server, order="time")
    assert len(items) == 12
    right, wrong = items[:9], items[9:]
    _resolve(server, [i.id for i in right], review_pb2.ACCEPT)
    for item in wrong:
        _resolve(server, [item.id], review_pb2.RELABEL, next(c for c in ("ok", "pit", "burn") if c != item.predicted))
    # An uncertain-only capture (not sampled) that the operator corrects does not move the estimate.
    _policy(server, random_rate=0.0)
    _classify(server, images[20][1], flag=True)
    _flush(server)
    extra = _items(server)[0]
    _resolve(server, [extra.id], review_pb2.RELABEL, next(c for c in ("ok", "pit", "burn") if c != extra.predicted))

    live = _review(server).GetLiveAccuracy(review_pb2.GetLiveAccuracyRequest(task="parts"), timeout=10)
    [v1] = live.versions
    assert (v1.adapter_version, v1.reviewed, v1.correct, v1.active) == ("1", 12, 9, True)
    assert v1.accuracy == pytest.approx(0.75) and v1.low == pytest.approx(0.4677, abs=1e-3) and v1.high == pytest.approx(0.9111, abs=1e-3)
    assert live.confidence == pytest.approx(0.95)


def test_rate_caps_drop_and_count(trained):
    server, images = trained
    _policy(server, per_minute=3, random_rate=0.0)
    before = _metric(server, 'edgetl_review_dropped_total{cause="rate_limit",task="parts"}')
    for _, img in images[:8]:
        _classify(server, img, flag=True)
    _flush(server)
    assert len(_items(server)) == 3
    assert _metric(server, 'edgetl_review_dropped_total{cause="rate_limit",task="parts"}') - before == 5
    assert _metric(server, 'edgetl_review_captured_total{reason="flagged",task="parts"}') >= 3
    assert _metric(server, 'edgetl_review_pending{task="parts"}') == 3
    _resolve(server, [i.id for i in _items(server)], review_pb2.ACCEPT)
    assert _metric(server, 'edgetl_review_pending{task="parts"}') == 0
    assert _metric(server, 'edgetl_review_resolved_total{action="accept",task="parts"}') >= 3


def _metric(server, series: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.server.metrics_port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_full_hand_off_drops_instead_of_waiting(tmp_path):
    """The writer is stuck (its store is locked): offers still return at once, and the excess is counted."""
    from edgetl import metrics
    from edgetl.runtime.engine import Prediction
    from edgetl.runtime.preprocess import EncodedImage

    store = ReviewStore(tmp_path, tmp_path / DB_FILE, lambda sha, fmt: tmp_path / "none")
    policies = CapturePolicies(tmp_path / DB_FILE, CapturePolicy(random_rate=1.0))
    capturer = Capturer(store, policies, skip=(), max_pixels=10**7, queue_size=2)
    prediction = Prediction("t", "ok", 0.9, np.array([0.9, 0.1], np.float32), [("ok", 0.9), ("ng", 0.1)], "1", 0, 0, 0, 0)
    image = EncodedImage(png(np.zeros((8, 8, 3), np.uint8)))
    dropped = metrics.REVIEW_DROPPED.labels("t", "queue_full")
    before = dropped._value.get()
    store._lock.acquire()  # the writer will block on its first item
    try:
        capturer.offer(prediction, image)
        deadline = time.monotonic() + 10
        while capturer._writer.waiting and time.monotonic() < deadline:
            time.sleep(0.01)  # the writer has taken the first item and is stuck on the lock
        offers = threading.Thread(target=lambda: [capturer.offer(prediction, image) for _ in range(5)])
        offers.start()
        offers.join(10)
        assert not offers.is_alive()  # never waited for the stuck writer
        assert dropped._value.get() - before == 3  # 2 fit in the queue, 3 did not
    finally:
        store._lock.release()
    capturer.close()
    assert store.summary(["t"])["t"]["pending"] == 3
    store.close()
    policies.close()


TOKENS = {
    hash_token("cam"): {"name": "plc-7", "role": "inference"},
    hash_token("op"): {"name": "anna", "role": "operator"},
    hash_token("adm"): {"name": "ben", "role": "admin"},
}


def _as(token):
    return (("authorization", f"Bearer {token}"),)


def test_identities_are_recorded_and_roles_enforced(data_dir):
    server = ServerThread(make_settings(data_dir, tokens=TOKENS))
    try:
        models = model_pb2_grpc.ModelServiceStub(server.channel)
        assert models.WhoAmI(model_pb2.WhoAmIRequest(), metadata=_as("op"), timeout=10) == model_pb2.Caller(name="anna", role="operator", security=True)
        images = create_and_label_as(server, "adm")
        _classify(server, images[0][1], flag=True, metadata=_as("cam"))
        _flush(server)
        [item] = _items(server, metadata=_as("op"))
        assert item.caller == "plc-7"  # who sent the image
        with pytest.raises(grpc.RpcError) as info:
            _items(server, metadata=_as("cam"))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as info:
            _policy(server, metadata=_as("op"), random_rate=0.5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "SetCapturePolicy needs 'admin'" in info.value.details()
        assert _policy(server, metadata=_as("adm"), random_rate=0.5).updated_by == "ben"
        # With security the operator_id of the request is ignored: the label names the signed-in person.
        _resolve(server, [item.id], review_pb2.ACCEPT, metadata=_as("op"), operator_id="someone-else")
        resolved = _review(server).GetReviewItem(review_pb2.GetReviewItemRequest(id=item.id), metadata=_as("op"), timeout=10)
        assert resolved.resolved_by == "anna"
        audit = [json.loads(line) for line in (data_dir / "audit.jsonl").read_text().splitlines()]
        entry = next(e for e in audit if e["action"] == "ResolveReviewItems")
        assert {"who": "anna", "role": "operator", "outcome": "OK", "item_ids": [item.id], "verdict": "accept"}.items() <= entry.items()
        assert not any(e["action"] == "ListReviewItems" and e["outcome"] == "OK" for e in audit)  # reads are not audited
    finally:
        server.stop()


def create_and_label_as(server, token):
    """create_and_label, with an admin's token on every call."""
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc
    from edgetl.synthetic import make_images

    model_pb2_grpc.ModelServiceStub(server.channel).CreateTask(model_pb2.CreateTaskRequest(name="parts", class_names=["ok", "pit", "burn"]), metadata=_as(token), timeout=300)
    labels = adapt_pb2_grpc.LabelServiceStub(server.channel)
    images = list(make_images("brick", ("ok", "pit", "burn"), 10, 96, 0))
    for kind, img in images:
        labels.AddLabel(adapt_pb2.AddLabelRequest(task="parts", image=image_pb2.Image(encoded=png(img)), class_name=kind), metadata=_as(token), timeout=30)
    stub = adapt_pb2_grpc.TrainingServiceStub(server.channel)
    job = stub.StartTraining(adapt_pb2.StartTrainingRequest(task="parts", method="head"), metadata=_as(token), timeout=30)
    final = list(stub.WatchJob(adapt_pb2.WatchJobRequest(job_id=job.id), metadata=_as(token), timeout=300))[-1].job
    assert final.activated
    return images


def test_a_new_defect_class_is_served_trained_and_gated_fairly(server):
    from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc
    from edgetl.synthetic import make_images

    create_and_label(server, classes=("ok", "pit"), per_class=10)
    _, first = train(server)
    models = model_pb2_grpc.ModelServiceStub(server.channel)
    task = models.AddClass(model_pb2.AddClassRequest(task="parts", class_name="burn"), timeout=10)
    assert list(task.class_names) == ["ok", "pit", "burn"] and task.active_adapter_version == first.version
    burn = [img for _, img in make_images("brick", ("burn",), 10, 96, 3)]
    # The adapter trained before the class existed answers 0 for it, and names the classes in order.
    r = _classify(server, burn[0])
    assert len(r.scores) == 3 and r.scores[2] == 0.0 and r.label in ("ok", "pit")
    for bad, code, message in [
        (("parts", "burn"), grpc.StatusCode.ALREADY_EXISTS, "already has class 'burn'"),
        (("imagenet", "x"), grpc.StatusCode.INVALID_ARGUMENT, "built in"),
        (("nope", "x"), grpc.StatusCode.NOT_FOUND, "unknown task"),
        (("parts", ""), grpc.StatusCode.INVALID_ARGUMENT, "1-128 characters"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            models.AddClass(model_pb2.AddClassRequest(task=bad[0], class_name=bad[1]), timeout=10)
        assert info.value.code() == code and message in info.value.details(), info.value.details()

    # Training before the new class has labels says what is missing.
    _, short = train(server)
    assert short.state == "failed" and "'burn': 0" in short.error
    labels = adapt_pb2_grpc.LabelServiceStub(server.channel)
    for img in burn:
        labels.AddLabel(adapt_pb2.AddLabelRequest(task="parts", image=image_pb2.Image(encoded=png(img)), class_name="burn"), timeout=30)

    # A deliberately weak adapter: worse on the classes the active one knows, so refused even though
    # the active one cannot get 'burn' right at all.
    _, weak = train(server, epochs=1, learning_rate=1e-6)
    assert not weak.activated and "worse on the classes the active adapter knows" in weak.gate, weak.gate
    _, good = train(server)
    assert good.activated and "classes both know" in good.gate and "'burn'" in good.gate, good.gate
    answers = [_classify(server, img) for img in burn]
    assert sum(a.label == "burn" for a in answers) >= 8 and {a.adapter_version for a in answers} == {good.version}
