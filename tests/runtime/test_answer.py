"""The numbers in every answer: softmax and the top classes, against plain references."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edgetl.runtime.engine import top_classes
from edgetl.runtime.heads import LogitsHead, softmax


@given(
    values=st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9]), min_size=1, max_size=40),  # few values: many ties
    k=st.integers(min_value=1, max_value=50),
)
def test_top_classes_are_the_best_first_lower_index_on_ties(values, k):
    probs = np.asarray(values, np.float32)
    expected = sorted(range(len(values)), key=lambda i: (-probs[i], i))[:k]
    got = top_classes(probs, k)
    assert [i for i, _ in got] == expected
    assert [score for _, score in got] == [float(probs[i]) for i in expected]
    assert all(type(i) is int and type(score) is float for i, score in got)  # plain Python: straight into protobuf and JSON


def test_top_five_of_a_thousand():
    probs = softmax(np.random.default_rng(0).standard_normal((1, 1000)).astype(np.float32))[0]
    got = top_classes(probs, 5)
    assert [i for i, _ in got] == np.argsort(-probs, kind="stable")[:5].tolist()


def test_softmax_rows_sum_to_one_and_keep_the_logits():
    logits = np.array([[1000.0, 999.0, -5.0], [0.0, 0.0, 0.0]], np.float32)  # large values: no overflow
    kept = logits.copy()
    p = softmax(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[0, :2], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))], rtol=1e-5)
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-6)
    np.testing.assert_array_equal(logits, kept)
    features = {"logits": logits}
    np.testing.assert_allclose(LogitsHead()(features), p)
    np.testing.assert_array_equal(features["logits"], kept)  # the backbone's output is not written to


def test_nan_scores_still_give_k_classes():
    probs = np.array([0.2, np.nan, 0.5, 0.3], np.float32)  # a broken model's answer is answered, not a crash
    assert len(top_classes(probs, 2)) == 2 and len(top_classes(probs, 1)) == 1
