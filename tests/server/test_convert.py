"""The serving path's hand-made wire form parses to the message the protobuf library builds."""

from __future__ import annotations

import numpy as np
import pytest

from edgetl.anomaly.model import AnomalyAnswer
from edgetl.api.v1 import inference_pb2
from edgetl.runtime.engine import Prediction
from edgetl.server.convert import prediction_to_proto, prediction_to_wire


def prediction(classes: int, anomaly: AnomalyAnswer | None = None) -> Prediction:
    scores = np.random.default_rng(classes).dirichlet(np.ones(classes)).astype(np.float32)
    best = np.argsort(-scores)[:5]
    return Prediction(
        task="weld-3", label=f"c{best[0]}", score=float(scores[best[0]]), scores=scores,
        top=[(f"c{i}", float(scores[i])) for i in best], adapter_version="v7",
        decode_ms=0.4, queue_ms=0.01, inference_ms=6.2, total_ms=6.9, anomaly=anomaly, input_size=(224, 224),
    )


# 2 and 1,000 classes; 20 and 40 floats straddle the one-byte length (127 bytes) of the packed field.
@pytest.mark.parametrize("classes", [2, 20, 40, 1000])
def test_the_wire_form_is_the_same_message(classes):
    p = prediction(classes)
    parsed = inference_pb2.ClassifyResponse.FromString(prediction_to_wire(p, "req-1"))
    assert parsed == prediction_to_proto(p, "req-1")
    assert list(parsed.scores) == p.scores.tolist()  # every float exactly, in class order


def test_the_wire_form_carries_an_anomaly_answer_and_its_map():
    heat = np.linspace(0, 2, 49, dtype=np.float32).reshape(7, 7)
    p = prediction(2, AnomalyAnswer(score=1.5, threshold=1.0, anomalous=True, map=heat))
    parsed = inference_pb2.ClassifyResponse.FromString(prediction_to_wire(p, anomaly_map=True))
    assert parsed == prediction_to_proto(p, anomaly_map=True)
    assert parsed.anomaly.anomalous and parsed.anomaly.map_height == 7 and parsed.anomaly.map_png


def test_scores_of_another_dtype_are_sent_as_float32():
    p = prediction(3)
    wide = Prediction(**{**p.__dict__, "scores": p.scores.astype(np.float64)})
    assert inference_pb2.ClassifyResponse.FromString(prediction_to_wire(wide)).scores == pytest.approx(p.scores.tolist())
