"""benchmarks/peers/fronts.py: the minimal servers answer right in every shape, and the report divides by the right row.

The measuring itself needs minutes of a quiet machine (BENCHMARKS.md); here each
shape of `front_server.py` is started on the built-in export and called over
real gRPC, and the report is checked on cells made up for the purpose.
"""

from __future__ import annotations

import subprocess
import sys

import cv2
import grpc
import numpy as np
import pytest

from edgetl.api.v1 import image_pb2, inference_pb2, inference_pb2_grpc
from tests.conftest import builtin_export
from tests.peers_helpers import PEERS, front_server, load_script
from tests.peers_helpers import peer_env as env_for


@pytest.fixture(scope="module")
def fronts():
    return load_script("fronts")


@pytest.fixture(scope="module")
def peer_env(session_store, tmp_path_factory):
    _, record = builtin_export(session_store)
    return env_for(record, tmp_path_factory.mktemp("fronts"))


@pytest.mark.parametrize("shape", ["sync", "aio-inline", "aio-worker"])
def test_each_shape_classifies_over_grpc_and_answers_a_bad_request_with_an_error(fronts, peer_env, shape, chelsea_rgb, tmp_path):
    with front_server(shape, peer_env, tmp_path) as address:
        rgb = np.ascontiguousarray(cv2.resize(chelsea_rgb, (224, 224), interpolation=cv2.INTER_AREA))
        with grpc.insecure_channel(address) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1])[1].tobytes()
            for image in (
                image_pb2.Image(encoded=jpeg),
                image_pb2.Image(raw=image_pb2.RawImage(data=rgb.tobytes(), shape=list(rgb.shape), dtype="uint8", color_order=image_pb2.COLOR_ORDER_RGB)),
            ):
                answer = stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image), timeout=30)
                assert answer.label == "Egyptian cat"
                assert len(answer.scores) == 1000 and answer.score == pytest.approx(max(answer.scores))
            with pytest.raises(grpc.RpcError) as refused:
                stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=b"not an image")), timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNKNOWN  # no error mapping in a minimal server
            # and it goes on serving
            assert stub.Classify(inference_pb2.ClassifyRequest(task="imagenet", image=image_pb2.Image(encoded=jpeg)), timeout=30).label == "Egyptian cat"


def test_an_unknown_shape_is_refused_with_the_shapes_named(peer_env):
    got = subprocess.run([sys.executable, str(PEERS / "front_server.py"), "threads", "0"], env=peer_env, capture_output=True, text=True, timeout=120)
    assert got.returncode != 0 and "unknown shape 'threads'; one of sync, aio-inline, aio-worker" in got.stderr


def test_every_row_is_divided_by_the_worker_shape_of_its_own_block(fronts):
    def cell(row, r, per_s, c=4):
        return {"row": row, "input": "jpeg", "concurrency": c, "round": r, "per_s": per_s}

    cells = [
        cell(fronts.BASELINE, 0, 100), cell(fronts.EDGETL_ROW, 0, 110), cell("front · sync", 0, 95),
        cell(fronts.BASELINE, 1, 80), cell(fronts.EDGETL_ROW, 1, 84), cell("front · sync", 1, 80),
    ]
    ratios = fronts.ratios_to_baseline(cells)
    assert ratios[("jpeg", 4, fronts.EDGETL_ROW)] == pytest.approx([1.10, 1.05])
    assert ratios[("jpeg", 4, "front · sync")] == pytest.approx([0.95, 1.0])
    text = fronts.report({"machine": "m", "pin": "p", "rounds": 2, "seconds": 4, "slice": 0.5, "date": "d", "cells": cells})
    assert f"| {fronts.EDGETL_ROW} | 97 [84–110] | 1.075 [1.050–1.100] |" in text
    assert "| front · sync | 88 [80–95] | 0.975 [0.950–1.000] |" in text
