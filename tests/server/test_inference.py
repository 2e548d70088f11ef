"""Classify through a real server on loopback: every input form, unary and streaming."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc
from tests.conftest import encode

EGYPTIAN_CAT = 285


def classify(server, image: image_pb2.Image, task: str = "imagenet", top_k: int = 0):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    return stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image, top_k=top_k), timeout=30)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_chelsea_is_an_egyptian_cat_in_every_format(server, chelsea_rgb, ext):
    r = classify(server, image_pb2.Image(encoded=encode(chelsea_rgb, ext)))
    assert r.label == "Egyptian cat"
    assert int(np.argmax(r.scores)) == EGYPTIAN_CAT
    assert r.score == pytest.approx(0.78, abs=0.05)
    assert len(r.scores) == 1000 and sum(r.scores) == pytest.approx(1.0, abs=1e-4)
    assert r.task == "imagenet" and r.adapter_version == "builtin"
    assert [c.label for c in r.top_classes][0] == "Egyptian cat" and len(r.top_classes) == 5
    t = r.timing
    assert 0 < t.decode_ms < t.total_ms and 0 < t.inference_ms < t.total_ms


def test_raw_tensors_match_the_encoded_file(server, chelsea_rgb):
    png = classify(server, image_pb2.Image(encoded=encode(chelsea_rgb, ".png")))
    h, w, _ = chelsea_rgb.shape
    rgb = image_pb2.RawImage(data=chelsea_rgb.tobytes(), shape=[h, w, 3], dtype="uint8")
    bgr = image_pb2.RawImage(data=np.ascontiguousarray(chelsea_rgb[:, :, ::-1]).tobytes(), shape=[h, w, 3], color_order=image_pb2.COLOR_ORDER_BGR)
    for raw in (rgb, bgr):
        r = classify(server, image_pb2.Image(raw=raw))
        assert r.label == png.label
        np.testing.assert_allclose(r.scores, png.scores, atol=1e-5)


def test_grey_raw_image_is_accepted(server, chelsea_rgb):
    grey = chelsea_rgb.mean(axis=2).astype(np.uint8)
    r = classify(server, image_pb2.Image(raw=image_pb2.RawImage(data=grey.tobytes(), shape=list(grey.shape))))
    assert len(r.scores) == 1000 and r.label


def test_top_k_lists_the_best_classes_in_order(server, chelsea_rgb):
    r = classify(server, image_pb2.Image(encoded=encode(chelsea_rgb)), top_k=3)
    scores = [c.score for c in r.top_classes]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(max(r.scores))


def test_stream_answers_in_order_and_survives_a_bad_frame(server, chelsea_rgb):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    good = image_pb2.Image(encoded=encode(chelsea_rgb, ".jpg"))
    frames = [good, good, image_pb2.Image(encoded=b"not an image"), good, image_pb2.Image(), good, good, good]
    requests = [inference_pb2.ClassifyRequest(task="imagenet", image=img, request_id=f"f{i}") for i, img in enumerate(frames)]
    responses = list(stub.ClassifyStream(iter(requests), timeout=60))
    assert [r.request_id for r in responses] == [f"f{i}" for i in range(len(frames))]
    for i, r in enumerate(responses):
        if i in (2, 4):
            assert r.error.code == 3 and r.error.message  # INVALID_ARGUMENT, with a reason
        else:
            assert not r.HasField("error") and r.label == "Egyptian cat"


def test_a_camera_that_waits_for_each_answer_gets_it_before_sending_the_next(server, chelsea_rgb):
    """Lockstep use of the stream (send a frame, wait, send the next) must not stall on the pipeline."""
    import queue

    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    feed: queue.Queue = queue.Queue()
    stream = stub.ClassifyStream(iter(feed.get, None), timeout=60)
    for i in range(3):
        feed.put(inference_pb2.ClassifyRequest(task="imagenet", request_id=f"f{i}", image=image_pb2.Image(encoded=encode(chelsea_rgb, ".jpg"))))
        answer = next(stream)  # would wait for the stream's end if responses were held back
        assert (answer.request_id, answer.label) == (f"f{i}", "Egyptian cat")
    feed.put(None)
    assert list(stream) == []


def test_stream_with_an_unknown_task_reports_not_found_per_frame(server, chelsea_rgb):
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    req = inference_pb2.ClassifyRequest(task="nope", image=image_pb2.Image(encoded=encode(chelsea_rgb)))
    (r,) = list(stub.ClassifyStream(iter([req]), timeout=30))
    assert r.error.code == 5 and "unknown task 'nope'" in r.error.message


def test_concurrent_callers_get_their_own_answers(server_factory, chelsea_rgb):
    """Requests batched together must not get each other's results (4 workers, so they batch on any machine)."""
    from concurrent.futures import ThreadPoolExecutor

    server = server_factory(worker_threads=4)

    cat = encode(chelsea_rgb, ".png")
    flipped = encode(np.ascontiguousarray(chelsea_rgb[::-1]), ".png")  # upside down: other scores
    expected = {name: classify(server, image_pb2.Image(encoded=b)).scores for name, b in (("cat", cat), ("flipped", flipped))}

    def call(i):
        name = "cat" if i % 2 else "flipped"
        r = classify(server, image_pb2.Image(encoded=cat if name == "cat" else flipped))
        return name, r.scores

    with ThreadPoolExecutor(8) as pool:
        for name, scores in pool.map(call, range(48)):
            np.testing.assert_allclose(scores, expected[name], atol=1e-5)


def test_one_worker_batches_the_requests_waiting_for_it(server_factory, chelsea_rgb):
    """A one-core server has one worker thread; it takes the requests waiting together and runs them as batches."""
    import asyncio
    import time
    from concurrent.futures import ThreadPoolExecutor

    from edgetl.metrics import REGISTRY

    server = server_factory(worker_threads=1)
    engine = server.server.engine
    cat = encode(chelsea_rgb, ".png")
    flipped = encode(np.ascontiguousarray(chelsea_rgb[::-1]), ".png")
    alone = {b: classify(server, image_pb2.Image(encoded=b)).scores for b in (cat, flipped)}

    def counted(name):
        return REGISTRY.get_sample_value(name, {"backbone": "efficientnet_lite0"}) or 0.0

    gate = threading.Event()

    async def hold():  # the only worker is busy while the four requests arrive
        return await engine._workers.run(gate.wait, 30)

    held = asyncio.run_coroutine_threadsafe(hold(), server.loop)
    runs, images = counted("edgetl_backbone_runs_total"), counted("edgetl_backbone_images_total")
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(classify, server, image_pb2.Image(encoded=b)) for b in (cat, flipped, cat, flipped)]
        waited = time.monotonic()
        while engine._in_flight < 4 and time.monotonic() - waited < 30:
            time.sleep(0.005)
        gate.set()
        answers = [c.result(30) for c in calls]
    assert held.result(30) is True
    # Each caller got its own image's answer (a batch computes what one by one does, to float noise) ...
    for b, answer in zip((cat, flipped, cat, flipped), answers):
        np.testing.assert_allclose(answer.scores, alone[b], atol=1e-5)
    # ... from two backbone runs of two images (a worker takes CPU_GATHER waiting requests at once).
    assert engine._workers.gather == 2
    assert counted("edgetl_backbone_images_total") - images == 4
    assert counted("edgetl_backbone_runs_total") - runs == 2


def test_a_request_past_its_deadline_is_not_computed(server, chelsea_rgb):
    """Work for a caller who has given up is skipped: checked before decoding and before the backbone."""
    import asyncio
    import time

    from edgetl.errors import DeadlineExceeded
    from edgetl.runtime.preprocess import EncodedImage

    engine = server.server.engine
    session = engine.batchers["efficientnet_lite0"].session
    runs = []
    original = session.run
    session.run = lambda x, outputs: runs.append(len(x)) or original(x, outputs)
    try:
        late = engine.classify("imagenet", EncodedImage(encode(chelsea_rgb)), deadline=time.monotonic() - 0.001)
        with pytest.raises(DeadlineExceeded):
            asyncio.run_coroutine_threadsafe(late, server.loop).result(30)
        assert runs == []
        fine = engine.classify("imagenet", EncodedImage(encode(chelsea_rgb)), deadline=time.monotonic() + 30)
        assert asyncio.run_coroutine_threadsafe(fine, server.loop).result(30).label == "Egyptian cat"
        assert runs == [1]
    finally:
        session.run = original


def test_the_batcher_drops_expired_images_from_a_batch(server):
    import time

    from edgetl.errors import DeadlineExceeded

    batcher = server.server.engine.batchers["efficientnet_lite0"]
    x = np.zeros((3, 224, 224), np.float32)
    with pytest.raises(DeadlineExceeded):
        batcher.run(x, ("logits",), deadline=time.monotonic() - 1)
    assert batcher.run(x, ("logits",), deadline=time.monotonic() + 10).features["logits"].shape == (1000,)


def test_the_batch_size_follows_the_provider_when_not_set():
    from edgetl.runtime.batcher import CPU_MAX_BATCH, GPU_MAX_BATCH, max_batch_for

    assert max_batch_for(0, ["CPUExecutionProvider"]) == CPU_MAX_BATCH == 4
    assert max_batch_for(0, ["CUDAExecutionProvider", "CPUExecutionProvider"]) == GPU_MAX_BATCH == 8
    assert max_batch_for(0, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]) == GPU_MAX_BATCH
    assert max_batch_for(3, ["CUDAExecutionProvider"]) == 3
    assert max_batch_for(16, ["CPUExecutionProvider"]) == 16


def test_a_worker_gathers_two_requests_on_the_cpu_and_a_whole_batch_on_a_gpu():
    from edgetl.runtime.batcher import CPU_GATHER, gather_for

    assert gather_for(4, ["CPUExecutionProvider"]) == CPU_GATHER == 2
    assert gather_for(1, ["CPUExecutionProvider"]) == 1  # max_batch = 1: no batching at all
    assert gather_for(8, ["CUDAExecutionProvider", "CPUExecutionProvider"]) == 8
    assert gather_for(8, ["TensorrtExecutionProvider", "CUDAExecutionProvider"]) == 8


def test_the_worker_threads_follow_the_provider_and_the_cores_when_not_set(server):
    from edgetl.runtime.batcher import GPU_WORKERS, MAX_CPU_WORKERS, worker_threads_for

    assert worker_threads_for(0, ["CPUExecutionProvider"], cpus=1) == 1
    assert worker_threads_for(0, ["CPUExecutionProvider"], cpus=2) == 2
    assert worker_threads_for(0, ["CPUExecutionProvider"], cpus=64) == MAX_CPU_WORKERS
    assert worker_threads_for(0, ["CUDAExecutionProvider", "CPUExecutionProvider"], cpus=1) == GPU_WORKERS
    assert worker_threads_for(3, ["CPUExecutionProvider"], cpus=1) == 3
    # The running server took the rule: one worker per core this process may use (a CPU-only machine).
    import os

    assert server.server.engine.worker_threads == worker_threads_for(0, ["CPUExecutionProvider"], cpus=len(os.sched_getaffinity(0)))


def test_heads_answer_in_the_worker_threads_not_on_the_event_loop(server, chelsea_rgb):
    # A guided or anomaly head searches its bank for milliseconds: the event loop must not wait on it.
    engine = server.server.engine
    builtin = engine.adapters["imagenet"]
    called_in = []

    class RecordingHead:  # the built-in head, noting the thread that calls it
        inputs = builtin.head.inputs

        def __call__(self, features):
            called_in.append(threading.current_thread())
            return builtin.head(features)

    engine.adapters["imagenet"] = dataclasses.replace(builtin, head=RecordingHead())
    image = image_pb2.Image(encoded=encode(chelsea_rgb))
    assert classify(server, image).label == "Egyptian cat"
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    both = stub.ClassifyTasks(inference_pb2.ClassifyTasksRequest(tasks=["imagenet"], image=image), timeout=30)
    assert both.answers[0].label == "Egyptian cat"
    assert len(called_in) == 2
    assert all(thread is not server._thread and thread.name.startswith("infer") for thread in called_in)
