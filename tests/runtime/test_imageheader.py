"""Header sniffing and decoding: exact sizes for real files, and fuzzing for the rest.

The fuzz tests assert the one property that matters on a plant network:
whatever bytes arrive, decoding either succeeds or raises our InvalidInput /
TooLarge, never anything else (no crash, no OpenCV exception, no huge
allocation). Examples: 300 per test in CI; EDGETL_FUZZ_EXAMPLES for longer runs.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from edgetl.errors import InvalidInput, TooLarge
from edgetl.runtime.imageheader import read_header
from edgetl.runtime.preprocess import EncodedImage, RawPixels, decode

EXAMPLES = int(os.environ.get("EDGETL_FUZZ_EXAMPLES", "300"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _encode(img: np.ndarray, ext: str) -> bytes:
    return cv2.imencode(ext, img)[1].tobytes()


@pytest.mark.parametrize("ext, fmt", [(".png", "png"), (".jpg", "jpeg"), (".bmp", "bmp")])
@pytest.mark.parametrize("shape", [(1, 1, 3), (37, 91, 3), (300, 451, 1)])
def test_header_size_matches_the_decoded_image(ext, fmt, shape):
    img = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    header = read_header(_encode(img, ext))
    assert header == (fmt, shape[1], shape[0])
    assert decode(EncodedImage(_encode(img, ext)), 10**9).shape == (shape[0], shape[1], 3)


def test_progressive_jpeg_header():
    img = np.random.default_rng(1).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert read_header(data) == ("jpeg", 60, 40)


def _valid_images():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    return [_encode(img, ext) for ext in (".png", ".jpg", ".bmp")]


@fuzz
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes_never_escape_as_anything_but_our_errors(data):
    try:
        out = decode(EncodedImage(data), max_pixels=10_000_000)
    except (InvalidInput, TooLarge):
        return
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


@fuzz
@given(which=st.integers(0, 2), cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_damaged_real_images_never_escape(which, cut, flips):
    """Real files, truncated and with bytes overwritten: the corruption cameras and networks cause."""
    data = bytearray(_valid_images()[which])
    data = data[: max(1, cut % (len(data) + 1))]
    for pos, value in flips:
        data[pos % len(data)] = value
    try:
        out = decode(EncodedImage(bytes(data)), max_pixels=10_000_000)
    except (InvalidInput, TooLarge):
        return
    assert out.ndim == 3 and out.shape[2] == 3


@fuzz
@given(
    shape=st.lists(st.integers(-3, 70), max_size=4),
    size=st.integers(0, 20_000),
    dtype=st.sampled_from(["", "uint8", "float32", "int16", "UINT8"]),
    order=st.sampled_from(["RGB", "BGR"]),
)
def test_raw_tensors_are_checked_before_use(shape, size, dtype, order):
    try:
        out = decode(RawPixels(b"\x07" * size, tuple(shape), dtype, order), max_pixels=1_000)
    except (InvalidInput, TooLarge):
        return
    h, w = shape[0], shape[1]
    assert out.shape == (h, w, 3) and h * w <= 1_000


@fuzz
@given(data=st.binary(max_size=2048))
def test_request_conversion_never_escapes(data):
    """Arbitrary bytes parsed as a ClassifyRequest, then converted as the server does."""
    from google.protobuf.message import DecodeError

    from edgetl.api.v1 import inference_pb2
    from edgetl.server.convert import image_from_proto

    request = inference_pb2.ClassifyRequest()
    try:
        request.ParseFromString(data)
    except DecodeError:
        return
    try:
        image = image_from_proto(request.image)
        decode(image, max_pixels=1_000_000)
    except (InvalidInput, TooLarge):
        return
