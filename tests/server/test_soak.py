"""A bounded soak: several clients mixing valid requests and every kind of bad input while an
adapter is swapped every second. Zero unexpected errors; every bad request gets its own code.

Short in CI (EDGETL_SOAK_SECONDS, default 15); run longer on demand:
    EDGETL_SOAK_SECONDS=300 .venv/bin/pytest tests/server/test_soak.py -s
"""

from __future__ import annotations

import os
import random
import threading
import time

import grpc

from edgetl.api.v1 import adapt_pb2, adapt_pb2_grpc, image_pb2, inference_pb2, inference_pb2_grpc
from tests.adapt_helpers import adapters, create_and_label, png, train
from tests.server.test_bad_input import png_bomb

SECONDS = float(os.environ.get("EDGETL_SOAK_SECONDS", "15"))


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_soak_mixed_traffic_with_swaps(server):
    images = create_and_label(server)
    _, v1 = train(server)
    _, v2 = train(server, force=True, seed=1)
    good = [png(img) for _, img in images[:6]]
    bad = {
        "empty": (image_pb2.Image(encoded=b""), grpc.StatusCode.INVALID_ARGUMENT),
        "garbage": (image_pb2.Image(encoded=os.urandom(200)), grpc.StatusCode.INVALID_ARGUMENT),
        "truncated": (image_pb2.Image(encoded=good[0][:300]), grpc.StatusCode.INVALID_ARGUMENT),
        "raw shape": (image_pb2.Image(raw=image_pb2.RawImage(data=b"\0" * 10, shape=[5, 5, 3])), grpc.StatusCode.INVALID_ARGUMENT),
        "bomb": (image_pb2.Image(encoded=png_bomb(9000, 9000)), grpc.StatusCode.RESOURCE_EXHAUSTED),
        "no image": (image_pb2.Image(), grpc.StatusCode.INVALID_ARGUMENT),
    }
    stub = inference_pb2_grpc.InferenceServiceStub(server.channel)
    unexpected, counts, lock = [], {"ok": 0, "bad": 0, "swaps": 0}, threading.Lock()
    stop = threading.Event()

    def client(seed: int):
        rng = random.Random(seed)
        while not stop.is_set():
            if rng.random() < 0.3:
                name, (image, code) = rng.choice(list(bad.items()))
                task = "parts"
            else:
                name, image, code, task = "good", image_pb2.Image(encoded=rng.choice(good)), None, rng.choice(["parts", "imagenet"])
            try:
                r = stub.Classify(inference_pb2.ClassifyRequest(task=task, image=image), timeout=30)
                if code is not None or not r.label:
                    unexpected.append((name, "answered"))
                with lock:
                    counts["ok"] += 1
            except grpc.RpcError as exc:
                if exc.code() != code:
                    unexpected.append((name, exc.code(), exc.details()))
                with lock:
                    counts["bad"] += 1

    def swapper():
        versions = [v1.version, v2.version]
        n = 0
        while not stop.is_set():
            n += 1
            adapters(server).ActivateAdapter(adapt_pb2.ActivateAdapterRequest(task="parts", version=versions[n % 2]), timeout=60)
            with lock:
                counts["swaps"] += 1
            time.sleep(1.0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)] + [threading.Thread(target=swapper)]
    for t in threads:
        t.start()
    time.sleep(min(3.0, SECONDS / 3))
    rss_start = _rss_mb()
    time.sleep(SECONDS)
    rss_end = _rss_mb()
    stop.set()
    for t in threads:
        t.join()
    print(f"\nsoak {SECONDS:.0f}s: {counts}, process RSS {rss_start:.0f} -> {rss_end:.0f} MB ({rss_end - rss_start:+.0f} MB)")
    assert not unexpected, unexpected[:5]
    assert counts["ok"] > 20 and counts["bad"] > 5 and counts["swaps"] >= 3
    # A loose bound: the print above is the figure to read; this catches a runaway leak.
    assert rss_end - rss_start < 200
    # The server still answers correctly afterwards.
    assert stub.Classify(inference_pb2.ClassifyRequest(task="parts", image=image_pb2.Image(encoded=good[0])), timeout=30).adapter_version in {v1.version, v2.version}
    labels = adapt_pb2_grpc.LabelServiceStub(server.channel).GetLabelCounts(adapt_pb2.GetLabelCountsRequest(task="parts"), timeout=10)
    assert labels.total == len(images)
